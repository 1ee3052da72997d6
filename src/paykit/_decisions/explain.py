"""How a payment's records read as one timeline, and where the provider's view differs. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

from .._models import AuditEntry, Notification, Payment, Refund
from .._redact import redact
from .._results import TimelineEntry
from .._status import PaymentStatus, can_transition
from ..providers._base import ProviderPayment, ProviderRefund
from ..storage._base import WebhookEventRecord

__all__ = ["payment_differences", "provider_refs", "refund_difference", "timeline"]

# At one instant, the event comes first, then the refund record, the audit entry the write
# made, and the notifications that write queued.
_RANK: Final = {"webhook": 0, "refund": 1, "audit": 2, "notification": 3}

# Providers keep a refunded payment "succeeded" (Stripe, the fake): its refunds are compared one by one.
_REFUND_STATUSES: Final = frozenset({PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED})


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _audit_line(entry: AuditEntry) -> TimelineEntry:
    payload = entry.model_dump(mode="json")["payload"]
    summary = f"{entry.action.value} {entry.status_before or '-'} -> {entry.status_after or '-'} by {entry.actor}"
    if "event_id" in payload:
        summary += f" (event {payload['event_id']})"
    if "refund_id" in payload:
        summary += f" (refund {payload['refund_id']}: {payload.get('refund_amount')}, {payload.get('outcome')})"
    details = {
        "action": entry.action.value,
        "actor": entry.actor,
        "status_before": entry.status_before,
        "status_after": entry.status_after,
        "payload": payload,
    }
    return TimelineEntry(entry.at, "audit", entry.subject_id, summary, details)


def _event_line(record: WebhookEventRecord, payment_id: str) -> TimelineEntry:
    summary = f"{record.type} {record.event_id} from {record.provider}: {record.outcome}"
    details = {"provider": record.provider, "event_id": record.event_id, "type": record.type, "outcome": record.outcome}
    return TimelineEntry(record.received_at, "webhook", payment_id, summary, details)


def _refund_line(refund: Refund) -> TimelineEntry:
    summary = f"{refund.id} {refund.amount}: {refund.status.value}"
    if refund.provider_ref:
        summary += f", provider ref {refund.provider_ref}"
    summary += f", {_plural(refund.attempts, 'attempt')}"
    if refund.failure_message:
        summary += f" ({refund.failure_message})"
    details = {
        "refund_id": refund.id,
        "amount": refund.amount.to_decimal_string(),
        "currency": refund.amount.currency,
        "status": refund.status.value,
        "provider_ref": refund.provider_ref,
        "attempts": refund.attempts,
        "reason": refund.reason,
        "failure_message": refund.failure_message,
        "updated_at": refund.updated_at.isoformat(),
    }
    return TimelineEntry(refund.created_at, "refund", refund.id, summary, details)


def _notification_line(notification: Notification) -> TimelineEntry:
    summary = f"{notification.kind.value} for {notification.user_id}: {notification.delivery}"
    if notification.delivered_to:
        summary += f" to {', '.join(notification.delivered_to)}"
    summary += f", {_plural(notification.attempts, 'attempt')}"
    if notification.last_error:
        summary += f" (last error: {notification.last_error})"
    details = {
        "notification_id": notification.id,
        "kind": notification.kind.value,
        "user_id": notification.user_id,
        "delivery": notification.delivery,
        "delivered_to": list(notification.delivered_to),
        "attempts": notification.attempts,
        "last_error": notification.last_error,
        "read": notification.read,
    }
    return TimelineEntry(notification.created_at, "notification", notification.subject_id, summary, details)


def timeline(
    payment: Payment,
    audit: Iterable[AuditEntry],
    events: Iterable[WebhookEventRecord],
    refunds: Iterable[Refund],
    notifications: Iterable[Notification],
) -> tuple[TimelineEntry, ...]:
    """Every record about ``payment`` as one timeline, oldest first."""
    entries = [
        *(_event_line(record, payment.id) for record in events),
        *(_refund_line(refund) for refund in refunds),
        *(_audit_line(entry) for entry in audit),
        *(_notification_line(notification) for notification in notifications),
    ]
    # Stable: records of one kind at one instant keep the order storage listed them in.
    return tuple(sorted(entries, key=lambda e: (e.at, _RANK[e.kind])))


def provider_refs(payment: Payment, refunds: Sequence[Refund]) -> dict[str, str]:
    """The provider's ids for the payment, its ``provider_data`` and its refunds."""
    refs: dict[str, str] = {}
    if payment.provider_ref:
        refs["payment"] = payment.provider_ref
    refs.update({str(k): str(v) for k, v in redact(dict(payment.provider_data)).items()})
    refs.update({f"refund {r.id}": r.provider_ref for r in refunds if r.provider_ref})
    return refs


def payment_differences(payment: Payment, seen: ProviderPayment) -> list[str]:
    """Where the provider's answer about the payment differs from what paykit stored, as sentences."""
    found: list[str] = []
    if payment.provider_ref and seen.provider_ref and seen.provider_ref != payment.provider_ref:
        found.append(f"the provider knows the payment as {seen.provider_ref}; paykit stored {payment.provider_ref}")
    agree = seen.status == payment.status or (
        seen.status == PaymentStatus.SUCCEEDED and payment.status in _REFUND_STATUSES
    )
    if not agree:
        found.append(
            f"the provider says the payment is {seen.status.value}; paykit has {payment.status.value}"
            + _why(payment.status, seen.status)
        )
    if seen.amount_captured is not None and seen.amount_captured != payment.amount_captured:
        found.append(f"the provider captured {seen.amount_captured}; paykit recorded {payment.amount_captured}")
    return found


def _why(ours: PaymentStatus, theirs: PaymentStatus) -> str:
    if can_transition(ours, theirs):
        return " (an event paykit has not received: reconcile() applies it)"
    return " (paykit is ahead of the provider, or the provider moved backwards)"


def refund_difference(refund: Refund, seen: ProviderRefund) -> str | None:
    """A sentence when the provider's status of ``refund`` is not paykit's, else ``None``."""
    if seen.status == refund.status:
        return None
    sentence = f"refund {refund.id} ({refund.amount}): the provider says {seen.status.value}; paykit has "
    sentence += refund.status.value
    if seen.failure_message:
        sentence += f" (provider: {seen.failure_message})"
    return sentence
