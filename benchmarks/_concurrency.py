"""7. The async service: its per-call overhead, and how threads and tasks scale when providers make them wait.

A CPU-bound lifecycle on two cores measures the interpreter, not paykit; the
question users ask is whether concurrency helps when the provider takes time. So
the fakes here sleep 5 ms per provider call (``time.sleep`` in a thread,
``asyncio.sleep`` in a task), like a nearby real provider answering quickly.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import threading
import time
from typing import Any

from _common import Report, ratio, us

from paykit import AsyncPaymentService, Money, PaymentService
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import AsyncFakeProvider, FakeProvider

PROVIDER_DELAY = 0.005
"""Seconds each provider call of the waiting fakes takes."""


class WaitingFake(FakeProvider):
    """A FakeProvider whose every call takes 5 ms, blocking its thread."""

    def create_payment(self, request: Any) -> Any:
        time.sleep(PROVIDER_DELAY)
        return super().create_payment(request)

    def confirm_payment(self, payment: Any, **kwargs: Any) -> Any:
        time.sleep(PROVIDER_DELAY)
        return super().confirm_payment(payment, **kwargs)

    def refund_payment(self, payment: Any, refund: Any, **kwargs: Any) -> Any:
        time.sleep(PROVIDER_DELAY)
        return super().refund_payment(payment, refund, **kwargs)


class AsyncWaitingFake(AsyncFakeProvider):
    """An AsyncFakeProvider whose every call takes 5 ms, yielding to the event loop meanwhile."""

    async def create_payment(self, request: Any) -> Any:
        await asyncio.sleep(PROVIDER_DELAY)
        return await super().create_payment(request)

    async def confirm_payment(self, payment: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(PROVIDER_DELAY)
        return await super().confirm_payment(payment, **kwargs)

    async def refund_payment(self, payment: Any, refund: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(PROVIDER_DELAY)
        return await super().refund_payment(payment, refund, **kwargs)


def sync_lifecycle(service: PaymentService, i: int) -> None:
    payment = service.initialize_payment(user_id=f"u{i % 100}", amount=Money.of("12.500", "KWD"), provider="fake")
    service.confirm_payment(payment.id)
    service.refund_payment(payment.id, amount=Money.of("5.000", "KWD"))


async def async_lifecycle(service: AsyncPaymentService, i: int) -> None:
    payment = await service.initialize_payment(user_id=f"u{i % 100}", amount=Money.of("12.500", "KWD"), provider="fake")
    await service.confirm_payment(payment.id)
    await service.refund_payment(payment.id, amount=Money.of("5.000", "KWD"))


def _sync_per_lifecycle(n: int) -> float:
    service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])
    start = time.perf_counter()
    for i in range(n):
        sync_lifecycle(service, i)
    return (time.perf_counter() - start) / n


def _async_per_lifecycle(n: int) -> float:
    async def run() -> float:
        service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[AsyncFakeProvider()])
        start = time.perf_counter()
        for i in range(n):
            await async_lifecycle(service, i)
        return (time.perf_counter() - start) / n

    return asyncio.run(run())


def _threads_throughput(n: int, threads: int) -> float:
    service = PaymentService(storage=MemoryStorage(), providers=[WaitingFake()])
    per_thread = n // threads
    barrier = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                sync_lifecycle(service, t * per_thread + i)
        except BaseException as exc:  # surfaced below; a dead worker must not look fast
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"a lifecycle thread failed: {errors[0]!r}") from errors[0]
    return per_thread * threads / (time.perf_counter() - start)


_LOOP_CPU: list[float] = []
"""CPU seconds per lifecycle of each concurrent run (the event loop's thread): its throughput ceiling."""
_LOOP_GC: list[float] = []
"""Of those, the seconds the cyclic garbage collector took (it walks every live task and stored record)."""


class _GcTime:
    """A ``gc.callbacks`` entry adding up the thread CPU time of each collection."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started


def _tasks_throughput(n: int, *, concurrent: bool) -> float:
    async def run() -> float:
        service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[AsyncWaitingFake()])
        start = time.perf_counter()
        cpu = time.thread_time()
        if concurrent:
            collecting = _GcTime()
            gc.callbacks.append(collecting)
            try:
                await asyncio.gather(*(async_lifecycle(service, i) for i in range(n)))
            finally:
                gc.callbacks.remove(collecting)
            _LOOP_CPU.append((time.thread_time() - cpu) / n)
            _LOOP_GC.append(collecting.seconds / n)
        else:
            for i in range(n):
                await async_lifecycle(service, i)
        return n / (time.perf_counter() - start)

    return asyncio.run(run())


def bench_concurrency(report: Report, *, lifecycles: int, sequential: int, concurrent: int, repeats: int) -> None:
    sync_cost = statistics.median(_sync_per_lifecycle(lifecycles) for _ in range(repeats))
    async_cost = statistics.median(_async_per_lifecycle(lifecycles) for _ in range(repeats))
    overhead = async_cost / sync_cost
    report.add(
        "7",
        "Async service per-call overhead (lifecycle on memory, fake) vs sync",
        f"{ratio(overhead)} ({us(async_cost)} vs {us(sync_cost)} per lifecycle)",
        "<= 1.15x",
        overhead <= 1.15,
        value=overhead,
    )

    one = statistics.median(_threads_throughput(sequential, 1) for _ in range(repeats))
    eight = statistics.median(_threads_throughput(sequential * 8, 8) for _ in range(repeats))
    report.add(
        "7",
        "Sync service, provider 5 ms per call: 8 threads vs 1 thread",
        f"{ratio(eight / one)} ({eight:,.0f}/s vs {one:,.0f}/s)",
        ">= 6x",
        eight / one >= 6,
        value=eight / one,
    )

    alone = statistics.median(_tasks_throughput(sequential, concurrent=False) for _ in range(repeats))
    together = statistics.median(_tasks_throughput(concurrent, concurrent=True) for _ in range(repeats))
    loop_cpu = statistics.median(_LOOP_CPU)
    loop_gc = statistics.median(_LOOP_GC)
    _LOOP_CPU.clear()
    _LOOP_GC.clear()
    report.note(
        f"async, {concurrent:,} concurrent lifecycles: the event loop spent {us(loop_cpu)} of CPU per lifecycle "
        f"(of which the cyclic garbage collector {us(loop_gc)}), "
        f"a ceiling of {1 / loop_cpu:,.0f} lifecycles/s on its one thread ({1 / loop_cpu / alone:.0f}x the "
        f"sequential {alone:,.0f}/s, which waits {3 * PROVIDER_DELAY * 1000:.0f} ms on the provider per lifecycle); "
        f"measured {together:,.0f}/s"
    )
    report.add(
        "7",
        f"Async service, provider 5 ms per call: {concurrent:,} concurrent lifecycles vs sequential",
        f"{ratio(together / alone)} ({together:,.0f}/s vs {alone:,.0f}/s)",
        ">= 50x",
        together / alone >= 50,
        value=together / alone,
    )
