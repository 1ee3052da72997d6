"""Effects of a write, built without I/O: audit entries and notifications.

Their ids are fixed by the record version that produced them, so writing the
same version's effects twice stores them once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._models import (
    AuditAction,
    AuditEntry,
    Invoice,
    Notification,
    NotificationKind,
    Payment,
    PaymentMethod,
    Refund,
    trusted,
)
from .._redact import redact
from .._status import PaymentStatus
from ..storage._base import Reaction

# Enum members' ``._value_`` below: the same str as ``.value``, read without that property's Python-level call
# (a dozen per webhook).


def effect_id(subject_id: str, version: int, name: str) -> str:
    """The id of an audit entry or notification: fixed by the record version that produced it.

    Writing the same version's effects again therefore finds them already stored.
    """
    return f"{subject_id}:v{version}:{name}"


def notification(
    *,
    user_id: str,
    subject_id: str,
    version: int,
    kind: NotificationKind,
    payload: Mapping[str, Any],
    at: datetime,
    redacted: bool = False,
) -> Notification:
    """A notification produced by writing ``version`` of ``subject_id``; its payload is redacted.

    Pass ``redacted=True`` for a payload that already is, so it is redacted once.
    """
    # Built from typed values and a fresh payload dict it owns: nothing validation would change.
    return trusted(
        Notification,
        id=effect_id(subject_id, version, kind._value_),
        user_id=user_id,
        kind=kind,
        subject_id=subject_id,
        payload=dict(payload) if redacted else redact(payload),
        created_at=at,
        next_attempt_at=at,
    )


def payment_audit(
    before: Payment | None,
    after: Payment,
    action: AuditAction,
    *,
    actor: str,
    at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry for a payment write; its id is fixed by the version written."""
    body: dict[str, Any] = {
        "amount": str(after.amount),
        "provider": after.provider,
        "provider_ref": after.provider_ref,
    }
    body.update(payload or {})
    return AuditEntry(
        id=effect_id(after.id, after.version, action._value_),
        action=action,
        subject_type="payment",
        subject_id=after.id,
        payment_id=after.id,
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status._value_ if before else None,
        status_after=after.status._value_,
        payload=redact(body),
    )


def payment_notifications(before: Payment, after: Payment, *, at: datetime) -> list[Notification]:
    """Notifications a payment's status change produces (none when it did not change)."""
    if before.status == after.status:
        return []
    payload: dict[str, Any] = {
        "status_before": before.status._value_,
        "status": after.status._value_,
        "amount": str(after.amount),
        "provider": after.provider,
    }
    kinds = [NotificationKind.STATUS_CHANGED]
    if after.status == PaymentStatus.SUCCEEDED:
        kinds.append(NotificationKind.PAYMENT_SUCCEEDED)
    elif after.status == PaymentStatus.FAILED:
        kinds.append(NotificationKind.PAYMENT_FAILED)
        payload["failure_code"] = after.failure_code
    # paykit's own id (random hex) is no card number, even when 12 of its digits happen to be in a row.
    safe = {"payment_id": after.id, **redact(payload)}
    return [
        notification(
            user_id=after.user_id,
            subject_id=after.id,
            version=after.version,
            kind=kind,
            payload=safe,
            at=at,
            redacted=True,
        )
        for kind in kinds
    ]


def payment_effects(
    before: Payment,
    after: Payment,
    action: AuditAction | None,
    *,
    actor: str,
    at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> list[AuditEntry | Notification]:
    """A payment write's audit entry (when ``action`` is set) and notifications, redacting each value once.

    The same entries :func:`payment_audit` and :func:`payment_notifications` build, from one
    redaction of the payment's own values (amount, provider, provider reference) and one of the change's payload.
    """
    changed = before.status != after.status
    if action is None and not changed:
        return []
    own: dict[str, Any] = {
        "amount": str(after.amount),
        "provider": after.provider,
        "provider_ref": after.provider_ref,
    }
    failed = changed and after.status == PaymentStatus.FAILED
    if failed:
        own["failure_code"] = after.failure_code
    safe = redact(own)
    out: list[AuditEntry | Notification] = []
    if action is not None:
        body = {"amount": safe["amount"], "provider": safe["provider"], "provider_ref": safe["provider_ref"]}
        if payload:
            body.update(redact(payload))
        out.append(_payment_audit_entry(before, after, action, actor=actor, at=at, body=body))
    if changed:
        note: dict[str, Any] = {
            "payment_id": after.id,  # paykit's own random id: never redacted (see payment_notifications)
            "status_before": before.status._value_,
            "status": after.status._value_,
            "amount": safe["amount"],
            "provider": safe["provider"],
        }
        if failed:
            note["failure_code"] = safe["failure_code"]
        out.extend(
            notification(
                user_id=after.user_id,
                subject_id=after.id,
                version=after.version,
                kind=kind,
                payload=note,
                at=at,
                redacted=True,
            )
            for kind in _status_kinds(after.status)
        )
    return out


def _status_kinds(status: PaymentStatus) -> tuple[NotificationKind, ...]:
    if status == PaymentStatus.SUCCEEDED:
        return (NotificationKind.STATUS_CHANGED, NotificationKind.PAYMENT_SUCCEEDED)
    if status == PaymentStatus.FAILED:
        return (NotificationKind.STATUS_CHANGED, NotificationKind.PAYMENT_FAILED)
    return (NotificationKind.STATUS_CHANGED,)


def _payment_audit_entry(
    before: Payment | None,
    after: Payment,
    action: AuditAction,
    *,
    actor: str,
    at: datetime,
    body: dict[str, Any],
) -> AuditEntry:
    # Typed values and the fresh, redacted body: the entry :func:`payment_audit` validates, built directly.
    return trusted(
        AuditEntry,
        id=effect_id(after.id, after.version, action._value_),
        action=action,
        subject_type="payment",
        subject_id=after.id,
        payment_id=after.id,
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status._value_ if before else None,
        status_after=after.status._value_,
        payload=body,
    )


def invoice_audit(
    before: Invoice | None, after: Invoice, action: AuditAction, *, actor: str, at: datetime
) -> AuditEntry:
    """The audit entry for an invoice write."""
    return AuditEntry(
        id=effect_id(after.id, after.version, action._value_),
        action=action,
        subject_type="invoice",
        subject_id=after.id,
        payment_id=after.payment_id,
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status._value_ if before else None,
        status_after=after.status._value_,
        payload={"number": after.number, "total": str(after.total), "lines": len(after.line_items)},
    )


def invoice_sent(invoice: Invoice, *, at: datetime) -> Notification:
    """The notification that an invoice was sent to its user."""
    return notification(
        user_id=invoice.user_id,
        subject_id=invoice.id,
        version=invoice.version,
        kind=NotificationKind.INVOICE_SENT,
        payload={"invoice_id": invoice.id, "number": invoice.number, "total": str(invoice.total)},
        at=at,
    )


def method_audit(method: PaymentMethod, action: AuditAction, *, actor: str) -> AuditEntry:
    """The audit entry for a saved payment method's write: brand and last 4 digits, never more."""
    return AuditEntry(
        id=effect_id(method.id, method.version, action._value_),
        action=action,
        subject_type="payment_method",
        subject_id=method.id,
        user_id=method.user_id,
        actor=actor,
        at=method.updated_at,
        payload={
            "provider": method.provider,
            "brand": method.brand,
            "last4": method.last4,
            "is_default": method.is_default,
        },
    )


def refund_failed_notification(payment: Payment, refund: Refund, *, at: datetime) -> Notification:
    """The notification that a refund reported as succeeded failed at the provider after all."""
    return notification(
        user_id=payment.user_id,
        subject_id=refund.id,
        version=refund.version,
        kind=NotificationKind.REFUND_FAILED,
        payload={
            "payment_id": payment.id,
            "refund_id": refund.id,
            "amount": str(refund.amount),
            "provider": payment.provider,
        },
        at=at,
    )


def payment_reactions(before: Payment, after: Payment, *, at: datetime) -> list[Reaction]:
    """What a payment write asks of other records.

    Each dispute it changed is copied to the ``disputes`` collection; its invoice is
    paid when it succeeds; a payment of a subscription or installment plan period
    also moves its record: forward when it succeeds, to the next dunning step when it
    fails or is canceled.
    """
    reactions = _dispute_reactions(before, after, at=at) if before.disputes != after.disputes else []
    if before.status == after.status:
        return reactions
    if after.invoice_id is not None and after.status == PaymentStatus.SUCCEEDED:
        reactions.append(
            Reaction(
                id=f"{after.id}:invoice_paid",
                kind=INVOICE_PAID,
                target_id=after.invoice_id,
                payment_id=after.id,
                created_at=at,
            )
        )
    return [*reactions, *billing_reactions(after, at=at)]


def billing_reactions(after: Payment, *, at: datetime) -> list[Reaction]:
    """The reaction a period payment that reached an outcome asks of its subscription or installment plan."""
    if after.billing_id is None:
        return []
    if after.status == PaymentStatus.SUCCEEDED:
        kind = BILLING_PAID
    elif after.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
        kind = BILLING_FAILED
    else:
        return []
    return [
        Reaction(id=f"{after.id}:{kind}", kind=kind, target_id=after.billing_id, payment_id=after.id, created_at=at)
    ]


INVOICE_PAID = "invoice_paid"
"""The reaction that marks an invoice paid by its payment."""


DISPUTE_SYNC = "dispute_sync"
"""The reaction that copies a payment's changed dispute into the ``disputes`` collection."""


def _dispute_reactions(before: Payment, after: Payment, *, at: datetime) -> list[Reaction]:
    """One reaction per dispute a payment write changed, fixed by the dispute's version."""
    return [
        Reaction(
            id=f"{dispute.id}:v{dispute.version}:sync",
            kind=DISPUTE_SYNC,
            target_id=dispute.id,
            payment_id=after.id,
            created_at=at,
        )
        for key, dispute in after.disputes.items()
        if before.disputes.get(key) != dispute
    ]


BILLING_PAID = "billing_paid"
"""The reaction that moves a subscription or installment plan past the period its payment paid."""
BILLING_FAILED = "billing_failed"
"""The reaction that moves a subscription or installment plan to its next dunning step."""
