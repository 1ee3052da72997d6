# Generated from src/paykit/_async/events.py by scripts/unasync.py: do not edit.
"""Provider events: each applied once, forward only, found by every id the provider gives."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .. import _telemetry as telemetry
from .._decisions import common as d
from .._decisions import disputes as dd
from .._decisions import payments as dp
from .._decisions import refunds as dr
from .._decisions.change import Change
from .._errors import ProviderError, WebhookVerificationError
from .._log import get_logger
from .._models import EventKind, Payment, Refund, WebhookEvent
from .._results import WebhookOutcome
from ._part import _Part
from .refunds import _Refunds

log = get_logger(__name__)

_OUTCOMES = {outcome.value: outcome for outcome in WebhookOutcome}
"""``WebhookOutcome(value)`` as a dict lookup: the enum's call runs Python code per event."""


class _Events(_Refunds, _Part):
    @telemetry.operation("apply_webhook_event")
    def apply_webhook_event(self, event: WebhookEvent) -> WebhookOutcome:
        """Apply a verified, normalized provider event exactly once.

        A redelivered event is a no-op; one that would move a payment backwards
        is recorded in the audit trail once and not applied. An event about a
        payment is remembered by the same compare-and-set that applies it, so
        concurrent deliveries apply it once on every storage. A status change
        costs one read and one write.

        Raises:
            WebhookVerificationError: The event contradicts the stored payment (amount, currency).
            StorageError: Storage failed; nothing was recorded, so the provider's retry is safe.
        """
        if event.kind == EventKind.IGNORED:
            return self._record_event(event, WebhookOutcome.IGNORED, None)
        payment = self._find_event_payment(event)
        if payment is None and event.kind == EventKind.UNVERIFIED:
            return WebhookOutcome.IGNORED  # a notice nobody signed, about nothing we know: no record, no call
        if payment is None:
            log.warning("webhook for unknown payment", provider=event.provider, event_type=event.type)
            return self._record_event(event, WebhookOutcome.UNKNOWN_PAYMENT, None)
        if event.amount is not None and event.amount != payment.amount:
            log.warning("webhook amount mismatch", payment_id=payment.id, provider=event.provider)
            raise WebhookVerificationError(f"event amount does not match payment {payment.id}")
        now = self._engine.now()
        build: Callable[[Payment], Change]
        if event.kind == EventKind.PAYMENT and event.status is not None:
            build = lambda c: dp.status_change(c, event, now=now, record=True)  # noqa: E731
        elif event.kind == EventKind.REFUND:
            known = self._find_event_refund(payment, event)
            build = lambda c: dd.link_reversal(c, dr.refund_event(c, event, known, now=now), now=now)  # noqa: E731
        elif event.kind == EventKind.DISPUTE and event.dispute_ref is not None:
            dd.check_event(payment, event)
            new_id = d.new_id("dsp")
            build = lambda c: dd.dispute_event(c, event, new_id, now=now)  # noqa: E731
        elif event.kind == EventKind.DISPUTE:
            build = lambda c: dp.dispute(c, event, now=now)  # noqa: E731
        elif event.kind == EventKind.UNVERIFIED:
            return self._check_unverified(payment, now=now)
        else:
            return self._record_event(event, WebhookOutcome.IGNORED, payment.id)
        _, change = self._engine.transact(payment, build, actor=f"webhook:{event.provider}")
        outcome = _OUTCOMES[change.outcome]
        telemetry.mark(outcome=outcome, payment_id=payment.id)
        if outcome == WebhookOutcome.STALE and change.write:
            log.info("stale provider event ignored", payment_id=payment.id, event_type=event.type)
        return outcome

    def _check_unverified(self, payment: Payment, *, now: datetime) -> WebhookOutcome:
        """Ask the provider about a payment an unsigned notice named, at most once a minute.

        The payment's own compare-and-set claims the check, so concurrent or
        repeated notices make one provider call per window; a settled payment is
        never checked. Nothing of the notice itself is recorded.
        """
        if payment.status not in dp.UNSETTLED:
            return WebhookOutcome.IGNORED
        payment, change = self._engine.transact(payment, lambda c: dp.claim_check(c, now))
        if not change.write:
            return WebhookOutcome.IGNORED
        try:
            return WebhookOutcome.APPLIED if self._refresh(payment) else WebhookOutcome.IGNORED
        except ProviderError as exc:  # the notice is answered anyway; reconcile() asks again later
            log.info("unverified notice not confirmed", payment_id=payment.id, error=type(exc).__name__)
            return WebhookOutcome.IGNORED

    def _refresh(self, payment: Payment) -> bool:
        """Ask the provider where a payment stands and move it forward if it moved there."""
        adapter = self.provider(payment.provider)
        result = self._engine.call_provider(
            adapter,
            "retrieve_payment",
            lambda: adapter.retrieve_payment(payment),
            payment_id=payment.id,
            read_only=True,
        )
        event = WebhookEvent(
            provider=payment.provider,
            event_id=f"reconcile:{payment.id}:{payment.version}",
            type="reconcile",
            kind=EventKind.PAYMENT,
            status=result.status,
            amount_captured=result.amount_captured,
            failure_code=result.failure_code,
            failure_message=result.failure_message,
            provider_data=dict(result.provider_data),
        )
        now = self._engine.now()
        _, change = self._engine.transact(
            payment, lambda c: dp.status_change(c, event, now=now, record=False), actor="reconcile"
        )
        return change.outcome == WebhookOutcome.APPLIED

    def _record_event(self, event: WebhookEvent, outcome: WebhookOutcome, payment_id: str | None) -> WebhookOutcome:
        """Record an event that concerns no payment; a second delivery is a duplicate."""
        record = dp.event_record(event, outcome.value, payment_id, at=self._engine.now())
        if not self._engine.storage.record_webhook_event(record):
            outcome = WebhookOutcome.DUPLICATE
        telemetry.mark(outcome=outcome.value)
        return outcome

    def _find_event_payment(self, event: WebhookEvent) -> Payment | None:
        storage = self._engine.storage
        if event.payment_id:
            payment = storage.get_payment(event.payment_id)
            if payment is not None and payment.provider == event.provider:
                return payment
        if event.provider_ref:
            payment = storage.find_payment_by_provider_ref(event.provider, event.provider_ref)
            if payment is not None:
                return payment
        capture = event.provider_data.get("capture_id")
        if capture:
            # PayPal refunds and reversals name only their capture.
            return storage.find_payment_by_capture_ref(event.provider, capture)
        return None

    def _find_event_refund(self, payment: Payment, event: WebhookEvent) -> Refund | None:
        """Paykit's refund an event is about: by the id the provider echoes, else by the provider's id."""
        storage = self._engine.storage
        if event.refund_id:
            refund = storage.get_refund(event.refund_id)
            if refund is not None and refund.payment_id == payment.id:
                return refund
        if event.refund_ref:
            outside = dr.external_refund_id(payment.provider, event.refund_ref)
            matches = [r for r in storage.list_refunds(payment.id) if r.provider_ref == event.refund_ref]
            # paykit's own refund first; the record of one made outside paykit otherwise.
            matches.sort(key=lambda r: r.id == outside)
            return matches[0] if matches else None
        return None
