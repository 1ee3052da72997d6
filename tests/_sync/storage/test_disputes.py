# Generated from tests/_async/storage/test_disputes.py by scripts/unasync.py: do not edit.
"""Disputes end to end, on every storage of this API: Stripe's and PayPal's real events and calls.

Stripe's events wrap Stripe's own example ``dispute`` (``fixtures3.json``), signed
the Stripe way and delivered through ``handle_webhook``; PayPal's carry the
Customer Disputes API's dispute resource, signed the PayPal way, and are
confirmed by a GET of the dispute. Provider calls (close, evidence,
accept-claim, provide-evidence) are respx-mocked and checked for their wire
shape. Manual disputes (KNET has no disputes API) use the fake provider.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from paykit import (
    AuditAction,
    DisputeStatus,
    InvalidStateError,
    Money,
    NotificationKind,
    Payment,
    PaymentService,
    PaymentStatus,
    ProviderRequestError,
    StorageError,
    UnsupportedOperationError,
)
from paykit.providers import PayPalProvider, StripeProvider
from paykit.storage import Storage
from paykit.testing import FakeProvider, ManualClock
from paykit.testing._paypal import PayPalWebhookSigner
from paykit.testing._stripe import sign_stripe_webhook, stripe_event
from paykit.webhooks import WebhookResponse, handle_webhook
from tests.providers.test_paypal import API as PAYPAL_API
from tests.providers.test_paypal import CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID

from ..._shared import shared_path

SECRET = "whsec_disputes_suite"
STRIPE_API = "https://api.stripe.com"
DISPUTE = json.loads(shared_path("specs", "stripe", "fixtures3.json").read_text())["resources"]["dispute"]
DISPUTE_ID = DISPUTE["id"]
PI = "pi_3Disputed000000000000001"
USD_10 = Money.of("10.00", "USD")
CAPTURE = "3C679366HH908993F"
PP_DISPUTE = "PP-D-27803"


# -- the shop ------------------------------------------------------------------


@pytest.fixture
def stripe(clock: ManualClock) -> Iterator[StripeProvider]:
    provider = StripeProvider("sk_test_disputes", webhook_secrets=[SECRET], clock=clock)
    yield provider
    provider.close()


@pytest.fixture
def paypal(clock: ManualClock) -> Iterator[PayPalProvider]:
    with httpx.Client() as http:
        yield PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)


@pytest.fixture
def signer(clock: ManualClock) -> PayPalWebhookSigner:
    return PayPalWebhookSigner(WEBHOOK_ID, clock=clock)


@pytest.fixture
def wire(signer: PayPalWebhookSigner) -> respx.MockRouter:
    """Stripe and PayPal on respx; what no test routes is PayPal's certificate, token and served GETs."""
    with respx.mock(assert_all_called=False) as router:
        yield router


@pytest.fixture
def service(
    storage: Storage,
    stripe: StripeProvider,
    paypal: PayPalProvider,
    fake: FakeProvider,
    clock: ManualClock,
) -> Iterator[PaymentService]:
    with PaymentService(storage=storage, providers=[stripe, paypal, fake], clock=clock) as svc:
        yield svc


def _paypal_fallback(wire: respx.MockRouter, signer: PayPalWebhookSigner) -> None:
    wire.route(host="api-m.sandbox.paypal.com").mock(side_effect=signer.handler)
    wire.route(host="api.paypal.com").mock(side_effect=signer.handler)


def _settled(storage: Storage, clock: ManualClock, *, provider: str = "stripe", pid: str = "pay_disputed") -> Payment:
    data = {"capture_id": CAPTURE} if provider == "paypal" else {}
    payment = Payment(
        id=pid,
        user_id="u1",
        provider=provider,
        amount=USD_10,
        status=PaymentStatus.SUCCEEDED,
        provider_ref=PI if provider == "stripe" else "5O190127TN364715T",
        provider_data=data,
        captured_minor=1000,
        created_at=clock(),
        updated_at=clock(),
    )
    storage.insert_payment(payment)
    return payment


def _stripe(
    service: PaymentService,
    clock: ManualClock,
    event_type: str,
    *,
    event_id: str,
    created: int | None = None,
    **changes: Any,
) -> WebhookResponse:
    dispute = {**copy.deepcopy(DISPUTE), "payment_intent": PI, **changes}
    now = int(clock().timestamp())
    body = stripe_event(event_type, dispute, event_id=event_id, created=created if created is not None else now)
    return handle_webhook(service, "stripe", body, sign_stripe_webhook(body, SECRET, timestamp=now))


def _pp_dispute(status: str, *, outcome: str | None = None, updated: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    """A dispute as PayPal's Customer Disputes API v1 shows it."""
    resource: dict[str, Any] = {
        "dispute_id": PP_DISPUTE,
        "create_time": "2026-01-01T00:00:00.000Z",
        "update_time": updated,
        "disputed_transactions": [
            {"seller_transaction_id": CAPTURE, "seller": {"merchant_id": "RD465XN5VS364"}, "custom": "pay_disputed"}
        ],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
        "status": status,
        "dispute_amount": {"currency_code": "USD", "value": "10.00"},
        "seller_response_due_date": "2026-01-11T00:00:00.000Z",
        "dispute_life_cycle_stage": "CHARGEBACK",
        "dispute_channel": "EXTERNAL",
        "links": [{"href": f"{PAYPAL_API}/v1/customer/disputes/{PP_DISPUTE}", "rel": "self", "method": "GET"}],
    }
    if outcome is not None:
        resource["dispute_outcome"] = {
            "outcome_code": outcome,
            "amount_refunded": {"currency_code": "USD", "value": "10.00"},
        }
    return resource


def _paypal(
    service: PaymentService, signer: PayPalWebhookSigner, event_type: str, resource: dict[str, Any]
) -> WebhookResponse:
    body = signer.event_body(event_type, resource, resource_type="dispute")
    return handle_webhook(service, "paypal", body, signer.sign(body))


def _actions(service: PaymentService, subject: str) -> list[AuditAction]:
    return [e.action for e in service.audit_trail(subject)]


def _kinds(service: PaymentService) -> list[NotificationKind]:
    return sorted(n.kind for n in service.list_notifications("u1", limit=50) if n.kind.value.startswith("dispute"))


# -- Stripe ----------------------------------------------------------------------


class TestStripeEvents:
    """charge.dispute.* events create and move a dispute that holds its amount while open."""

    def test_opened_holds_the_amount_with_its_due_date(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)

        response = _stripe(
            service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response", amount=600
        )

        page = service.list_disputes(payment_id="pay_disputed")
        dispute = page.items[0]
        payment = service.get_payment("pay_disputed")
        assert (200, "applied") == (response.status_code, response.outcome)
        assert (DISPUTE_ID, DisputeStatus.NEEDS_RESPONSE, Money.of("6.00", "USD"), "general") == (
            dispute.provider_dispute_id,
            dispute.status,
            dispute.amount,
            dispute.reason,
        )
        assert DISPUTE["evidence_details"]["due_by"] == int(dispute.evidence_due_by.timestamp())  # type: ignore[union-attr]
        assert (600, Money.of("6.00", "USD")) == (payment.disputed_minor, payment.amount_disputed)
        assert dispute == service.get_dispute(dispute.id)
        assert [NotificationKind.DISPUTE_OPENED] == _kinds(service)
        assert AuditAction.DISPUTE_OPEN in _actions(service, "pay_disputed")

    def test_a_refund_beyond_the_undisputed_amount_is_refused(
        self, service: PaymentService, storage: Storage, clock: ManualClock, wire: respx.MockRouter
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response", amount=600)
        refunds = wire.post(f"{STRIPE_API}/v1/refunds")

        with pytest.raises(InvalidStateError, match=r"4\.00 USD remains refundable \(6\.00 USD disputed\)"):
            service.refund_payment("pay_disputed", amount=Money.of("4.01", "USD"))
        with pytest.raises(InvalidStateError, match="remains refundable"):
            service.refund_payment("pay_disputed", amount=USD_10)

        assert not refunds.called
        assert 0 == service.get_payment("pay_disputed").refunded_minor

    def test_won_releases_the_hold(self, service: PaymentService, storage: Storage, clock: ManualClock) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.updated", event_id="evt_d2", status="under_review")
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_d3", status="won")

        payment = service.get_payment("pay_disputed")
        dispute = service.list_disputes().items[0]
        metrics = service.metrics()
        assert (DisputeStatus.WON, "won", clock()) == (dispute.status, dispute.outcome, dispute.closed_at)
        assert (0, 0, USD_10) == (payment.disputed_minor, payment.dispute_lost_minor, payment.amount_refundable)
        assert USD_10 == metrics.net_by_currency["USD"]
        assert {} == metrics.disputes_lost_by_currency
        assert [NotificationKind.DISPUTE_CLOSED, NotificationKind.DISPUTE_OPENED] == _kinds(service)
        assert [AuditAction.DISPUTE_OPEN, AuditAction.DISPUTE_UPDATE, AuditAction.DISPUTE_CLOSE] == _actions(
            service, dispute.id
        )

    def test_lost_takes_the_amount_out_of_net_revenue(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)
        _settled(storage, clock, provider="fake", pid="pay_other")
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response", amount=700)
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_d2", status="lost", amount=700)

        metrics = service.metrics()
        payment = service.get_payment("pay_disputed")
        assert Money.of("20.00", "USD") == metrics.revenue_by_currency["USD"]
        assert Money.of("13.00", "USD") == metrics.net_by_currency["USD"]
        assert {"USD": Money.of("7.00", "USD")} == metrics.disputes_lost_by_currency
        assert "7.00" == metrics.as_dict()["disputes_lost_by_currency"]["USD"]
        assert (0, 700) == (payment.disputed_minor, payment.dispute_lost_minor)
        with pytest.raises(InvalidStateError, match=r"3\.00 USD remains refundable"):
            service.refund_payment("pay_disputed", amount=Money.of("3.01", "USD"))

    def test_funds_withdrawn_and_reinstated_are_recorded(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.funds_withdrawn", event_id="evt_d2", status="needs_response")
        withdrawn = service.list_disputes().items[0]
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_d3", status="won")
        _stripe(service, clock, "charge.dispute.funds_reinstated", event_id="evt_d4", status="won")

        dispute = service.get_dispute(withdrawn.id)
        funds = [e.payload.get("funds") for e in service.audit_trail(dispute.id)]
        assert (True, False) == (withdrawn.funds_withdrawn, withdrawn.funds_reinstated)
        assert (True, True, DisputeStatus.WON) == (dispute.funds_withdrawn, dispute.funds_reinstated, dispute.status)
        assert [None, "withdrawn", None, "reinstated"] == funds

    def test_duplicates_are_applied_once(self, service: PaymentService, storage: Storage, clock: ManualClock) -> None:
        _settled(storage, clock)

        outcomes = [
            (_stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")).outcome
            for _ in range(3)
        ]

        dispute = service.list_disputes().items[0]
        assert ["applied", "duplicate", "duplicate"] == outcomes
        assert 1 == dispute.version
        assert [AuditAction.DISPUTE_OPEN] == _actions(service, dispute.id)

    def test_reordered_events_never_move_a_dispute_backwards(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)
        t0 = int(clock().timestamp())
        # Stripe sent created, updated, closed(lost); they arrive closed first, created last.
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_3", created=t0 + 120, status="lost")
        late_update = _stripe(
            service, clock, "charge.dispute.updated", event_id="evt_2", created=t0 + 60, status="under_review"
        )
        late_create = _stripe(
            service, clock, "charge.dispute.created", event_id="evt_1", created=t0, status="needs_response"
        )

        dispute = service.list_disputes().items[0]
        payment = service.get_payment("pay_disputed")
        assert ("stale", "stale") == (late_update.outcome, late_create.outcome)
        assert (DisputeStatus.LOST, 1) == (dispute.status, dispute.version)
        assert (0, 1000) == (payment.disputed_minor, payment.dispute_lost_minor)
        assert 1 == len(service.list_disputes().items)

    def test_a_late_step_back_is_ignored_but_a_newer_one_applies(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)
        t0 = int(clock().timestamp())
        _stripe(service, clock, "charge.dispute.updated", event_id="evt_2", created=t0 + 60, status="under_review")
        _stripe(service, clock, "charge.dispute.created", event_id="evt_1", created=t0, status="needs_response")
        assert DisputeStatus.UNDER_REVIEW == service.list_disputes().items[0].status

        _stripe(service, clock, "charge.dispute.updated", event_id="evt_3", created=t0 + 90, status="needs_response")

        assert DisputeStatus.NEEDS_RESPONSE == service.list_disputes().items[0].status

    def test_an_inquiry_holds_nothing_until_it_escalates(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1")  # the fixture: an inquiry
        inquiry = service.get_payment("pay_disputed")
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.updated", event_id="evt_d2", status="needs_response")

        escalated = service.get_payment("pay_disputed")
        (dispute,) = escalated.disputes.values()
        assert (0, USD_10) == (inquiry.disputed_minor, inquiry.amount_refundable)
        assert (DisputeStatus.NEEDS_RESPONSE, 1000) == (dispute.status, escalated.disputed_minor)

    def test_explain_tells_the_dispute(self, service: PaymentService, storage: Storage, clock: ManualClock) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        clock.advance(minutes=1)
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_d2", status="won")

        story = service.explain("pay_disputed")

        (dispute,) = story.disputes
        kinds = {(line.kind, line.subject_id) for line in story.timeline}
        assert DISPUTE_ID == story.provider_refs[f"dispute {dispute.id}"]
        assert {("audit", dispute.id), ("notification", dispute.id), ("webhook", "pay_disputed")} <= kinds
        assert [NotificationKind.DISPUTE_OPENED, NotificationKind.DISPUTE_CLOSED] == [
            n.kind for n in story.notifications
        ]
        assert "won" == story.as_dict()["disputes"][0]["status"]
        assert f"{dispute.id}: 10.00 USD won (general)" in story.render()

    def test_an_amount_over_the_payment_is_refused(
        self, service: PaymentService, storage: Storage, clock: ManualClock
    ) -> None:
        _settled(storage, clock)

        response = _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", amount=1001)

        assert 400 == response.status_code
        assert [] == service.list_disputes().items
        assert {} == service.get_payment("pay_disputed").disputes


class TestStripeCalls:
    """accept_dispute and submit_dispute_evidence call Stripe's dispute endpoints, then record."""

    def test_evidence_is_sent_as_stripe_evidence_fields(
        self, service: PaymentService, storage: Storage, clock: ManualClock, wire: respx.MockRouter
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        route = wire.post(f"{STRIPE_API}/v1/disputes/{DISPUTE_ID}").respond(
            200, json={**DISPUTE, "status": "under_review"}
        )
        dispute_id = service.list_disputes().items[0].id

        dispute = service.submit_dispute_evidence(
            dispute_id,
            {"product_description": "Blue mug, 350 ml", "customer_email_address": "payer@example.com"},
            actor="ops:ana",
        )

        sent = parse_qs(route.calls.last.request.content.decode())
        entry = service.audit_trail(dispute_id)[-1]
        assert {
            "evidence[product_description]": ["Blue mug, 350 ml"],
            "evidence[customer_email_address]": ["payer@example.com"],
            "submit": ["true"],
        } == sent
        assert (DisputeStatus.UNDER_REVIEW, clock()) == (dispute.status, dispute.evidence_submitted_at)
        assert (AuditAction.DISPUTE_EVIDENCE, "ops:ana") == (entry.action, entry.actor)
        assert ["customer_email_address", "product_description"] == entry.payload["evidence_fields"]
        assert "payer@example.com" not in json.dumps(entry.payload)

    def test_accept_closes_it_at_stripe_and_it_is_lost(
        self, service: PaymentService, storage: Storage, clock: ManualClock, wire: respx.MockRouter
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        route = wire.post(f"{STRIPE_API}/v1/disputes/{DISPUTE_ID}/close").respond(
            200, json={**DISPUTE, "status": "lost"}
        )
        dispute_id = service.list_disputes().items[0].id

        first = service.accept_dispute(dispute_id)
        again = service.accept_dispute(dispute_id)
        # Stripe's own closed event, arriving after, changes nothing more.
        late = _stripe(service, clock, "charge.dispute.closed", event_id="evt_d2", status="lost")

        assert (DisputeStatus.LOST, "accepted") == (first.status, first.outcome)
        assert first == again
        assert 1 == route.call_count
        assert "stale" == late.outcome
        assert 1000 == service.get_payment("pay_disputed").dispute_lost_minor
        assert AuditAction.DISPUTE_ACCEPT in _actions(service, "pay_disputed")

    def test_a_stripe_refusal_records_nothing(
        self, service: PaymentService, storage: Storage, clock: ManualClock, wire: respx.MockRouter
    ) -> None:
        _settled(storage, clock)
        _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")
        wire.post(f"{STRIPE_API}/v1/disputes/{DISPUTE_ID}/close").respond(
            400, json={"error": {"type": "invalid_request_error", "message": "This dispute is already closed"}}
        )
        dispute_id = service.list_disputes().items[0].id

        with pytest.raises(ProviderRequestError):
            service.accept_dispute(dispute_id)

        assert DisputeStatus.NEEDS_RESPONSE == service.get_dispute(dispute_id).status


# -- PayPal ----------------------------------------------------------------------


class TestPayPal:
    """CUSTOMER.DISPUTE.* events, confirmed by a GET of the dispute, and PayPal's dispute calls."""

    def test_opened_then_lost_in_the_buyers_favour(
        self,
        service: PaymentService,
        storage: Storage,
        clock: ManualClock,
        wire: respx.MockRouter,
        signer: PayPalWebhookSigner,
    ) -> None:
        _paypal_fallback(wire, signer)
        _settled(storage, clock, provider="paypal")

        opened = _paypal(service, signer, "CUSTOMER.DISPUTE.CREATED", _pp_dispute("WAITING_FOR_SELLER_RESPONSE"))
        held = service.get_payment("pay_disputed")
        resolved = _paypal(
            service,
            signer,
            "CUSTOMER.DISPUTE.RESOLVED",
            _pp_dispute("RESOLVED", outcome="RESOLVED_BUYER_FAVOUR", updated="2026-01-05T00:00:00Z"),
        )

        dispute = service.list_disputes(payment_id="pay_disputed").items[0]
        assert ("applied", "applied") == (opened.outcome, resolved.outcome)
        assert 1000 == held.disputed_minor
        assert (PP_DISPUTE, DisputeStatus.LOST, "RESOLVED_BUYER_FAVOUR") == (
            dispute.provider_dispute_id,
            dispute.status,
            dispute.outcome,
        )
        assert "2026-01-11T00:00:00+00:00" == dispute.evidence_due_by.isoformat()  # type: ignore[union-attr]
        assert Money.of("0.00", "USD") == service.metrics().net_by_currency["USD"]

    def test_a_late_created_delivery_is_confirmed_as_what_paypal_says_now(
        self,
        service: PaymentService,
        storage: Storage,
        clock: ManualClock,
        wire: respx.MockRouter,
        signer: PayPalWebhookSigner,
    ) -> None:
        _paypal_fallback(wire, signer)
        _settled(storage, clock, provider="paypal")
        won = _pp_dispute("RESOLVED", outcome="RESOLVED_SELLER_FAVOUR", updated="2026-01-05T00:00:00Z")
        _paypal(service, signer, "CUSTOMER.DISPUTE.RESOLVED", won)
        stale_body = signer.event_body("CUSTOMER.DISPUTE.CREATED", _pp_dispute("OPEN"), resource_type="dispute")
        signer.serve(f"/v1/customer/disputes/{PP_DISPUTE}", won)  # PayPal answers with the dispute as it is now

        late = handle_webhook(service, "paypal", stale_body, signer.sign(stale_body))

        payment = service.get_payment("pay_disputed")
        assert "stale" == late.outcome
        assert (DisputeStatus.WON, 0) == (service.list_disputes().items[0].status, payment.disputed_minor)

    def test_a_dispute_paypal_does_not_know_is_refused(
        self,
        service: PaymentService,
        storage: Storage,
        clock: ManualClock,
        wire: respx.MockRouter,
        signer: PayPalWebhookSigner,
    ) -> None:
        _paypal_fallback(wire, signer)
        _settled(storage, clock, provider="paypal")
        body = signer.event_body("CUSTOMER.DISPUTE.CREATED", _pp_dispute("OPEN"), resource_type="dispute")
        signer.resources.clear()  # a forged delivery: PayPal has no such dispute

        response = handle_webhook(service, "paypal", body, signer.sign(body))

        assert 400 == response.status_code
        assert {} == service.get_payment("pay_disputed").disputes

    def test_accept_claim_and_text_evidence_take_paypals_shapes(
        self,
        service: PaymentService,
        storage: Storage,
        clock: ManualClock,
        wire: respx.MockRouter,
        signer: PayPalWebhookSigner,
    ) -> None:
        evidence = wire.post(f"{PAYPAL_API}/v1/customer/disputes/{PP_DISPUTE}/provide-evidence").respond(
            200, json={"links": []}
        )
        accept = wire.post(f"{PAYPAL_API}/v1/customer/disputes/{PP_DISPUTE}/accept-claim").respond(
            200, json={"links": []}
        )
        _paypal_fallback(wire, signer)
        _settled(storage, clock, provider="paypal")
        _paypal(service, signer, "CUSTOMER.DISPUTE.CREATED", _pp_dispute("WAITING_FOR_SELLER_RESPONSE"))
        dispute_id = service.list_disputes().items[0].id

        reviewed = service.submit_dispute_evidence(dispute_id, {"PROOF_OF_FULFILLMENT": "Delivered 2 Jan"})
        lost = service.accept_dispute(dispute_id)

        request = evidence.calls.last.request
        assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
        body = request.content.decode()
        assert 'name="input"' in body
        assert '{"evidences": [{"evidence_type": "PROOF_OF_FULFILLMENT", "notes": "Delivered 2 Jan"}]}' in body
        assert "note" in json.loads(accept.calls.last.request.content)
        assert (DisputeStatus.UNDER_REVIEW, DisputeStatus.LOST) == (reviewed.status, lost.status)

    def test_a_capture_reversal_is_not_held_or_lost_twice(
        self,
        service: PaymentService,
        storage: Storage,
        clock: ManualClock,
        wire: respx.MockRouter,
        signer: PayPalWebhookSigner,
    ) -> None:
        from tests.providers.test_paypal import paypal_capture, paypal_refund

        _paypal_fallback(wire, signer)
        _settled(storage, clock, provider="paypal")
        _paypal(service, signer, "CUSTOMER.DISPUTE.CREATED", _pp_dispute("WAITING_FOR_SELLER_RESPONSE"))
        signer.serve(
            f"/v2/payments/captures/{CAPTURE}",
            paypal_capture(
                status="REFUNDED",
                reason="CHARGEBACK",
                custom_id="pay_disputed",
                amount={"currency_code": "USD", "value": "10.00"},
            ),
        )
        reversal = paypal_refund("8MC585209K746392H", value="10.00")
        del reversal["custom_id"]
        body = signer.event_body("PAYMENT.CAPTURE.REVERSED", reversal, resource_type="refund")

        reversed_ = handle_webhook(service, "paypal", body, signer.sign(body))
        after_reversal = service.get_payment("pay_disputed")
        _paypal(
            service,
            signer,
            "CUSTOMER.DISPUTE.RESOLVED",
            _pp_dispute("RESOLVED", outcome="RESOLVED_BUYER_FAVOUR", updated="2026-01-05T00:00:00Z"),
        )

        payment = service.get_payment("pay_disputed")
        dispute = next(iter(payment.disputes.values()))
        assert "applied" == reversed_.outcome
        assert (1000, 0) == (after_reversal.refunded_minor, after_reversal.disputed_minor)
        assert (1000, True) == (dispute.reversed_minor, dispute.funds_withdrawn)
        assert (0, DisputeStatus.LOST) == (payment.dispute_lost_minor, dispute.status)
        assert Money.of("0.00", "USD") == service.metrics().net_by_currency["USD"]


# -- by hand (KNET) and the outbox --------------------------------------------------------------


class TestByHand:
    """record_dispute and resolve_dispute for providers without a disputes API."""

    def test_record_hold_refund_and_resolve(self, service: PaymentService, fake: FakeProvider) -> None:
        payment = service.initialize_payment(user_id="u1", amount=USD_10, provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        due = service.now() + timedelta(days=10)

        dispute = service.record_dispute(
            payment.id, Money.of("6.00", "USD"), "bank letter 42: not received", evidence_due_by=due, actor="ops:ana"
        )
        with pytest.raises(InvalidStateError, match="remains refundable"):
            service.refund_payment(payment.id, amount=Money.of("4.01", "USD"))
        refund = service.refund_payment(payment.id, amount=Money.of("4.00", "USD"))
        noted = service.submit_dispute_evidence(dispute.id, {"letter": "Courier receipt sent to the bank"})
        won = service.resolve_dispute(dispute.id, "won", actor="ops:ana")

        assert (DisputeStatus.NEEDS_RESPONSE, due, None) == (
            dispute.status,
            dispute.evidence_due_by,
            dispute.provider_dispute_id,
        )
        assert Money.of("4.00", "USD") == refund.amount
        assert DisputeStatus.UNDER_REVIEW == noted.status
        assert DisputeStatus.WON == won.status
        assert Money.of("6.00", "USD") == service.get_payment(payment.id).amount_refundable
        assert [] == fake.calls_to("accept_dispute")
        assert [won] == service.list_disputes(status="won").items

    def test_a_dispute_over_what_is_left_is_refused(self, service: PaymentService) -> None:
        payment = service.initialize_payment(user_id="u1", amount=USD_10, provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        service.record_dispute(payment.id, Money.of("6.00", "USD"))

        with pytest.raises(InvalidStateError, match=r"only 4\.00 USD"):
            service.record_dispute(payment.id, Money.of("4.01", "USD"))

    def test_answering_at_a_provider_without_a_disputes_api_is_a_typed_error(self, service: PaymentService) -> None:
        payment = service.initialize_payment(user_id="u1", amount=USD_10, provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        dispute = service.record_dispute(payment.id, USD_10, provider_dispute_id="CASE-7")

        with pytest.raises(UnsupportedOperationError, match="no disputes API"):
            service.accept_dispute(dispute.id)
        lost = service.resolve_dispute(dispute.id, "lost")
        with pytest.raises(InvalidStateError, match="already ended as lost"):
            service.resolve_dispute(dispute.id, "won")

        assert Money.of("0.00", "USD") == service.metrics().net_by_currency["USD"]
        assert DisputeStatus.LOST == lost.status

    def test_pages_by_status_and_payment(self, service: PaymentService, clock: ManualClock) -> None:
        ids = []
        for _ in range(3):
            payment = service.initialize_payment(user_id="u1", amount=USD_10, provider="fake")
            service.confirm_payment(payment.id, payment_method="pm_card_visa")
            ids.append(service.record_dispute(payment.id, USD_10).id)
            clock.advance(seconds=1)
        service.resolve_dispute(ids[0], "lost")

        first = service.list_disputes(limit=2)
        second = service.list_disputes(limit=2, cursor=first.next_cursor)
        open_ = service.list_disputes(status=DisputeStatus.NEEDS_RESPONSE)

        assert [ids[2], ids[1]] == [d.id for d in first.items]
        assert ([ids[0]], None) == ([d.id for d in second.items], second.next_cursor)
        assert [ids[2], ids[1]] == [d.id for d in open_.items]


class TestOutbox:
    """The disputes collection is a copy the payment's write asks for: a failed copy is finished by reconcile()."""

    def test_a_failed_copy_is_applied_by_reconcile(
        self, service: PaymentService, storage: Storage, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _settled(storage, clock)

        def down(*_: Any, **__: Any) -> bool:
            raise StorageError("disputes collection unreachable")

        with monkeypatch.context() as patch:
            patch.setattr(storage, "save_dispute", down)
            response = _stripe(service, clock, "charge.dispute.created", event_id="evt_d1", status="needs_response")

        held = service.get_payment("pay_disputed")
        listed_before = service.list_disputes().items
        report = service.reconcile()

        assert "applied" == response.outcome
        assert 1000 == held.disputed_minor  # the hold rode in the payment's own write
        assert [] == listed_before
        assert 1 == report.reactions_applied
        assert [held.disputes[d].id for d in held.disputes] == [d.id for d in service.list_disputes().items]
