"""The notification dispatcher over every sync storage: fenced, short claims deliver exactly once.

These exercise the storage's claims through the threaded
:class:`~paykit.notify.NotificationDispatcher`, so they run on the sync API
only (memory, mongomock and the suite's MongoDB-wire server); the storage
contract itself runs on both APIs (``tests/_async/storage/test_contract.py``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from paykit._models import Notification
from paykit.notify import NotificationDispatcher
from paykit.storage import Storage
from paykit.testing import ManualClock

from .records import T0, make_notification


class CountingNotifier:
    """A healthy notifier that counts calls per notification; ``before`` runs inside each call."""

    def __init__(self, name: str = "app", before: Callable[[], object] | None = None) -> None:
        self.name = name
        self.before = before
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def notify(self, notification: Notification) -> None:
        with self._lock:
            self.calls[notification.id] += 1
        if self.before is not None:
            self.before()

    def duplicates(self) -> int:
        return sum(count - 1 for count in self.calls.values())


def due_notifications(storage: Storage, count: int) -> list[str]:
    ids = [f"n{i:03}" for i in range(count)]
    storage.insert_notifications([make_notification(nid) for nid in ids])
    return ids


def deliveries(storage: Storage) -> Counter[str]:
    return Counter(n.delivery for n in storage.list_notifications("u1", unread_only=False, limit=1000))


def dispatch_until_done(dispatcher: NotificationDispatcher, storage: Storage, *, seconds: float = 60) -> None:
    """Run passes until no notification is pending (the other dispatchers may hold some)."""
    deadline = time.monotonic() + seconds
    while deliveries(storage)["pending"] and time.monotonic() < deadline:
        dispatcher.dispatch()


def astuple(report: Any) -> tuple[int, int, int]:
    return (report.delivered, report.retrying, report.dead)


class TestExactlyOnceDispatch:
    """Fenced, short claims: each notification reaches each healthy notifier once, however many dispatchers race."""

    def test_two_dispatchers_racing_deliver_each_once(self, storage: Storage, request: pytest.FixtureRequest) -> None:
        """100 notifications, two dispatcher threads, each call moving the clock 1 s: 0 duplicates.

        Before claims were fenced and short, runs counted 82 to 89 duplicates on memory and 23 to 48 on the server.
        """
        if "[mongomock]" in request.node.name:
            pytest.skip("mongomock's find_one_and_update finds, then updates by _id: not atomic across threads")
        clock = ManualClock(T0)
        first_is_busy = threading.Event()

        def take_a_second() -> None:
            # A real millisecond too: the clock moves only with calls, so a thread the GIL starved for
            # dozens of the other's calls would see its lease run out without any time passing for it.
            time.sleep(0.001)
            if clock.advance(seconds=1) - T0 >= timedelta(seconds=5):
                first_is_busy.set()

        notifier = CountingNotifier(before=take_a_second)
        ids = due_notifications(storage, 100)
        first, second = (NotificationDispatcher(storage, [notifier], clock=clock, timeout=2.0) for _ in range(2))

        def join_when_the_first_is_busy() -> None:
            first_is_busy.wait(10)
            dispatch_until_done(second, storage)

        threads = [
            threading.Thread(target=dispatch_until_done, args=(first, storage)),
            threading.Thread(target=join_when_the_first_is_busy),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert (set(ids), 0) == (set(notifier.calls), notifier.duplicates())
        assert {"delivered": 100} == deliveries(storage)

    def test_a_pass_that_outlives_its_lease_delivers_nothing_twice(self, storage: Storage) -> None:
        """A 100 s pass (leases of 34 s) while another dispatcher works in between: 0 duplicates (31 before)."""
        clock = ManualClock(T0)
        other_notifier = CountingNotifier(before=lambda: clock.advance(seconds=1))
        other = NotificationDispatcher(storage, [other_notifier], clock=clock, timeout=2.0)
        calls = 0

        def slow_then_let_the_other_run() -> None:
            nonlocal calls
            calls += 1
            clock.advance(seconds=1)
            if calls % 10 == 0:
                other.dispatch(limit=5)

        notifier = CountingNotifier(before=slow_then_let_the_other_run)
        dispatcher = NotificationDispatcher(storage, [notifier], clock=clock, timeout=2.0)
        due_notifications(storage, 100)

        dispatcher.dispatch()

        assert timedelta(seconds=100) == clock() - T0
        assert (100, 0, 0) == (
            len(notifier.calls | other_notifier.calls),
            notifier.duplicates(),
            other_notifier.duplicates(),
        )
        assert set() == set(notifier.calls) & set(other_notifier.calls)
        assert other_notifier.calls
        assert {"delivered": 100} == deliveries(storage)

    def test_a_dispatcher_that_lost_its_claim_saves_nothing_and_stops(self, storage: Storage) -> None:
        """Re-claimed while its first notifier ran: the old claimant neither marks nor calls the next notifier."""
        clock = ManualClock(T0)
        lease = timedelta(seconds=10)
        takeover = NotificationDispatcher(
            storage, [CountingNotifier("a"), CountingNotifier("b")], clock=clock, timeout=1.0, lease=lease
        )

        def outlive_the_lease() -> None:
            clock.advance(seconds=11)
            assert (1, 0, 0) == astuple(takeover.dispatch())

        a, b = CountingNotifier("a", before=outlive_the_lease), CountingNotifier("b")
        old = NotificationDispatcher(storage, [a, b], clock=clock, timeout=1.0, lease=lease)
        due_notifications(storage, 1)

        report = old.dispatch()

        assert ((0, 0, 0), {"n000": 1}, {}) == (astuple(report), dict(a.calls), dict(b.calls))
        (stored,) = storage.list_notifications("u1", unread_only=False, limit=10)
        assert ("delivered", ("a", "b"), 1, None) == (
            stored.delivery,
            stored.delivered_to,
            stored.attempts,
            stored.claim_token,
        )

    def test_a_slow_notifier_is_delivered_once_and_never_dead(self, storage: Storage) -> None:
        """Slower than its timeout, then successful: every notification delivered once, none dead."""
        clock = ManualClock(T0)
        release = threading.Event()
        slow = CountingNotifier("slow", before=lambda: release.wait(10))
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.05, max_attempts=2)
        due_notifications(storage, 5)
        try:
            for _ in range(6):  # passes well past the lease while the first call still runs
                dispatcher.dispatch()
                clock.advance(seconds=20)
            while_busy = storage.list_notifications("u1", unread_only=False, limit=10)
        finally:
            release.set()
        deadline = time.monotonic() + 10
        while deliveries(storage)["delivered"] < 5 and time.monotonic() < deadline:
            clock.advance(seconds=20)
            dispatcher.dispatch()
            time.sleep(0.01)

        assert {("pending", 0)} == {(n.delivery, n.attempts) for n in while_busy}
        assert {"delivered": 5} == deliveries(storage)
        assert ({f"n00{i}" for i in range(5)}, 0) == (set(slow.calls), slow.duplicates())

    def test_a_claim_taken_over_while_its_call_runs_waits_for_that_call(self, storage: Storage) -> None:
        """Re-claimed after its lease while its call still runs, a notification is not sent again.

        The newest claim adopts the running call, so the late success is saved under the token that
        is current. Before, the older claim's save was fenced off, another notification's pass then
        dropped the finished call, and the next pass called the notifier again.
        """
        clock = ManualClock(T0)
        release = threading.Event()
        first = threading.Event()

        def only_the_first_call_hangs() -> None:
            if not first.is_set():
                first.set()
                release.wait(10)

        slow = CountingNotifier("slow", before=only_the_first_call_hangs)
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)
        due_notifications(storage, 2)
        try:
            dispatcher.dispatch()  # n000 runs past its timeout; n001 waits: the notifier is busy
            clock.advance(hours=1)
            dispatcher.dispatch(limit=1)  # n000's lease is over: claimed again while its call still runs
        finally:
            release.set()
        deadline = time.monotonic() + 10
        while deliveries(storage)["delivered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(2):
            clock.advance(hours=1)
            dispatcher.dispatch()  # n001 is due before n000 now, and goes first

        assert {"delivered": 2} == deliveries(storage)
        assert ({"n000": 1, "n001": 1}, 0) == (dict(slow.calls), slow.duplicates())

    def test_a_late_success_is_recorded_by_the_call_itself(self, storage: Storage) -> None:
        """The call that timed out keeps the claim and, when it returns, marks its notification delivered."""
        clock = ManualClock(T0)
        release = threading.Event()
        slow = CountingNotifier("slow", before=lambda: release.wait(10))
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.05)
        due_notifications(storage, 1)

        assert (0, 1, 0) == astuple(dispatcher.dispatch())
        (running,) = storage.list_notifications("u1", unread_only=False, limit=10)
        release.set()
        deadline = time.monotonic() + 10
        while deliveries(storage)["delivered"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)

        assert ("pending", "slow: timed out after 0.05s") == (running.delivery, running.last_error)
        assert running.lease_until is not None
        assert running.lease_until > clock()
        (stored,) = storage.list_notifications("u1", unread_only=False, limit=10)
        assert ("delivered", ("slow",), 1, None) == (
            stored.delivery,
            stored.delivered_to,
            stored.attempts,
            stored.lease_until,
        )
        clock.advance(hours=1)
        assert (0, 0, 0) == astuple(dispatcher.dispatch())
        assert {"n000": 1} == dict(slow.calls)
