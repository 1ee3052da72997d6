"""The values service calls return: pages, reports and webhook outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from ._models import AuditEntry, Dispute, Notification, Payment, Refund, RefundStatus
from ._money import Money
from ._status import PaymentStatus
from .storage._base import WebhookEventRecord

__all__ = [
    "BillingReport",
    "DispatchReport",
    "DisputePage",
    "Explanation",
    "HealthReport",
    "MetricsReport",
    "Page",
    "ReconcileReport",
    "TimelineEntry",
    "WebhookOutcome",
]


class WebhookOutcome(StrEnum):
    """What applying a provider event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    STALE = "stale"
    """Recorded but not applied: it would have moved the payment backwards."""
    UNKNOWN_PAYMENT = "unknown_payment"


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one dispatch pass did.

    ``retrying`` counts notifications left for later: a notifier failed or was
    busy, or a call is still running past its timeout (its result is recorded
    when it returns).
    """

    delivered: int = 0
    retrying: int = 0
    dead: int = 0


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a keyset-paginated listing; pass ``next_cursor`` for the next."""

    items: list[Payment]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Whether paykit can work: storage reachable, recent activity, providers."""

    ok: bool
    storage: str
    payments_last_24h: int | None
    providers: list[str]
    checked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "storage": self.storage,
            "payments_last_24h": self.payments_last_24h,
            "providers": self.providers,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MetricsReport:
    """Counts and money per currency (never summed across currencies)."""

    count_by_status: dict[str, int]
    revenue_by_currency: dict[str, Money]
    refunds_by_currency: dict[str, Money]
    net_by_currency: dict[str, Money]
    pending: int
    total: int
    disputes_lost_by_currency: dict[str, Money] = field(default_factory=dict)
    """What lost disputes took back, per currency (already out of ``net_by_currency``)."""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; amounts are decimal strings."""
        data = {
            "total": self.total,
            "pending": self.pending,
            "count_by_status": dict(self.count_by_status),
            "revenue_by_currency": {c: m.to_decimal_string() for c, m in self.revenue_by_currency.items()},
            "refunds_by_currency": {c: m.to_decimal_string() for c, m in self.refunds_by_currency.items()},
            "net_by_currency": {c: m.to_decimal_string() for c, m in self.net_by_currency.items()},
        }
        if self.disputes_lost_by_currency:
            data["disputes_lost_by_currency"] = {
                c: m.to_decimal_string() for c, m in self.disputes_lost_by_currency.items()
            }
        return data


@dataclass(slots=True)
class ReconcileReport:
    """What :meth:`PaymentService.reconcile` found.

    Attributes:
        checked: Payments and refunds looked at.
        updated: Those that changed.
        errors: What failed, by payment or refund id (tried again next run).
        effects_flushed: Audit entries, notifications and records moved out of outboxes.
        reactions_applied: Changes to other records (invoices paid) finished.
    """

    checked: int = 0
    updated: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    effects_flushed: int = 0
    reactions_applied: int = 0


@dataclass(slots=True)
class BillingReport:
    """What one :meth:`PaymentService.bill_due` tick did.

    Attributes:
        claimed: Due subscriptions and installment plans this tick took (others held the rest).
        paid: Periods (or installments) paid.
        failed: Attempts that failed (a retry is scheduled, or the record ended).
        awaiting: Attempts waiting for the customer (3-D Secure, a payment link).
        reminded: Renewal reminders sent.
        ended: Records canceled at their period end.
        errors: What failed, by record id (tried again once the lease expires).
    """

    claimed: int = 0
    paid: int = 0
    failed: int = 0
    awaiting: int = 0
    reminded: int = 0
    ended: int = 0
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of an :class:`Explanation`'s timeline.

    Attributes:
        at: When it happened (a refund or notification: when it was created).
        kind: ``"webhook"``, ``"refund"``, ``"audit"`` or ``"notification"``.
        subject_id: The payment or refund the line is about.
        summary: The line as :meth:`Explanation.render` prints it.
        details: The record's fields, JSON-ready (amounts as decimal strings), redacted.

    .. versionadded:: 0.2.0
    """

    at: datetime
    kind: str
    subject_id: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "subject_id": self.subject_id,
            "summary": self.summary,
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything paykit knows about one payment, as one timeline: what :meth:`PaymentService.explain` returns.

    The timeline merges the payment's audit entries (its refunds' included), every
    provider event recorded for it with its outcome, its refunds and the
    notifications about it and its refunds, oldest first. Nothing secret is kept:
    the payment's ``client_secret`` is never shown, payloads are redacted.

    Attributes:
        payment: The payment as stored.
        timeline: Every record about it, oldest first.
        audit: Its audit entries, oldest first.
        webhook_events: The provider events recorded for it, with their outcomes.
        refunds: Its refunds, oldest first.
        notifications: Notifications about it and its refunds, with their delivery state.
        provider_refs: The provider's ids: ``payment`` (its ``provider_ref``), the
            payment's ``provider_data`` (a PayPal ``capture_id``...), and
            ``refund <id>`` for each refund the provider knows.
        explained_at: The service clock's time when it was put together.
        live: Whether the provider was asked (``explain(..., live=True)``).
        provider_status: The payment's status at the provider, when asked.
        provider_captured: What the provider says it captured, when it says.
        provider_refund_statuses: Refund statuses at the provider, by paykit refund id.
        provider_errors: Provider calls that failed or could not be made, as sentences.
        differences: Where the provider's view and paykit's differ, as sentences.
        disputes: Its disputes (chargebacks, inquiries), oldest first.

    .. versionadded:: 0.2.0
    .. versionchanged:: 0.3.0
       ``disputes``.
    """

    payment: Payment
    timeline: tuple[TimelineEntry, ...]
    audit: tuple[AuditEntry, ...]
    webhook_events: tuple[WebhookEventRecord, ...]
    refunds: tuple[Refund, ...]
    notifications: tuple[Notification, ...]
    provider_refs: dict[str, str]
    explained_at: datetime
    live: bool = False
    provider_status: PaymentStatus | None = None
    provider_captured: Money | None = None
    provider_refund_statuses: dict[str, RefundStatus] = field(default_factory=dict)
    provider_errors: tuple[str, ...] = ()
    differences: tuple[str, ...] = ()
    disputes: tuple[Dispute, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; amounts are decimal strings, times ISO 8601."""
        p = self.payment
        data: dict[str, Any] = {
            "payment": {
                "id": p.id,
                "user_id": p.user_id,
                "provider": p.provider,
                "status": p.status.value,
                "currency": p.currency,
                "amount": p.amount.to_decimal_string(),
                "captured": p.amount_captured.to_decimal_string(),
                "refunded": p.amount_refunded.to_decimal_string(),
                "refundable": p.amount_refundable.to_decimal_string(),
                "capture_method": p.capture_method,
                "invoice_id": p.invoice_id,
                "failure_code": p.failure_code,
                "failure_message": p.failure_message,
                "version": p.version,
                "created_at": p.created_at.isoformat(),
                "updated_at": p.updated_at.isoformat(),
            },
            "provider_refs": dict(self.provider_refs),
            "timeline": [entry.as_dict() for entry in self.timeline],
            "explained_at": self.explained_at.isoformat(),
            "live": None,
            "differences": list(self.differences),
        }
        if self.disputes:
            data["disputes"] = [
                {
                    "id": d.id,
                    "provider_dispute_id": d.provider_dispute_id,
                    "status": d.status.value,
                    "amount": d.amount.to_decimal_string(),
                    "reason": d.reason,
                    "evidence_due_by": d.evidence_due_by.isoformat() if d.evidence_due_by else None,
                }
                for d in self.disputes
            ]
        if self.live:
            data["live"] = {
                "status": self.provider_status.value if self.provider_status else None,
                "captured": self.provider_captured.to_decimal_string() if self.provider_captured else None,
                "refund_statuses": {rid: status.value for rid, status in self.provider_refund_statuses.items()},
                "errors": list(self.provider_errors),
            }
        return data

    def render(self) -> str:
        """The explanation as readable text: the payment, its provider ids, the timeline, the provider's view."""
        p = self.payment
        lines = [
            f"payment {p.id}: {p.amount} via {p.provider}, {p.status.value} (user {p.user_id})",
            f"  captured {p.amount_captured}, refunded {p.amount_refunded}, refundable {p.amount_refundable}",
            f"  created {_when(p.created_at)}, updated {_when(p.updated_at)}",
        ]
        if p.failure_code or p.failure_message:
            lines.append(f"  failed: {p.failure_code or '-'}: {p.failure_message or '-'}")
        lines.append("provider references:")
        lines.extend(f"  {name}: {value}" for name, value in self.provider_refs.items())
        if not self.provider_refs:
            lines.append("  none yet")
        if self.disputes:
            lines.append("disputes:")
            for d in self.disputes:
                due = f", evidence due {_when(d.evidence_due_by)}" if d.evidence_due_by and d.is_open else ""
                lines.append(f"  {d.id}: {d.amount} {d.status.value} ({d.reason or 'no reason given'}){due}")
        lines.append("timeline (oldest first):")
        lines.extend(f"  {_when(e.at)}  {e.kind:<12}  {e.summary}" for e in self.timeline)
        if self.live:
            lines.append("at the provider now:")
            if self.provider_status is not None:
                captured = f", captured {self.provider_captured}" if self.provider_captured else ""
                lines.append(f"  status {self.provider_status.value}{captured}")
            lines.extend(f"  refund {rid}: {status.value}" for rid, status in self.provider_refund_statuses.items())
            lines.extend(f"  could not ask: {error}" for error in self.provider_errors)
            if self.differences:
                lines.append("differences:")
                lines.extend(f"  - {difference}" for difference in self.differences)
            elif not self.provider_errors:
                lines.append("  no differences: the provider agrees with paykit")
        return "\n".join(lines)


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}"


@dataclass(frozen=True, slots=True)
class DisputePage:
    """One page of :meth:`PaymentService.list_disputes`; pass ``next_cursor`` for the next.

    .. versionadded:: 0.3.0
    """

    items: list[Dispute]
    next_cursor: str | None
