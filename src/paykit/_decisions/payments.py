"""Pure rules of the payment lifecycle: what a provider answer or event changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import SecretStr

from .._errors import InvalidRequestError, InvalidStateError
from .._models import AuditAction, Payment, WebhookEvent
from .._money import Money
from .._redact import redact
from .._status import PaymentStatus, can_transition
from ..providers._base import ProviderPayment
from ..storage._base import WebhookEventRecord
from .change import Change, skip
from .common import check_positive

__all__ = [
    "CANCELABLE",
    "CONFIRMABLE",
    "REFUNDABLE",
    "UNSETTLED",
    "dispute",
    "event_record",
    "lease",
    "lease_active",
    "operation_replay",
    "provider_changes",
    "release_lease",
    "remember",
    "same_currency",
    "status_change",
    "status_update",
]

S = PaymentStatus
CONFIRMABLE: Final = frozenset({S.PENDING, S.REQUIRES_ACTION})
CANCELABLE: Final = frozenset({S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED})
REFUNDABLE: Final = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED})
UNSETTLED: Final = (S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED)
SEEN_EVENTS_KEPT: Final = 100
UNVERIFIED_CHECK_INTERVAL: Final = timedelta(minutes=1)
"""At most one provider check per payment per this interval for unverified notices."""
CALL_LEASE: Final = timedelta(seconds=10)
"""How long one caller may hold a payment's registration with its provider.

Other callers with the same key wait for it; after a crash, a retry takes over once it expires."""


def same_currency(payment: Payment, amount: Money) -> int:
    """``amount`` in minor units, refused unless it is in the payment's currency."""
    if amount.currency != payment.currency:
        raise InvalidRequestError(f"amount is in {amount.currency}, the payment in {payment.currency}")
    return amount.minor_units


def remember(payment: Payment, event_id: str) -> tuple[str, ...]:
    """``seen_events`` with ``event_id`` added, keeping the newest ones."""
    return (*payment.seen_events, event_id)[-SEEN_EVENTS_KEPT:]


def event_record(event: WebhookEvent, outcome: str, payment_id: str | None, *, at: datetime) -> WebhookEventRecord:
    """The history record of a provider event."""
    return WebhookEventRecord(
        provider=event.provider,
        event_id=event.event_id,
        type=event.type,
        outcome=outcome,
        received_at=at,
        payment_id=payment_id,
    )


def _captured(payment: Payment, status: PaymentStatus, amount_captured: Money | None) -> dict[str, Any]:
    if amount_captured is not None:
        return {"captured_minor": max(payment.captured_minor, same_currency(payment, amount_captured))}
    if status == S.SUCCEEDED and not payment.captured_minor:
        return {"captured_minor": payment.amount.minor_units}
    return {}


def provider_changes(payment: Payment, result: ProviderPayment) -> dict[str, Any]:
    """The payment fields a provider's answer sets; the status only when it moves forward."""
    changes: dict[str, Any] = {"provider_ref": result.provider_ref or payment.provider_ref}
    if result.client_secret is not None:
        changes["client_secret"] = SecretStr(result.client_secret)
    if result.redirect_url is not None:
        changes["redirect_url"] = result.redirect_url
    if result.next_action is not None:
        changes["next_action"] = redact(dict(result.next_action))
    if result.payment_method_ref is not None:
        changes["payment_method_ref"] = result.payment_method_ref
    if result.provider_data:
        changes["provider_data"] = {**payment.provider_data, **result.provider_data}
    if result.status != payment.status and can_transition(payment.status, result.status):
        changes["status"] = result.status
        if result.status == S.FAILED:
            changes["failure_code"] = result.failure_code
            changes["failure_message"] = result.failure_message
    if "status" in changes or result.amount_captured is not None:
        changes.update(_captured(payment, changes.get("status", payment.status), result.amount_captured))
    return changes


def lease_active(payment: Payment, now: datetime) -> bool:
    """Whether another caller is registering the payment with its provider right now."""
    return payment.call_lease_until is not None and payment.call_lease_until > now


def lease(current: Payment, now: datetime) -> Change:
    """Take the registration lease of an unregistered payment, unless someone holds it."""
    if current.provider_ref is not None or current.status != S.PENDING or lease_active(current, now):
        return skip("busy")
    return Change({"call_lease_until": now + CALL_LEASE}, outcome="leased")


def release_lease(current: Payment) -> Change:
    """Give the lease back after a provider call that changed nothing, so a retry need not wait."""
    if current.call_lease_until is None:
        return skip()
    return Change({"call_lease_until": None})


def claim_check(current: Payment, now: datetime) -> Change:
    """Claim the provider check an unverified notice asks for, unless one was made recently or it is settled."""
    if current.status not in UNSETTLED:
        return skip("settled")
    if current.checked_at is not None and now - current.checked_at < UNVERIFIED_CHECK_INTERVAL:
        return skip("recent")
    return Change({"checked_at": now}, outcome="claimed")


def operation_replay(payment: Payment, op: str, key: str | None) -> str | None:
    """The fingerprint stored for a keyed operation already done on this payment."""
    return payment.operation_keys.get(f"{op}:{key}") if key is not None else None


def status_update(
    current: Payment, target: PaymentStatus, *, amount_captured: Money | None, metadata: dict[str, str]
) -> Change:
    """``update_payment_status``: move to ``target`` if the table allows; the same status is a no-op.

    A refund status is refused: only a refund moves refunded money, and a status alone would leave the
    payment REFUNDED with all of it still refundable. ``amount_captured`` goes with SUCCEEDED only, and
    never above what the payment is for.
    """
    if target in (S.REFUNDED, S.PARTIALLY_REFUNDED):
        raise InvalidRequestError(
            f"update_payment_status cannot set {target.value}: record the refund with refund_payment"
        )
    if amount_captured is not None:
        captured = check_positive(amount_captured, "amount_captured")
        if target != S.SUCCEEDED:
            raise InvalidRequestError(f"amount_captured goes with succeeded, not {target.value}")
        if same_currency(current, captured) > current.amount.minor_units:
            raise InvalidRequestError(f"amount_captured {captured} is more than the payment's {current.amount}")
    if current.status == target:
        return skip("duplicate")
    if not can_transition(current.status, target):
        raise InvalidStateError(f"payment {current.id} cannot move from {current.status.value} to {target.value}")
    changes: dict[str, Any] = {"status": target, "metadata": {**current.metadata, **metadata}}
    changes.update(_captured(current, target, amount_captured))
    return Change(changes, action=AuditAction.PAYMENT_STATUS_UPDATE, outcome="applied")


def status_change(current: Payment, event: WebhookEvent, *, now: datetime, record: bool) -> Change:
    """Apply a payment event's status: forward only, each event once.

    ``record=False`` (reconcile's own lookups) remembers no event id and writes
    nothing for a stale answer.
    """
    target = event.status
    if target is None:
        return skip("ignored")
    if record and event.event_id in current.seen_events:
        return skip("duplicate")
    payload = {"event_type": event.type, "event_id": event.event_id, "requested_status": target._value_}
    data = {**current.provider_data, **event.provider_data}
    seen: dict[str, Any] = {"seen_events": remember(current, event.event_id)} if record else {}

    def effects(outcome: str) -> tuple[WebhookEventRecord, ...]:
        return (event_record(event, outcome, current.id, at=now),) if record else ()

    if current.status == target:
        # Already there (this event or the API call that caused it): remember the event so a
        # redelivery after the payment moves on is still a duplicate.
        updates = {**seen, **({"provider_data": data} if data != current.provider_data else {})}
        if not updates:
            return skip("duplicate")
        action = AuditAction.PAYMENT_STATUS_UPDATE if "provider_data" in updates else None
        return Change(updates, action=action, payload=payload, effects=effects("duplicate"), outcome="duplicate")
    if can_transition(current.status, target):
        changes: dict[str, Any] = {"status": target, "provider_data": data, **seen}
        if event.provider_ref and current.provider_ref is None:
            changes["provider_ref"] = event.provider_ref
        if target == S.FAILED:
            changes["failure_code"] = event.failure_code
            changes["failure_message"] = event.failure_message
        changes.update(_captured(current, target, event.amount_captured))
        return Change(
            changes,
            action=AuditAction.PAYMENT_STATUS_UPDATE,
            payload=payload,
            effects=effects("applied"),
            outcome="applied",
        )
    if not record:
        return skip("stale")
    return Change(
        seen, action=AuditAction.PAYMENT_EVENT_IGNORED, payload=payload, effects=effects("stale"), outcome="stale"
    )


def dispute(current: Payment, event: WebhookEvent, *, now: datetime) -> Change:
    """A dispute event: recorded in the audit trail once, however often it is delivered."""
    if event.event_id in current.seen_events:
        return skip("duplicate")
    return Change(
        {"seen_events": remember(current, event.event_id)},
        action=AuditAction.PAYMENT_DISPUTE,
        payload={"event_type": event.type, "event_id": event.event_id},
        effects=(event_record(event, "applied", current.id, at=now),),
        outcome="applied",
    )
