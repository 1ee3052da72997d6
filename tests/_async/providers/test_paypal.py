# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The PayPal adapter on PayPal's wire format, written once for both twins.

The async source awaits the async adapter; ``scripts/unasync.py`` generates
the same tests for the sync adapter under ``tests/_sync``. Requests and answers
are validated against PayPal's OpenAPI specs by the helpers of the fuller
sync-only suite, ``tests/providers/test_paypal.py``, which these tests reuse.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import respx

from paykit import (
    AuthenticationError,
    EventKind,
    Money,
    PaymentDeclinedError,
    PaymentStatus,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
    WebhookVerificationError,
)
from paykit.providers import AsyncPayPalProvider
from paykit.testing._paypal import PayPalWebhookSigner
from tests import _concurrency
from tests.providers.test_paypal import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    NOW,
    TOKEN,
    WEBHOOK_ID,
    Clock,
    assert_schema,
    capture_completed,
    lower,
    make_payment,
    make_request,
    paypal_authorization,
    paypal_capture,
    paypal_error,
    paypal_order,
    paypal_refund,
    sent_json,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def api() -> AsyncIterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        router.post("/v1/oauth2/token", name="token").respond(
            200, json={"access_token": TOKEN, "token_type": "Bearer", "expires_in": 32400}
        )
        yield router


@pytest.fixture
async def provider(clock: Clock) -> AsyncIterator[AsyncPayPalProvider]:
    async with httpx.AsyncClient() as http:
        yield AsyncPayPalProvider(
            CLIENT_ID,
            CLIENT_SECRET,
            WEBHOOK_ID,
            http_client=http,
            clock=clock,
            return_url="https://shop.example/paypal/return",
            cancel_url="https://shop.example/paypal/cancel",
        )


@pytest.fixture
def signer() -> PayPalWebhookSigner:
    return PayPalWebhookSigner(WEBHOOK_ID, clock=lambda: NOW)


@pytest.fixture
async def webhook_provider(signer: PayPalWebhookSigner, clock: Clock) -> AsyncIterator[AsyncPayPalProvider]:
    """A provider whose client reaches the signer's certificate host and its confirming GETs."""
    async with httpx.AsyncClient(transport=signer.transport) as http:
        yield AsyncPayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)


def refund_of(amount: Money) -> Refund:
    return Refund(
        id="re_1",
        payment_id="pay_1",
        user_id="u1",
        provider="paypal",
        amount=amount,
        created_at=NOW,
        updated_at=NOW,
    )


class TestClientAndToken:
    """One cached OAuth token, the caller's client, and the adapter's own client closed."""

    async def test_owned_client_is_closed(self) -> None:
        """aclose closes the client the adapter made."""
        p = AsyncPayPalProvider(CLIENT_ID, CLIENT_SECRET, None, webhooks=False)
        http = p._http

        await p.aclose()

        assert http.is_closed

    async def test_fetches_with_client_credentials_once(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider
    ) -> None:
        """The token is asked with client credentials, then cached between calls."""
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())

        await provider.retrieve_payment(make_payment())
        await provider.retrieve_payment(make_payment())

        request = api["token"].calls[0].request
        assert b"grant_type=client_credentials" == request.content
        assert httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)._auth_header == request.headers["Authorization"]
        assert 1 == api["token"].call_count

    async def test_concurrent_callers_share_one_token(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider
    ) -> None:
        """Callers racing for the first token fetch it once."""
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())

        await _concurrency.run_together_async(16, lambda: provider.retrieve_payment(make_payment()))

        assert 1 == api["token"].call_count

    async def test_is_refreshed_shortly_before_expiry(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider, clock: Clock
    ) -> None:
        """A token close to its expiry is fetched anew."""
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())
        await provider.retrieve_payment(make_payment())

        clock.now += timedelta(seconds=32400) - timedelta(minutes=4)
        await provider.retrieve_payment(make_payment())

        assert 2 == api["token"].call_count

    async def test_a_second_refusal_is_an_authentication_error(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider
    ) -> None:
        """A 401 refreshes the token once; a second one is an AuthenticationError."""
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            401, json={"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed", "debug_id": "d2"}
        )

        with pytest.raises(AuthenticationError) as info:
            await provider.retrieve_payment(make_payment())

        assert ("d2", 401, 2) == (info.value.request_id, info.value.http_status, api["token"].call_count)


class TestPayments:
    """Orders v2 and Payments v2 calls, checked against PayPal's specs."""

    async def test_create_posts_a_capture_order(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """The order carries the amount, paykit's id and the idempotency key as PayPal-Request-Id."""
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order())

        result = await provider.create_payment(make_request(Money.of("12.50", "USD"), description="Order 42"))

        body = sent_json(route)
        assert_schema("orders", "order_request", body)
        assert body["purchase_units"] == [
            {"custom_id": "pay_1", "description": "Order 42", "amount": {"currency_code": "USD", "value": "12.50"}}
        ]
        request = route.calls[0].request
        assert ("paykit:pay_1:create", f"Bearer {TOKEN}") == (
            request.headers["PayPal-Request-Id"],
            request.headers["Authorization"],
        )
        assert (
            PaymentStatus.REQUIRES_ACTION,
            "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T",
        ) == (
            result.status,
            result.redirect_url,
        )

    async def test_confirm_captures_the_order(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """Confirming captures the approved order."""
        completed = paypal_order(status="COMPLETED", captures=[paypal_capture()])
        route = api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(201, json=completed)

        result = await provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k-confirm")

        assert_schema("orders", "order_capture_request", sent_json(route))
        assert "k-confirm" == route.calls[0].request.headers["PayPal-Request-Id"]
        assert (PaymentStatus.SUCCEEDED, Money.of("12.50", "USD")) == (result.status, result.amount_captured)
        assert {"capture_id": "3C679366HH908993F"} == dict(result.provider_data)

    async def test_a_refused_transaction_is_declined(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider
    ) -> None:
        """TRANSACTION_REFUSED is a PaymentDeclinedError keeping PayPal's debug id."""
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(422, json=paypal_error("TRANSACTION_REFUSED"))

        with pytest.raises(PaymentDeclinedError) as info:
            await provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        error = info.value
        assert ("TRANSACTION_REFUSED", "f8e9b2e5b3c5a", 422, False) == (
            error.decline_code,
            error.request_id,
            error.http_status,
            error.should_retry,
        )

    async def test_an_order_captured_earlier_is_read_back(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider
    ) -> None:
        """ORDER_ALREADY_CAPTURED reads the order back instead of failing."""
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(
            422, json=paypal_error("ORDER_ALREADY_CAPTURED")
        )
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", captures=[paypal_capture()])
        )

        result = await provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        assert PaymentStatus.SUCCEEDED == result.status

    async def test_authorize_then_capture_in_part(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """A manual payment is authorized, then its authorization captured in part."""
        authorized = paypal_order(status="COMPLETED", intent="AUTHORIZE", authorizations=[paypal_authorization()])
        api.post("/v2/checkout/orders/5O190127TN364715T/authorize").respond(201, json=authorized)
        capture = paypal_capture(
            amount={"currency_code": "USD", "value": "10.00"}, authorization_id="0VF52814937998046"
        )
        route = api.post("/v2/payments/authorizations/0VF52814937998046/capture").respond(201, json=capture)

        confirmed = await provider.confirm_payment(
            make_payment(capture_method="manual"), payment_method_ref=None, idempotency_key="k-auth"
        )
        payment = make_payment(capture_method="manual", provider_data=dict(confirmed.provider_data))
        result = await provider.capture_payment(payment, amount=Money.of("10", "USD"), idempotency_key="k-cap")

        assert PaymentStatus.AUTHORIZED == confirmed.status
        assert_schema("payments", "capture_request", sent_json(route))
        assert {"amount": {"currency_code": "USD", "value": "10.00"}, "final_capture": True} == sent_json(route)
        assert Money.of("10.00", "USD") == result.amount_captured

    async def test_cancel_voids_the_authorization(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """Cancelling an authorized payment voids its authorization."""
        route = api.post("/v2/payments/authorizations/0VF52814937998046/void").respond(204)
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": "0VF52814937998046"})

        result = await provider.cancel_payment(payment, idempotency_key="k-void")

        assert (PaymentStatus.CANCELED, "k-void") == (
            result.status,
            route.calls[0].request.headers["PayPal-Request-Id"],
        )

    @pytest.mark.parametrize("failure", [httpx.ConnectTimeout("timed out"), httpx.ReadTimeout("slow")])
    async def test_timeouts_are_retryable(
        self, api: respx.MockRouter, provider: AsyncPayPalProvider, failure: httpx.HTTPError
    ) -> None:
        """A timeout is a retryable ProviderUnavailableError caused by httpx's exception."""
        api.get("/v2/checkout/orders/5O190127TN364715T").mock(side_effect=failure)

        with pytest.raises(ProviderUnavailableError) as info:
            await provider.retrieve_payment(make_payment())

        assert info.value.should_retry
        assert info.value.__cause__ is failure

    async def test_a_server_error_is_unavailable(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """A 500 is a retryable ProviderUnavailableError with PayPal's debug id."""
        api.post("/v2/checkout/orders").respond(
            500,
            json={"name": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred.", "debug_id": "x9"},
        )

        with pytest.raises(ProviderUnavailableError) as info:
            await provider.create_payment(make_request(Money.of("5", "USD")))

        assert ("x9", True) == (info.value.request_id, info.value.should_retry)


class TestRefunds:
    """Refunds of the capture, and lookups of a refund by its PayPal id."""

    async def test_refunds_part_of_the_capture(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """The refund names the amount and paykit's payment id."""
        route = api.post("/v2/payments/captures/3C679366HH908993F/refund").respond(201, json=paypal_refund())
        payment = make_payment(provider_data={"capture_id": "3C679366HH908993F"}, captured=1250)

        result = await provider.refund_payment(payment, refund_of(Money.of("5", "USD")), idempotency_key="k-refund")

        assert {"amount": {"currency_code": "USD", "value": "5.00"}, "custom_id": "pay_1"} == sent_json(route)
        assert_schema("payments", "refund_request", sent_json(route))
        assert "k-refund" == route.calls[0].request.headers["PayPal-Request-Id"]
        assert ("1JU08902781691411", RefundStatus.SUCCEEDED) == (result.provider_ref, result.status)

    async def test_finds_the_capture_on_the_order(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """Without a stored capture id the order is read first."""
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", captures=[paypal_capture()])
        )
        route = api.post("/v2/payments/captures/3C679366HH908993F/refund").respond(201, json=paypal_refund())

        await provider.refund_payment(
            make_payment(captured=1250), refund_of(Money.of("12.50", "USD")), idempotency_key="k"
        )

        assert {"currency_code": "USD", "value": "12.50"} == sent_json(route)["amount"]

    async def test_retrieve_refund(self, api: respx.MockRouter, provider: AsyncPayPalProvider) -> None:
        """GET /v2/payments/refunds/{id} is read, checked against the payment's capture."""
        api.get("/v2/payments/refunds/1JU08902781691411").respond(200, json=paypal_refund(status="PENDING"))
        payment = make_payment(provider_data={"capture_id": "3C679366HH908993F"}, captured=1250)
        refund = refund_of(Money.of("5", "USD")).model_copy(update={"provider_ref": "1JU08902781691411"})

        result = await provider.retrieve_refund(payment, refund)

        assert RefundStatus.PENDING == result.status


class TestOfflineWebhooks:
    """Offline verification fetches PayPal's certificate, and events are confirmed with a GET."""

    async def test_a_valid_event_is_verified_confirmed_and_normalized(
        self, signer: PayPalWebhookSigner, webhook_provider: AsyncPayPalProvider
    ) -> None:
        """A signed capture event is verified against the certificate, fetched once, and confirmed."""
        body = capture_completed(signer)

        event = await webhook_provider.parse_webhook(body, lower(signer.sign(body)))
        await webhook_provider.parse_webhook(body, signer.sign(body))

        assert (
            "WH-58D329510W468432D-8HN650336L201105X",
            EventKind.PAYMENT,
            PaymentStatus.SUCCEEDED,
            "5O190127TN364715T",
            Money.of("12.50", "USD"),
        ) == (event.event_id, event.kind, event.status, event.provider_ref, event.amount)
        fetched = [str(r.url) for r in signer.requests if r.url.path.startswith("/v1/notifications")]
        assert [signer.cert_url] == fetched
        assert any(r.url.path == "/v2/payments/captures/3C679366HH908993F" for r in signer.requests)

    async def test_a_tampered_body_is_rejected(
        self, signer: PayPalWebhookSigner, webhook_provider: AsyncPayPalProvider
    ) -> None:
        """A body changed after signing fails the signature."""
        body = capture_completed(signer)
        headers = signer.sign(body)

        with pytest.raises(WebhookVerificationError, match="does not match"):
            await webhook_provider.parse_webhook(body.replace(b"12.50", b"99.50"), headers)

    async def test_a_stale_delivery_is_rejected(
        self, signer: PayPalWebhookSigner, webhook_provider: AsyncPayPalProvider
    ) -> None:
        """A transmission time outside the tolerance is refused."""
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="tolerance"):
            await webhook_provider.parse_webhook(body, signer.sign(body, transmission_time=NOW - timedelta(minutes=6)))

    async def test_an_unreachable_certificate_host_may_be_retried(
        self, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        """PayPal will deliver again: an unreachable certificate host is retryable."""
        body = capture_completed(signer)
        with respx.mock() as router:
            router.get(signer.cert_url).mock(side_effect=httpx.ConnectError("unreachable"))
            async with httpx.AsyncClient() as http:
                provider = AsyncPayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)
                with pytest.raises(ProviderUnavailableError) as info:
                    await provider.parse_webhook(body, signer.sign(body))

        assert info.value.should_retry


class TestApiWebhooks:
    """API verification asks PayPal's verify-webhook-signature endpoint."""

    @pytest.fixture
    async def api_provider(self, clock: Clock) -> AsyncIterator[AsyncPayPalProvider]:
        async with httpx.AsyncClient() as http:
            yield AsyncPayPalProvider(
                CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock, webhook_verification="api"
            )

    @pytest.mark.parametrize(("answer", "verified"), [("SUCCESS", True), ("FAILURE", False)])
    async def test_paypal_decides(
        self,
        api: respx.MockRouter,
        api_provider: AsyncPayPalProvider,
        signer: PayPalWebhookSigner,
        answer: str,
        verified: bool,
    ) -> None:
        """The delivery is sent as parsed; PayPal's verification_status decides."""
        route = api.post("/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": answer}
        )
        api.get("/v2/payments/captures/3C679366HH908993F").respond(200, json=paypal_capture())
        body = capture_completed(signer)

        if verified:
            event = await api_provider.parse_webhook(body, lower(signer.sign(body)))
            assert PaymentStatus.SUCCEEDED == event.status
        else:
            with pytest.raises(WebhookVerificationError, match="did not verify"):
                await api_provider.parse_webhook(body, signer.sign(body))

        assert_schema("webhooks", "verify_webhook_signature", sent_json(route))
        assert WEBHOOK_ID == sent_json(route)["webhook_id"]
