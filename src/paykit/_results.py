"""The values service calls return: pages, reports and webhook outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from ._models import Payment
from ._money import Money

__all__ = ["DispatchReport", "HealthReport", "MetricsReport", "Page", "ReconcileReport", "WebhookOutcome"]


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

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; amounts are decimal strings."""
        return {
            "total": self.total,
            "pending": self.pending,
            "count_by_status": dict(self.count_by_status),
            "revenue_by_currency": {c: m.to_decimal_string() for c, m in self.revenue_by_currency.items()},
            "refunds_by_currency": {c: m.to_decimal_string() for c, m in self.refunds_by_currency.items()},
            "net_by_currency": {c: m.to_decimal_string() for c, m in self.net_by_currency.items()},
        }


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
