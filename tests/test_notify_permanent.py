"""A permanent channel error gives one notifier up for one notification: never retried, never blocking the others."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest

from paykit import Notification, NotificationKind, PermanentChannelError, TemporaryChannelError
from paykit.notify import AsyncNotificationDispatcher, NotificationDispatcher
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import ManualClock


def due(notification_id: str, clock: ManualClock) -> Notification:
    now = clock()
    return Notification(
        id=notification_id,
        user_id="u1",
        kind=NotificationKind.PAYMENT_SUCCEEDED,
        subject_id="pay_1",
        created_at=now,
        next_attempt_at=now,
    )


class Scripted:
    """A notifier that raises the next error of its script on each call, then succeeds."""

    def __init__(self, name: str, *errors: Exception, before: Callable[[], object] | None = None) -> None:
        self.name = name
        self.errors = list(errors)
        self.before = before
        self.calls: Counter[str] = Counter()

    def notify(self, notification: Notification) -> None:
        self.calls[notification.id] += 1
        if self.before is not None:
            self.before()
        if self.errors:
            raise self.errors.pop(0)


def stored(storage: MemoryStorage) -> Notification:
    [notification] = storage.list_notifications("u1", unread_only=False, limit=10)
    return notification


class TestThreaded:
    def test_permanent_error_is_not_retried_while_a_temporary_one_is(self, clock: ManualClock) -> None:
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock)])
        gone = Scripted("sms", PermanentChannelError("opted out", channel="sms", code="21610"))
        flaky = Scripted("push", TemporaryChannelError("503", channel="push", code="UNAVAILABLE"))
        healthy = Scripted("email")
        dispatcher = NotificationDispatcher(storage, [gone, flaky, healthy], clock=clock)

        first = dispatcher.dispatch()
        after_first = stored(storage)
        clock.advance(timedelta(seconds=3))
        second = dispatcher.dispatch()

        assert (0, 1, 0) == (first.delivered, first.retrying, first.dead)
        assert ("sms",) == after_first.given_up_by
        assert "sms: PermanentChannelError 21610 (permanent); push: TemporaryChannelError" == after_first.last_error
        assert (1, 0) == (second.delivered, second.retrying)
        assert ({"n1": 1}, {"n1": 2}, {"n1": 1}) == (gone.calls, flaky.calls, healthy.calls)
        final = stored(storage)
        assert ("delivered", ("email", "push"), ("sms",)) == (final.delivery, final.delivered_to, final.given_up_by)
        assert "sms: PermanentChannelError 21610 (permanent)" == final.last_error

    def test_every_notifier_given_up_makes_it_dead(self, clock: ManualClock) -> None:
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock)])
        gone = Scripted("sms", PermanentChannelError("invalid number", channel="sms", code="21211"))
        dispatcher = NotificationDispatcher(storage, [gone], clock=clock)

        assert 1 == dispatcher.dispatch().dead
        assert ("dead", 1) == (stored(storage).delivery, stored(storage).attempts)

    def test_a_late_permanent_error_gives_up_too(self, clock: ManualClock) -> None:
        """A call that outlived its timeout and then failed permanently is not called again."""
        storage = MemoryStorage()
        storage.insert_notifications([due("n1", clock)])
        release = threading.Event()
        slow = Scripted("sms", PermanentChannelError("opted out", channel="sms"), before=release.wait)
        dispatcher = NotificationDispatcher(storage, [slow], clock=clock, timeout=0.02)
        try:
            assert 1 == dispatcher.dispatch().retrying
            release.set()
            deadline = time.monotonic() + 5
            while stored(storage).delivery == "pending":
                assert time.monotonic() < deadline
                time.sleep(0.005)
        finally:
            release.set()
        clock.advance(timedelta(hours=1))
        dispatcher.dispatch()

        assert ("dead", ("sms",)) == (stored(storage).delivery, stored(storage).given_up_by)
        assert {"n1": 1} == slow.calls


@pytest.mark.anyio
async def test_asyncio_dispatcher_gives_up_permanently_failed_notifiers(clock: ManualClock) -> None:
    storage = AsyncMemoryStorage()
    await storage.insert_notifications([due("n1", clock)])
    calls: Counter[str] = Counter()

    class Gone:
        name = "push"

        async def notify(self, notification: Notification) -> None:
            calls[self.name] += 1
            await asyncio.sleep(0)
            raise PermanentChannelError("unregistered", channel="push", code="UNREGISTERED")

    class Flaky:
        name = "sms"

        async def notify(self, notification: Notification) -> None:
            calls[self.name] += 1
            if calls[self.name] == 1:
                raise TemporaryChannelError("rate limited", channel="sms", code="20429")

    dispatcher = AsyncNotificationDispatcher(storage, [Gone(), Flaky()], clock=clock)
    assert 1 == (await dispatcher.dispatch()).retrying
    clock.advance(timedelta(seconds=3))
    assert 1 == (await dispatcher.dispatch()).delivered

    [notification] = await storage.list_notifications("u1", unread_only=False, limit=10)
    assert (("sms",), ("push",)) == (notification.delivered_to, notification.given_up_by)
    assert {"push": 1, "sms": 2} == dict(calls)
