"""StripeFake: the real StripeProvider against a stateful fake that speaks Stripe's wire format."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from paykit import (
    AuthenticationError,
    IdempotencyConflictError,
    Money,
    PaymentDeclinedError,
    PaymentService,
    PaymentStatus,
    ProviderUnavailableError,
)
from paykit.storage import MemoryStorage
from paykit.testing import Fault, StripeFake
from paykit.webhooks import handle_webhook
from tests._shared import shared_path

FIXTURES: dict[str, Any] = json.loads(shared_path("specs", "stripe", "fixtures3.json").read_text())["resources"]
USD10 = Money.of("10.00", "USD")


@pytest.fixture
def stripe_fake() -> StripeFake:
    return StripeFake()


@pytest.fixture
def service(stripe_fake: StripeFake) -> PaymentService:
    return PaymentService(storage=MemoryStorage(), providers=[stripe_fake.provider()], clock=stripe_fake.clock)


def pay(service: PaymentService, card: str = "pm_card_visa", key: str = "order-1", **kwargs: Any) -> Any:
    payment = service.initialize_payment(user_id="u1", amount=USD10, provider="stripe", idempotency_key=key, **kwargs)
    return service.confirm_payment(payment.id, payment_method=card)


def deliver_all(service: PaymentService, stripe_fake: StripeFake) -> list[tuple[str, int, str]]:
    answers = []
    for delivery in stripe_fake.take_deliveries():
        answer = handle_webhook(service, "stripe", *stripe_fake.signed(delivery))
        answers.append((delivery.type, answer.status_code, answer.outcome))
    return answers


def api(stripe_fake: StripeFake) -> httpx.Client:
    return httpx.Client(
        transport=stripe_fake.transport,
        base_url="https://api.stripe.com",
        headers={"authorization": f"Bearer {stripe_fake.api_key}"},
    )


# -- wire format ---------------------------------------------------------------------------


def test_objects_have_every_field_of_stripes_own_examples(service: PaymentService, stripe_fake: StripeFake) -> None:
    payment = pay(service)
    service.refund_payment(payment.id, amount=Money.of("1.00", "USD"))

    intent = stripe_fake.intents[payment.provider_ref]
    assert set(FIXTURES["payment_intent"]) - {"object"} <= set(intent)
    (refund,) = stripe_fake.refunds.values()
    assert set(FIXTURES["refund"]) <= set(refund)
    assert intent["object"] == FIXTURES["payment_intent"]["object"]
    for delivery in stripe_fake.take_deliveries():
        event = json.loads(delivery.body)
        assert set(event) <= set(FIXTURES["event"]) | {"api_version"}
        assert event["object"] == "event"


def test_requests_are_stripe_python_form_posts_with_idempotency_keys(
    service: PaymentService, stripe_fake: StripeFake
) -> None:
    payment = pay(service)

    create, confirm = stripe_fake.requests
    assert (create.method, create.path, create.operation) == ("POST", "/v1/payment_intents", "create")
    assert create.params["amount"] == "1000"
    assert create.params["currency"] == "usd"
    assert create.params["metadata[paykit_payment_id]"] == payment.id
    assert create.idempotency_key
    assert confirm.path == f"/v1/payment_intents/{payment.provider_ref}/confirm"
    assert confirm.params["payment_method"] == "pm_card_visa"


def test_a_wrong_api_key_is_refused_as_stripe_does(stripe_fake: StripeFake) -> None:
    from paykit.providers import StripeProvider

    provider = StripeProvider(
        "sk_test_wrong", webhooks=False, http_client=httpx.Client(transport=stripe_fake.transport)
    )
    service = PaymentService(storage=MemoryStorage(), providers=[provider], clock=stripe_fake.clock)

    with pytest.raises(AuthenticationError):
        service.initialize_payment(user_id="u1", amount=USD10, provider="stripe", idempotency_key="k")
    assert stripe_fake.intents == {}


# -- lifecycle and test cards -------------------------------------------------------------


def test_a_visa_succeeds_and_every_event_applies_once(service: PaymentService, stripe_fake: StripeFake) -> None:
    payment = pay(service)

    assert payment.status is PaymentStatus.SUCCEEDED
    assert payment.captured_minor == 1000
    assert deliver_all(service, stripe_fake) == [
        ("payment_intent.created", 200, "ignored"),
        ("payment_intent.succeeded", 200, "duplicate"),
    ]


@pytest.mark.parametrize(
    ("card", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_visa_chargeDeclinedInsufficientFunds", "insufficient_funds"),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ],
)
def test_documented_declining_cards_are_declined(
    service: PaymentService, stripe_fake: StripeFake, card: str, decline_code: str
) -> None:
    with pytest.raises(PaymentDeclinedError) as raised:
        pay(service, card)

    assert raised.value.decline_code == decline_code
    (intent,) = stripe_fake.intents.values()
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"]["decline_code"] == decline_code
    assert [d.type for d in stripe_fake.take_deliveries()][-1] == "payment_intent.payment_failed"


def test_an_authentication_card_waits_for_3ds_then_succeeds_by_webhook(
    service: PaymentService, stripe_fake: StripeFake
) -> None:
    payment = pay(service, "pm_card_authenticationRequired")
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url is not None
    assert payment.redirect_url.startswith("https://hooks.stripe.com/3d_secure_2/")

    stripe_fake.complete_action(payment.provider_ref)
    deliver_all(service, stripe_fake)

    assert service.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


def test_manual_capture_in_part(service: PaymentService, stripe_fake: StripeFake) -> None:
    payment = pay(service, capture_method="manual")
    assert payment.status is PaymentStatus.AUTHORIZED

    captured = service.capture_payment(payment.id, amount=Money.of("6.00", "USD"))

    assert captured.status is PaymentStatus.SUCCEEDED
    assert stripe_fake.intents[payment.provider_ref]["amount_received"] == 600


def test_an_authorization_is_canceled(service: PaymentService, stripe_fake: StripeFake) -> None:
    payment = pay(service, capture_method="manual")

    canceled = service.cancel_payment(payment.id)

    assert canceled.status is PaymentStatus.CANCELED
    assert stripe_fake.intents[payment.provider_ref]["status"] == "canceled"
    assert [d.type for d in stripe_fake.take_deliveries()][-1] == "payment_intent.canceled"


def test_an_unknown_payment_method_is_a_404(stripe_fake: StripeFake) -> None:
    with api(stripe_fake) as client:
        intent = client.post("/v1/payment_intents", data={"amount": "100", "currency": "usd"}).json()
        answer = client.post(f"/v1/payment_intents/{intent['id']}/confirm", data={"payment_method": "pm_nope"})
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "resource_missing"


def test_refunds_never_exceed_what_stripe_received(stripe_fake: StripeFake) -> None:
    with api(stripe_fake) as client:
        intent = client.post("/v1/payment_intents", data={"amount": "100", "currency": "usd"}).json()
        client.post(f"/v1/payment_intents/{intent['id']}/confirm", data={"payment_method": "pm_card_visa"})
        first = client.post("/v1/refunds", data={"payment_intent": intent["id"], "amount": "60"})
        second = client.post("/v1/refunds", data={"payment_intent": intent["id"], "amount": "60"})
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.json()["error"]["code"] == "amount_too_large"
    assert stripe_fake.refunded_minor(intent["id"]) == 60


def test_a_refund_that_fails_later_is_taken_back_by_its_webhook(
    service: PaymentService, stripe_fake: StripeFake
) -> None:
    payment = pay(service)
    refund = service.refund_payment(payment.id, amount=Money.of("4.00", "USD"))
    deliver_all(service, stripe_fake)

    stripe_fake.settle_refund(refund.provider_ref or "", "failed")
    deliver_all(service, stripe_fake)

    assert service.get_refund(refund.id).status.value == "failed"
    assert service.get_payment(payment.id).refunded_minor == 0


# -- idempotency --------------------------------------------------------------------------


def test_a_key_replays_the_first_answer_a_decline_included(stripe_fake: StripeFake) -> None:
    with api(stripe_fake) as client:
        intent = client.post("/v1/payment_intents", data={"amount": "100", "currency": "usd"}).json()
        confirm = f"/v1/payment_intents/{intent['id']}/confirm"
        first = client.post(
            confirm, data={"payment_method": "pm_card_chargeDeclined"}, headers={"idempotency-key": "k1"}
        )
        again = client.post(
            confirm, data={"payment_method": "pm_card_chargeDeclined"}, headers={"idempotency-key": "k1"}
        )
        other = client.post(confirm, data={"payment_method": "pm_card_visa"}, headers={"idempotency-key": "k1"})
    assert first.status_code == again.status_code == 402
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 400
    assert other.json()["error"]["type"] == "idempotency_error"


def test_a_key_is_forgotten_after_24_hours(stripe_fake: StripeFake) -> None:
    with api(stripe_fake) as client:
        form = {"amount": "100", "currency": "usd"}
        first = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"}).json()
        stripe_fake.clock.advance(hours=23, minutes=59)
        replayed = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"}).json()
        stripe_fake.clock.advance(minutes=1)
        fresh = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"}).json()
    assert replayed["id"] == first["id"]
    assert fresh["id"] != first["id"]
    assert len(stripe_fake.intents) == 2


def test_paykit_reusing_a_key_with_other_parameters_gets_a_conflict(stripe_fake: StripeFake) -> None:
    provider = stripe_fake.provider()
    with api(stripe_fake) as client:
        client.post("/v1/payment_intents", data={"amount": "5", "currency": "usd"}, headers={"idempotency-key": "same"})
    from paykit.providers._base import CreatePaymentRequest

    request = CreatePaymentRequest(
        payment_id="pay_1", user_id="u1", amount=USD10, capture_method="automatic", idempotency_key="same"
    )
    with pytest.raises(IdempotencyConflictError):
        provider.create_payment(request)


# -- faults -------------------------------------------------------------------------------


def test_a_timeout_after_success_is_settled_by_reconcile(service: PaymentService, stripe_fake: StripeFake) -> None:
    payment = service.initialize_payment(user_id="u1", amount=USD10, provider="stripe", idempotency_key="o")
    stripe_fake.inject(Fault.TIMEOUT_AFTER_SUCCESS, on="confirm")

    with pytest.raises(ProviderUnavailableError):
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
    assert stripe_fake.intents[payment.provider_ref or ""]["status"] == "succeeded"  # Stripe did it

    stripe_fake.clock.advance(minutes=2)
    service.reconcile()
    assert service.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


def test_a_reset_before_sending_does_nothing_and_a_503_saves_nothing(stripe_fake: StripeFake) -> None:
    stripe_fake.inject(Fault.RESET_BEFORE_SENDING, on="create")
    stripe_fake.inject(Fault.UNAVAILABLE_503, on="create")
    form = {"amount": "100", "currency": "usd"}
    with api(stripe_fake) as client:
        with pytest.raises(httpx.WriteError):
            client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"})
        assert client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"}).status_code == 503
        assert client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"}).status_code == 200
    assert len(stripe_fake.intents) == 1


def test_a_500_is_saved_for_its_key_and_replayed(stripe_fake: StripeFake) -> None:
    stripe_fake.inject(Fault.SERVER_ERROR_500, on="create")
    form = {"amount": "100", "currency": "usd"}
    with api(stripe_fake) as client:
        first = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"})
        again = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"})
        stripe_fake.clock.advance(hours=24)
        later = client.post("/v1/payment_intents", data=form, headers={"idempotency-key": "k"})
    assert (first.status_code, again.status_code, later.status_code) == (500, 500, 200)
    assert len(stripe_fake.intents) == 1


def test_webhooks_first_delivers_a_requests_events_before_its_answer(
    service: PaymentService, stripe_fake: StripeFake
) -> None:
    seen: list[PaymentStatus] = []

    def early(deliveries: Any) -> None:
        for delivery in deliveries:
            handle_webhook(service, "stripe", *stripe_fake.signed(delivery))
        seen.append(service.get_payment(payment.id).status)

    stripe_fake.early_sink = early
    payment = service.initialize_payment(user_id="u1", amount=USD10, provider="stripe", idempotency_key="o")
    stripe_fake.inject(Fault.WEBHOOKS_FIRST, on="confirm")

    answered = service.confirm_payment(payment.id, payment_method="pm_card_visa")

    assert seen == [PaymentStatus.SUCCEEDED]  # the webhook moved it while the call was in flight
    assert answered.status is PaymentStatus.SUCCEEDED
    assert [d.type for d in stripe_fake.take_deliveries()] == ["payment_intent.created"]


# -- async --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_async_adapter_runs_against_the_same_fake(stripe_fake: StripeFake) -> None:
    from paykit import AsyncPaymentService
    from paykit.storage import AsyncMemoryStorage
    from paykit.webhooks import ahandle_webhook

    service = AsyncPaymentService(
        storage=AsyncMemoryStorage(), providers=[stripe_fake.async_provider()], clock=stripe_fake.clock
    )
    early: list[str] = []

    async def sink(deliveries: Any) -> None:
        for delivery in deliveries:
            early.append((await ahandle_webhook(service, "stripe", *stripe_fake.signed(delivery))).outcome)

    stripe_fake.async_early_sink = sink
    stripe_fake.inject(Fault.WEBHOOKS_FIRST, on="confirm")
    payment = await service.initialize_payment(user_id="u1", amount=USD10, provider="stripe", idempotency_key="o")
    payment = await service.confirm_payment(payment.id, payment_method="pm_card_visa")

    assert payment.status is PaymentStatus.SUCCEEDED
    assert early == ["applied"]
    refund = await service.refund_payment(payment.id, amount=Money.of("2.50", "USD"))
    assert refund.status.value == "succeeded"
    assert stripe_fake.refunded_minor(payment.provider_ref or "") == 250
