# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The Stripe adapter's calls on Stripe's wire format, written once for both twins.

The async source awaits the async adapter; ``scripts/unasync.py`` generates
the same tests for the sync adapter under ``tests/_sync``. Bodies are Stripe's
own example objects (``fixtures3.json``); the fuller sync-only suite is
``tests/providers/test_stripe.py``, whose helpers these tests reuse.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx
import stripe

from paykit._errors import (
    AuthenticationError,
    IdempotencyConflictError,
    InvalidRequestError,
    PaymentDeclinedError,
    ProviderRequestError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from paykit._models import EventKind, Refund, RefundStatus
from paykit._money import Money
from paykit._status import PaymentStatus
from paykit.providers import AsyncStripeProvider
from tests.providers.test_stripe import (
    API,
    NOW,
    OLD_SECRET,
    SECRET,
    create_request,
    fixture,
    form,
    make_payment,
    payment_intent,
    signed,
    stripe_error,
    succeeded_event,
)
from tests.providers.test_stripe_refund_lookup import refund_list, stripe_refund

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def provider() -> AsyncIterator[AsyncStripeProvider]:
    p = AsyncStripeProvider("sk_test_unit", webhook_secrets=[SECRET, OLD_SECRET], clock=lambda: NOW)
    yield p
    await p.aclose()


def make_refund(amount: str = "2.50") -> Refund:
    return Refund(
        id="ref_1",
        payment_id="pay_1",
        user_id="u1",
        provider="stripe",
        amount=Money.of(amount, "USD"),
        created_at=NOW,
        updated_at=NOW,
    )


class TestClient:
    """The adapter talks through the httpx client it is given, and closes only its own."""

    async def test_injected_http_client_and_api_base_are_used(self) -> None:
        """Requests go through the caller's client to the configured address."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=payment_intent())

        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            p = AsyncStripeProvider("sk_test_x", webhooks=False, http_client=client, api_base="http://127.0.0.1:9")
            await p.retrieve_payment(make_payment())
            await p.aclose()
            assert not client.is_closed

        assert [str(r.url) for r in seen] == ["http://127.0.0.1:9/v1/payment_intents/pi_123"]

    async def test_owned_client_is_closed(self) -> None:
        """The client the adapter made is closed with it."""
        p = AsyncStripeProvider("sk_test_x", webhooks=False)
        owned = p._owned_http
        assert owned is not None

        await p.aclose()

        assert owned.is_closed


class TestPayments:
    """PaymentIntent calls carry Stripe's form fields and paykit's idempotency keys."""

    async def test_create_sends_amount_metadata_and_key(
        self, api: respx.MockRouter, provider: AsyncStripeProvider
    ) -> None:
        """The form carries the amount in Stripe units, metadata and the idempotency key header."""
        route = api.post("/v1/payment_intents").respond(200, json=payment_intent(status="requires_payment_method"))

        result = await provider.create_payment(
            create_request(amount=Money.of("5.120", "KWD"), capture_method="manual", metadata={"order": "42"})
        )

        request = route.calls.last.request
        assert form(request) == {
            "amount": "5120",
            "currency": "kwd",
            "capture_method": "manual",
            "metadata[order]": "42",
            "metadata[paykit_payment_id]": "pay_1",
            "metadata[paykit_user_id]": "u1",
            "payment_method_types[0]": "card",
        }
        assert request.headers["idempotency-key"] == "paykit-pay_1-create"
        assert request.headers["authorization"] == "Bearer sk_test_unit"
        assert (result.provider_ref, result.status, result.client_secret) == (
            "pi_123",
            PaymentStatus.PENDING,
            "pi_123_secret_abc",
        )

    async def test_amount_rule_checked_before_any_request(
        self, api: respx.MockRouter, provider: AsyncStripeProvider
    ) -> None:
        """An amount Stripe would refuse never leaves the process."""
        route = api.post("/v1/payment_intents")

        with pytest.raises(InvalidRequestError):
            await provider.create_payment(create_request(amount=Money.of("5.125", "KWD")))

        assert route.call_count == 0

    async def test_confirm_sends_new_payment_method(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """A method the PaymentIntent does not have yet is sent with the confirmation."""
        route = api.post("/v1/payment_intents/pi_123/confirm").respond(
            200, json=payment_intent(status="succeeded", amount_received=1250, payment_method="pm_1")
        )

        result = await provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="conf-1")

        assert form(route.calls.last.request) == {"payment_method": "pm_1"}
        assert route.calls.last.request.headers["idempotency-key"] == "conf-1"
        assert (result.status, result.amount_captured, result.payment_method_ref) == (
            PaymentStatus.SUCCEEDED,
            Money.of("12.50", "USD"),
            "pm_1",
        )

    async def test_requires_action_passes_next_action(
        self, api: respx.MockRouter, provider: AsyncStripeProvider
    ) -> None:
        """3-D Secure: the app gets the next action and its redirect URL."""
        next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.test/3ds"}}
        api.post("/v1/payment_intents/pi_123/confirm").respond(
            200, json=payment_intent(status="requires_action", next_action=next_action)
        )

        result = await provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="k")

        assert (result.status, result.redirect_url) == (PaymentStatus.REQUIRES_ACTION, "https://hooks.stripe.test/3ds")

    async def test_partial_capture(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """Capturing part of the amount sends amount_to_capture in Stripe units."""
        route = api.post("/v1/payment_intents/pi_123/capture").respond(
            200, json=payment_intent(status="succeeded", amount_received=500)
        )

        result = await provider.capture_payment(make_payment(), amount=Money.of("5.00", "USD"), idempotency_key="cap-1")

        assert form(route.calls.last.request) == {"amount_to_capture": "500"}
        assert route.calls.last.request.headers["idempotency-key"] == "cap-1"
        assert Money.of("5.00", "USD") == result.amount_captured

    async def test_cancel_and_retrieve(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """Cancel posts to its endpoint; retrieve reads a failed attempt's decline."""
        cancel = api.post("/v1/payment_intents/pi_123/cancel").respond(200, json=payment_intent(status="canceled"))
        error = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined."}
        api.get("/v1/payment_intents/pi_123").respond(
            200, json=payment_intent(status="requires_payment_method", last_payment_error=error)
        )

        canceled = await provider.cancel_payment(make_payment(), idempotency_key="can-1")
        current = await provider.retrieve_payment(make_payment())

        assert canceled.status == PaymentStatus.CANCELED
        assert cancel.calls.last.request.headers["idempotency-key"] == "can-1"
        assert (current.status, current.failure_code) == (PaymentStatus.FAILED, "insufficient_funds")


class TestRefunds:
    """Refunds name the PaymentIntent and paykit's ids; lookups find them again."""

    async def test_partial_refund(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """The refund request carries the amount and paykit's ids; its status is read back."""
        route = api.post("/v1/refunds").respond(
            200, json=fixture("refund", id="re_1", amount=250, status="pending", payment_intent="pi_123")
        )

        result = await provider.refund_payment(make_payment(), make_refund(), idempotency_key="ref-key")

        assert form(route.calls.last.request) == {
            "payment_intent": "pi_123",
            "amount": "250",
            "metadata[paykit_payment_id]": "pay_1",
            "metadata[paykit_refund_id]": "ref_1",
        }
        assert route.calls.last.request.headers["idempotency-key"] == "ref-key"
        assert ("re_1", RefundStatus.PENDING) == (result.provider_ref, result.status)

    async def test_retrieve_refund(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """GET /v1/refunds/{id} is read and checked against the payment."""
        api.get("/v1/refunds/re_1").respond(200, json=stripe_refund("re_1", status="succeeded"))
        refund = make_refund().model_copy(update={"provider_ref": "re_1"})

        result = await provider.retrieve_refund(make_payment(), refund)

        assert ("re_1", RefundStatus.SUCCEEDED) == (result.provider_ref, result.status)

    async def test_find_refund_follows_has_more(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """The list is paged with starting_after until paykit's refund id shows up."""
        route = api.get("/v1/refunds").mock(
            side_effect=[
                httpx.Response(200, json=refund_list(stripe_refund("re_a", "ref_other"), has_more=True)),
                httpx.Response(200, json=refund_list(stripe_refund("re_b", "ref_1", status="succeeded"))),
            ]
        )

        found = await provider.find_refund(make_payment(), make_refund())

        assert found is not None
        assert ("re_b", RefundStatus.SUCCEEDED) == (found.provider_ref, found.status)
        assert [dict(c.request.url.params) for c in route.calls] == [
            {"payment_intent": "pi_123", "limit": "100"},
            {"payment_intent": "pi_123", "limit": "100", "starting_after": "re_a"},
        ]


class TestSavedPaymentMethods:
    """Saving creates the Customer once; detaching reaches Stripe."""

    async def test_save_creates_customer_then_detach(
        self, api: respx.MockRouter, provider: AsyncStripeProvider
    ) -> None:
        """A first save creates the Customer with a stable key and attaches the method."""
        customers = api.post("/v1/customers").respond(200, json=fixture("customer", id="cus_1"))
        attach = api.post("/v1/payment_methods/pm_1/attach").respond(
            200, json=fixture("payment_method", id="pm_1", customer="cus_1")
        )
        detach = api.post("/v1/payment_methods/pm_1/detach").respond(200, json=fixture("payment_method", id="pm_1"))

        method, customer_ref = await provider.save_payment_method(
            "u1", "pm_1", customer_ref=None, idempotency_key="save-1"
        )
        listed = api.get("/v1/customers/cus_1/payment_methods").respond(
            200, json={"object": "list", "data": [fixture("payment_method", id="pm_1")], "has_more": False}
        )
        methods = await provider.list_payment_methods("cus_1")

        assert (method.provider_ref, customer_ref) == ("pm_1", "cus_1")
        assert customers.calls.last.request.headers["idempotency-key"] == "paykit-customer-u1"
        assert form(attach.calls.last.request) == {"customer": "cus_1"}
        assert [m.provider_ref for m in methods] == ["pm_1"]
        assert listed.call_count == 1
        assert detach.call_count == 0


class TestErrorMapping:
    """Every Stripe failure becomes one PaykitError; no retry happens inside stripe-python by default."""

    async def confirm(self, provider: AsyncStripeProvider) -> None:
        await provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="k")

    async def test_card_error_is_declined(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """A 402 card error keeps the decline code and request id; the body loses the client secret."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(
                402,
                type="card_error",
                code="card_declined",
                decline_code="insufficient_funds",
                message="Your card has insufficient funds.",
                payment_intent=payment_intent(status="requires_payment_method"),
            )
        )

        with pytest.raises(PaymentDeclinedError) as info:
            await self.confirm(provider)

        error = info.value
        assert (error.decline_code, error.code, error.http_status, error.request_id, error.should_retry) == (
            "insufficient_funds",
            "card_declined",
            402,
            "req_test_1",
            False,
        )
        assert "pi_123_secret_abc" not in json.dumps(error.body)
        assert isinstance(error.__cause__, stripe.CardError)

    async def test_authentication_error_hides_key(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """A 401 becomes AuthenticationError whose message quotes no key."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(401, type="invalid_request_error", message="Invalid API Key: sk_test_unit")
        )

        with pytest.raises(AuthenticationError) as info:
            await self.confirm(provider)

        assert "sk_test_unit" not in str(info.value)

    @pytest.mark.parametrize("status", [429, 500, 409])
    async def test_retryable_statuses_are_sent_once(
        self, api: respx.MockRouter, provider: AsyncStripeProvider, status: int
    ) -> None:
        """Rate limits, 5xx and 409 are retryable ProviderUnavailableErrors, and stripe-python does not retry."""
        route = api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(status, type="api_error", message="busy")
        )

        with pytest.raises(ProviderUnavailableError) as info:
            await self.confirm(provider)

        assert (info.value.should_retry, info.value.http_status, route.call_count) == (True, status, 1)

    async def test_idempotency_error(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """A key reused with other parameters is an IdempotencyConflictError."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(400, type="idempotency_error", message="Keys for idempotent requests...")
        )

        with pytest.raises(IdempotencyConflictError):
            await self.confirm(provider)

    @pytest.mark.parametrize("failure", [httpx.ConnectError("refused"), httpx.ReadTimeout("slow")])
    async def test_unreachable_or_timeout(
        self, api: respx.MockRouter, provider: AsyncStripeProvider, failure: httpx.HTTPError
    ) -> None:
        """A network failure or a timeout is a retryable ProviderUnavailableError, tried once."""
        route = api.post("/v1/payment_intents/pi_123/confirm").mock(side_effect=failure)

        with pytest.raises(ProviderUnavailableError) as info:
            await self.confirm(provider)

        assert (info.value.should_retry, info.value.http_status, route.call_count) == (True, None, 1)

    async def test_invalid_request_is_not_retried(self, api: respx.MockRouter, provider: AsyncStripeProvider) -> None:
        """A 404 is a ProviderRequestError keeping Stripe's code."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(404, type="invalid_request_error", code="resource_missing", message="No such")
        )

        with pytest.raises(ProviderRequestError) as info:
            await self.confirm(provider)

        assert (info.value.code, info.value.should_retry) == ("resource_missing", False)

    async def test_network_retries_when_asked_use_the_same_key(self, api: respx.MockRouter) -> None:
        """With max_network_retries a 500 is retried once, with the same Idempotency-Key."""
        route = api.post("/v1/payment_intents/pi_123/capture").mock(
            side_effect=[
                stripe_error(500, type="api_error", message="boom"),
                httpx.Response(200, json=payment_intent(status="succeeded", amount_received=1250)),
            ]
        )
        p = AsyncStripeProvider("sk_test_x", webhooks=False, max_network_retries=1)

        result = await p.capture_payment(make_payment(), amount=None, idempotency_key="cap-7")
        await p.aclose()

        assert result.status == PaymentStatus.SUCCEEDED
        assert [c.request.headers["idempotency-key"] for c in route.calls] == ["cap-7", "cap-7"]


class TestWebhooks:
    """Stripe-Signature is verified the same way; a refetch asks Stripe."""

    async def test_valid_and_rotated_signatures(self, provider: AsyncStripeProvider) -> None:
        """A correctly signed event parses, with the current or the old secret."""
        body = succeeded_event()

        event = await provider.parse_webhook(body, signed(body))
        rotated = await provider.parse_webhook(body, signed(body, secret=OLD_SECRET))

        assert (event.event_id, event.type, event.kind, event.status) == (
            "evt_1",
            "payment_intent.succeeded",
            EventKind.PAYMENT,
            PaymentStatus.SUCCEEDED,
        )
        assert rotated.event_id == "evt_1"

    @pytest.mark.parametrize(
        ("body", "headers"),
        [
            (succeeded_event(amount=1), signed(succeeded_event())),
            (succeeded_event(), signed(succeeded_event(), secret="whsec_other")),
            (succeeded_event(), signed(succeeded_event(), timestamp=int(NOW.timestamp()) - 301)),
            (succeeded_event(), {}),
        ],
        ids=["tampered", "wrong secret", "stale", "no header"],
    )
    async def test_rejected(self, provider: AsyncStripeProvider, body: bytes, headers: dict[str, str]) -> None:
        """Forged, stale and unsigned requests raise WebhookVerificationError."""
        with pytest.raises(WebhookVerificationError):
            await provider.parse_webhook(body, headers)

    async def test_refetch_on_webhook_reports_current_state(self, api: respx.MockRouter) -> None:
        """With refetch_on_webhook the PaymentIntent is fetched and its current status wins."""
        route = api.get("/v1/payment_intents/pi_123").respond(
            200, json=payment_intent(status="canceled", amount_received=0)
        )
        p = AsyncStripeProvider("sk_test_x", webhook_secrets=[SECRET], refetch_on_webhook=True, clock=lambda: NOW)
        body = succeeded_event()

        event = await p.parse_webhook(body, signed(body))
        await p.aclose()

        assert route.call_count == 1
        assert (event.status, event.event_id) == (PaymentStatus.CANCELED, "evt_1")
