# Generated from src/paykit/_async/reconcile.py by scripts/unasync.py: do not edit.
"""reconcile(): the answer to lost webhooks, crashes between writes, and unclear provider answers."""

from __future__ import annotations

from datetime import datetime, timedelta

from .. import _telemetry as telemetry
from .._decisions import payments as dp
from .._errors import InvalidStateError, PaykitError
from .._log import get_logger
from .._models import Payment, Refund, RefundStatus
from .._results import ReconcileReport
from ._part import _Part
from .approvals import _Approvals
from .events import _Events

log = get_logger(__name__)


class _Reconcile(_Events, _Approvals, _Part):
    @telemetry.operation("reconcile")
    def reconcile(
        self,
        *,
        limit: int = 100,
        older_than: timedelta = timedelta(minutes=1),
        recheck_refunds_since: timedelta | None = None,
    ) -> ReconcileReport:
        """Finish whatever a crash, an outage or a lost webhook left unsettled.

        In order: effects left in outboxes are flushed; reactions not yet done
        (an invoice whose payment succeeded) are applied; reserved refunds are
        finished (one never sent, or sent without a clear answer, is looked up at
        the provider before it is sent again; one pending at the provider is
        retrieved); unsettled payments are registered with their provider (with
        the same provider idempotency key, so never charged twice) or retrieved
        and moved forward. Refunds awaiting approval past their expiry are
        released. Only records untouched for ``older_than`` are visited,
        so calls still in flight are left alone. Safe to run from several
        processes at once.

        A refund can still fail at the provider days after it succeeded (a bank
        returns it). Its webhook tells paykit; if every delivery of it was lost,
        pass ``recheck_refunds_since`` (say ``timedelta(days=7)``, from a daily
        job): refunds that succeeded within that window are retrieved from
        providers that can look refunds up, and a failed one is taken back out of
        its payment. It costs one provider call per refund, so it is opt-in.
        """
        storage = self._engine.storage
        report = ReconcileReport(effects_flushed=storage.flush_pending_effects())
        report.reactions_applied = self._engine.react(storage.list_pending_reactions(limit=limit))
        cutoff = self._engine.now() - older_than
        report.updated += self._held_refunds(limit)[1]
        self._reconcile_refunds(report, cutoff=cutoff, limit=limit)
        if recheck_refunds_since is not None:
            self._recheck_refunds(report, since=self._engine.now() - recheck_refunds_since, limit=limit)
        for payment in storage.list_payments_in_status(dp.UNSETTLED, updated_before=cutoff, limit=limit):
            report.checked += 1
            try:
                if payment.provider not in self._engine.providers:
                    raise InvalidStateError(f"provider {payment.provider!r} is not configured")
                if payment.provider_ref is None:
                    after = self._ensure_registered(payment, actor="reconcile")
                    changed = after.version != payment.version
                else:
                    changed = self._refresh(payment)
                report.updated += int(changed)
            except PaykitError as exc:
                report.errors[payment.id] = f"{type(exc).__name__}: {exc.message}"
                log.warning("reconcile failed for payment", payment_id=payment.id, error=type(exc).__name__)
        return report

    def _retrieve_refund(self, refund: Refund, payment: Payment) -> Refund:
        """Ask the provider where a refund pending there stands, and settle it if it moved."""
        adapter = self.provider(payment.provider)
        found = self._engine.call_provider(
            adapter,
            "retrieve_refund",
            lambda: adapter.retrieve_refund(payment, refund),
            payment_id=payment.id,
            read_only=True,
        )
        return self._settle(
            refund,
            payment,
            found.status,
            actor="reconcile",
            provider_ref=found.provider_ref,
            failure_message=found.failure_message,
            origin="reconcile",
        )

    def _recheck_refunds(self, report: ReconcileReport, *, since: datetime, limit: int) -> None:
        """Retrieve refunds counted as succeeded, and take back out those the provider failed since."""
        for refund in self._engine.storage.list_refunds_succeeded_since(since=since, limit=limit):
            adapter = self._engine.providers.get(refund.provider)
            if adapter is None or not adapter.capabilities.refund_lookup or refund.provider_ref is None:
                continue
            report.checked += 1
            try:
                done = self._retrieve_refund(refund, self._load(refund.payment_id))
                report.updated += int(done.status != RefundStatus.SUCCEEDED)
            except PaykitError as exc:
                report.errors[refund.id] = f"{type(exc).__name__}: {exc.message}"
                log.warning("reconcile failed for refund", refund_id=refund.id, error=type(exc).__name__)

    def _reconcile_refunds(self, report: ReconcileReport, *, cutoff: datetime, limit: int) -> None:
        """Finish reserved refunds: resend after a lookup, or retrieve ones pending at the provider."""
        for payment in self._engine.storage.list_payments_refunding(updated_before=cutoff, limit=limit):
            for refund_id in list(payment.pending_refunds):
                report.checked += 1
                try:
                    refund = self.get_refund(refund_id)
                    if refund.status in (RefundStatus.AWAITING_APPROVAL, RefundStatus.CANCELED):
                        continue  # held for approval (or just expired): never sent by reconcile
                    if refund.provider_ref is None:
                        done = self._resend_refund(refund, self._load(payment.id), actor="reconcile")
                    elif self.provider(payment.provider).capabilities.refund_lookup:
                        done = self._retrieve_refund(refund, self._load(payment.id))
                    else:
                        continue
                    report.updated += int(
                        done.status != RefundStatus.PENDING or done.provider_ref != refund.provider_ref
                    )
                except PaykitError as exc:
                    report.errors[refund_id] = f"{type(exc).__name__}: {exc.message}"
                    log.warning("reconcile failed for refund", refund_id=refund_id, error=type(exc).__name__)
