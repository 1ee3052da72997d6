# Generated from src/paykit/_async/ops.py by scripts/unasync.py: do not edit.
"""Reading the trail, delivering notifications, health, metrics, and shutting down."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Final

from .._decisions import common as d
from .._decisions import explain as dx
from .._decisions import payments as dp
from .._errors import NotFoundError, PaykitError
from .._models import AuditEntry, Notification, Payment, Refund, RefundStatus
from .._money import Money
from .._results import Explanation, HealthReport, MetricsReport
from .._status import PaymentStatus
from ..notify import DispatchReport
from ..providers._base import ProviderRefund
from ..providers._sync.base import Provider
from ._part import _Part

_EXPLAIN_LIMIT: Final = 1000
"""At most this many records of each kind in one explanation."""


class _Ops(_Part):
    def audit_trail(self, subject_id: str, *, limit: int = 1000) -> list[AuditEntry]:
        """Every audit entry of a payment (refunds included), invoice, method or actor (its policy decisions)."""
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
        """Counts by status, captured and refunded money per currency, pending count.

        Net revenue is captured minus refunded minus what lost disputes took back.
        """
        stats = self._engine.storage.payment_stats(created_since=self._engine.now() - timedelta(hours=24))
        # Totals may pass the 64-bit range one amount is held in: they are exact Python ints.
        revenue = {c: Money._total(v, c) for c, v in sorted(stats.captured_by_currency.items())}
        refunds = {c: Money._total(stats.refunded_by_currency.get(c, 0), c) for c in revenue}
        lost = {c: stats.dispute_lost_by_currency.get(c, 0) for c in revenue}
        return MetricsReport(
            count_by_status=dict(sorted(stats.count_by_status.items())),
            revenue_by_currency=revenue,
            refunds_by_currency=refunds,
            net_by_currency={
                c: Money._total(revenue[c].minor_units - refunds[c].minor_units - lost[c], c) for c in revenue
            },
            disputes_lost_by_currency={c: Money._total(v, c) for c, v in lost.items() if v},
            pending=sum(stats.count_by_status.get(s.value, 0) for s in dp.UNSETTLED),
            total=sum(stats.count_by_status.values()),
        )

    def explain(self, payment_id: str, *, live: bool = False) -> Explanation:
        """One payment's story as one timeline, oldest first.

        Its audit entries, the provider events recorded for it and their outcomes,
        its refunds, the notifications about it and its refunds with their
        delivery, and the provider's ids for all of them.

        Args:
            payment_id: The payment to explain.
            live: Also ask the provider for its current view of the payment (and of
                its refunds, where the provider can look refunds up) and list every
                difference from paykit's in :attr:`Explanation.differences`. A
                provider error is reported in :attr:`Explanation.provider_errors`,
                never raised. Nothing is written either way.

        Returns:
            The explanation; ``render()`` prints it, ``as_dict()`` makes it JSON-ready.

        Raises:
            NotFoundError: No such payment.
            StorageError: Storage failed.

        .. versionadded:: 0.2.0
        """
        payment = self._load(payment_id)
        storage = self._engine.storage
        audit = storage.list_audit(payment.id, limit=_EXPLAIN_LIMIT)
        events = storage.list_webhook_events(payment.id, limit=_EXPLAIN_LIMIT)
        refunds = storage.list_refunds(payment.id)
        disputes = tuple(sorted(payment.disputes.values(), key=lambda d: (d.created_at, d.id)))
        notifications = storage.list_notifications_for(
            [payment.id, *(r.id for r in refunds), *(d.id for d in disputes)], limit=_EXPLAIN_LIMIT
        )
        refs = dx.provider_refs(payment, refunds)
        refs.update({f"dispute {d.id}": d.provider_dispute_id for d in disputes if d.provider_dispute_id})
        explanation = Explanation(
            payment=payment,
            timeline=dx.timeline(payment, audit, events, refunds, notifications),
            audit=tuple(audit),
            webhook_events=tuple(events),
            refunds=tuple(refunds),
            notifications=tuple(notifications),
            provider_refs=refs,
            explained_at=self._engine.now(),
            disputes=disputes,
        )
        return self._ask_provider(explanation) if live else explanation

    def _ask_provider(self, explanation: Explanation) -> Explanation:
        """``explanation`` with the provider's current view and every difference from paykit's."""
        payment = explanation.payment
        errors: list[str] = []
        differences: list[str] = []
        status: PaymentStatus | None = None
        captured: Money | None = None
        refund_statuses: dict[str, RefundStatus] = {}
        try:
            adapter = self._engine.provider(payment.provider)
        except PaykitError:
            errors.append(f"provider {payment.provider!r} is not configured in this service")
            return replace(explanation, live=True, provider_errors=tuple(errors))
        if payment.provider_ref is None:
            errors.append("retrieve_payment not called: the payment has no provider reference yet")
        else:
            try:
                seen = self._engine.call_provider(
                    adapter,
                    "retrieve_payment",
                    lambda: adapter.retrieve_payment(payment),
                    payment_id=payment.id,
                    read_only=True,
                )
            except PaykitError as exc:
                errors.append(f"retrieve_payment failed: {type(exc).__name__}: {exc}")
            else:
                status, captured = seen.status, seen.amount_captured
                differences.extend(dx.payment_differences(payment, seen))
        known = [r for r in explanation.refunds if r.provider_ref]
        if known and not adapter.capabilities.refund_lookup:
            errors.append(f"refunds not looked up: provider {adapter.name!r} cannot look refunds up")
            known = []
        for refund in known:
            try:
                found = self._lookup_refund(adapter, payment, refund)
            except PaykitError as exc:
                errors.append(f"retrieve_refund {refund.id} failed: {type(exc).__name__}: {exc}")
                continue
            refund_statuses[refund.id] = found.status
            difference = dx.refund_difference(refund, found)
            if difference is not None:
                differences.append(difference)
        return replace(
            explanation,
            live=True,
            provider_status=status,
            provider_captured=captured,
            provider_refund_statuses=refund_statuses,
            provider_errors=tuple(errors),
            differences=tuple(differences),
        )

    def _lookup_refund(self, adapter: Provider, payment: Payment, refund: Refund) -> ProviderRefund:
        return self._engine.call_provider(
            adapter,
            "retrieve_refund",
            lambda: adapter.retrieve_refund(payment, refund),
            payment_id=payment.id,
            read_only=True,
        )

    def close(self) -> None:
        """Stop the dispatcher and wait for audit hooks to finish."""
        self._dispatcher.close()
        self._engine.hooks.close()
