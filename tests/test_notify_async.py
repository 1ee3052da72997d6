"""The asyncio dispatcher: the threaded dispatcher's guarantees, with tasks, for async and sync notifiers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from paykit import ConfigurationError, Notification, NotificationKind
from paykit.notify import AsyncNotificationDispatcher, AsyncNotifier, Notifier
from paykit.storage import AsyncMemoryStorage
from paykit.testing import ManualClock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


class AsyncRecorder:
    """An async notifier that records what it got and can fail or wait on demand."""

    def __init__(self, name: str, *, failures: int = 0, before: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.name = name
        self.failures = failures
        self.before = before
        self.calls: Counter[str] = Counter()
        self.delivered: list[str] = []

    async def notify(self, notification: Notification) -> None:
        self.calls[notification.id] += 1
        attempt = self.calls[notification.id]
        if self.before is not None:
            await self.before()
        if attempt <= self.failures:
            raise RuntimeError("notifier is down")
        self.delivered.append(notification.id)


class SyncRecorder:
    """A blocking notifier, as the threaded dispatcher takes it."""

    def __init__(self, name: str, *, before: Callable[[], Any] | None = None) -> None:
        self.name = name
        self.before = before
        self.calls: Counter[str] = Counter()
        self.delivered: list[str] = []
        self._lock = threading.Lock()

    def notify(self, notification: Notification) -> None:
        with self._lock:
            self.calls[notification.id] += 1
        if self.before is not None:
            self.before()
        with self._lock:
            self.delivered.append(notification.id)


def due(notification_id: str, clock: ManualClock) -> Notification:
    now = clock()
    return Notification(
        id=notification_id,
        user_id="u1",
        kind=NotificationKind.STATUS_CHANGED,
        subject_id="pay_1",
        created_at=now,
        next_attempt_at=now,
    )


async def stored(storage: AsyncMemoryStorage) -> dict[str, Notification]:
    return {n.id: n for n in await storage.list_notifications("u1", unread_only=False, limit=1000)}


def counts(report: Any) -> tuple[int, int, int]:
    return (report.delivered, report.retrying, report.dead)


async def wait_until(condition: Callable[[], Awaitable[bool]], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


class TestProtocols:
    """Async notifiers satisfy AsyncNotifier; sync ones still satisfy Notifier."""

    def test_runtime_checkable(self) -> None:
        assert isinstance(AsyncRecorder("a"), AsyncNotifier)
        assert isinstance(SyncRecorder("s"), Notifier)

    def test_names_are_checked_when_built(self, clock: ManualClock) -> None:
        """One name for two notifiers (an async and a sync one) is refused: delivery is recorded per name."""
        with pytest.raises(ConfigurationError, match="two notifiers are named 'n'"):
            AsyncNotificationDispatcher(AsyncMemoryStorage(), [AsyncRecorder("n"), SyncRecorder("n")], clock=clock)
        with pytest.raises(ConfigurationError, match="has no name"):
            AsyncNotificationDispatcher(AsyncMemoryStorage(), [object()], clock=clock)  # type: ignore[list-item]


class TestDispatch:
    """Every notification reaches every notifier exactly once."""

    async def test_async_and_sync_notifiers_each_get_it_once(self, clock: ManualClock) -> None:
        """A mixed pair of notifiers each get every notification once, however often dispatch runs."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock), due("n2", clock)])
        a, s = AsyncRecorder("a"), SyncRecorder("s")
        dispatcher = AsyncNotificationDispatcher(storage, [a, s], clock=clock, timeout=2.0)

        assert (2, 0, 0) == counts(await dispatcher.dispatch())
        clock.advance(hours=2)
        assert (0, 0, 0) == counts(await dispatcher.dispatch())

        assert {"n1": 1, "n2": 1} == dict(a.calls) == dict(s.calls)
        assert {("delivered", 1, ("a", "s"))} == {
            (n.delivery, n.attempts, n.delivered_to) for n in (await stored(storage)).values()
        }

    async def test_two_concurrent_dispatchers_over_100_notifications(self, clock: ManualClock) -> None:
        """Two dispatchers racing on one storage deliver each of 100 notifications once per notifier."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due(f"n{i:03}", clock) for i in range(100)])

        async def yield_to_the_other() -> None:
            await asyncio.sleep(0)

        a, s = AsyncRecorder("a", before=yield_to_the_other), SyncRecorder("s")
        first = AsyncNotificationDispatcher(storage, [a, s], clock=clock, timeout=2.0)
        second = AsyncNotificationDispatcher(storage, [a, s], clock=clock, timeout=2.0)

        reports = await asyncio.gather(first.dispatch(limit=1000), second.dispatch(limit=1000))

        assert 100 == sum(r.delivered for r in reports)
        assert all(r.delivered > 0 for r in reports)
        assert {1} == set(a.calls.values()) == set(s.calls.values())
        assert 100 == len(a.calls) == len(s.calls)
        assert {"delivered"} == {n.delivery for n in (await stored(storage)).values()}


class TestFailingNotifier:
    """A notifier that raises is retried with exponential backoff, then given up."""

    async def test_retried_with_backoff_then_dead(self, clock: ManualClock) -> None:
        """Retries wait 1 s, then 2 s; the third failure makes it dead, and it is never claimed again."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock)])
        broken, ok = AsyncRecorder("broken", failures=10**6), AsyncRecorder("ok")
        dispatcher = AsyncNotificationDispatcher(
            storage, [broken, ok], clock=clock, timeout=1.0, max_attempts=3, base_backoff=timedelta(seconds=1)
        )
        started = clock()
        reports = [counts(await dispatcher.dispatch())]
        first_retry_at = (await stored(storage))["n1"].next_attempt_at
        clock.advance(seconds=0.5)
        reports.append(counts(await dispatcher.dispatch()))
        clock.advance(seconds=0.5)
        reports.append(counts(await dispatcher.dispatch()))
        second_retry_at = (await stored(storage))["n1"].next_attempt_at
        clock.advance(seconds=2)
        reports.append(counts(await dispatcher.dispatch()))
        clock.advance(days=1)
        reports.append(counts(await dispatcher.dispatch()))

        assert [(0, 1, 0), (0, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)] == reports
        assert (started + timedelta(seconds=1), started + timedelta(seconds=3)) == (first_retry_at, second_retry_at)
        n1 = (await stored(storage))["n1"]
        assert ("dead", 3, ("ok",), "broken: RuntimeError") == (
            n1.delivery,
            n1.attempts,
            n1.delivered_to,
            n1.last_error,
        )
        assert ({"n1": 3}, {"n1": 1}) == (dict(broken.calls), dict(ok.calls))

    async def test_backoff_is_capped_at_an_hour(self, clock: ManualClock) -> None:
        """Retries never wait more than an hour, however many attempts failed."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock).model_copy(update={"attempts": 20})])
        dispatcher = AsyncNotificationDispatcher(
            storage, [AsyncRecorder("broken", failures=10**6)], clock=clock, max_attempts=100
        )

        await dispatcher.dispatch()

        assert clock() + timedelta(hours=1) == (await stored(storage))["n1"].next_attempt_at


class TestSlowNotifier:
    """A call past its timeout holds its notification and records its own late result."""

    async def test_slow_notifier_is_delivered_once_and_never_dead(self, clock: ManualClock) -> None:
        """While a slow call runs, its notifier is skipped without an attempt; later each gets it once."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock), due("n2", clock)])
        release = asyncio.Event()
        slow, ok = AsyncRecorder("slow", before=release.wait), AsyncRecorder("ok")
        dispatcher = AsyncNotificationDispatcher(storage, [slow, ok], clock=clock, timeout=0.05, max_attempts=1)

        assert (0, 2, 0) == counts(await dispatcher.dispatch())
        for _ in range(3):
            clock.advance(seconds=2)
            await dispatcher.dispatch()
        waiting = await stored(storage)
        release.set()
        await wait_until(lambda: has_delivery(storage, "n1", "delivered"))
        clock.advance(minutes=5)
        report = await dispatcher.dispatch()

        assert ("pending", 0, ("ok",), "slow: timed out after 0.05s") == summary(waiting["n1"])
        assert ("pending", 0, ("ok",), "slow: still busy with an earlier call that timed out") == summary(waiting["n2"])
        assert (1, 0, 0) == counts(report)
        final = await stored(storage)
        assert {("delivered", 1)} == {(n.delivery, n.attempts) for n in final.values()}
        assert ({"n1": 1, "n2": 1}, {"n1": 1, "n2": 1}) == (dict(slow.calls), dict(ok.calls))

    async def test_a_claim_taken_over_while_its_call_runs_waits_for_that_call(self, clock: ManualClock) -> None:
        """Re-claimed after its lease while its call still runs, a notification is not sent again."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock), due("n2", clock)])
        release = asyncio.Event()

        async def only_the_first_call_waits() -> None:
            if sum(slow.calls.values()) == 1:
                await release.wait()

        slow = AsyncRecorder("slow", before=only_the_first_call_waits)
        dispatcher = AsyncNotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)

        await dispatcher.dispatch()  # n1 runs past its timeout; n2 waits: the notifier is busy
        clock.advance(hours=1)
        await dispatcher.dispatch(limit=1)  # n1's lease is over: claimed again while its call still runs
        release.set()
        await wait_until(lambda: has_delivery(storage, "n1", "delivered"))
        for _ in range(2):
            clock.advance(hours=1)
            await dispatcher.dispatch()  # n2 is due before n1 now, and goes first

        final = await stored(storage)
        assert {"n1": "delivered", "n2": "delivered"} == {k: n.delivery for k, n in final.items()}
        assert {"n1": 1, "n2": 1} == dict(slow.calls)

    async def test_a_late_success_is_recorded_by_the_call_itself(self, clock: ManualClock) -> None:
        """The timed-out call saves its success when it returns, with no further dispatch pass."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock)])
        release = asyncio.Event()
        slow = AsyncRecorder("slow", before=release.wait)
        dispatcher = AsyncNotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)

        assert (0, 1, 0) == counts(await dispatcher.dispatch())
        held = (await stored(storage))["n1"]
        release.set()
        await wait_until(lambda: has_delivery(storage, "n1", "delivered"))

        n1 = (await stored(storage))["n1"]
        assert ("pending", "slow: timed out after 0.05s", True) == (
            held.delivery,
            held.last_error,
            held.claim_token is not None,
        )
        assert ("delivered", 1, ("slow",), None, None) == (
            n1.delivery,
            n1.attempts,
            n1.delivered_to,
            n1.last_error,
            n1.claim_token,
        )
        assert {"n1": 1} == dict(slow.calls)

    async def test_a_late_failure_counts_as_an_attempt(self, clock: ManualClock) -> None:
        """A timed-out call that then raises is retried with backoff, like any failure."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock)])
        release = asyncio.Event()
        slow = AsyncRecorder("slow", failures=1, before=release.wait)
        dispatcher = AsyncNotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)
        await dispatcher.dispatch()
        release.set()
        await wait_until(lambda: has_attempts(storage, "n1", 1))

        n1 = (await stored(storage))["n1"]
        assert ("pending", "slow: RuntimeError", clock() + timedelta(seconds=2), None) == (
            n1.delivery,
            n1.last_error,
            n1.next_attempt_at,
            n1.claim_token,
        )
        clock.advance(seconds=2)
        assert (1, 0, 0) == counts(await dispatcher.dispatch())
        assert {"n1": 2} == dict(slow.calls)


class TestCancelledPass:
    """A pass cancelled mid-call still honors that call's result: the notification is not sent twice."""

    async def test_a_cancelled_pass_never_resends(self, clock: ManualClock) -> None:
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock)])
        release = asyncio.Event()
        slow = AsyncRecorder("slow", before=release.wait)
        dispatcher = AsyncNotificationDispatcher(storage, [slow], clock=clock, timeout=5.0, lease=timedelta(seconds=20))
        running = asyncio.get_running_loop().create_task(dispatcher.dispatch())

        async def called() -> bool:
            return slow.calls["n1"] == 1

        await wait_until(called)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        release.set()
        await asyncio.sleep(0.01)  # the call returns; no round is left to record it
        clock.advance(seconds=21)  # the claim's lease ran out: the notification is claimed again

        assert (1, 0, 0) == counts(await dispatcher.dispatch())
        assert {"n1": 1} == dict(slow.calls)
        assert ("delivered", ("slow",)) == (
            (await stored(storage))["n1"].delivery,
            (await stored(storage))["n1"].delivered_to,
        )


class TestHungSyncNotifier:
    """A blocking notifier runs on a daemon thread: the event loop never waits for it."""

    async def test_hung_sync_notifier_never_blocks_the_loop(self, clock: ManualClock) -> None:
        """While a sync call hangs, other tasks run, dispatch returns after the timeout, others deliver."""
        storage = AsyncMemoryStorage()
        await storage.insert_notifications([due("n1", clock), due("n2", clock)])
        release, entered = threading.Event(), threading.Event()

        def hang() -> None:
            entered.set()
            release.wait()

        hung, ok = SyncRecorder("hung", before=hang), AsyncRecorder("ok")
        dispatcher = AsyncNotificationDispatcher(storage, [hung, ok], clock=clock, timeout=0.1)
        ticks_while_hung = 0

        async def tick() -> None:
            nonlocal ticks_while_hung
            while True:
                if entered.is_set():
                    ticks_while_hung += 1
                await asyncio.sleep(0.005)

        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            started = time.monotonic()
            report = await dispatcher.dispatch()
            elapsed = time.monotonic() - started
        finally:
            ticker.cancel()
            release.set()

        assert (0, 2, 0) == counts(report)
        assert elapsed < 2.0
        # Other tasks ran while the sync call hung (a blocked loop would run none); how many depends on the load.
        assert ticks_while_hung >= 1
        assert {"n1": 1, "n2": 1} == dict(ok.calls)
        assert {"n1": 1} == dict(hung.calls)
        await wait_until(lambda: has_delivery(storage, "n1", "delivered"))


class TestBackgroundDispatcher:
    """start() delivers from a background task until aclose()."""

    async def test_delivers_in_background(self, clock: ManualClock) -> None:
        """Notifications arrive without calling dispatch, once each; aclose ends the task."""
        storage = AsyncMemoryStorage()
        recorder = AsyncRecorder("bg")
        dispatcher = AsyncNotificationDispatcher(storage, [recorder], clock=clock)
        dispatcher.start(interval=0.01)
        dispatcher.start(interval=0.01)
        try:
            await storage.insert_notifications([due("n1", clock), due("n2", clock)])
            await wait_until(lambda: has_delivery(storage, "n2", "delivered"))
            await wait_until(lambda: has_delivery(storage, "n1", "delivered"))
        finally:
            await dispatcher.aclose()

        assert {"n1": 1, "n2": 1} == dict(recorder.calls)
        assert not [t for t in asyncio.all_tasks() if t.get_name() == "paykit-dispatcher"]


class TestEventLoops:
    """A dispatcher is not tied to the loop it first ran on."""

    def test_start_and_stop_on_two_loops(self, clock: ManualClock) -> None:
        """Each asyncio.run starts its own background task; aclose stops it."""
        storage = AsyncMemoryStorage()
        recorder = AsyncRecorder("bg")
        dispatcher = AsyncNotificationDispatcher(storage, [recorder], clock=clock)

        async def run_once(notification_id: str) -> None:
            dispatcher.start(interval=0.01)
            await storage.insert_notifications([due(notification_id, clock)])
            await wait_until(lambda: has_delivery(storage, notification_id, "delivered"))
            await dispatcher.aclose()

        asyncio.run(run_once("n1"))
        asyncio.run(run_once("n2"))

        assert {"n1": 1, "n2": 1} == dict(recorder.calls)


async def has_delivery(storage: AsyncMemoryStorage, notification_id: str, delivery: str) -> bool:
    return (await stored(storage))[notification_id].delivery == delivery


async def has_attempts(storage: AsyncMemoryStorage, notification_id: str, attempts: int) -> bool:
    return (await stored(storage))[notification_id].attempts == attempts


def summary(notification: Notification) -> tuple[object, ...]:
    return (notification.delivery, notification.attempts, notification.delivered_to, notification.last_error)
