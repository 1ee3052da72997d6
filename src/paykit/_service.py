"""Where ``PaymentService`` lived before the engine: kept so existing imports keep working."""

from __future__ import annotations

from ._results import HealthReport, MetricsReport, Page, ReconcileReport, WebhookOutcome
from ._sync.service import PaymentService

__all__ = ["HealthReport", "MetricsReport", "Page", "PaymentService", "ReconcileReport", "WebhookOutcome"]
