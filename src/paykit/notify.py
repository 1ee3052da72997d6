"""Notifiers and the dispatcher that delivers notifications from the outbox.

State changes write :class:`~paykit.Notification` records with the change. The
dispatcher (``PaymentService.dispatch_notifications()`` or its background
thread) leases due notifications and hands each to every registered notifier.
A notifier that raises or hangs past its timeout never affects a payment: the
notification is retried with exponential backoff, and each notifier that has
already taken it is not called again for it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ._log import get_logger
from ._models import Notification
from .audit import redact
from .storage._base import Storage

__all__ = ["CallbackNotifier", "DispatchReport", "LoggingNotifier", "NotificationDispatcher", "Notifier"]

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


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one dispatch pass did."""

    delivered: int = 0
    retrying: int = 0
    dead: int = 0


class NotificationDispatcher:
    """Delivers due notifications to notifiers, with timeouts, retries and backoff.

    Args:
        storage: Where the notifications are.
        notifiers: Who receives them.
        clock: Returns the current aware datetime.
        timeout: Seconds one notifier call may take before it counts as failed.
        max_attempts: Attempts before a notification is given up ("dead").
        base_backoff: Delay before the first retry; doubled each attempt, capped at an hour.
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
    ) -> None:
        self._storage = storage
        self._notifiers = tuple(notifiers)
        self._clock = clock
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff
        # A call that outlived its timeout, per notifier: its late result is honored, and the
        # notifier is not called again while it still runs.
        self._in_flight: dict[str, _Call] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def dispatch(self, *, limit: int = 100) -> DispatchReport:
        """Deliver up to ``limit`` due notifications once each; return what happened."""
        now = self._clock()
        lease = timedelta(seconds=self._timeout * max(1, len(self._notifiers)) + 30)
        delivered = retrying = dead = 0
        for notification in self._storage.claim_notifications(now=now, lease=lease, limit=limit):
            done = list(notification.delivered_to)
            error: str | None = None
            for notifier in self._notifiers:
                if notifier.name in done:
                    continue
                failure = self._deliver(notifier, notification)
                if failure is None:
                    done.append(notifier.name)
                else:
                    error = f"{notifier.name}: {failure}"
            attempts = notification.attempts + 1
            if error is None:
                state, next_at = "delivered", notification.next_attempt_at
                delivered += 1
            elif attempts >= self._max_attempts:
                state, next_at = "dead", notification.next_attempt_at
                dead += 1
                log.error("notification given up", notification_id=notification.id, error=error)
            else:
                state = "pending"
                delay = min(self._base_backoff * (2 ** (attempts - 1)), timedelta(hours=1))
                next_at = self._clock() + delay
                retrying += 1
            self._storage.save_notification_delivery(
                notification.model_copy(
                    update={
                        "delivery": state,
                        "attempts": attempts,
                        "delivered_to": tuple(done),
                        "next_attempt_at": next_at,
                        "lease_until": None,
                        "last_error": error,
                    }
                )
            )
        return DispatchReport(delivered=delivered, retrying=retrying, dead=dead)

    def _deliver(self, notifier: Notifier, notification: Notification) -> str | None:
        with self._lock:
            earlier = self._in_flight.get(notifier.name)
            if earlier is not None:
                if earlier.thread.is_alive():
                    return "still busy with an earlier call that timed out"
                del self._in_flight[notifier.name]
                if earlier.notification_id == notification.id and earlier.done and earlier.error is None:
                    return None  # the timed-out call did deliver it, late: do not deliver twice
        call = _Call(notification.id, notifier, notification)
        call.thread.start()
        call.thread.join(self._timeout)
        if call.thread.is_alive():
            with self._lock:
                self._in_flight[notifier.name] = call
            log.warning("notifier timed out", notifier=notifier.name, notification_id=notification.id)
            return f"timed out after {self._timeout}s"
        if call.error is not None:
            log.warning(
                "notifier failed",
                notifier=notifier.name,
                notification_id=notification.id,
                error=type(call.error).__name__,
            )
            return type(call.error).__name__
        return None

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


class _Call:
    """One notifier call on a daemon thread of its own, so a hung call blocks nobody."""

    def __init__(self, notification_id: str, notifier: Notifier, notification: Notification) -> None:
        self.notification_id = notification_id
        self.done = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, args=(notifier, notification), name=f"paykit-notify-{notifier.name}", daemon=True
        )

    def _run(self, notifier: Notifier, notification: Notification) -> None:
        try:
            notifier.notify(notification)
        except Exception as exc:
            self.error = exc
        self.done = True
