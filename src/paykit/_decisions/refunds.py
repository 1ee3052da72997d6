"""Pure rules of refunds: reserve, settle, release, reverse; each counted once.

A payment holds the truth about its money: ``pending_refunds`` (reserved, not
settled) and ``settled_refunds`` (counted in ``refunded_minor``), by refund id.
Every decision reads those, so an API answer and a webhook for the same refund,
in any order and any number of times, move the money once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from .._errors import InvalidRequestError, InvalidStateError
from .._models import AuditAction, Payment, Refund, RefundStatus, WebhookEvent, copy_with
from .._money import Money
from .._status import PaymentStatus
from . import common
from .change import Change, skip
from .effects import refund_failed_notification
from .payments import REFUNDABLE, event_record, remember, same_currency

__all__ = [
    "MAX_REFUND_ATTEMPTS",
    "external_refund_id",
    "outcome_unknown",
    "refund_event",
    "refund_status_after",
    "reserve",
    "retry_attempt",
    "settle",
]

MAX_REFUND_ATTEMPTS: Final = 5
"""Sends of one refund, each after a lookup found nothing, before it is given up as FAILED."""

_FINAL_FAILURES: Final = frozenset({RefundStatus.FAILED, RefundStatus.CANCELED})


def refund_status_after(payment: Payment, refunded_minor: int) -> PaymentStatus:
    """The payment status once ``refunded_minor`` of its capture is refunded."""
    if refunded_minor <= 0:
        return PaymentStatus.SUCCEEDED if payment.status in _REFUNDED_STATES else payment.status
    if refunded_minor >= payment.captured_minor:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


_REFUNDED_STATES: Final = frozenset({*REFUNDABLE, PaymentStatus.REFUNDED})


def external_refund_id(provider: str, provider_refund_ref: str) -> str:
    """The paykit id of a refund made outside paykit (dashboard, reversal): one per provider refund."""
    return common.keyed_id("re", f"external:{provider}", provider_refund_ref)


def outcome_unknown(refund: Refund) -> bool:
    """Sent at least once with no clear answer: look it up before sending it again."""
    return refund.status == RefundStatus.PENDING and refund.attempts > 0 and refund.provider_ref is None


def reserve(
    current: Payment,
    refund: Refund,
    *,
    amount: Money | None,
    operation: str | None,
    fingerprint: str,
    partial_refunds: bool,
    check_amount: Callable[[Money], None],
) -> Change:
    """Hold the refund's amount on the payment, with its PENDING record (attempt 1 about to go).

    Raises:
        InvalidStateError: Nothing (or not enough) left to refund.
        InvalidRequestError: A partial refund the provider cannot make, or an amount it cannot take.
    """
    if refund.id in current.pending_refunds or refund.id in current.settled_refunds:
        return skip("replay")
    if operation is not None and operation in current.operation_keys:
        return skip("replay")
    if current.status not in REFUNDABLE:
        raise InvalidStateError(f"cannot refund a payment that is {current.status.value}")
    # What open disputes hold, and lost ones took, is not refundable.
    disputed = current.disputed_minor + current.dispute_lost_minor
    refundable = Money(max(current.amount_refundable.minor_units - disputed, 0), current.currency)
    wanted = amount or refundable
    if wanted.minor_units <= 0 or wanted > refundable:
        held = f" ({current.amount_disputed} disputed)" if disputed else ""
        raise InvalidStateError(f"cannot refund {wanted}: {refundable} remains refundable{held}")
    if wanted.minor_units < current.captured_minor and not partial_refunds:
        raise InvalidRequestError(f"provider {current.provider!r} does not support partial refunds")
    check_amount(wanted)
    record = copy_with(refund, {"amount": wanted, "attempts": 1, "version": current.version + 1})
    updates: dict[str, Any] = {"pending_refunds": {**current.pending_refunds, refund.id: wanted.minor_units}}
    if operation is not None:
        updates["operation_keys"] = {**current.operation_keys, operation: fingerprint}
    return Change(updates, effects=(record,), outcome="reserved")


def retry_attempt(current: Payment, refund: Refund) -> Change:
    """Count one more send of a reserved refund before it goes out."""
    if refund.id not in current.pending_refunds or refund.status != RefundStatus.PENDING:
        return skip("settled")
    record = refund.model_copy(update={"attempts": refund.attempts + 1, "version": current.version + 1})
    return Change(effects=(record,), outcome="attempt")


def unanswered(payment: Payment, refund: Refund) -> bool:
    """Whether a refund is reserved and pending with no provider id: sent, or about to be, with no answer kept."""
    return (
        refund.status == RefundStatus.PENDING and refund.id in payment.pending_refunds and refund.provider_ref is None
    )


def settle(
    current: Payment,
    refund: Refund,
    status: RefundStatus,
    *,
    now: datetime,
    provider_ref: str | None = None,
    failure_message: str | None = None,
    code: str | None = None,
    origin: str = "answer",
    abandoned: bool = False,
) -> Change:
    """Apply what the provider says of a refund to the payment's money, once.

    Reserved and succeeded: counted. Reserved and pending: the provider id is
    kept and the amount stays held. Reserved and failed: released. Counted and
    then failed: the amount is taken back out, with a notification. Failed at
    the provider and then reported succeeded (webhooks come in any order): stale.
    Given up by paykit (``abandoned``) and then found succeeded: counted, if it
    still fits. Only the payment's own records decide, never the refund copy in
    hand, so a concurrent change cannot be missed.
    """
    reserved = refund.id in current.pending_refunds
    counted = refund.id in current.settled_refunds
    closed = current.closed_refunds.get(refund.id)
    ref = provider_ref or refund.provider_ref
    pending = {k: v for k, v in current.pending_refunds.items() if k != refund.id}
    still_closed = {k: v for k, v in current.closed_refunds.items() if k != refund.id}
    held = current.pending_refunds.get(refund.id) or current.settled_refunds.get(refund.id)
    minor = held or refund.amount.minor_units
    amount = Money(minor, current.currency)
    if status == RefundStatus.SUCCEEDED and reserved and ref and current.settled_refunds:
        # Counted first as a refund made outside paykit (its event came first)? Only then is its id worth a hash.
        external = external_refund_id(current.provider, ref)
        if external in current.settled_refunds:
            return _adopt(current, copy_with(refund, {"provider_ref": ref}), external, now=now, origin=origin)
    updates: dict[str, Any]
    if status == RefundStatus.SUCCEEDED:
        if counted:
            return skip("duplicate")
        if closed not in (None, "abandoned"):
            return skip("stale")  # the provider failed it; an older success report arrived late
        if not reserved and amount > current.amount_refundable:
            return skip("stale")
        refunded = current.refunded_minor + minor
        updates = {
            "pending_refunds": pending,
            "settled_refunds": {**current.settled_refunds, refund.id: minor},
            "closed_refunds": still_closed,
            "refunded_minor": refunded,
            "status": refund_status_after(current, refunded),
        }
        outcome = "succeeded"
    elif status == RefundStatus.PENDING:
        if not reserved or (ref == refund.provider_ref and refund.status == RefundStatus.PENDING):
            return skip("duplicate")
        updates = {}
        outcome = "pending"
    elif counted:
        refunded = current.refunded_minor - minor
        updates = {
            "settled_refunds": {k: v for k, v in current.settled_refunds.items() if k != refund.id},
            "closed_refunds": {**still_closed, refund.id: status.value},
            "refunded_minor": refunded,
            "status": refund_status_after(current, refunded),
        }
        outcome = "reversed"
    elif reserved:
        reason = "abandoned" if abandoned else status.value
        updates = {"pending_refunds": pending, "closed_refunds": {**still_closed, refund.id: reason}}
        outcome = "failed"
    elif closed == "abandoned" and not abandoned:
        # paykit gave up on it; now the provider says it failed: remember that, so a late success is stale.
        return Change({"closed_refunds": {**still_closed, refund.id: status.value}}, outcome="duplicate")
    else:
        return skip("duplicate")
    record = copy_with(
        refund,
        {
            "status": status,
            "amount": amount,
            "provider_ref": ref,
            "failure_message": failure_message if status in _FINAL_FAILURES else None,
            "version": current.version + 1,
            "updated_at": now,
        },
    )
    effects: list[Any] = [record]
    if outcome == "reversed":
        effects.append(refund_failed_notification(current, record, at=now))
    payload: dict[str, Any] = {"refund_id": refund.id, "refund_amount": str(amount), "outcome": outcome}
    if origin != "answer":
        payload["origin"] = origin
    if code:
        payload["reason"] = code
    return Change(updates, action=AuditAction.PAYMENT_REFUND, payload=payload, effects=tuple(effects), outcome=outcome)


def _adopt(current: Payment, refund: Refund, external: str, *, now: datetime, origin: str) -> Change:
    """The provider's event came first and was counted as a refund made outside paykit: it is this one.

    The amount stays counted once, now under paykit's refund; the outside record is closed.
    """
    minor = current.settled_refunds[external]
    settled = {k: v for k, v in current.settled_refunds.items() if k != external}
    settled[refund.id] = minor
    pending = {k: v for k, v in current.pending_refunds.items() if k != refund.id}
    version = current.version + 1
    ours = refund.model_copy(
        update={
            "status": RefundStatus.SUCCEEDED,
            "amount": Money(minor, current.currency),
            "version": version,
            "updated_at": now,
        }
    )
    outside = Refund(
        id=external,
        payment_id=current.id,
        user_id=current.user_id,
        provider=current.provider,
        amount=Money(minor, current.currency),
        status=RefundStatus.CANCELED,
        provider_ref=refund.provider_ref,
        reason="made at the provider",
        failure_message=f"the same refund as {refund.id}",
        version=version,
        created_at=now,
        updated_at=now,
    )
    payload = {"refund_id": refund.id, "refund_amount": str(ours.amount), "outcome": "succeeded", "origin": origin}
    return Change(
        {"pending_refunds": pending, "settled_refunds": settled},
        action=AuditAction.PAYMENT_REFUND,
        payload=payload,
        effects=(ours, outside),
        outcome="succeeded",
    )


def refund_event(current: Payment, event: WebhookEvent, known: Refund | None, *, now: datetime) -> Change:
    """A provider's refund event: settle paykit's own refund, or record one made outside paykit once."""
    if event.event_id in current.seen_events:
        return skip("duplicate")
    if event.refund_ref is None or event.refund_status is None:
        return skip("ignored")
    if known is not None:
        change = settle(
            current,
            known,
            event.refund_status,
            now=now,
            provider_ref=event.refund_ref,
            failure_message=event.failure_message,
            origin="webhook",
        )
    else:
        change = _external(current, event, now=now)
    if not change.write:
        return change
    record = event_record(event, "applied", current.id, at=now)
    updates = {**change.updates, "seen_events": remember(current, event.event_id)}
    return Change(updates, change.action, change.payload, (*change.effects, record), "applied")


def _external(current: Payment, event: WebhookEvent, *, now: datetime) -> Change:
    """A refund (or reversal) the provider reports that paykit did not make."""
    ref = event.refund_ref
    if ref is None or event.refund_status != RefundStatus.SUCCEEDED or event.amount_refunded is None:
        return skip("ignored")
    refund_id = external_refund_id(current.provider, ref)
    if refund_id in current.settled_refunds:
        return skip("duplicate")
    minor = same_currency(current, event.amount_refunded)
    if current.status not in REFUNDABLE or minor > current.amount_refundable.minor_units:
        return skip("stale")
    origin = "reversal" if event.provider_data.get("origin") == "reversal" else "provider"
    refund = Refund(
        id=refund_id,
        payment_id=current.id,
        user_id=current.user_id,
        provider=current.provider,
        amount=event.amount_refunded,
        status=RefundStatus.SUCCEEDED,
        provider_ref=ref,
        reason="reversed by the provider" if origin == "reversal" else "made at the provider",
        version=current.version + 1,
        created_at=now,
        updated_at=now,
    )
    refunded = current.refunded_minor + minor
    updates = {
        "settled_refunds": {**current.settled_refunds, refund_id: minor},
        "refunded_minor": refunded,
        "status": refund_status_after(current, refunded),
    }
    payload = {"refund_id": refund_id, "refund_amount": str(event.amount_refunded), "outcome": "succeeded"}
    payload["origin"] = origin
    return Change(updates, action=AuditAction.PAYMENT_REFUND, payload=payload, effects=(refund,), outcome="applied")
