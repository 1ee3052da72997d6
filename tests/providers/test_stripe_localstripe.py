"""StripeProvider against localstripe, a stateful fake Stripe server run on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from paykit import Money, PaymentStatus
from paykit._errors import PaymentDeclinedError
from paykit._models import EventKind, Payment
from paykit._service import PaymentService, WebhookOutcome
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.stripe import AsyncStripeProvider, StripeProvider
from paykit.storage import MemoryStorage
from paykit.webhooks import handle_webhook
from tests.providers._localstripe import LocalStripe, WebhookReceiver, run_localstripe, run_webhook_receiver

pytestmark = pytest.mark.localstripe

API_KEY = "sk_test_localstripe"
WEBHOOK_SECRET = "whsec_localstripe_test"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with run_localstripe() as server:
        yield server


@pytest.fixture(scope="module")
def receiver(localstripe: LocalStripe) -> Iterator[WebhookReceiver]:
    with run_webhook_receiver() as hooks:
        localstripe.register_webhook(
            "paykit-tests", hooks.url, WEBHOOK_SECRET, ["payment_intent.succeeded", "payment_intent.payment_failed"]
        )
        yield hooks


@pytest.fixture
def provider(localstripe: LocalStripe) -> Iterator[StripeProvider]:
    p = StripeProvider(API_KEY, api_base=localstripe.api_base, webhook_secrets=[WEBHOOK_SECRET])
    yield p
    p.close()


@pytest.fixture
async def async_provider(localstripe: LocalStripe) -> AsyncIterator[AsyncStripeProvider]:
    p = AsyncStripeProvider(API_KEY, api_base=localstripe.api_base, webhook_secrets=[WEBHOOK_SECRET])
    yield p
    await p.aclose()


def stripe_post(localstripe: LocalStripe, path: str, data: dict[str, str]) -> dict[str, Any]:
    """Call localstripe directly, as the Stripe dashboard or another system would."""
    response = httpx.post(
        f"{localstripe.api_base}{path}", data=data, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5
    )
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def stripe_get(localstripe: LocalStripe, path: str) -> dict[str, Any]:
    """Read an object straight from localstripe."""
    response = httpx.get(f"{localstripe.api_base}{path}", headers={"Authorization": f"Bearer {API_KEY}"}, timeout=5)
    response.raise_for_status()
    result: dict[str, Any] = response.json()
    return result


def as_payment(payment_id: str, amount: Money, provider_ref: str, **changes: Any) -> Payment:
    now = datetime.now(UTC)
    return Payment(
        id=payment_id,
        user_id="u1",
        provider="stripe",
        amount=amount,
        provider_ref=provider_ref,
        created_at=now,
        updated_at=now,
        **changes,
    )


class TestPaymentIntents:
    """Create, confirm and capture against a live fake Stripe."""

    def create(self, provider: StripeProvider, payment_id: str, amount: Money, **changes: Any) -> Payment:
        request = CreatePaymentRequest(
            payment_id=payment_id,
            user_id="u1",
            amount=amount,
            idempotency_key=f"paykit-{payment_id}",
            **{"capture_method": "automatic", **changes},
        )
        created = provider.create_payment(request)
        return as_payment(payment_id, amount, created.provider_ref, payment_method_ref=created.payment_method_ref)

    def test_create_and_confirm_with_visa_succeeds(self, provider: StripeProvider) -> None:
        """pm_card_visa confirmed server-side succeeds; the metadata carries paykit's ids."""
        payment = self.create(provider, "pay_visa", Money.of("10.00", "USD"), payment_method_ref="pm_card_visa")

        result = provider.confirm_payment(payment, payment_method_ref="pm_card_visa", idempotency_key="c1")
        fetched = provider.retrieve_payment(payment)

        assert result.status == PaymentStatus.SUCCEEDED
        assert fetched.status == PaymentStatus.SUCCEEDED
        assert result.client_secret is not None
        assert result.client_secret.startswith(payment.provider_ref or "-")

    def test_manual_capture_of_part_of_the_amount(self, provider: StripeProvider, localstripe: LocalStripe) -> None:
        """A manual-capture payment is AUTHORIZED after confirmation, then captured in part."""
        payment = self.create(
            provider, "pay_manual", Money.of("10.00", "USD"), capture_method="manual", payment_method_ref="pm_card_visa"
        )

        authorized = provider.confirm_payment(payment, payment_method_ref=None, idempotency_key="c2")
        captured = provider.capture_payment(payment, amount=Money.of("4.00", "USD"), idempotency_key="cap2")

        assert (authorized.status, captured.status) == (PaymentStatus.AUTHORIZED, PaymentStatus.SUCCEEDED)
        charge = stripe_get(localstripe, f"/v1/charges/{captured.provider_data['stripe_charge_id']}")
        # Stripe reports the released, uncaptured part of a charge as refunded.
        assert (charge["amount"], charge["amount_refunded"], charge["captured"]) == (1000, 600, True)

    def test_declining_card_raises_payment_declined(self, provider: StripeProvider, localstripe: LocalStripe) -> None:
        """Card 4000000000000341 attaches but its charge is declined: PaymentDeclinedError."""
        method = stripe_post(
            localstripe,
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": "4000000000000341",
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        payment = self.create(provider, "pay_declined", Money.of("10.00", "USD"), payment_method_ref=method["id"])

        with pytest.raises(PaymentDeclinedError) as info:
            provider.confirm_payment(payment, payment_method_ref=method["id"], idempotency_key="c3")

        assert (info.value.http_status, info.value.code) == (402, "card_declined")
        assert provider.retrieve_payment(payment).status == PaymentStatus.FAILED

    def test_kwd_amount_is_sent_in_fils(self, provider: StripeProvider, localstripe: LocalStripe) -> None:
        """A three-decimal amount ending in 0 reaches Stripe as integer fils."""
        payment = self.create(provider, "pay_kwd", Money.of("12.500", "KWD"))

        fetched = stripe_get(localstripe, f"/v1/payment_intents/{payment.provider_ref}")

        assert (fetched["amount"], fetched["currency"]) == (12500, "kwd")


class TestWebhooksFromLocalstripe:
    """Webhooks localstripe signs and delivers are verified and applied."""

    def test_delivered_webhook_verifies(
        self, provider: StripeProvider, localstripe: LocalStripe, receiver: WebhookReceiver
    ) -> None:
        """payment_intent.succeeded from localstripe passes parse_webhook with paykit's ids."""
        intent = stripe_post(
            localstripe,
            "/v1/payment_intents",
            {
                "amount": "1500",
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "metadata[paykit_payment_id]": "pay_hook",
                "confirm": "true",
            },
        )

        delivery = receiver.wait_for("payment_intent.succeeded", intent["id"])
        event = provider.parse_webhook(delivery.body, delivery.headers)

        assert (EventKind.PAYMENT, PaymentStatus.SUCCEEDED, intent["id"], "pay_hook") == (
            event.kind,
            event.status,
            event.provider_ref,
            event.payment_id,
        )
        assert Money.of("15.00", "USD") == event.amount

    def test_webhook_applied_through_service(
        self, provider: StripeProvider, localstripe: LocalStripe, receiver: WebhookReceiver
    ) -> None:
        """A capture made outside paykit reaches the service by webhook and settles the payment."""
        service = PaymentService(storage=MemoryStorage(), providers=[provider])
        payment = service.initialize_payment(
            user_id="u1",
            amount=Money.of("20.00", "USD"),
            provider="stripe",
            capture_method="manual",
            payment_method="pm_card_visa",
        )
        payment = service.confirm_payment(payment.id)
        assert payment.status == PaymentStatus.AUTHORIZED

        stripe_post(localstripe, f"/v1/payment_intents/{payment.provider_ref}/capture", {})
        delivery = receiver.wait_for("payment_intent.succeeded", payment.provider_ref or "-")
        response = handle_webhook(service, "stripe", body=delivery.body, headers=delivery.headers)
        again = handle_webhook(service, "stripe", body=delivery.body, headers=delivery.headers)

        assert (200, WebhookOutcome.APPLIED.value) == (response.status_code, response.outcome)
        assert WebhookOutcome.DUPLICATE.value == again.outcome
        settled = service.get_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, Money.of("20.00", "USD")) == (settled.status, settled.amount_captured)

    def test_forged_delivery_is_rejected(
        self, provider: StripeProvider, localstripe: LocalStripe, receiver: WebhookReceiver
    ) -> None:
        """A delivered body altered after signing is refused with a bare 400."""
        intent = stripe_post(
            localstripe,
            "/v1/payment_intents",
            {"amount": "900", "currency": "usd", "payment_method": "pm_card_visa", "confirm": "true"},
        )
        delivery = receiver.wait_for("payment_intent.succeeded", intent["id"])
        service = PaymentService(storage=MemoryStorage(), providers=[provider])

        response = handle_webhook(
            service, "stripe", body=delivery.body.replace(b"900", b"100"), headers=delivery.headers
        )

        assert (response.status_code, response.outcome) == (400, "rejected")


@pytest.mark.anyio
class TestAsyncTwin:
    """AsyncStripeProvider against the same live fake Stripe: stripe-python's async calls over httpx.AsyncClient."""

    async def test_authorize_capture_in_part_and_decline(
        self, async_provider: AsyncStripeProvider, localstripe: LocalStripe
    ) -> None:
        """A manual payment is authorized then captured in part; a declining card raises PaymentDeclinedError."""
        amount = Money.of("10.00", "USD")
        created = await async_provider.create_payment(
            CreatePaymentRequest(
                payment_id="pay_async",
                user_id="u1",
                amount=amount,
                capture_method="manual",
                payment_method_ref="pm_card_visa",
                idempotency_key="paykit-pay_async",
            )
        )
        payment = as_payment("pay_async", amount, created.provider_ref, capture_method="manual")

        authorized = await async_provider.confirm_payment(payment, payment_method_ref=None, idempotency_key="ac1")
        captured = await async_provider.capture_payment(
            payment, amount=Money.of("4.00", "USD"), idempotency_key="acap1"
        )

        assert (authorized.status, captured.status) == (PaymentStatus.AUTHORIZED, PaymentStatus.SUCCEEDED)
        fetched = stripe_get(localstripe, f"/v1/payment_intents/{created.provider_ref}")
        charge = stripe_get(localstripe, f"/v1/charges/{captured.provider_data['stripe_charge_id']}")
        assert fetched["metadata"]["paykit_payment_id"] == "pay_async"
        assert (charge["amount"], charge["amount_refunded"], charge["captured"]) == (1000, 600, True)

        method = stripe_post(
            localstripe,
            "/v1/payment_methods",
            {
                "type": "card",
                "card[number]": "4000000000000341",
                "card[exp_month]": "12",
                "card[exp_year]": "2034",
                "card[cvc]": "123",
            },
        )
        declined = await async_provider.create_payment(
            CreatePaymentRequest(
                payment_id="pay_async_declined",
                user_id="u1",
                amount=amount,
                capture_method="automatic",
                payment_method_ref=method["id"],
                idempotency_key="paykit-pay_async_declined",
            )
        )
        with pytest.raises(PaymentDeclinedError) as info:
            await async_provider.confirm_payment(
                as_payment("pay_async_declined", amount, declined.provider_ref, payment_method_ref=method["id"]),
                payment_method_ref=method["id"],
                idempotency_key="ac2",
            )
        assert (info.value.http_status, info.value.code) == (402, "card_declined")
