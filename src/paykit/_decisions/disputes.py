"""Disputes, decided without I/O: what an event or a call does to a payment's disputes.

A payment embeds its disputes (``Payment.disputes``) and the amounts they keep from
being refunded (``disputed_minor`` held by open chargebacks, ``dispute_lost_minor`` taken
by lost ones), so one dispute change and its hold are one atomic write of the payment.
The ``disputes`` collection is a copy for listing, kept by a :data:`DISPUTE_SYNC`
reaction the write carries (outbox): applied right after it and again by ``reconcile()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from .._errors import InvalidRequestError, InvalidStateError, WebhookVerificationError
from .._models import AuditAction, AuditEntry, Dispute, Notification, NotificationKind, Payment, WebhookEvent
from .._money import Money
from .._redact import redact
from .._status import (
    DISPUTE_FINAL_STATUSES,
    DISPUTE_HOLDING_STATUSES,
    SETTLED_STATUSES,
    DisputeStatus,
    can_transition_dispute,
    is_dispute_step_back,
)
from ..storage._base import Effect
from .change import Change, skip
from .effects import DISPUTE_SYNC, effect_id, notification
from .payments import event_record, remember
from .refunds import external_refund_id

__all__ = [
    "DISPUTE_SYNC",
    "accepted",
    "check_event",
    "dispute_event",
    "evidence_submitted",
    "find",
    "link_reversal",
    "open_by_hand",
    "resolve",
]

_SEEN_LIMIT: Final = 50
_S = DisputeStatus
_HOLDING: Final = DISPUTE_HOLDING_STATUSES


def find(payment: Payment, provider_dispute_id: str) -> Dispute | None:
    """The payment's dispute the provider knows as ``provider_dispute_id``."""
    return next((d for d in payment.disputes.values() if d.provider_dispute_id == provider_dispute_id), None)


def _reversal_id(payment: Payment) -> str | None:
    capture = payment.provider_data.get("capture_id")
    return external_refund_id(payment.provider, f"reversal:{capture}") if capture else None


def _allocate(payment: Payment, disputes: dict[str, Dispute], settled: Mapping[str, int]) -> dict[str, Dispute]:
    """Disputes with the capture reversal already counted as a refund spread over them, oldest first."""
    reversal = _reversal_id(payment)
    left = settled.get(reversal, 0) if reversal else 0
    out: dict[str, Dispute] = {}
    for dispute in sorted(disputes.values(), key=lambda d: (d.created_at, d.id)):
        share = min(left, dispute.amount.minor_units) if dispute.status != _S.WON else 0
        left -= share
        out[dispute.id] = (
            dispute
            if dispute.reversed_minor == share
            else dispute.model_copy(
                update={"reversed_minor": share, "funds_withdrawn": dispute.funds_withdrawn or share > 0}
            )
        )
    return out


def _totals(disputes: Mapping[str, Dispute]) -> dict[str, Any]:
    """The payment fields a set of disputes decides."""
    return {
        "disputes": dict(disputes),
        "disputed_minor": sum(d.exposure.minor_units for d in disputes.values() if d.status in _HOLDING),
        "dispute_lost_minor": sum(d.exposure.minor_units for d in disputes.values() if d.status == _S.LOST),
    }


def _audit(
    payment: Payment,
    before: Dispute | None,
    after: Dispute,
    action: AuditAction,
    *,
    actor: str,
    at: datetime,
    payload: Mapping[str, Any] | None,
) -> AuditEntry:
    body: dict[str, Any] = {
        "amount": str(after.amount),
        "provider": after.provider,
        "provider_dispute_id": after.provider_dispute_id,
        "reason": after.reason,
        "evidence_due_by": after.evidence_due_by.isoformat() if after.evidence_due_by else None,
    }
    body.update(payload or {})
    return AuditEntry(
        id=effect_id(after.id, after.version, action.value),
        action=action,
        subject_type="dispute",
        subject_id=after.id,
        payment_id=payment.id,
        user_id=payment.user_id,
        actor=actor,
        at=at,
        status_before=before.status.value if before else None,
        status_after=after.status.value,
        payload=redact(body),
    )


def _notifications(payment: Payment, before: Dispute | None, after: Dispute, *, at: datetime) -> list[Notification]:
    payload = {
        "payment_id": payment.id,
        "dispute_id": after.id,
        "amount": str(after.amount),
        "status": after.status.value,
        "provider": after.provider,
        "evidence_due_by": after.evidence_due_by.isoformat() if after.evidence_due_by else None,
    }
    kinds: list[NotificationKind] = []
    if before is None:
        kinds.append(NotificationKind.DISPUTE_OPENED)
    if after.status in DISPUTE_FINAL_STATUSES and (before is None or before.status not in DISPUTE_FINAL_STATUSES):
        kinds.append(NotificationKind.DISPUTE_CLOSED)
    return [
        notification(
            user_id=payment.user_id, subject_id=after.id, version=after.version, kind=k, payload=payload, at=at
        )
        for k in kinds
    ]


def _action(before: Dispute | None, after: Dispute) -> AuditAction:
    if before is None:
        return AuditAction.DISPUTE_OPEN
    if after.status in DISPUTE_FINAL_STATUSES and before.status not in DISPUTE_FINAL_STATUSES:
        return AuditAction.DISPUTE_CLOSE
    return AuditAction.DISPUTE_UPDATE


def _write(
    current: Payment,
    before: Dispute | None,
    after: Dispute,
    *,
    action: AuditAction,
    actor: str,
    now: datetime,
    payload: Mapping[str, Any] | None = None,
    extra_updates: Mapping[str, Any] | None = None,
    extra_effects: Sequence[Effect] = (),
    outcome: str = "applied",
) -> Change:
    """The payment write that stores ``after`` (a new version of its dispute) with its hold."""
    if after.status in DISPUTE_FINAL_STATUSES and after.closed_at is None:
        after = after.model_copy(update={"closed_at": now})
    disputes = _allocate(current, {**current.disputes, after.id: after}, current.settled_refunds)
    after = disputes[after.id]
    effects: list[Effect] = [_audit(current, before, after, action, actor=actor, at=now, payload=payload)]
    effects.extend(_notifications(current, before, after, at=now))
    effects.extend(extra_effects)
    return Change({**_totals(disputes), **(extra_updates or {})}, effects=tuple(effects), outcome=outcome)


def _next(before: Dispute, now: datetime, **updates: Any) -> Dispute:
    return before.model_copy(update={**updates, "version": before.version + 1, "updated_at": now})


# -- provider events -----------------------------------------------------------


def check_event(payment: Payment, event: WebhookEvent) -> None:
    """Refuse a dispute event whose amount cannot be about ``payment``.

    Raises:
        WebhookVerificationError: Another currency, or more than the payment's amount.
    """
    amount = event.dispute_amount
    if amount is None:
        return
    if amount.currency != payment.currency or amount.minor_units <= 0 or amount > payment.amount:
        raise WebhookVerificationError(f"dispute amount does not fit payment {payment.id}")


def dispute_event(current: Payment, event: WebhookEvent, new_id: str, *, now: datetime) -> Change:
    """Apply a provider's dispute event to the payment, once and forward only.

    The first event about a dispute creates it (under ``new_id``) whatever its
    type, so a reordered ``updated`` before ``created`` loses nothing. A status
    that would go back (a late ``needs_response`` after ``under_review``) is applied
    only if the event is newer than the last one applied; a final status never
    changes. A redelivery changes nothing.
    """
    if event.event_id in current.seen_events or event.dispute_ref is None:
        return skip("duplicate")
    seen = {"seen_events": remember(current, event.event_id)}
    before = find(current, event.dispute_ref)
    occurred = event.occurred_at
    actor = f"webhook:{event.provider}"
    payload = {"event_type": event.type, "event_id": event.event_id, "provider_status": event.dispute_provider_status}
    if event.dispute_funds:
        payload["funds"] = event.dispute_funds
    if before is None:
        amount = event.dispute_amount or current.amount_captured
        after = Dispute(
            id=new_id,
            provider=current.provider,
            provider_dispute_id=event.dispute_ref,
            payment_id=current.id,
            user_id=current.user_id,
            amount=amount,
            reason=event.dispute_reason,
            status=event.dispute_status or _S.NEEDS_RESPONSE,
            provider_status=event.dispute_provider_status,
            outcome=event.dispute_outcome,
            evidence_due_by=event.dispute_evidence_due_by,
            funds_withdrawn=event.dispute_funds == "withdrawn",
            funds_reinstated=event.dispute_funds == "reinstated",
            provider_updated_at=occurred,
            seen_events=(event.event_id,),
            version=1,
            created_at=now,
            updated_at=now,
        )
        return _write(
            current,
            None,
            after,
            action=AuditAction.DISPUTE_OPEN,
            actor=actor,
            now=now,
            payload=payload,
            extra_updates=seen,
            extra_effects=(event_record(event, "applied", current.id, at=now),),
        )
    newer = occurred is None or before.provider_updated_at is None or occurred >= before.provider_updated_at
    target = event.dispute_status
    moves = (
        target is not None
        and target != before.status
        and can_transition_dispute(before.status, target)
        and (newer or not is_dispute_step_back(before.status, target))
    )
    updates: dict[str, Any] = {"seen_events": (*before.seen_events, event.event_id)[-_SEEN_LIMIT:]}
    if moves:
        updates.update(status=target, provider_status=event.dispute_provider_status)
        if event.dispute_outcome:
            updates["outcome"] = event.dispute_outcome
    if event.dispute_funds == "withdrawn" and not before.funds_withdrawn:
        updates["funds_withdrawn"] = True
    if event.dispute_funds == "reinstated" and not before.funds_reinstated:
        updates["funds_reinstated"] = True
    if newer and before.is_open:
        if event.dispute_evidence_due_by is not None:
            updates["evidence_due_by"] = event.dispute_evidence_due_by
        if event.dispute_reason:
            updates["reason"] = event.dispute_reason
        if event.dispute_amount is not None:
            updates["amount"] = event.dispute_amount
        if occurred is not None:
            updates["provider_updated_at"] = occurred
    changed = {k for k, v in updates.items() if k != "seen_events" and getattr(before, k) != v}
    if not changed:
        # A late or repeated report: remembered, audited as ignored, nothing moves.
        return Change(
            seen,
            action=AuditAction.PAYMENT_EVENT_IGNORED,
            payload={**payload, "dispute_id": before.id, "dispute_status": before.status.value},
            effects=(event_record(event, "stale", current.id, at=now),),
            outcome="stale",
        )
    after = _next(before, now, **updates)
    return _write(
        current,
        before,
        after,
        action=_action(before, after),
        actor=actor,
        now=now,
        payload=payload,
        extra_updates=seen,
        extra_effects=(event_record(event, "applied", current.id, at=now),),
    )


def link_reversal(current: Payment, change: Change, *, now: datetime) -> Change:
    """``change`` (a refund event's) with the payment's disputes told of a capture reversal it counts.

    PayPal takes a chargeback's money back as ``PAYMENT.CAPTURE.REVERSED``, which
    paykit records as a refund: that much of a dispute is then neither held nor
    lost again. Both land in the refund event's own write.
    """
    if not change.write or not current.disputes:
        return change
    settled = change.updates.get("settled_refunds", current.settled_refunds)
    disputes = _allocate(current, dict(current.disputes), settled)
    if disputes == current.disputes:
        return change
    bumped = {
        k: d
        if d == current.disputes[k]
        else _next(current.disputes[k], now, reversed_minor=d.reversed_minor, funds_withdrawn=d.funds_withdrawn)
        for k, d in disputes.items()
    }
    return Change(
        {**change.updates, **_totals(bumped)},
        action=change.action,
        payload=change.payload,
        effects=change.effects,
        outcome=change.outcome,
        write=change.write,
    )


# -- by hand and by call -----------------------------------------------------------


def open_by_hand(
    current: Payment,
    new_id: str,
    amount: Money,
    *,
    reason: str | None,
    evidence_due_by: datetime | None,
    provider_dispute_id: str | None,
    actor: str,
    now: datetime,
) -> Change:
    """Record a dispute the provider reported outside any API (KNET's bank letter, a phone call).

    Raises:
        InvalidStateError: The payment captured nothing, or the amount exceeds what
            is neither refunded nor already disputed.
        InvalidRequestError: Another currency, a non-positive amount, or a provider
            dispute id the payment already has.
    """
    if new_id in current.disputes:
        return skip("duplicate")
    if amount.currency != current.currency:
        raise InvalidRequestError(f"dispute amount is in {amount.currency}, the payment in {current.currency}")
    if amount.minor_units <= 0:
        raise InvalidRequestError("dispute amount must be positive")
    if current.status not in SETTLED_STATUSES or current.captured_minor <= 0:
        raise InvalidStateError(f"payment {current.id} captured nothing to dispute ({current.status.value})")
    if provider_dispute_id is not None and find(current, provider_dispute_id) is not None:
        raise InvalidRequestError(f"payment {current.id} already has dispute {provider_dispute_id!r}")
    open_exposure = current.refunded_minor + current.disputed_minor + current.dispute_lost_minor
    if amount.minor_units > current.captured_minor - open_exposure:
        available = Money(max(current.captured_minor - open_exposure, 0), current.currency)
        raise InvalidStateError(f"cannot dispute {amount}: only {available} is neither refunded nor disputed")
    after = Dispute(
        id=new_id,
        provider=current.provider,
        provider_dispute_id=provider_dispute_id,
        payment_id=current.id,
        user_id=current.user_id,
        amount=amount,
        reason=reason,
        status=_S.NEEDS_RESPONSE,
        evidence_due_by=evidence_due_by,
        version=1,
        created_at=now,
        updated_at=now,
    )
    return _write(current, None, after, action=AuditAction.DISPUTE_OPEN, actor=actor, now=now, payload={"by": "hand"})


def _open_dispute(current: Payment, dispute_id: str) -> Dispute:
    dispute = current.disputes.get(dispute_id)
    if dispute is None:
        raise InvalidStateError(f"payment {current.id} has no dispute {dispute_id!r}")
    return dispute


def resolve(current: Payment, dispute_id: str, outcome: DisputeStatus, *, actor: str, now: datetime) -> Change:
    """End a dispute by hand as won or lost; repeating the same outcome changes nothing.

    Raises:
        InvalidRequestError: ``outcome`` is not won or lost.
        InvalidStateError: The dispute already ended otherwise.
    """
    if outcome not in (_S.WON, _S.LOST):
        raise InvalidRequestError("a dispute is resolved as 'won' or 'lost'")
    before = _open_dispute(current, dispute_id)
    if before.status == outcome:
        return skip("duplicate")
    if not can_transition_dispute(before.status, outcome):
        raise InvalidStateError(f"dispute {dispute_id} already ended as {before.status.value}")
    after = _next(before, now, status=outcome, outcome=outcome.value)
    return _write(
        current, before, after, action=AuditAction.DISPUTE_CLOSE, actor=actor, now=now, payload={"by": "hand"}
    )


def evidence_submitted(
    current: Payment, dispute_id: str, fields: Sequence[str], *, submitted: bool, actor: str, now: datetime
) -> Change:
    """Record evidence sent to the provider: only the field names, never their contents.

    Submitted evidence moves a dispute that needs a response to under review.

    Raises:
        InvalidStateError: The dispute has ended.
    """
    before = _open_dispute(current, dispute_id)
    if not before.is_open:
        raise InvalidStateError(f"dispute {dispute_id} already ended as {before.status.value}")
    updates: dict[str, Any] = {}
    if submitted:
        updates["evidence_submitted_at"] = now
        if before.status == _S.NEEDS_RESPONSE:
            updates["status"] = _S.UNDER_REVIEW
        elif before.status == _S.WARNING_NEEDS_RESPONSE:
            updates["status"] = _S.WARNING_UNDER_REVIEW
    after = _next(before, now, **updates)
    return _write(
        current,
        before,
        after,
        action=AuditAction.DISPUTE_EVIDENCE,
        actor=actor,
        now=now,
        payload={"evidence_fields": sorted(fields), "submitted": submitted},
    )


def accepted(current: Payment, dispute_id: str, *, actor: str, now: datetime) -> Change:
    """The merchant conceded the dispute: it is lost, and its amount leaves net revenue.

    Raises:
        InvalidStateError: The dispute has ended otherwise.
    """
    before = _open_dispute(current, dispute_id)
    if before.status == _S.LOST:
        return skip("duplicate")
    if not before.is_open:
        raise InvalidStateError(f"dispute {dispute_id} already ended as {before.status.value}")
    after = _next(before, now, status=_S.LOST, outcome="accepted")
    return _write(current, before, after, action=AuditAction.DISPUTE_ACCEPT, actor=actor, now=now)
