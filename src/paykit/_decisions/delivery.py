"""How notifications are delivered, as pure rules both dispatchers follow.

The threaded :class:`~paykit.notify.NotificationDispatcher` and the asyncio
:class:`~paykit.notify.AsyncNotificationDispatcher` differ only in how they run a
notifier call (a daemon thread or a task) and await storage; every decision
(lease and batch sizes, when to renew a claim, what a result means, what to
save, backoff, when a notification is dead) is made here, once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from .._errors import ChannelError, ConfigurationError
from .._models import Notification
from .._results import DispatchReport

MAX_BACKOFF = timedelta(hours=1)
BUSY_DETAIL = "still busy with an earlier call that timed out"

State = Literal["delivered", "pending", "dead", "running", "lost"]


def check_notifiers(notifiers: Iterable[object]) -> None:
    """Each notifier has a non-empty ``name``, unique among them, and a ``notify`` method.

    Delivery is recorded per name: two notifiers under one name (two ``CallbackNotifier``s left with the default
    ``"callback"``) share one record, so when one succeeds and the other fails, the other is never retried.

    Raises:
        ConfigurationError: A notifier lacks a name or ``notify``, or two share a name.
    """
    seen: set[str] = set()
    for notifier in notifiers:
        name = getattr(notifier, "name", None)
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"notifier {type(notifier).__name__} has no name (a non-empty str property)")
        if not callable(getattr(notifier, "notify", None)):
            raise ConfigurationError(f"notifier {name!r} has no notify(notification) method")
        if name in seen:
            raise ConfigurationError(
                f"two notifiers are named {name!r}: delivery is tracked per name, so give each its own "
                "(CallbackNotifier(..., name=...))"
            )
        seen.add(name)


def default_lease(timeout: float, notifier_count: int) -> timedelta:
    """Twice every notifier running to its timeout, plus 30 seconds."""
    return timedelta(seconds=2 * timeout * max(1, notifier_count) + 30)


def batch_size(lease: timedelta, timeout: float, notifier_count: int) -> int:
    """How many notifications to claim at once: at most ten, fewer when half a lease fits fewer rounds."""
    round_time = timedelta(seconds=timeout * max(1, notifier_count))
    return max(1, min(10, (lease / 2) // round_time)) if round_time else 10


def needs_renewal(lease_until: datetime | None, now: datetime, lease: timedelta) -> bool:
    """Whether a claim has less than half a lease left, so a round must not start on it as is."""
    return lease_until is None or lease_until - now < lease / 2


def backoff(base: timedelta, attempts: int) -> timedelta:
    """The wait before the next attempt after ``attempts`` failed ones: doubled each time, capped at an hour."""
    delay: timedelta = base * (2 ** (attempts - 1))
    return min(delay, MAX_BACKOFF)


def report(states: Iterable[State]) -> DispatchReport:
    """Count one pass's final states: still running or pending both mean "retrying"."""
    counts = Counter(states)
    return DispatchReport(
        delivered=counts["delivered"], retrying=counts["pending"] + counts["running"], dead=counts["dead"]
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one notifier did with one notification, as far as the round is concerned."""

    kind: Literal["delivered", "failed", "busy", "given_up"]
    detail: str = ""
    called: bool = True


class Call:
    """One notifier call's bookkeeping; the dispatcher runs the call itself on a thread or a task."""

    def __init__(self, notifier_name: str, notification_id: str) -> None:
        self.notifier_name = notifier_name
        self.notification_id = notification_id
        self.done = False
        self.error: BaseException | None = None
        self.progress: Round | None = None  # set when the dispatcher moved on before the call returned

    def outcome(self) -> Outcome:
        """The outcome of a call that returned: a permanent channel error gives that notifier up, unretried."""
        if self.error is None:
            return Outcome("delivered")
        if isinstance(self.error, ChannelError) and self.error.permanent:
            code = f" {self.error.code}" if self.error.code else ""
            return Outcome("given_up", f"{type(self.error).__name__}{code} (permanent)")
        return Outcome("failed", type(self.error).__name__)


def still_running_for(earlier: Call | None, notification_id: str) -> bool:
    """Whether a notifier's timed-out call for this very notification is still running.

    A round that claims the notification again then waits for that call instead of
    calling the notifier a second time: the newest claim owns its late result, which an
    older claim could no longer save.
    """
    return earlier is not None and not earlier.done and earlier.notification_id == notification_id


def verdict_on_earlier_call(earlier: Call | None, notification_id: str) -> Outcome | None:
    """What a notifier's earlier timed-out call means for a new one; ``None``: call the notifier.

    While it still runs, the notifier is busy (no attempt is counted). Once it has
    returned, a late success for this very notification means it was delivered
    (its claim was lost meanwhile): it must not be sent twice.
    """
    if earlier is None:
        return None
    if not earlier.done:
        return Outcome("busy", BUSY_DETAIL, called=False)
    if earlier.notification_id == notification_id and earlier.error is None:
        return Outcome("delivered", called=False)
    return None


class Round:
    """One claimed notification's delivery round, as far as it got."""

    def __init__(self, notification: Notification, token: str) -> None:
        self.notification = notification
        self.token = token
        self.done = list(notification.delivered_to)
        self.given_up = list(notification.given_up_by)
        self.permanent_errors: list[str] = []
        self.errors: list[str] = []
        self.busy: list[str] = []
        self.waiting: set[str] = set()
        self.called = False
        self.running_note: str | None = None

    def record(self, notifier_name: str, outcome: Outcome) -> None:
        """Count a notifier's outcome in this round."""
        self.called = self.called or outcome.called
        if outcome.kind == "delivered":
            self.done.append(notifier_name)
        elif outcome.kind == "given_up":
            self.given_up.append(notifier_name)
            self.permanent_errors.append(f"{notifier_name}: {outcome.detail}")
        elif outcome.kind == "failed":
            self.errors.append(f"{notifier_name}: {outcome.detail}")
        else:
            self.busy.append(f"{notifier_name}: {outcome.detail}")

    def finished(self, notifier_name: str) -> bool:
        """Whether a notifier is done with this notification: delivered, or given up for good."""
        return notifier_name in self.done or notifier_name in self.given_up

    def take(self, call: Call) -> None:
        """Count the result of a call that returned after its timeout."""
        self.record(call.notifier_name, call.outcome())

    def hold_for(self, running: Iterable[Call], timeout: float) -> None:
        """Note the calls still running past their timeout: the claim is kept for their results."""
        self.called = True
        timed_out = [f"{call.notifier_name}: timed out after {timeout}s" for call in running]
        self.running_note = "; ".join(self.errors + self.busy + timed_out)

    def saved(self, *, keep_claim: bool, lease_until: datetime) -> Notification:
        """The notification to write under the claim's token: progress so far, claim kept or released."""
        update: dict[str, object] = {"delivered_to": tuple(self.done), "given_up_by": tuple(self.given_up)}
        if keep_claim:
            update["lease_until"] = lease_until
            if self.running_note is not None:
                update["last_error"] = self.running_note
        else:
            update["lease_until"] = None
            update["claim_token"] = None
        return self.notification.model_copy(update=update)

    def settle(
        self, *, notifier_names: Iterable[str], max_attempts: int, base_backoff: timedelta, now: datetime
    ) -> State:
        """Decide the round's final state and set :attr:`notification` to it (the caller saves it).

        A round counts as an attempt only if it called every notifier it had to: one
        that skipped a busy notifier is not held against the notification. A notifier
        given up (a permanent channel error) is finished with: the notification is
        "delivered" when every other notifier delivered it, "dead" when none did.
        """
        notification = self.notification
        attempts = notification.attempts + (1 if self.called and not self.busy else 0)
        next_at = notification.next_attempt_at
        names = set(notifier_names)
        # Why notifiers were given up, this round or before: kept in last_error until the notification is settled.
        earlier = [note for note in (notification.last_error or "").split("; ") if note.endswith("(permanent)")]
        given_up = list(dict.fromkeys(earlier + self.permanent_errors))
        state: State
        if names <= set(self.done):
            state, error = "delivered", None
        elif names <= set(self.done) | set(self.given_up):
            state = "delivered" if names & set(self.done) else "dead"
            error = "; ".join(given_up) or None
        elif self.errors:
            error = "; ".join(given_up + self.errors + self.busy)
            if attempts >= max_attempts:
                state = "dead"
            else:
                state = "pending"
                next_at = now + backoff(base_backoff, attempts)
        else:
            state, error = "pending", "; ".join(given_up + self.busy)
            next_at = now + base_backoff
        self.notification = notification.model_copy(
            update={"delivery": state, "attempts": attempts, "next_attempt_at": next_at, "last_error": error}
        )
        return state
