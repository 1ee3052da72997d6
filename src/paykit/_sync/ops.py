"""Reading the trail, delivering notifications, health, metrics, and shutting down."""

from __future__ import annotations

from datetime import timedelta

from .._decisions import common as d
from .._decisions import payments as dp
from .._errors import NotFoundError, PaykitError
from .._models import AuditEntry, Notification
from .._money import Money
from .._results import HealthReport, MetricsReport
from ..notify import DispatchReport
from ._part import _Part


class _Ops(_Part):
    def audit_trail(self, subject_id: str, *, limit: int = 1000) -> list[AuditEntry]:
        """Every audit entry of a payment (refunds included), invoice or method, oldest first."""
        d.check_id(subject_id, "subject_id")
        return self._engine.storage.list_audit(subject_id, limit=limit)

    def dispatch_notifications(self, *, limit: int = 100) -> DispatchReport:
        """Deliver due notifications to the notifiers once; return what happened."""
        return self._dispatcher.dispatch(limit=limit)

    def start_dispatcher(self, *, interval: float = 1.0) -> None:
        """Dispatch notifications from a daemon thread every ``interval`` seconds."""
        self._dispatcher.start(interval=interval)

    def list_notifications(self, user_id: str, *, unread_only: bool = False, limit: int = 50) -> list[Notification]:
        """A user's notifications, newest first."""
        d.check_id(user_id, "user_id")
        return self._engine.storage.list_notifications(user_id, unread_only=unread_only, limit=limit)

    def mark_notification_read(self, notification_id: str) -> None:
        """Mark a notification read.

        Raises:
            NotFoundError: No such notification.
        """
        d.check_id(notification_id, "notification_id")
        if not self._engine.storage.mark_notification_read(notification_id):
            raise NotFoundError(f"no notification {notification_id!r}")

    def health(self) -> HealthReport:
        """Whether storage answers, how many payments were created in 24 h, which providers exist."""
        now = self._engine.now()
        storage = self._engine.storage
        try:
            storage.ping()
            recent: int | None = storage.payment_stats(created_since=now - timedelta(hours=24)).created_since
            state = "ok"
        except PaykitError as exc:
            recent, state = None, f"unreachable: {type(exc).__name__}"
        return HealthReport(
            ok=state == "ok",
            storage=state,
            payments_last_24h=recent,
            providers=sorted(self._engine.providers),
            checked_at=now,
        )

    def metrics(self) -> MetricsReport:
        """Counts by status, captured and refunded money per currency, pending count."""
        stats = self._engine.storage.payment_stats(created_since=self._engine.now() - timedelta(hours=24))
        revenue = {c: Money(v, c) for c, v in sorted(stats.captured_by_currency.items())}
        refunds = {c: Money(stats.refunded_by_currency.get(c, 0), c) for c in revenue}
        return MetricsReport(
            count_by_status=dict(sorted(stats.count_by_status.items())),
            revenue_by_currency=revenue,
            refunds_by_currency=refunds,
            net_by_currency={c: revenue[c] - refunds[c] for c in revenue},
            pending=sum(stats.count_by_status.get(s.value, 0) for s in dp.UNSETTLED),
            total=sum(stats.count_by_status.values()),
        )

    def close(self) -> None:
        """Stop the dispatcher thread and wait for audit hooks to finish."""
        self._dispatcher.close()
        self._engine.hooks.close()
