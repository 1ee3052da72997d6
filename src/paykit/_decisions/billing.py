"""Pure rules of subscriptions and installment plans: calendars, splits, dunning, and each write.

Calendar rules (all times UTC): a period boundary is the anchor plus ``k``
intervals, computed from the anchor every time (never from the previous
boundary), so a subscription anchored on Jan 31 renews Feb 28 (Feb 29 in a
leap year), then Mar 31, then Apr 30. A yearly one anchored on Feb 29 renews
Feb 28 in common years and Feb 29 again in leap years. Days and weeks are exact
24-hour and 7-day steps.

Installments: ``split_installments`` divides a total in exact minor units; the
remainder ``r`` of the division goes one minor unit each to the first ``r``
installments, so they always sum to the total and differ by at most one unit.

Dunning: the first charge of a period happens when it is due; after a failure
the record is ``past_due`` and is retried ``Dunning.retry_days`` after the due
date; after the last retry fails it becomes ``Dunning.final_status``.
A payment's id is derived from (record, period, attempt), so every process
that charges the same attempt charges the same payment.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, Final

from .._errors import InvalidRequestError, InvalidStateError
from .._models import (
    AuditAction,
    AuditEntry,
    Dunning,
    Installment,
    InstallmentPlan,
    Interval,
    Notification,
    NotificationKind,
    Plan,
    Subscription,
)
from .._money import Money
from .._status import BILLING_FINAL_STATUSES, SubscriptionStatus, can_bill_transition
from .change import Change, skip
from .common import keyed_id
from .effects import effect_id, notification

__all__ = [
    "LEASE",
    "Billed",
    "add_interval",
    "awaiting",
    "billing_audit",
    "charge_amount",
    "claim",
    "failed",
    "installment_schedule",
    "paid",
    "payment_id_for",
    "payment_key",
    "period_bounds",
    "retry_at",
    "split_installments",
]

Billed = Subscription | InstallmentPlan
S = SubscriptionStatus
LEASE: Final = timedelta(minutes=5)
"""How long one billing tick holds a record; another tick takes it over after that."""
CHARGEABLE: Final = frozenset({S.TRIALING, S.ACTIVE, S.PAST_DUE})
ACTION_REQUIRED_CODES: Final = frozenset({"authentication_required"})
"""Failure codes that need the customer rather than another off-session retry."""


# -- calendar ------------------------------------------------------------------
def add_interval(anchor: datetime, interval: Interval, count: int) -> datetime:
    """``anchor`` plus ``count`` intervals; months and years clamp to the month's last day.

    Raises:
        InvalidRequestError: ``anchor`` is naive.
    """
    if anchor.tzinfo is None:
        raise InvalidRequestError("billing times must be timezone-aware")
    anchor = anchor.astimezone(UTC)
    if interval == "day":
        return anchor + timedelta(days=count)
    if interval == "week":
        return anchor + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    index = anchor.year * 12 + anchor.month - 1 + months
    year, month = divmod(index, 12)
    day = min(anchor.day, calendar.monthrange(year, month + 1)[1])
    return anchor.replace(year=year, month=month + 1, day=day)


def _plan_for(sub: Subscription, period: int) -> Plan:
    """The plan period ``period`` is charged on: the next plan from the next period on."""
    return sub.next_plan if sub.next_plan is not None and period >= sub.period else sub.plan


def period_bounds(sub: Subscription, period: int) -> tuple[datetime, datetime]:
    """Start and end of period ``period`` (0 is the first paid period)."""
    plan = sub.plan
    start = add_interval(sub.anchor, plan.interval, plan.interval_count * (period - sub.anchor_period))
    nxt = _plan_for(sub, period)
    if nxt is plan:
        end = add_interval(sub.anchor, plan.interval, plan.interval_count * (period + 1 - sub.anchor_period))
    else:
        end = add_interval(start, nxt.interval, nxt.interval_count)
    return start, end


def installment_schedule(start: datetime, interval: Interval, interval_count: int, count: int) -> list[datetime]:
    """Due dates of ``count`` installments: ``start``, then every ``interval_count`` intervals."""
    return [add_interval(start, interval, interval_count * k) for k in range(count)]


def split_installments(total: Money, count: int) -> list[Money]:
    """``total`` in ``count`` installments of exact minor units that sum to ``total``.

    The first ``total % count`` installments take one minor unit more than the others.

    Raises:
        InvalidRequestError: ``count`` is not 1-120, or the total is too small to give each one unit.
    """
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 120:
        raise InvalidRequestError("an installment plan has 1 to 120 installments")
    if total.minor_units < count:
        raise InvalidRequestError(f"{total} cannot be split into {count} installments of at least one minor unit")
    base, remainder = divmod(total.minor_units, count)
    return [Money(base + (1 if k < remainder else 0), total.currency) for k in range(count)]


def retry_at(due: datetime, dunning: Dunning, failures: int) -> datetime | None:
    """When the retry after ``failures`` failed attempts is due, or ``None`` when none is left."""
    if failures > len(dunning.retry_days):
        return None
    return due + timedelta(days=dunning.retry_days[failures - 1])


def _deadline(record: Billed, now: datetime) -> datetime:
    """How long the current attempt may wait for the customer: until the next retry would be due."""
    assert record.renews_at is not None  # noqa: S101 - only chargeable records are charged
    nxt = retry_at(record.renews_at, record.dunning, record.attempt + 1)
    if nxt is None:
        nxt = max(record.renews_at, now) + timedelta(days=1)
    return max(nxt, now)


# -- what a tick charges ---------------------------------------------------------
def payment_key(record_id: str, period: int, attempt: int) -> str:
    """The idempotency key of a period's attempt: every process derives the same one."""
    return f"billing:{record_id}:{period}:{attempt}"


def payment_id_for(record_id: str, period: int, attempt: int) -> str:
    """The payment id ``initialize_payment`` gives the attempt's key."""
    return keyed_id("pay", "payment", payment_key(record_id, period, attempt))


def current_payment_id(record: Billed) -> str:
    """The id of the payment of the record's current period and attempt."""
    return payment_id_for(record.id, record.period, record.attempt)


def charge_amount(record: Billed) -> Money:
    """What the current period (or installment) costs."""
    if isinstance(record, Subscription):
        return _plan_for(record, record.period).amount
    return record.installments[record.period].amount


def next_due(record: Billed, now: datetime) -> datetime | None:
    """When the tick should next look at a record that has no attempt in flight."""
    if record.status not in CHARGEABLE or record.renews_at is None:
        return None
    remind = record.dunning.remind_days
    if record.attempt == 0 and remind is not None and record.reminded_period < record.period:
        at = record.renews_at - timedelta(days=remind)
        if at > now:
            return at
    return record.renews_at


def invoice_key(record: Billed) -> str:
    """The key of the current period's invoice: one per period and amount (a pay-off is a new amount)."""
    return f"billing:{record.id}:{record.period}:{charge_amount(record).minor_units}"


def line_description(record: Billed) -> str:
    """The invoice line of the record's current period or installment."""
    if isinstance(record, Subscription):
        start, end = period_bounds(record, record.period)
        name = _plan_for(record, record.period).name or "Subscription"
        return f"{name}: {start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return f"Installment {record.period + 1} of {len(record.installments)}"


# -- the builds ----------------------------------------------------------------
def claim(current: Billed, now: datetime, token: str) -> Change:
    """Take a due record's lease for one tick, unless it is not due or another tick holds it."""
    if current.due_at is None or current.due_at > now or current.status not in CHARGEABLE:
        return skip("not_due")
    if current.lease_until is not None and current.lease_until > now:
        return skip("leased")
    return Change({"lease_until": now + LEASE, "lease_token": token}, outcome="claimed")


def _held(current: Billed, token: str | None) -> bool:
    return token is None or current.lease_token == token


def _release() -> dict[str, Any]:
    return {"lease_until": None, "lease_token": None}


def step(current: Billed, now: datetime) -> str:
    """What a tick does with a record it claimed: ``"remind"``, ``"end"``, ``"check"`` or ``"charge"``."""
    if current.payment_id is not None:
        return "check"
    if current.renews_at is not None and current.renews_at > now:
        return "remind"
    if isinstance(current, Subscription) and current.cancel_at_period_end and current.attempt == 0:
        return "end"
    return "charge"


def remind(current: Billed, now: datetime, token: str) -> Change:
    """Send the renewal reminder of the next period, and sleep until it is due."""
    if not _held(current, token) or step(current, now) != "remind":
        return skip("stale")
    sent = _copy(current, reminded_period=current.period)
    payload = {"renews_at": _iso(current.renews_at), "amount": str(charge_amount(current)), **_ref(current)}
    return Change(
        {"reminded_period": current.period, "due_at": current.renews_at, **_release()},
        action=AuditAction.BILLING_REMINDER,
        effects=(_notify(sent, NotificationKind.RENEWAL_UPCOMING, payload, now),),
    )


def end_at_period_end(current: Billed, now: datetime, token: str) -> Change:
    """A subscription set to cancel at period end reached it: cancel instead of charging."""
    if not _held(current, token) or step(current, now) != "end":
        return skip("stale")
    return _end(current, S.CANCELED, now, AuditAction.BILLING_ENDED, {"reason": "cancel_at_period_end"})


def awaiting(
    current: Billed, payment_id: str, *, needs_customer: bool, link: str | None, now: datetime, token: str | None
) -> Change:
    """The attempt's payment waits for the customer: remember it and check back at the deadline."""
    if not _held(current, token) or current.status not in CHARGEABLE:
        return skip("stale")
    if payment_id != current_payment_id(current) or current.payment_id == payment_id:
        return skip("duplicate")
    deadline = _deadline(current, now)
    updates: dict[str, Any] = {"payment_id": payment_id, "due_at": deadline, **_release()}
    if needs_customer and current.status != S.PAST_DUE:
        updates["status"] = S.PAST_DUE
    after = _copy(current, **updates)
    payload = {
        "payment_id": payment_id,
        "pay_by": _iso(deadline),
        "amount": str(charge_amount(current)),
        **_ref(current),
    }
    if link is not None:
        payload["pay_url"] = link
    return Change(
        updates,
        action=AuditAction.BILLING_AWAITING_PAYMENT,
        payload={"payment_id": payment_id},
        effects=(_notify(after, NotificationKind.PAYMENT_ACTION_REQUIRED, payload, now),),
    )


def paid(current: Billed, payment_id: str, *, now: datetime) -> Change:
    """The current attempt's payment succeeded: the period is paid and the next one scheduled."""
    if payment_id != current_payment_id(current):
        return skip("stale")
    if current.status in BILLING_FINAL_STATUSES:
        return skip("ended")
    updates: dict[str, Any] = {
        "period": current.period + 1,
        "attempt": 0,
        "payment_id": None,
        "last_payment_id": payment_id,
        **_release(),
    }
    if current.status != S.PAUSED:
        updates["status"] = S.ACTIVE
    if isinstance(current, Subscription):
        start, end = period_bounds(current, current.period)
        updates.update(current_period_start=start, current_period_end=end, renews_at=end)
        if current.next_plan is not None:
            updates.update(plan=current.next_plan, next_plan=None, anchor=start, anchor_period=current.period)
    else:
        items = list(current.installments)
        items[current.period] = items[current.period].model_copy(update={"payment_id": payment_id, "paid_at": now})
        updates["installments"] = tuple(items)
        if current.period + 1 >= len(items):
            updates.update(status=S.COMPLETED, renews_at=None)
        else:
            updates["renews_at"] = items[current.period + 1].due_at
    after = _copy(current, **updates)
    updates["due_at"] = None if current.status == S.PAUSED else next_due(after, now)
    return Change(updates, action=AuditAction.BILLING_PERIOD_PAID, payload={"payment_id": payment_id}, outcome="paid")


def failed(current: Billed, payment_id: str, *, code: str | None, now: datetime) -> Change:
    """The current attempt's payment failed: schedule the next retry, or end after the last."""
    if payment_id != current_payment_id(current):
        return skip("stale")
    if current.status not in CHARGEABLE and current.status != S.PAUSED:
        return skip("ended")
    assert current.renews_at is not None  # noqa: S101 - a charged record has a due date
    failures = current.attempt + 1
    base = {"payment_id": None, "failure": code or "failed", "attempt": failures, "payment": payment_id}
    when = retry_at(current.renews_at, current.dunning, failures)
    if when is None:
        final = S.UNPAID if current.dunning.final_status == "unpaid" else S.CANCELED
        change = _end(current, final, now, AuditAction.BILLING_PAYMENT_FAILED, base, attempt=failures)
        notice = _notify(_copy(current, version=current.version + 1), NotificationKind.PAYMENT_FAILED, base, now)
        return Change(change.updates, change.action, change.payload, (notice, *change.effects), "ended")
    when = max(when, now)
    updates: dict[str, Any] = {"attempt": failures, "payment_id": None, "due_at": when, **_release()}
    if current.status != S.PAUSED:
        updates["status"] = S.PAST_DUE
    after = _copy(current, **updates)
    effects = [
        _notify(after, NotificationKind.PAYMENT_FAILED, base, now),
        _notify(after, NotificationKind.RETRY_SCHEDULED, {**base, "retry_at": _iso(when)}, now),
    ]
    if code in ACTION_REQUIRED_CODES:
        what = {**base, "action": "authenticate", "pay_by": _iso(when)}
        effects.append(_notify(after, NotificationKind.PAYMENT_ACTION_REQUIRED, what, now))
    return Change(
        updates, action=AuditAction.BILLING_PAYMENT_FAILED, payload=base, effects=tuple(effects), outcome="retry"
    )


def cancel(current: Billed, *, at_period_end: bool, now: datetime) -> Change:
    """Cancel now, or (subscriptions) at the end of the paid period; canceling again is a no-op."""
    if current.status in BILLING_FINAL_STATUSES:
        if current.status == S.CANCELED:
            return skip("duplicate")
        raise InvalidStateError(f"cannot cancel a {_kind(current)} that is {current.status.value}")
    action = (
        AuditAction.SUBSCRIPTION_CANCEL if isinstance(current, Subscription) else AuditAction.INSTALLMENT_PLAN_CANCEL
    )
    if at_period_end:
        if not isinstance(current, Subscription):
            raise InvalidRequestError("installment plans are canceled now, not at a period end")
        if current.cancel_at_period_end:
            return skip("duplicate")
        return Change({"cancel_at_period_end": True}, action=action, payload={"at_period_end": True})
    return _end(current, S.CANCELED, now, action, {"at_period_end": False})


def pause(current: Subscription, *, now: datetime) -> Change:
    """Stop charging a subscription until it is resumed."""
    if current.status == S.PAUSED:
        return skip("duplicate")
    _check_move(current, S.PAUSED)
    return Change(
        {"status": S.PAUSED, "paused_at": now, "due_at": None, **_release()}, action=AuditAction.SUBSCRIPTION_PAUSE
    )


def resume(current: Subscription, *, now: datetime) -> Change:
    """Charge a paused subscription again; periods that passed while paused are skipped, not charged.

    A subscription paused in the middle of its dunning resumes the dunning where it was.
    """
    if current.status != S.PAUSED:
        if current.status in CHARGEABLE:
            return skip("duplicate")
        raise InvalidStateError(f"cannot resume a subscription that is {current.status.value}")
    updates: dict[str, Any] = {"paused_at": None}
    if current.attempt > 0 or current.payment_id is not None:
        updates.update(status=S.PAST_DUE, due_at=now)
        return Change(updates, action=AuditAction.SUBSCRIPTION_RESUME)
    period = current.period
    while period_bounds(current, period)[0] < now and period < current.period + 100_000:
        period += 1
    # Periods that started while paused are skipped; the calendar keeps its anchor day.
    start = period_bounds(current, period)[0]
    updates.update(status=S.ACTIVE, period=period, renews_at=start)
    updates["due_at"] = next_due(_copy(current, **updates), now)
    return Change(updates, action=AuditAction.SUBSCRIPTION_RESUME, payload={"period": period})


def change_plan(current: Subscription, plan: Plan) -> Change:
    """Switch to ``plan`` from the next period on (the period paid keeps its plan)."""
    if current.status in BILLING_FINAL_STATUSES:
        raise InvalidStateError(f"cannot change the plan of a subscription that is {current.status.value}")
    if plan.amount.currency != current.plan.amount.currency:
        raise InvalidRequestError(f"the new plan must be in {current.plan.amount.currency}")
    if current.payment_id is not None or current.attempt > 0:
        raise InvalidStateError(
            "a payment for the next period is under way or past due; change the plan after it settles"
        )
    if (current.next_plan or current.plan) == plan:
        return skip("duplicate")
    return Change(
        {"next_plan": None if plan == current.plan else plan},
        action=AuditAction.SUBSCRIPTION_CHANGE_PLAN,
        payload={"amount": str(plan.amount), "interval": plan.interval, "interval_count": plan.interval_count},
    )


def change_method(current: Subscription, payment_method: str | None, *, saved: bool | None = None) -> Change:
    """Charge later periods and retries to ``payment_method``; the same method again is a no-op.

    ``saved``: whether it is a saved method's id (``False``: a provider token).
    """
    if current.status in BILLING_FINAL_STATUSES:
        raise InvalidStateError(f"cannot change the payment method of a subscription that is {current.status.value}")
    if current.payment_method == payment_method:
        return skip("duplicate")
    return Change(
        {"payment_method": payment_method, "payment_method_saved": saved},
        action=AuditAction.SUBSCRIPTION_CHANGE_METHOD,
    )


def pay_off(current: InstallmentPlan, *, now: datetime) -> Change:
    """Merge every unpaid installment into one due now, so the next tick charges the rest at once."""
    if current.status in BILLING_FINAL_STATUSES or current.status == S.PAUSED:
        raise InvalidStateError(f"cannot pay off an installment plan that is {current.status.value}")
    if current.payment_id is not None or (current.lease_until is not None and current.lease_until > now):
        raise InvalidStateError("an installment payment is under way; pay off after it settles")
    unpaid = current.installments[current.period :]
    if len(unpaid) == 1 and unpaid[0].due_at <= now:
        return skip("duplicate")
    rest = sum((i.amount for i in unpaid), Money.zero(current.total.currency))
    merged = Installment(number=unpaid[0].number, amount=rest, due_at=now)
    items = (*current.installments[: current.period], merged)
    return Change(
        {"installments": items, "renews_at": now, "due_at": now},
        action=AuditAction.INSTALLMENT_PLAN_PAY_OFF,
        payload={"amount": str(rest)},
    )


# -- effects -------------------------------------------------------------------
def billing_audit(
    before: Billed | None,
    after: Billed,
    action: AuditAction,
    *,
    actor: str,
    at: datetime,
    payload: dict[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry of a subscription or installment plan write (ids and amounts only)."""
    body: dict[str, Any] = {"period": after.period, "attempt": after.attempt, **(payload or {})}
    if isinstance(after, Subscription):
        body["amount"] = str(after.plan.amount)
    else:
        body["total"] = str(after.total)
    return AuditEntry(
        id=effect_id(after.id, after.version, action.value),
        action=action,
        subject_type=after.kind,
        subject_id=after.id,
        payment_id=(payload or {}).get("payment_id"),
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status.value if before else None,
        status_after=after.status.value,
        payload=body,
    )


def _end(
    current: Billed,
    final: SubscriptionStatus,
    now: datetime,
    action: AuditAction,
    payload: dict[str, Any],
    **extra: Any,
) -> Change:
    _check_move(current, final)
    updates: dict[str, Any] = {"status": final, "due_at": None, "canceled_at": now, **_release(), **extra}
    if "payment_id" not in extra:
        updates["payment_id"] = None
    after = _copy(current, **updates)
    kind = NotificationKind.SUBSCRIPTION_UNPAID if final == S.UNPAID else NotificationKind.SUBSCRIPTION_CANCELED
    notice = _notify(after, kind, {**payload, "status": final.value, **_ref(current)}, now)
    return Change(updates, action=action, payload=payload, effects=(notice,), outcome="ended")


def _check_move(current: Billed, target: SubscriptionStatus) -> None:
    if not can_bill_transition(current.status, target):
        raise InvalidStateError(f"a {_kind(current)} that is {current.status.value} cannot become {target.value}")


def _kind(record: Billed) -> str:
    return record.kind.replace("_", " ")


def _copy(current: Billed, **updates: Any) -> Billed:
    return current.model_copy(update={"version": current.version + 1, **updates})


def _ref(record: Billed) -> dict[str, str]:
    return {f"{record.kind}_id": record.id}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _notify(after: Billed, kind: NotificationKind, payload: dict[str, Any], now: datetime) -> Notification:
    return notification(
        user_id=after.user_id,
        subject_id=after.id,
        version=after.version,
        kind=kind,
        payload={**_ref(after), "period": after.period, **payload},
        at=now,
    )


def schedule_is_increasing(moments: Sequence[datetime]) -> bool:
    """Whether every moment is strictly after the one before it."""
    return all(b > a for a, b in pairwise(moments))
