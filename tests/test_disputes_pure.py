"""Disputes without I/O: the status table, the providers' event shapes and request bodies, the pure rules."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from paykit import (
    Dispute,
    DisputeStatus,
    EventKind,
    InvalidRequestError,
    InvalidStateError,
    Money,
    Payment,
    PaymentStatus,
)
from paykit._decisions import disputes as dd
from paykit._decisions.change import Change
from paykit._errors import WebhookVerificationError
from paykit._status import DISPUTE_FINAL_STATUSES, can_transition_dispute, is_dispute_step_back
from paykit.providers import PayPalProvider
from paykit.providers import _paypal_wire as pp
from paykit.providers import _stripe_wire as sw
from paykit.testing._stripe import stripe_event

from ._shared import shared_path

DISPUTE = json.loads(shared_path("specs", "stripe", "fixtures3.json").read_text())["resources"]["dispute"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)
S = DisputeStatus


def _stripe(event_type: str, **changes: Any) -> Any:
    dispute = {**copy.deepcopy(DISPUTE), "payment_intent": "pi_1", **changes}
    return sw.normalize_event(json.loads(stripe_event(event_type, dispute, created=1_767_225_600)))


class TestStatusTable:
    """Final statuses never change; inquiries may escalate; needs_response and under_review alternate."""

    @pytest.mark.parametrize("final", sorted(DISPUTE_FINAL_STATUSES))
    def test_final_statuses_have_no_exit(self, final: DisputeStatus) -> None:
        assert not any(can_transition_dispute(final, target) for target in DisputeStatus)

    def test_inquiries_escalate_and_chargebacks_never_become_inquiries(self) -> None:
        assert can_transition_dispute(S.WARNING_NEEDS_RESPONSE, S.NEEDS_RESPONSE)
        assert can_transition_dispute(S.WARNING_UNDER_REVIEW, S.LOST)
        assert not can_transition_dispute(S.NEEDS_RESPONSE, S.WARNING_NEEDS_RESPONSE)
        assert not can_transition_dispute(S.UNDER_REVIEW, S.WARNING_CLOSED)

    def test_step_backs_are_flagged(self) -> None:
        assert is_dispute_step_back(S.UNDER_REVIEW, S.NEEDS_RESPONSE)
        assert not is_dispute_step_back(S.NEEDS_RESPONSE, S.UNDER_REVIEW)


class TestStripeShape:
    """Stripe's example dispute, wrapped in each charge.dispute.* event."""

    @pytest.mark.parametrize(
        ("status", "mapped"),
        [
            ("warning_needs_response", S.WARNING_NEEDS_RESPONSE),
            ("warning_under_review", S.WARNING_UNDER_REVIEW),
            ("warning_closed", S.WARNING_CLOSED),
            ("needs_response", S.NEEDS_RESPONSE),
            ("under_review", S.UNDER_REVIEW),
            ("won", S.WON),
            ("lost", S.LOST),
            ("prevented", S.WARNING_CLOSED),
            ("charge_refunded", S.WARNING_CLOSED),
            ("some_future_status", None),
        ],
    )
    def test_statuses(self, status: str, mapped: DisputeStatus | None) -> None:
        event = _stripe("charge.dispute.updated", status=status)

        assert (mapped, status) == (event.dispute_status, event.dispute_provider_status)

    def test_the_fixture_dispute(self) -> None:
        event = _stripe("charge.dispute.created")

        assert (EventKind.DISPUTE, "pi_1", DISPUTE["id"]) == (event.kind, event.provider_ref, event.dispute_ref)
        assert (Money.of("10.00", "USD"), "general", None) == (
            event.dispute_amount,
            event.dispute_reason,
            event.dispute_funds,
        )
        assert datetime.fromtimestamp(DISPUTE["evidence_details"]["due_by"], UTC) == event.dispute_evidence_due_by
        assert event.amount is None  # never compared with the payment's own amount

    @pytest.mark.parametrize(
        ("event_type", "funds"),
        [("charge.dispute.funds_withdrawn", "withdrawn"), ("charge.dispute.funds_reinstated", "reinstated")],
    )
    def test_funds_events(self, event_type: str, funds: str) -> None:
        assert funds == _stripe(event_type).dispute_funds

    def test_evidence_params(self) -> None:
        params = sw.dispute_evidence_params({"uncategorized_text": "Signed receipt"}, submit=False)

        assert {"evidence": {"uncategorized_text": "Signed receipt"}, "submit": False} == params

    @pytest.mark.parametrize("evidence", [{}, {"receipt": "file_1"}, {"uncategorized_text": "  "}])
    def test_evidence_stripe_has_no_text_field_for_is_refused(self, evidence: dict[str, str]) -> None:
        with pytest.raises(InvalidRequestError):
            sw.dispute_evidence_params(evidence, submit=True)


def _pp(status: str, outcome: str | None = None) -> Any:
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-1",
        "update_time": "2026-01-02T00:00:00Z",
        "status": status,
        "reason": "UNAUTHORISED",
        "dispute_amount": {"currency_code": "JPY", "value": "1500"},
        "seller_response_due_date": "2026-01-12T00:00:00Z",
        "disputed_transactions": [{"seller_transaction_id": "CAP-1"}],
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    event = {"id": "WH-1", "event_type": "CUSTOMER.DISPUTE.UPDATED", "resource": resource}
    return pp.normalize_event(event)


class TestPayPalShape:
    """The Customer Disputes API v1 resource: statuses, outcomes, the capture it disputes."""

    @pytest.mark.parametrize(
        ("status", "outcome", "mapped"),
        [
            ("OPEN", None, S.NEEDS_RESPONSE),
            ("WAITING_FOR_SELLER_RESPONSE", None, S.NEEDS_RESPONSE),
            ("WAITING_FOR_BUYER_RESPONSE", None, S.UNDER_REVIEW),
            ("UNDER_REVIEW", None, S.UNDER_REVIEW),
            ("OTHER", None, None),
            ("RESOLVED", "RESOLVED_BUYER_FAVOUR", S.LOST),
            ("RESOLVED", "ACCEPTED", S.LOST),
            ("RESOLVED", "RESOLVED_SELLER_FAVOUR", S.WON),
            ("RESOLVED", "RESOLVED_WITH_PAYOUT", S.WON),
            ("RESOLVED", "CANCELED_BY_BUYER", S.WON),
            ("RESOLVED", "DENIED", S.WON),
            ("RESOLVED", "NONE", S.WARNING_CLOSED),
        ],
    )
    def test_statuses_and_outcomes(self, status: str, outcome: str | None, mapped: DisputeStatus | None) -> None:
        event = _pp(status, outcome)

        assert (mapped, outcome) == (event.dispute_status, event.dispute_outcome)

    def test_the_resource(self) -> None:
        event = _pp("OPEN")

        assert ("PP-D-1", Money.of("1500", "JPY"), "CAP-1") == (
            event.dispute_ref,
            event.dispute_amount,
            event.provider_data["capture_id"],
        )
        assert datetime(2026, 1, 12, tzinfo=UTC) == event.dispute_evidence_due_by
        assert datetime(2026, 1, 2, tzinfo=UTC) == event.occurred_at

    def test_an_answer_about_another_dispute_is_refused(self) -> None:
        with pytest.raises(WebhookVerificationError):
            pp.confirmed_dispute_event(_pp("OPEN"), {"dispute_id": "PP-D-2", "status": "OPEN"}, "PP-D-1")

    @pytest.mark.parametrize("evidence", [{}, {"proof": "x"}, {"OTHER": " "}])
    def test_malformed_evidence_is_refused(self, evidence: dict[str, str]) -> None:
        with pytest.raises(InvalidRequestError):
            pp.provide_evidence_input(evidence)

    def test_evidence_cannot_be_staged(self) -> None:
        provider = PayPalProvider("id", "secret", None, webhooks=False)
        dispute = Dispute(
            id="dsp_1",
            provider="paypal",
            provider_dispute_id="PP-D-1",
            payment_id="pay_1",
            user_id="u1",
            amount=Money.of("10.00", "USD"),
            created_at=NOW,
            updated_at=NOW,
        )
        try:
            with pytest.raises(InvalidRequestError, match="submit=False"):
                provider.submit_dispute_evidence(dispute, {"OTHER": "note"}, submit=False)
        finally:
            provider.close()


class TestRules:
    """The pure rules the service composes."""

    def _payment(self, **changes: Any) -> Payment:
        fields: dict[str, Any] = {
            "id": "pay_1",
            "user_id": "u1",
            "provider": "paypal",
            "amount": Money.of("10.00", "USD"),
            "status": PaymentStatus.SUCCEEDED,
            "captured_minor": 1000,
            "created_at": NOW,
            "updated_at": NOW,
        }
        fields.update(changes)
        return Payment(**fields)

    def test_a_refund_change_on_a_payment_without_disputes_passes_unchanged(self) -> None:
        change = Change({"refunded_minor": 100}, outcome="applied")

        assert change is dd.link_reversal(self._payment(), change, now=NOW)

    def test_an_event_without_a_dispute_id_is_skipped(self) -> None:
        event = _pp("OPEN").model_copy(update={"dispute_ref": None})

        assert not dd.dispute_event(self._payment(), event, "dsp_1", now=NOW).write

    def test_an_amount_in_another_currency_is_refused(self) -> None:
        with pytest.raises(WebhookVerificationError):
            dd.check_event(self._payment(), _pp("OPEN"))

    def test_a_payment_that_captured_nothing_cannot_be_disputed(self) -> None:
        pending = self._payment(status=PaymentStatus.PENDING, captured_minor=0)

        with pytest.raises(InvalidStateError):
            dd.open_by_hand(
                pending,
                "dsp_1",
                Money.of("1.00", "USD"),
                reason=None,
                evidence_due_by=None,
                provider_dispute_id=None,
                actor="ops",
                now=NOW,
            )
