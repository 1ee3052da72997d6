"""In-process benchmarks: webhook verification, handle_webhook, lifecycles, growth and memory on MemoryStorage."""

from __future__ import annotations

import cProfile
import gc
import hashlib
import hmac
import io
import json
import pstats
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import stripe
from _common import (
    WEBHOOK_SECRET,
    Report,
    compare_many,
    growth_audit,
    growth_payment,
    median_per_call,
    pending_stripe_payment,
    ratio,
    succeeded_delivery,
    us,
)

from paykit import Money, PaymentService, PaymentStatus
from paykit.providers.stripe import StripeProvider
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider
from paykit.webhooks import handle_webhook


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does; ``--quick`` shrinks everything."""

    repeats: int
    webhook_calls: int
    lifecycles: int
    threads: int
    users: int
    """Growth payments are spread over this many users; each needs 51+ so every page is full."""
    growth_small: int
    growth_large: int
    growth_calls: int
    memory_payments: int
    mongo_small: int
    mongo_large: int
    mongo_list_calls: int
    mongo_slow_calls: int
    """Calls per repeat of audit_trail and metrics on MongoDB, which scan collections on SecantusDB."""
    mongo_repeats: int


def stripe_provider() -> StripeProvider:
    return StripeProvider("sk_test_benchmark", webhook_secrets=[WEBHOOK_SECRET])


# -- 1. verification + parsing vs the floor -----------------------------------------
def bench_parse_webhook(report: Report, sizes: Sizes) -> None:
    provider = stripe_provider()
    body, headers = succeeded_delivery("evt_parse", "pi_parse", "pay_parse")
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = int(lowered["stripe-signature"].split(",")[0][2:])
    secret = WEBHOOK_SECRET.encode()
    assert provider.parse_webhook(body, lowered).status == PaymentStatus.SUCCEEDED

    def ours(_: int) -> None:
        provider.parse_webhook(body, lowered)

    def floor(_: int) -> None:
        hmac.new(secret, b"%d.%s" % (timestamp, body), hashlib.sha256).hexdigest()
        json.loads(body)

    mine, base = compare_many([ours, floor], n=sizes.webhook_calls, repeats=sizes.repeats, clock=time.thread_time)
    report.add(
        "1",
        f"Stripe parse_webhook vs HMAC-SHA256 + json.loads ({len(body):,} B body)",
        f"{ratio(mine / base)} ({us(mine)} vs {us(base)})",
        "<= 2.00x",
        mine / base <= 2.0,
        value=mine / base,
    )


# -- 2. handle_webhook vs the floor and vs stripe.Webhook.construct_event -------------------
def webhook_setup(count: int) -> tuple[PaymentService, MemoryStorage, list[tuple[bytes, dict[str, str]]]]:
    """A service on MemoryStorage with ``count`` PENDING Stripe payments, and a fresh delivery for each."""
    storage = MemoryStorage()
    service = PaymentService(storage=storage, providers=[stripe_provider()])
    deliveries = []
    for i in range(count):
        payment = pending_stripe_payment(f"pay_wh{i:07d}", f"pi_wh{i:07d}")
        storage.insert_payment(payment)
        deliveries.append(succeeded_delivery(f"evt_wh{i:07d}", payment.provider_ref or "", payment.id))
    return service, storage, deliveries


def floor_of(body: bytes, headers: dict[str, str]) -> None:
    """The physical floor of a webhook: HMAC-SHA256 of the signed payload and ``json.loads`` of the body."""
    timestamp = int(headers["Stripe-Signature"].split(",", 1)[0][2:])
    hmac.new(WEBHOOK_SECRET.encode(), b"%d.%s" % (timestamp, body), hashlib.sha256).hexdigest()
    json.loads(body)


def bench_handle_webhook(report: Report, sizes: Sizes) -> None:
    total = sizes.webhook_calls * sizes.repeats
    service, storage, deliveries = webhook_setup(total)
    provider = service.provider("stripe")
    lowered = [{k.lower(): v for k, v in headers.items()} for _, headers in deliveries]
    outcomes: list[str] = []

    def ours(i: int) -> None:
        body, headers = deliveries[i]
        outcomes.append(handle_webhook(service, "stripe", body, headers).outcome)

    def floor(i: int) -> None:
        floor_of(*deliveries[i])

    def parse_only(i: int) -> None:
        provider.parse_webhook(deliveries[i][0], lowered[i])

    def reference(i: int) -> None:
        body, headers = deliveries[i]
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], WEBHOOK_SECRET)

    mine, base, parsing, theirs = compare_many(
        [ours, floor, parse_only, reference], n=sizes.webhook_calls, repeats=sizes.repeats, clock=time.thread_time
    )
    applied = outcomes.count("applied")
    if applied != total:
        raise RuntimeError(f"handle_webhook applied {applied} of {total} events: {set(outcomes)}")
    paid = storage.get_payment(f"pay_wh{total - 1:07d}")
    assert paid is not None
    assert paid.status == PaymentStatus.SUCCEEDED
    size = len(deliveries[0][0])
    report.add(
        "2",
        f"handle_webhook payment_intent.succeeded (memory, {size:,} B, default logging) vs HMAC-SHA256 + json.loads",
        f"{ratio(mine / base)} ({us(mine)} vs {us(base)})",
        "<= 4.00x",
        mine / base <= 4.0,
        value=mine / base,
    )
    report.add(
        "2",
        "handle_webhook payment_intent.succeeded (memory) vs stripe construct_event",
        f"{ratio(mine / theirs)} ({us(mine)} vs {us(theirs)})",
        "<= 0.50x",
        mine / theirs <= 0.5,
        value=mine / theirs,
    )
    report.note(
        f"handle_webhook {us(mine)} = parse_webhook {us(parsing)} (signature, strict JSON, normalize; "
        f"{ratio(parsing / base)} of the floor) + {us(mine - parsing)} applying it (find the payment, dedupe, "
        f"transition, audit entry, notifications, event record in one compare-and-set write, the answer); "
        f"floor {us(base)}; thread CPU time, so other processes on the machine do not count"
    )


def webhook_stages(calls: int, repeats: int) -> list[tuple[str, float]]:
    """Thread CPU seconds per call of each stage of handle_webhook, each timed alone on prepared input.

    The stages sum to a little less than the whole (the entry point's own bookkeeping is not
    in any of them); ``--profile`` prints them next to the floor.
    """
    from datetime import UTC, datetime  # noqa: PLC0415

    from paykit._decisions import payments as dp  # noqa: PLC0415
    from paykit._models import copy_with  # noqa: PLC0415
    from paykit._results import WebhookOutcome  # noqa: PLC0415
    from paykit._webhook_answers import handled, lower_headers  # noqa: PLC0415
    from paykit.providers import _stripe_wire as wire  # noqa: PLC0415
    from paykit.providers._json import load_object  # noqa: PLC0415

    service, storage, deliveries = webhook_setup(calls * repeats)
    secrets = [WEBHOOK_SECRET.encode()]
    now = time.time()
    at = datetime.now(UTC)
    bodies = [body for body, _ in deliveries]
    signatures = [headers["Stripe-Signature"] for _, headers in deliveries]
    objects = [load_object(body, "Stripe webhook") for body in bodies]
    events = [wire.normalize_event(obj) for obj in objects]
    payments = [storage.get_payment(event.payment_id or "") for event in events]
    assert all(payments)
    pending = [p for p in payments if p is not None]
    changes = [dp.status_change(p, e, now=at, record=True) for p, e in zip(pending, events, strict=True)]
    afters = [
        copy_with(p, {**c.updates, "version": p.version + 1, "updated_at": at})
        for p, c in zip(pending, changes, strict=True)
    ]
    engine = service._engine
    effects = [
        engine._effects(p, a, c, actor="webhook:stripe", at=at)
        for p, a, c in zip(pending, afters, changes, strict=True)
    ]
    # The write stage needs payments of its own: the whole path below applies the events to the first storage.
    spare = MemoryStorage()
    for payment in pending:
        spare.insert_payment(payment)
    stages: list[tuple[str, Callable[[int], object]]] = [
        ("floor: HMAC-SHA256 + json.loads", lambda i: floor_of(*deliveries[i])),
        ("headers: lower-case", lambda i: lower_headers(deliveries[i][1])),
        (
            "verify Stripe-Signature (parse header, HMAC, compare)",
            lambda i: wire.verify_signature(bodies[i], signatures[i], secrets, now=now, tolerance=300),
        ),
        ("strict JSON (duplicate keys, numbers, depth)", lambda i: load_object(bodies[i], "Stripe webhook")),
        ("normalize to WebhookEvent", lambda i: wire.normalize_event(objects[i])),
        ("find the payment", lambda i: storage.get_payment(events[i].payment_id or "")),
        (
            "decide: status_change (dedupe, forward only)",
            lambda i: dp.status_change(pending[i], events[i], now=at, record=True),
        ),
        (
            "new version: copy_with (model_copy without its copy.copy calls)",
            lambda i: copy_with(
                pending[i], {**changes[i].updates, "version": pending[i].version + 1, "updated_at": at}
            ),
        ),
        (
            "effects: audit entry + notifications (one redaction)",
            lambda i: engine._effects(pending[i], afters[i], changes[i], actor="webhook:stripe", at=at),
        ),
        (
            "storage: compare-and-set write with its effects (memory)",
            lambda i: spare.update_payment(afters[i], expected_version=pending[i].version, effects=effects[i]),
        ),
        ("answer (200 JSON)", lambda i: handled("stripe", events[i], WebhookOutcome.APPLIED, service.now)),
        ("whole: handle_webhook", lambda i: handle_webhook(service, "stripe", *deliveries[i])),
    ]
    timings = compare_many([run for _, run in stages], n=calls, repeats=repeats, clock=time.thread_time)
    return [(name, seconds) for (name, _), seconds in zip(stages, timings, strict=True)]


def profile_handle_webhook(calls: int, top: int = 25) -> str:
    """cProfile of ``calls`` handle_webhook calls: what remains, by own time (``--profile``)."""
    service, _, deliveries = webhook_setup(calls)
    profiler = cProfile.Profile()
    profiler.enable()
    for body, headers in deliveries:
        handle_webhook(service, "stripe", body, headers)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumtime").print_stats(top)
    return out.getvalue()


_STAGE_OF: dict[str, str] = {
    "verify_signature": "verify Stripe-Signature",
    "load_object": "strict JSON",
    "normalize_event": "normalize to WebhookEvent",
    "_find_event_payment": "find the payment",
    "status_change": "decide",
    "copy_with": "new version",
    "_effects": "effects: audit entry + notifications",
    "_update": "storage write (memory)",
    "_written": "after the write: hooks, reactions",
    "handled": "answer",
}
"""The functions that start each stage of handle_webhook; everything they call counts for their stage."""


def bytecodes_handle_webhook() -> list[tuple[str, int, int]]:
    """Python bytecodes and Python-level calls of one handle_webhook, by stage (``--profile``).

    Counted with ``sys.settrace`` opcode events on one warm call: unlike time, the count does not
    depend on the machine or its load, so it shows what a change removed. C code (HMAC, the JSON
    scanner, dict and str methods) runs no bytecode: the floor is almost all C.
    """
    import sys  # noqa: PLC0415
    from types import FrameType  # noqa: PLC0415

    service, _, deliveries = webhook_setup(3)
    handle_webhook(service, "stripe", *deliveries[0])  # warm: caches, lazily built tables
    opcodes: dict[str, int] = {}
    calls: dict[str, int] = {}

    def stage_of(frame: FrameType | None) -> str:
        while frame is not None:
            stage = _STAGE_OF.get(frame.f_code.co_name)
            if stage is not None:
                return stage
            frame = frame.f_back
        return "glue: entry points, dispatch, telemetry checks"

    def trace(frame: FrameType, event: str, _arg: object) -> object:
        frame.f_trace_opcodes = True
        stage = stage_of(frame)
        if event == "call":
            calls[stage] = calls.get(stage, 0) + 1
        elif event == "opcode":
            opcodes[stage] = opcodes.get(stage, 0) + 1
        return trace

    sys.settrace(trace)
    try:
        handle_webhook(service, "stripe", *deliveries[1])
    finally:
        sys.settrace(None)
    return sorted(((stage, opcodes.get(stage, 0), calls.get(stage, 0)) for stage in calls), key=lambda r: -r[1])


# -- 3. lifecycles, one thread and eight --------------------------------------------
def lifecycle_service() -> PaymentService:
    return PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])


def run_lifecycle(service: PaymentService, i: int) -> None:
    payment = service.initialize_payment(user_id=f"u{i % 100}", amount=Money.of("12.500", "KWD"), provider="fake")
    service.confirm_payment(payment.id)
    service.refund_payment(payment.id, amount=Money.of("5.000", "KWD"))


def bench_lifecycle(report: Report, sizes: Sizes) -> None:
    n = sizes.lifecycles
    check = lifecycle_service()
    run_lifecycle(check, 0)
    [only] = check.list_payments().items
    assert only.status == PaymentStatus.PARTIALLY_REFUNDED

    single = [_threaded_throughput(n, 1) for _ in range(sizes.repeats)]
    one = statistics.median(single)
    report.add(
        "3",
        "Lifecycle init+confirm+partial refund (memory, fake), 1 thread",
        f"{us(1 / one)} per lifecycle",
        value=1e6 / one,
    )
    report.add("3", "Lifecycles per second, 1 thread", f"{one:,.0f}/s", value=one)
    # Threads on a CPU-bound run measure the interpreter on two cores; section 7 measures them
    # where they matter, with a provider that makes them wait.


def _threaded_throughput(n: int, threads: int) -> float:
    service = lifecycle_service()
    barrier = threading.Barrier(threads + 1)
    per_thread = n // threads
    errors: list[BaseException] = []

    def work(t: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                run_lifecycle(service, t * per_thread + i)
        except BaseException as exc:  # surfaced below; a dead worker must not look fast
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for worker in workers:
        worker.start()
    gc.collect()
    barrier.wait()
    start = time.perf_counter()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"a lifecycle thread failed: {errors[0]!r}") from errors[0]
    return per_thread * threads / elapsed


# -- 5. growth on MemoryStorage -------------------------------------------------------
def load_memory(storage: MemoryStorage, start: int, stop: int, users: int) -> None:
    for i in range(start, stop):
        payment = growth_payment(i, users)
        storage.insert_payment(payment)
        storage.append_audit(growth_audit(payment))


def time_reads(
    service: PaymentService, size: int, users: int, *, list_calls: int, trail_calls: int, repeats: int
) -> tuple[float, float]:
    """Median seconds of list_payments(user_id, limit=50) and of audit_trail(payment_id)."""

    def listing(i: int) -> None:
        page = service.list_payments(user_id=f"user{i % users:04d}", limit=50)
        assert len(page.items) == 50

    def trail(i: int) -> None:
        # Spread over the whole data set: old and new payments alike.
        assert len(service.audit_trail(f"pay_g{(i * 7919) % size:07d}")) == 3

    return (
        median_per_call(listing, n=list_calls, repeats=repeats, offset_by=list_calls),
        median_per_call(trail, n=trail_calls, repeats=repeats, offset_by=trail_calls),
    )


def growth_rows(
    report: Report, where: str, small: int, large: int, at_small: tuple[float, float], at_large: tuple[float, float]
) -> None:
    names = ("list_payments(user_id, limit=50)", "audit_trail(payment_id)")
    for name, a, b in zip(names, at_small, at_large, strict=True):
        report.add(
            "5",
            f"{where}: {name}, {large // 1000}k vs {small // 1000}k payments",
            f"{ratio(b / a)} ({us(b)} vs {us(a)})",
            "<= 1.50x",
            b / a <= 1.5,
            value=b / a,
        )


def bench_memory_growth(report: Report, sizes: Sizes) -> None:
    users = sizes.users
    storage = MemoryStorage()
    service = PaymentService(storage=storage, providers=[FakeProvider()])
    load_memory(storage, 0, sizes.growth_small, users)
    calls = {"list_calls": sizes.growth_calls, "trail_calls": sizes.growth_calls, "repeats": sizes.repeats}
    at_small = time_reads(service, sizes.growth_small, users, **calls)
    load_memory(storage, sizes.growth_small, sizes.growth_large, users)
    at_large = time_reads(service, sizes.growth_large, users, **calls)
    growth_rows(report, "memory", sizes.growth_small, sizes.growth_large, at_small, at_large)
    # Where the growth goes: with the loaded objects frozen out of the cyclic GC's reach, what remains is paykit's.
    gc.freeze()
    try:
        frozen = time_reads(service, sizes.growth_large, users, **calls)
    finally:
        gc.unfreeze()
    report.note(
        f"memory at {sizes.growth_large:,} payments after gc.freeze(): list_payments {us(frozen[0])} "
        f"({ratio(frozen[0] / at_small[0])} of {sizes.growth_small:,}), audit_trail {us(frozen[1])} "
        f"({ratio(frozen[1] / at_small[1])})"
    )


# -- 6. memory per stored payment ------------------------------------------------------
def bench_bytes_per_payment(report: Report, sizes: Sizes) -> None:
    n = sizes.memory_payments
    for label, with_audit in (("payment only", False), ("payment + its 3 audit entries", True)):
        storage = MemoryStorage()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            payment = growth_payment(i, 100)
            storage.insert_payment(payment)
            if with_audit:
                storage.append_audit(growth_audit(payment))
        del payment
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        report.add(
            "6",
            f"MemoryStorage bytes per stored payment ({label}, {n:,} payments)",
            f"{used / n:,.0f} B",
            value=used / n,
        )
