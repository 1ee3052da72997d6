"""Notifiers and the dispatcher that delivers notifications from the outbox.

State changes write :class:`~paykit.Notification` records with the change. The
dispatcher (``PaymentService.dispatch_notifications()`` or its background
thread) leases due notifications and hands each to every registered notifier.
A notifier that raises or hangs past its timeout never affects a payment: the
notification is retried with exponential backoff, and each notifier that has
already taken it is not called again for it. Claims are fenced, so several
dispatchers (threads, tasks or processes) can share one storage: see
:class:`NotificationDispatcher` and "Delivery of notifications" in
docs/concepts.md for the guarantee. :class:`AsyncNotificationDispatcher` is its
asyncio twin, with the same guarantee; it also awaits :class:`AsyncNotifier` objects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ._decisions import delivery
from ._log import get_logger
from ._models import Notification
from ._notify_async import AsyncNotificationDispatcher
from ._results import DispatchReport
from .audit import redact
from .storage._sync.protocol import Storage

__all__ = [
    "AsyncNotificationDispatcher",
    "AsyncNotifier",
    "CallbackNotifier",
    "DispatchReport",
    "LoggingNotifier",
    "NotificationDispatcher",
    "Notifier",
]

log = get_logger(__name__)


@runtime_checkable
class Notifier(Protocol):
    """Delivers notifications somewhere (e-mail, a queue, a websocket...)."""

    @property
    def name(self) -> str:
        """A stable name: delivery is tracked per notifier under it."""
        ...

    def notify(self, notification: Notification) -> None:
        """Deliver one notification; raise to have it retried later."""
        ...


@runtime_checkable
class AsyncNotifier(Protocol):
    """Delivers notifications with ``async def notify``, for :class:`AsyncNotificationDispatcher`.

    The asyncio dispatcher awaits it on the event loop, so it must not block:
    a notifier that does blocking I/O should be a plain :class:`Notifier`, which
    the dispatcher runs on a thread of its own.

    .. versionadded:: 0.1.0
    """

    @property
    def name(self) -> str:
        """A stable name: delivery is tracked per notifier under it."""
        ...

    async def notify(self, notification: Notification) -> None:
        """Deliver one notification; raise to have it retried later."""
        ...


class LoggingNotifier:
    """Logs every notification to the `paykit.notify` logger (the payload is redacted)."""

    def __init__(self, name: str = "log") -> None:
        self._name = name

    @property
    def name(self) -> str:
        """The notifier's name."""
        return self._name

    def notify(self, notification: Notification) -> None:
        """Log the notification."""
        if not log.isEnabledFor(logging.INFO):
            return  # nothing would be written: skip redacting the payload again
        log.info(
            "paykit notification",
            notification_id=notification.id,
            kind=notification.kind.value,
            user_id=notification.user_id,
            subject_id=notification.subject_id,
            payload=redact(notification.payload),
        )


class CallbackNotifier:
    """Calls a function with each notification."""

    def __init__(self, callback: Callable[[Notification], object], name: str = "callback") -> None:
        self._callback = callback
        self._name = name

    @property
    def name(self) -> str:
        """The notifier's name."""
        return self._name

    def notify(self, notification: Notification) -> None:
        """Call the callback."""
        self._callback(notification)


class NotificationDispatcher:
    """Delivers due notifications to notifiers, with timeouts, retries and backoff.

    Notifications are claimed in small batches (at most ten, fewer when the
    lease is short), and a claim with less than half its lease left is renewed
    right before it is delivered, so every delivery round starts with at least
    half a lease: longer than every notifier running to its timeout. Every save
    of delivery state is fenced by the claim's token: a dispatcher that lost its
    claim (the lease expired and another took the notification over) changes
    nothing and stops delivering it. Each notifier's success is saved as soon as
    it happens, so a new claim after a crash skips the notifiers already done.

    A call that outlives its timeout keeps the notification claimed, for one
    more lease from the timeout: when it returns, a late success counts as
    delivered and is never sent again, and a late failure counts as an attempt.
    Meanwhile that notifier is skipped for other notifications without counting
    an attempt, so a slow but healthy notifier never makes a notification dead.

    Args:
        storage: Where the notifications are.
        notifiers: Who receives them.
        clock: Returns the current aware datetime.
        timeout: Seconds one notifier call may take before the dispatcher moves on.
        max_attempts: Attempts before a failing notification is given up ("dead"); a round that
            skipped a busy notifier is not counted.
        base_backoff: Delay before the first retry; doubled each attempt, capped at an hour.
        lease: How long a claim holds; by default twice ``timeout`` per notifier, plus 30 seconds.
    """

    def __init__(
        self,
        storage: Storage,
        notifiers: Sequence[Notifier],
        *,
        clock: Callable[[], datetime],
        timeout: float = 5.0,
        max_attempts: int = 8,
        base_backoff: timedelta = timedelta(seconds=2),
        lease: timedelta | None = None,
    ) -> None:
        self._storage = storage
        self._notifiers = tuple(notifiers)
        delivery.check_notifiers(self._notifiers)
        self._clock = clock
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff
        self._lease = lease or delivery.default_lease(timeout, len(self._notifiers))
        self._batch = delivery.batch_size(self._lease, timeout, len(self._notifiers))
        # A call that outlived its timeout, per notifier: its late result is honored, and the
        # notifier is not called again while it still runs.
        self._in_flight: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def dispatch(self, *, limit: int = 100) -> DispatchReport:
        """Deliver up to ``limit`` due notifications once each; return what happened."""
        states: list[delivery.State] = []
        while len(states) < limit:
            batch = self._storage.claim_notifications(
                now=self._clock(), lease=self._lease, limit=min(limit - len(states), self._batch)
            )
            if not batch:
                break
            states.extend(self._dispatch_one(claimed) for claimed in batch)
        return delivery.report(states)

    def _dispatch_one(self, claimed: Notification) -> delivery.State:
        """Deliver one claimed notification; return its state afterwards (or ``"lost"``)."""
        token = claimed.claim_token
        if token is None:
            raise TypeError("claim_notifications returned a notification without a claim_token")
        progress = delivery.Round(claimed, token)
        if not self._hold(progress, claimed.lease_until):
            return "lost"
        remaining = [n for n in self._notifiers if not progress.finished(n.name)]
        running: list[_Call] = []
        for index, notifier in enumerate(remaining):
            outcome = self._deliver(notifier, claimed)
            if isinstance(outcome, _Call):
                running.append(outcome)
                continue
            progress.record(notifier.name, outcome)
            if outcome.kind == "delivered" and index + 1 < len(remaining) and not self._save(progress, keep_claim=True):
                return "lost"
        if running:
            return self._wait_for_late_results(progress, running)
        return self._settle(progress)

    def _hold(self, progress: delivery.Round, lease_until: datetime | None) -> bool:
        """Make sure the claim has at least half a lease left before a round starts; renew it if not.

        A claim that waited in its batch, or whose write was slow, may have little left: it is
        renewed (fenced), and checked again after the write, since the clock moved meanwhile.
        """
        for _ in range(3):
            if not delivery.needs_renewal(lease_until, self._clock(), self._lease):
                return True
            lease_until = self._clock() + self._lease
            if not self._save(progress, keep_claim=True, lease_until=lease_until):
                return False
        log.warning("notification lease could not be held", notification_id=progress.notification.id)
        return False

    def _wait_for_late_results(self, progress: delivery.Round, running: list[_Call]) -> delivery.State:
        """Hold the claim for calls past their timeout; the last one to return settles it."""
        progress.hold_for(running, self._timeout)
        if not self._save(progress, keep_claim=True):
            return "lost"
        with self._lock:
            for call in running:
                if call.done:
                    progress.take(call)
                else:
                    call.progress = progress
                    progress.waiting.add(call.notifier_name)
            settle_now = not progress.waiting
        return self._settle(progress) if settle_now else "running"

    def _on_call_done(self, call: _Call) -> None:
        """Runs on the call's own thread when a notifier call returns, late or not."""
        with self._lock:
            call.done = True
            progress = call.progress
            if progress is None:
                return
            progress.take(call)
            progress.waiting.discard(call.notifier_name)
            if progress.waiting:
                return
        try:
            self._settle(progress)
        except Exception:
            log.exception("saving a late notifier result failed", notification_id=progress.notification.id)

    def _settle(self, progress: delivery.Round) -> delivery.State:
        """Save the final state of one delivery round and release the claim."""
        state = progress.settle(
            notifier_names=[n.name for n in self._notifiers],
            max_attempts=self._max_attempts,
            base_backoff=self._base_backoff,
            now=self._clock(),
        )
        if state == "dead":
            log.error(
                "notification given up",
                notification_id=progress.notification.id,
                error=progress.notification.last_error,
            )
        return state if self._save(progress, keep_claim=False) else "lost"

    def _save(self, progress: delivery.Round, *, keep_claim: bool, lease_until: datetime | None = None) -> bool:
        """Write the delivery state under the claim's token; ``False`` when the claim was lost."""
        changed = progress.saved(keep_claim=keep_claim, lease_until=lease_until or self._clock() + self._lease)
        saved = self._storage.save_notification_delivery(changed, claim_token=progress.token)
        if not saved:
            log.warning("notification claim lost to another dispatcher", notification_id=progress.notification.id)
        return saved

    def _deliver(self, notifier: Notifier, notification: Notification) -> delivery.Outcome | _Call:
        with self._lock:
            earlier = self._in_flight.get(notifier.name)
            if earlier is not None and delivery.still_running_for(earlier, notification.id):
                return earlier
            verdict = delivery.verdict_on_earlier_call(earlier, notification.id)
            if earlier is not None and earlier.done:
                del self._in_flight[notifier.name]
            if verdict is not None:
                return verdict
        call = _Call(notifier, notification, self._on_call_done)
        call.thread.start()
        call.thread.join(self._timeout)
        with self._lock:
            if not call.done:
                self._in_flight[notifier.name] = call
                log.warning("notifier timed out", notifier=notifier.name, notification_id=notification.id)
                return call
        if call.error is not None:
            log.warning(
                "notifier failed",
                notifier=notifier.name,
                notification_id=notification.id,
                error=type(call.error).__name__,
            )
        return call.outcome()

    def start(self, *, interval: float = 1.0) -> None:
        """Dispatch in a daemon thread every ``interval`` seconds until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.dispatch()
                except Exception:
                    log.exception("notification dispatch failed")

        self._thread = threading.Thread(target=loop, name="paykit-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread, if running."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Stop the background thread; calls still hanging are left to finish on their own."""
        self.stop()


class _Call(delivery.Call):
    """One notifier call on a daemon thread of its own, so a hung call blocks nobody."""

    def __init__(self, notifier: Notifier, notification: Notification, on_done: Callable[[_Call], None]) -> None:
        super().__init__(notifier.name, notification.id)
        self._on_done = on_done
        self.thread = threading.Thread(
            target=self._run, args=(notifier, notification), name=f"paykit-notify-{notifier.name}", daemon=True
        )

    def _run(self, notifier: Notifier, notification: Notification) -> None:
        try:
            notifier.notify(notification)
        except Exception as exc:
            self.error = exc
        self._on_done(self)
