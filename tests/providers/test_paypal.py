"""The PayPal adapter against PayPal's wire format (requests and answers checked against its OpenAPI specs)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from paykit import (
    AuthenticationError,
    ConfigurationError,
    EventKind,
    InvalidRequestError,
    InvalidStateError,
    Money,
    Payment,
    PaymentDeclinedError,
    PaymentService,
    PaymentStatus,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
    WebhookVerificationError,
)
from paykit._models import CaptureMethod
from paykit.providers._base import CreatePaymentRequest
from paykit.providers._paypal_wire import (
    error_from_response,
    money_from_paypal,
    normalize_event,
    order_request,
    paypal_money,
    paypal_request_id,
)
from paykit.providers.paypal import PayPalProvider
from paykit.storage import MemoryStorage
from paykit.testing import capture_logs
from paykit.testing._paypal import PayPalWebhookSigner
from paykit.webhooks import handle_webhook

from .._shared import shared_path

API = "https://api-m.sandbox.paypal.com"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CLIENT_ID = "AeA1QIZXiflr1_-r0U2UbWTziOWX1GRQer5jkUq4ZfWT5qwb6qQRPq7jDtv57TL4POEEezGLdutcxnkJ"
CLIENT_SECRET = "ECYYrrSHdKfk_Q0EdvzdGkzj58a66kKaUQ5dZAEv4HvvtDId2_DpSuYDB088BZxGuMji7G4OFUnPog6p"
WEBHOOK_ID = "8PT597110X687430LKGECATA"
TOKEN = "A21AAFEpH4PsADK7qSS7pSRsgzfENtu-Q1ysgEDVDESseMHBYXVJYE8ovjj68elIDy8nF26AwPhfXTIeWAZHSLIsQkSYz9ifg"

# -- PayPal's OpenAPI specs ----------------------------------------------------

_SPECS = shared_path("specs", "paypal")
_SPEC_FILES = {
    "orders": "checkout_orders_v2.json",
    "payments": "payments_payment_v2.json",
    "webhooks": "notifications_webhooks_v1.json",
}
_REGISTRY: Registry[Any] = Registry().with_resources(
    (
        f"urn:paypal:{name}",
        Resource.from_contents(json.loads((_SPECS / file).read_text()), default_specification=DRAFT4),
    )
    for name, file in _SPEC_FILES.items()
)


def assert_schema(spec: str, schema: str, instance: object) -> None:
    """Validate ``instance`` against ``#/components/schemas/<schema>`` of one of PayPal's specs."""
    validator = jsonschema.Draft4Validator(
        {"$ref": f"urn:paypal:{spec}#/components/schemas/{schema}"}, registry=_REGISTRY
    )
    validator.validate(instance)


class TestSpecValidation:
    """The schema check itself rejects what PayPal would (so the other tests mean something)."""

    def test_rejects_a_float_amount(self) -> None:
        with pytest.raises(jsonschema.ValidationError):
            assert_schema("orders", "money", {"currency_code": "USD", "value": 12.5})

    def test_rejects_an_unknown_intent(self) -> None:
        with pytest.raises(jsonschema.ValidationError):
            assert_schema("orders", "order_request", {"intent": "SALE", "purchase_units": []})


# -- PayPal-shaped answers -----------------------------------------------------


def _links(*pairs: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"href": href, "rel": rel, "method": method} for href, rel, method in pairs]


def paypal_order(
    order_id: str = "5O190127TN364715T",
    *,
    status: str = "PAYER_ACTION_REQUIRED",
    intent: str = "CAPTURE",
    amount: Mapping[str, str] | None = None,
    custom_id: str = "pay_1",
    captures: list[dict[str, Any]] | None = None,
    authorizations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    amount = dict(amount or {"currency_code": "USD", "value": "12.50"})
    unit: dict[str, Any] = {
        "reference_id": "default",
        "amount": amount,
        "payee": {"email_address": "merchant@example.com", "merchant_id": "C7CYMKZDG8D6E"},
        "custom_id": custom_id,
    }
    payments: dict[str, Any] = {}
    if captures is not None:
        payments["captures"] = captures
    if authorizations is not None:
        payments["authorizations"] = authorizations
    if payments:
        unit["payments"] = payments
    links = [(f"{API}/v2/checkout/orders/{order_id}", "self", "GET")]
    if status == "PAYER_ACTION_REQUIRED":
        links.append((f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}", "payer-action", "GET"))
    elif status == "CREATED":
        links.append((f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}", "approve", "GET"))
    order = {
        "id": order_id,
        "intent": intent,
        "status": status,
        "purchase_units": [unit],
        "create_time": "2025-06-01T11:58:00Z",
        "links": _links(*links),
    }
    assert_schema("orders", "order", order)
    return order


def paypal_capture(
    capture_id: str = "3C679366HH908993F",
    *,
    status: str = "COMPLETED",
    amount: Mapping[str, str] | None = None,
    order_id: str | None = "5O190127TN364715T",
    authorization_id: str | None = None,
    custom_id: str = "pay_1",
    reason: str | None = None,
) -> dict[str, Any]:
    capture: dict[str, Any] = {
        "id": capture_id,
        "status": status,
        "amount": dict(amount or {"currency_code": "USD", "value": "12.50"}),
        "final_capture": True,
        "custom_id": custom_id,
        "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
        "create_time": "2025-06-01T11:59:00Z",
        "update_time": "2025-06-01T11:59:00Z",
        "links": _links(
            (f"{API}/v2/payments/captures/{capture_id}", "self", "GET"),
            (f"{API}/v2/payments/captures/{capture_id}/refund", "refund", "POST"),
        ),
    }
    if reason:
        capture["status_details"] = {"reason": reason}
    related = {
        key: value for key, value in {"order_id": order_id, "authorization_id": authorization_id}.items() if value
    }
    if related:
        capture["supplementary_data"] = {"related_ids": related}
    assert_schema("payments", "capture-2", capture)
    return capture


def paypal_authorization(
    authorization_id: str = "0VF52814937998046",
    *,
    status: str = "CREATED",
    order_id: str = "5O190127TN364715T",
    custom_id: str = "pay_1",
) -> dict[str, Any]:
    authorization = {
        "id": authorization_id,
        "status": status,
        "amount": {"currency_code": "USD", "value": "12.50"},
        "custom_id": custom_id,
        "expiration_time": "2025-06-30T11:59:00Z",
        "create_time": "2025-06-01T11:59:00Z",
        "supplementary_data": {"related_ids": {"order_id": order_id}},
        "links": _links(
            (f"{API}/v2/payments/authorizations/{authorization_id}", "self", "GET"),
            (f"{API}/v2/payments/authorizations/{authorization_id}/capture", "capture", "POST"),
        ),
    }
    assert_schema("payments", "authorization-2", authorization)
    return authorization


def paypal_refund(
    refund_id: str = "1JU08902781691411",
    *,
    status: str = "COMPLETED",
    value: str = "5.00",
    capture_id: str = "3C679366HH908993F",
    total_refunded: str | None = None,
) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": refund_id,
        "status": status,
        "amount": {"currency_code": "USD", "value": value},
        "custom_id": "pay_1",
        "create_time": "2025-06-01T12:00:00Z",
        "links": _links(
            (f"{API}/v2/payments/refunds/{refund_id}", "self", "GET"),
            (f"{API}/v2/payments/captures/{capture_id}", "up", "GET"),
        ),
    }
    if total_refunded:
        refund["seller_payable_breakdown"] = {
            "gross_amount": {"currency_code": "USD", "value": value},
            "total_refunded_amount": {"currency_code": "USD", "value": total_refunded},
        }
    assert_schema("payments", "refund", refund)
    return refund


def paypal_error(issue: str, *, http_status: int = 422, description: str = "") -> dict[str, Any]:
    names = {400: "INVALID_REQUEST", 404: "RESOURCE_NOT_FOUND", 422: "UNPROCESSABLE_ENTITY"}
    messages = {
        400: "Request is not well-formed, syntactically incorrect, or violates schema.",
        404: "The specified resource does not exist.",
        422: "The requested action could not be performed, semantically incorrect, or failed business validation.",
    }
    body: dict[str, Any] = {
        "name": names[http_status],
        "message": messages[http_status],
        "debug_id": "f8e9b2e5b3c5a",
        "details": [{"issue": issue, "description": description or issue.replace("_", " ").lower()}],
        "links": [
            {
                "href": f"https://developer.paypal.com/api/rest/reference/orders/v2/errors/#{issue}",
                "rel": "information_link",
                "method": "GET",
            }
        ],
    }
    assert_schema("orders", f"error_{http_status}", body)
    return body


# -- fixtures ------------------------------------------------------------------


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        router.post("/v1/oauth2/token", name="token").respond(
            200,
            json={
                "scope": "https://uri.paypal.com/services/payments/payment",
                "access_token": TOKEN,
                "token_type": "Bearer",
                "app_id": "APP-80W284485P519543T",
                "expires_in": 32400,
                "nonce": "2025-06-01T11:59:59ZdgZ0a3Ld",
            },
        )
        yield router


@pytest.fixture
def provider(clock: Clock) -> Iterator[PayPalProvider]:
    with httpx.Client() as http:
        yield PayPalProvider(
            CLIENT_ID,
            CLIENT_SECRET,
            WEBHOOK_ID,
            http_client=http,
            clock=clock,
            return_url="https://shop.example/paypal/return",
            cancel_url="https://shop.example/paypal/cancel",
        )


def make_payment(
    *,
    capture_method: CaptureMethod = "automatic",
    provider_ref: str | None = "5O190127TN364715T",
    provider_data: dict[str, str] | None = None,
    amount: Money | None = None,
    captured: int = 0,
) -> Payment:
    return Payment(
        id="pay_1",
        user_id="u1",
        provider="paypal",
        amount=amount or Money.of("12.50", "USD"),
        status=PaymentStatus.REQUIRES_ACTION,
        capture_method=capture_method,
        provider_ref=provider_ref,
        redirect_url="https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T",
        provider_data=provider_data or {},
        captured_minor=captured,
        created_at=NOW,
        updated_at=NOW,
    )


def make_request(amount: Money, *, capture_method: CaptureMethod = "automatic", **kwargs: Any) -> CreatePaymentRequest:
    return CreatePaymentRequest(
        payment_id="pay_1",
        user_id="u1",
        amount=amount,
        capture_method=capture_method,
        idempotency_key="paykit:pay_1:create",
        **kwargs,
    )


def sent_json(route: respx.Route, index: int = -1) -> Any:
    return json.loads(route.calls[index].request.content)


# -- amounts and ids -----------------------------------------------------------


class TestAmounts:
    """Amounts become PayPal decimal strings with PayPal's own rules, never rounded."""

    @pytest.mark.parametrize(
        ("money", "value"),
        [
            (Money.of("12.5", "USD"), "12.50"),
            (Money.of("1000", "JPY"), "1000"),
            (Money.of("1500", "HUF"), "1500"),
            (Money.of("300.00", "TWD"), "300"),
            (Money.of("0.01", "EUR"), "0.01"),
        ],
    )
    def test_formats_the_value(self, money: Money, value: str) -> None:
        assert {"currency_code": money.currency, "value": value} == paypal_money(money)
        assert_schema("orders", "money", paypal_money(money))

    @pytest.mark.parametrize("money", [Money.of("1500.50", "HUF"), Money.of("10.01", "TWD")])
    def test_rejects_a_fraction_paypal_takes_in_whole_units(self, money: Money) -> None:
        with pytest.raises(InvalidRequestError, match="whole units"):
            paypal_money(money)

    @pytest.mark.parametrize("currency", ["KWD", "BHD", "INR", "RUB"])
    def test_rejects_currencies_paypal_does_not_take(self, currency: str) -> None:
        with pytest.raises(InvalidRequestError, match="does not support"):
            paypal_money(Money.of("10", currency))

    def test_rejects_a_zero_amount(self) -> None:
        with pytest.raises(InvalidRequestError, match="positive"):
            order_request(make_request(Money.zero("USD")), return_url=None, cancel_url=None)

    def test_reads_whole_unit_values_back(self) -> None:
        assert Money.of("1500", "HUF") == money_from_paypal({"currency_code": "HUF", "value": "1500"})


class TestRequestId:
    """PayPal-Request-Id comes from paykit's idempotency key and fits PayPal's 108 characters."""

    def test_short_keys_pass_unchanged(self) -> None:
        assert "paykit:pay_1:capture" == paypal_request_id("paykit:pay_1:capture")

    def test_long_keys_are_hashed_stably(self) -> None:
        key = "k" * 200
        assert paypal_request_id(key) == paypal_request_id(key)
        assert 108 >= len(paypal_request_id(key))
        assert paypal_request_id(key) != paypal_request_id("k" * 201)

    def test_keys_with_spaces_are_hashed(self) -> None:
        assert paypal_request_id("order 42").startswith("paykit-")


# -- API calls -----------------------------------------------------------------


class TestCreatePayment:
    """create_payment posts an Orders v2 order and returns its approval link."""

    def test_posts_a_capture_order(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order())

        result = provider.create_payment(make_request(Money.of("12.50", "USD"), description="Order 42"))

        body = sent_json(route)
        assert_schema("orders", "order_request", body)
        assert {
            "intent": "CAPTURE",
            "purchase_units": [
                {
                    "custom_id": "pay_1",
                    "description": "Order 42",
                    "amount": {"currency_code": "USD", "value": "12.50"},
                }
            ],
            "payment_source": {
                "paypal": {
                    "experience_context": {
                        "user_action": "PAY_NOW",
                        "return_url": "https://shop.example/paypal/return",
                        "cancel_url": "https://shop.example/paypal/cancel",
                    }
                }
            },
        } == body
        request = route.calls[0].request
        assert "paykit:pay_1:create" == request.headers["PayPal-Request-Id"]
        assert f"Bearer {TOKEN}" == request.headers["Authorization"]
        assert "return=representation" == request.headers["Prefer"]
        assert "5O190127TN364715T" == result.provider_ref
        assert PaymentStatus.REQUIRES_ACTION == result.status
        assert "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T" == result.redirect_url

    def test_manual_capture_orders_authorize(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order(intent="AUTHORIZE"))

        provider.create_payment(
            make_request(Money.of("12.50", "USD"), capture_method="manual", metadata={"invoice_id": "INV-7"})
        )

        body = sent_json(route)
        assert "AUTHORIZE" == body["intent"]
        assert "INV-7" == body["purchase_units"][0]["invoice_id"]

    def test_request_urls_win_over_the_defaults(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order())

        provider.create_payment(make_request(Money.of("5", "USD"), return_url="https://a.example/r"))

        context = sent_json(route)["payment_source"]["paypal"]["experience_context"]
        assert "https://a.example/r" == context["return_url"]

    def test_without_urls_the_order_waits_for_paypals_buttons(self, api: respx.MockRouter, clock: Clock) -> None:
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order(status="CREATED"))
        with httpx.Client() as http:
            bare = PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)
            result = bare.create_payment(make_request(Money.of("5", "USD")))

        assert "payment_source" not in sent_json(route)
        assert "https://www.sandbox.paypal.com/checkoutnow?token=5O190127TN364715T" == result.redirect_url

    def test_unsupported_currency_is_rejected_before_any_call(
        self, api: respx.MockRouter, provider: PayPalProvider
    ) -> None:
        route = api.post("/v2/checkout/orders").respond(200, json=paypal_order())

        with pytest.raises(InvalidRequestError):
            provider.create_payment(make_request(Money.of("12.500", "KWD")))

        assert 0 == route.call_count
        assert 0 == api["token"].call_count

    def test_live_environment_uses_the_live_host(self, clock: Clock) -> None:
        with respx.mock(base_url="https://api-m.paypal.com") as live, httpx.Client() as http:
            live.post("/v1/oauth2/token").respond(200, json={"access_token": TOKEN, "expires_in": 32400})
            route = live.post("/v2/checkout/orders").respond(200, json=paypal_order())
            PayPalProvider(
                CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, environment="live", http_client=http, clock=clock
            ).create_payment(make_request(Money.of("5", "USD")))

        assert 1 == route.call_count


class TestConstruction:
    """Whatever webhooks need is checked when the adapter is built, not at the first delivery."""

    @pytest.mark.parametrize("webhook_id", [None, ""])
    def test_webhook_id_is_required(self, webhook_id: str | None) -> None:
        with pytest.raises(ConfigurationError, match=r"needs webhook_id.*webhooks=False"):
            PayPalProvider(CLIENT_ID, CLIENT_SECRET, webhook_id)

    def test_webhooks_can_be_turned_off(self) -> None:
        with httpx.Client() as http:
            provider = PayPalProvider(CLIENT_ID, CLIENT_SECRET, None, webhooks=False, http_client=http)

            with pytest.raises(WebhookVerificationError, match="webhooks=False"):
                provider.parse_webhook(b"{}", {})

    def test_webhook_id_with_webhooks_off_is_a_contradiction(self) -> None:
        with pytest.raises(ConfigurationError, match="webhooks=False"):
            PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, webhooks=False)


class TestAccessToken:
    """OAuth2 tokens are cached until shortly before expiry and refreshed once on a 401."""

    def test_fetches_with_client_credentials(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())

        provider.retrieve_payment(make_payment())

        request = api["token"].calls[0].request
        assert b"grant_type=client_credentials" == request.content
        expected = httpx.BasicAuth(CLIENT_ID, CLIENT_SECRET)._auth_header
        assert expected == request.headers["Authorization"]

    def test_is_cached_between_calls(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())

        provider.retrieve_payment(make_payment())
        provider.retrieve_payment(make_payment())

        assert 1 == api["token"].call_count

    def test_concurrent_callers_share_one_token(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _: provider.retrieve_payment(make_payment()), range(16)))

        assert 1 == api["token"].call_count

    def test_is_refreshed_shortly_before_expiry(
        self, api: respx.MockRouter, provider: PayPalProvider, clock: Clock
    ) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())
        provider.retrieve_payment(make_payment())

        clock.now += timedelta(seconds=32400) - timedelta(minutes=4)
        provider.retrieve_payment(make_payment())

        assert 2 == api["token"].call_count

    def test_a_refused_token_is_refreshed_once(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.get("/v2/checkout/orders/5O190127TN364715T")
        route.side_effect = [
            httpx.Response(401, json={"name": "AUTHENTICATION_FAILURE", "message": "expired", "debug_id": "d1"}),
            httpx.Response(200, json=paypal_order()),
        ]

        result = provider.retrieve_payment(make_payment())

        assert PaymentStatus.REQUIRES_ACTION == result.status
        assert 2 == api["token"].call_count

    def test_a_second_refusal_is_an_authentication_error(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            401, json={"name": "AUTHENTICATION_FAILURE", "message": "Authentication failed", "debug_id": "d2"}
        )

        with pytest.raises(AuthenticationError) as info:
            provider.retrieve_payment(make_payment())

        assert ("d2", 401) == (info.value.request_id, info.value.http_status)
        assert 2 == api["token"].call_count

    def test_bad_credentials_are_an_authentication_error(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api["token"].respond(401, json={"error": "invalid_client", "error_description": "Client Authentication failed"})

        with pytest.raises(AuthenticationError, match="Client Authentication failed") as info:
            provider.retrieve_payment(make_payment())

        assert "invalid_client" == info.value.code

    def test_secrets_never_reach_logs_repr_or_errors(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(422, json=paypal_error("ORDER_NOT_APPROVED"))

        with capture_logs() as logs, pytest.raises(ProviderError) as info:
            provider.retrieve_payment(make_payment())

        seen = repr(logs) + repr(provider) + str(info.value) + repr(info.value)
        assert logs  # the failure was logged
        for secret in (CLIENT_SECRET, TOKEN):
            assert secret not in seen


class TestConfirmPayment:
    """confirm_payment captures the approved order, or authorizes it for manual capture."""

    def test_captures_a_capture_order(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        completed = paypal_order(status="COMPLETED", captures=[paypal_capture()])
        route = api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(201, json=completed)

        result = provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k-confirm")

        assert_schema("orders", "order_capture_request", sent_json(route))
        assert "k-confirm" == route.calls[0].request.headers["PayPal-Request-Id"]
        assert PaymentStatus.SUCCEEDED == result.status
        assert Money.of("12.50", "USD") == result.amount_captured
        assert {"capture_id": "3C679366HH908993F"} == dict(result.provider_data)

    def test_a_completed_order_with_a_declined_capture_failed(
        self, api: respx.MockRouter, provider: PayPalProvider
    ) -> None:
        declined = paypal_order(status="COMPLETED", captures=[paypal_capture(status="DECLINED")])
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(201, json=declined)

        result = provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        assert (PaymentStatus.FAILED, None) == (result.status, result.amount_captured)
        assert "capture_declined" == result.failure_code

    def test_a_pending_capture_is_processing(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        pending = paypal_order(status="COMPLETED", captures=[paypal_capture(status="PENDING", reason="PENDING_REVIEW")])
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(201, json=pending)

        result = provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        assert PaymentStatus.PROCESSING == result.status

    def test_authorizes_a_manual_order(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        authorized = paypal_order(status="COMPLETED", intent="AUTHORIZE", authorizations=[paypal_authorization()])
        assert_schema("orders", "order_authorize_response", authorized)
        route = api.post("/v2/checkout/orders/5O190127TN364715T/authorize").respond(201, json=authorized)

        result = provider.confirm_payment(
            make_payment(capture_method="manual"), payment_method_ref=None, idempotency_key="k-auth"
        )

        assert_schema("orders", "order_authorize_request", sent_json(route))
        assert PaymentStatus.AUTHORIZED == result.status
        assert {"authorization_id": "0VF52814937998046"} == dict(result.provider_data)

    @pytest.mark.parametrize("issue", ["INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED", "ORDER_NOT_APPROVED"])
    def test_a_payer_who_must_act_again_keeps_the_payment_waiting(
        self, api: respx.MockRouter, provider: PayPalProvider, issue: str
    ) -> None:
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(422, json=paypal_error(issue))

        result = provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        assert (PaymentStatus.REQUIRES_ACTION, issue) == (result.status, result.failure_code)
        assert make_payment().redirect_url == result.redirect_url

    def test_a_refused_transaction_is_declined(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(422, json=paypal_error("TRANSACTION_REFUSED"))

        with pytest.raises(PaymentDeclinedError) as info:
            provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        error = info.value
        assert ("TRANSACTION_REFUSED", "TRANSACTION_REFUSED", "f8e9b2e5b3c5a", 422, False) == (
            error.decline_code,
            error.code,
            error.request_id,
            error.http_status,
            error.should_retry,
        )

    def test_an_order_captured_earlier_is_read_back(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.post("/v2/checkout/orders/5O190127TN364715T/capture").respond(
            422, json=paypal_error("ORDER_ALREADY_CAPTURED")
        )
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", captures=[paypal_capture()])
        )

        result = provider.confirm_payment(make_payment(), payment_method_ref=None, idempotency_key="k")

        assert PaymentStatus.SUCCEEDED == result.status

    def test_a_payment_without_an_order_cannot_be_confirmed(self, provider: PayPalProvider) -> None:
        with pytest.raises(InvalidStateError):
            provider.confirm_payment(make_payment(provider_ref=None), payment_method_ref=None, idempotency_key="k")


class TestCapturePayment:
    """capture_payment captures the authorization, in full or in part."""

    def test_captures_in_full(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        capture = paypal_capture(authorization_id="0VF52814937998046")
        route = api.post("/v2/payments/authorizations/0VF52814937998046/capture").respond(201, json=capture)
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": "0VF52814937998046"})

        result = provider.capture_payment(payment, amount=None, idempotency_key="k-capture")

        assert {"final_capture": True} == sent_json(route)
        assert_schema("payments", "capture_request", sent_json(route))
        assert "k-capture" == route.calls[0].request.headers["PayPal-Request-Id"]
        assert (PaymentStatus.SUCCEEDED, Money.of("12.50", "USD")) == (result.status, result.amount_captured)
        assert "3C679366HH908993F" == result.provider_data["capture_id"]

    def test_captures_in_part(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        capture = paypal_capture(
            amount={"currency_code": "USD", "value": "10.00"}, authorization_id="0VF52814937998046"
        )
        route = api.post("/v2/payments/authorizations/0VF52814937998046/capture").respond(201, json=capture)
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": "0VF52814937998046"})

        result = provider.capture_payment(payment, amount=Money.of("10", "USD"), idempotency_key="k")

        assert {"final_capture": True, "amount": {"currency_code": "USD", "value": "10.00"}} == sent_json(route)
        assert_schema("payments", "capture_request", sent_json(route))
        assert Money.of("10.00", "USD") == result.amount_captured

    def test_finds_the_authorization_on_the_order(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", intent="AUTHORIZE", authorizations=[paypal_authorization()])
        )
        route = api.post("/v2/payments/authorizations/0VF52814937998046/capture").respond(
            201, json=paypal_capture(authorization_id="0VF52814937998046")
        )

        provider.capture_payment(make_payment(capture_method="manual"), amount=None, idempotency_key="k")

        assert 1 == route.call_count

    def test_rejects_another_currency(self, provider: PayPalProvider) -> None:
        with pytest.raises(InvalidRequestError):
            provider.capture_payment(make_payment(), amount=Money.of("10", "EUR"), idempotency_key="k")

    def test_an_expired_authorization_is_declined(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.post("/v2/payments/authorizations/0VF52814937998046/capture").respond(
            422, json=paypal_error("AUTHORIZATION_DENIED")
        )
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": "0VF52814937998046"})

        with pytest.raises(PaymentDeclinedError):
            provider.capture_payment(payment, amount=None, idempotency_key="k")


class TestCancelPayment:
    """cancel_payment voids an authorization; an unapproved order simply lapses."""

    def test_voids_the_authorization(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.post("/v2/payments/authorizations/0VF52814937998046/void").respond(204)
        payment = make_payment(capture_method="manual", provider_data={"authorization_id": "0VF52814937998046"})

        result = provider.cancel_payment(payment, idempotency_key="k-void")

        assert PaymentStatus.CANCELED == result.status
        assert "k-void" == route.calls[0].request.headers["PayPal-Request-Id"]

    def test_an_unapproved_order_needs_no_call(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(200, json=paypal_order())
        void = api.post(path__regex=r"/void$").respond(204)

        result = provider.cancel_payment(make_payment(), idempotency_key="k")

        assert (PaymentStatus.CANCELED, 0) == (result.status, void.call_count)

    def test_a_captured_order_cannot_be_canceled(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", captures=[paypal_capture()])
        )

        with pytest.raises(InvalidStateError):
            provider.cancel_payment(make_payment(), idempotency_key="k")


class TestRefundPayment:
    """refund_payment refunds the capture with an explicit amount."""

    def _refund(self, amount: Money) -> Refund:
        return Refund(
            id="re_1",
            payment_id="pay_1",
            user_id="u1",
            provider="paypal",
            amount=amount,
            created_at=NOW,
            updated_at=NOW,
        )

    def test_refunds_part_of_the_capture(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        route = api.post("/v2/payments/captures/3C679366HH908993F/refund").respond(201, json=paypal_refund())
        payment = make_payment(provider_data={"capture_id": "3C679366HH908993F"}, captured=1250)

        result = provider.refund_payment(payment, self._refund(Money.of("5", "USD")), idempotency_key="k-refund")

        assert {"amount": {"currency_code": "USD", "value": "5.00"}, "custom_id": "pay_1"} == sent_json(route)
        assert_schema("payments", "refund_request", sent_json(route))
        assert "k-refund" == route.calls[0].request.headers["PayPal-Request-Id"]
        assert ("1JU08902781691411", RefundStatus.SUCCEEDED) == (result.provider_ref, result.status)

    @pytest.mark.parametrize(
        ("status", "expected"),
        [("PENDING", RefundStatus.PENDING), ("FAILED", RefundStatus.FAILED), ("CANCELLED", RefundStatus.CANCELED)],
    )
    def test_maps_refund_statuses(
        self, api: respx.MockRouter, provider: PayPalProvider, status: str, expected: RefundStatus
    ) -> None:
        api.post("/v2/payments/captures/3C679366HH908993F/refund").respond(201, json=paypal_refund(status=status))
        payment = make_payment(provider_data={"capture_id": "3C679366HH908993F"}, captured=1250)

        result = provider.refund_payment(payment, self._refund(Money.of("5", "USD")), idempotency_key="k")

        assert expected == result.status

    def test_finds_the_capture_on_the_order(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").respond(
            200, json=paypal_order(status="COMPLETED", captures=[paypal_capture()])
        )
        route = api.post("/v2/payments/captures/3C679366HH908993F/refund").respond(201, json=paypal_refund())

        provider.refund_payment(
            make_payment(captured=1250), self._refund(Money.of("12.50", "USD")), idempotency_key="k"
        )

        assert {"currency_code": "USD", "value": "12.50"} == sent_json(route)["amount"]

    def test_whole_unit_currencies_refund_whole_units(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        payment = make_payment(provider_data={"capture_id": "C1"}, amount=Money.of("1500", "HUF"), captured=150000)

        with pytest.raises(InvalidRequestError):
            provider.refund_payment(payment, self._refund(Money.of("0.50", "HUF")), idempotency_key="k")


class TestErrors:
    """PayPal's error answers and transport failures map to one PaykitError each."""

    @pytest.mark.parametrize(
        ("http_status", "body", "error_type", "code", "retry"),
        [
            (422, paypal_error("INSTRUMENT_DECLINED"), PaymentDeclinedError, "INSTRUMENT_DECLINED", False),
            (422, paypal_error("PAYER_CANNOT_PAY"), PaymentDeclinedError, "PAYER_CANNOT_PAY", False),
            (422, paypal_error("DECIMAL_PRECISION"), ProviderRequestError, "DECIMAL_PRECISION", False),
            (400, paypal_error("INVALID_PARAMETER_VALUE", http_status=400), ProviderRequestError,
             "INVALID_PARAMETER_VALUE", False),
            (404, paypal_error("INVALID_RESOURCE_ID", http_status=404), ProviderRequestError, "INVALID_RESOURCE_ID",
             False),
            (401, {"name": "AUTHENTICATION_FAILURE", "message": "x"}, AuthenticationError, "AUTHENTICATION_FAILURE",
             False),
            (429, {"name": "RATE_LIMIT_REACHED", "message": "slow down"}, ProviderUnavailableError,
             "RATE_LIMIT_REACHED", True),
            (503, {"name": "SERVICE_UNAVAILABLE", "message": "down"}, ProviderUnavailableError, "SERVICE_UNAVAILABLE",
             True),
            (502, "<html>Bad gateway</html>", ProviderUnavailableError, None, True),
        ],
    )  # fmt: skip
    def test_maps_error_bodies(
        self, http_status: int, body: Any, error_type: type[ProviderError], code: str | None, retry: bool
    ) -> None:
        error = error_from_response(http_status, body)

        assert (error_type, code, retry, "paypal", http_status) == (
            type(error),
            error.code,
            error.should_retry,
            error.provider,
            error.http_status,
        )

    def test_keeps_debug_id_and_details(self) -> None:
        error = error_from_response(422, paypal_error("DECIMAL_PRECISION", description="too many decimals"))

        assert "f8e9b2e5b3c5a" == error.request_id
        assert "too many decimals" in error.message
        assert "DECIMAL_PRECISION" == error.body["details"][0]["issue"]  # type: ignore[index]

    def test_transport_failures_are_retryable(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get("/v2/checkout/orders/5O190127TN364715T").mock(side_effect=httpx.ConnectTimeout("timed out"))

        with pytest.raises(ProviderUnavailableError) as info:
            provider.retrieve_payment(make_payment())

        assert info.value.should_retry
        assert isinstance(info.value.__cause__, httpx.ConnectTimeout)

    def test_a_server_error_through_the_client(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.post("/v2/checkout/orders").respond(
            500,
            json={"name": "INTERNAL_SERVER_ERROR", "message": "An internal server error occurred.", "debug_id": "x9"},
        )

        with pytest.raises(ProviderUnavailableError) as info:
            provider.create_payment(make_request(Money.of("5", "USD")))

        assert ("x9", True) == (info.value.request_id, info.value.should_retry)


# -- webhooks ------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> PayPalWebhookSigner:
    return PayPalWebhookSigner(WEBHOOK_ID, clock=lambda: NOW)


def webhook_provider(signer: PayPalWebhookSigner, clock: Clock, **kwargs: Any) -> PayPalProvider:
    return PayPalProvider(
        CLIENT_ID,
        CLIENT_SECRET,
        WEBHOOK_ID,
        http_client=httpx.Client(transport=signer.transport),
        clock=clock,
        **kwargs,
    )


def capture_completed(signer: PayPalWebhookSigner) -> bytes:
    return signer.event_body(
        "PAYMENT.CAPTURE.COMPLETED", paypal_capture(), event_id="WH-58D329510W468432D-8HN650336L201105X"
    )


def lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


class TestOfflineWebhooks:
    """Offline verification checks PayPal's signature against its certificate."""

    def test_a_valid_event_is_verified_and_normalized(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)
        assert_schema("webhooks", "event", json.loads(body))

        event = webhook_provider(signer, clock).parse_webhook(body, lower(signer.sign(body)))

        assert (
            "WH-58D329510W468432D-8HN650336L201105X",
            "PAYMENT.CAPTURE.COMPLETED",
            EventKind.PAYMENT,
            PaymentStatus.SUCCEEDED,
            "5O190127TN364715T",
            "pay_1",
            Money.of("12.50", "USD"),
        ) == (event.event_id, event.type, event.kind, event.status, event.provider_ref, event.payment_id, event.amount)

    def test_the_certificate_is_fetched_once(self, clock: Clock) -> None:
        signer = PayPalWebhookSigner(WEBHOOK_ID, clock=lambda: NOW)
        provider = webhook_provider(signer, clock)
        body = capture_completed(signer)

        provider.parse_webhook(body, signer.sign(body))
        provider.parse_webhook(body, signer.sign(body))

        assert [signer.cert_url] == [str(r.url) for r in signer.requests if r.url.path.startswith("/v1/notifications")]

    def test_uppercase_headers_are_read_too(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)

        event = webhook_provider(signer, clock).parse_webhook(body, signer.sign(body))

        assert PaymentStatus.SUCCEEDED == event.status

    def test_a_tampered_body_is_rejected(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)
        headers = signer.sign(body)

        with pytest.raises(WebhookVerificationError, match="does not match"):
            webhook_provider(signer, clock).parse_webhook(body.replace(b"12.50", b"99.50"), headers)

    def test_a_signature_for_another_webhook_is_rejected(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="does not match"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body, webhook_id="OTHERWEBHOOK1"))

    @pytest.mark.parametrize(
        "cert_url",
        [
            "https://evil.example/v1/notifications/certs/CERT-1",
            "https://paypal.com.evil.example/certs/CERT-1",
            "https://evilpaypal.com/certs/CERT-1",
            "http://api.paypal.com/v1/notifications/certs/CERT-1",
            "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
            "https://api.paypal.com@evil.example/certs/CERT-1",
            "file:///etc/passwd",
        ],
    )
    def test_certificates_are_fetched_only_from_paypal_over_https(self, clock: Clock, cert_url: str) -> None:
        signer = PayPalWebhookSigner(WEBHOOK_ID, cert_url=cert_url, clock=lambda: NOW)
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match=r"https URL on a paypal\.com host"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body))

        assert [] == signer.requests

    def test_an_expired_certificate_is_rejected(self, clock: Clock) -> None:
        signer = PayPalWebhookSigner(
            WEBHOOK_ID, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1), clock=lambda: NOW
        )
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="expired"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body))

    def test_a_certificate_for_another_subject_is_rejected(self, clock: Clock) -> None:
        signer = PayPalWebhookSigner(WEBHOOK_ID, common_name="www.paypal.com", clock=lambda: NOW)
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="not issued for message verification"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body))

    def test_the_sandbox_certificate_subject_is_accepted(self, clock: Clock) -> None:
        signer = PayPalWebhookSigner(
            WEBHOOK_ID,
            common_name="messageverificationcerts.sandbox.paypal.com",
            cert_url="https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1",
            clock=lambda: NOW,
        )
        body = capture_completed(signer)

        assert PaymentStatus.SUCCEEDED == webhook_provider(signer, clock).parse_webhook(body, signer.sign(body)).status

    @pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
    def test_a_transmission_time_outside_the_tolerance_is_rejected(
        self, signer: PayPalWebhookSigner, clock: Clock, offset: timedelta
    ) -> None:
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="tolerance"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body, transmission_time=NOW + offset))

    def test_a_transmission_time_within_the_tolerance_is_accepted(
        self, signer: PayPalWebhookSigner, clock: Clock
    ) -> None:
        body = capture_completed(signer)
        headers = signer.sign(body, transmission_time=NOW - timedelta(minutes=4))

        assert PaymentStatus.SUCCEEDED == webhook_provider(signer, clock).parse_webhook(body, headers).status

    @pytest.mark.parametrize(
        ("header", "value", "message"),
        [
            ("PAYPAL-TRANSMISSION-SIG", None, "lacks the PAYPAL-TRANSMISSION-SIG"),
            ("PAYPAL-CERT-URL", None, "lacks the PAYPAL-CERT-URL"),
            ("PAYPAL-AUTH-ALGO", "SHA1withRSA", "unsupported signature algorithm"),
            ("PAYPAL-TRANSMISSION-SIG", "not-base64!", "not base64"),
            ("PAYPAL-TRANSMISSION-SIG", "c2lnbmF0dXJl\r\nX-Injected: 1", "header is malformed"),
            ("PAYPAL-TRANSMISSION-ID", "69cd13f0-d67a-11e5-baa3-778b53f4ae55\u00e9", "header is malformed"),
            ("PAYPAL-TRANSMISSION-TIME", "yesterday", "malformed"),
        ],
    )
    def test_malformed_headers_are_rejected(
        self, signer: PayPalWebhookSigner, clock: Clock, header: str, value: str | None, message: str
    ) -> None:
        body = capture_completed(signer)
        headers = signer.sign(body)
        if value is None:
            del headers[header]
        else:
            headers[header] = value

        with pytest.raises(WebhookVerificationError, match=message):
            webhook_provider(signer, clock).parse_webhook(body, headers)

    def test_a_missing_certificate_is_rejected(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)
        headers = signer.sign(body)
        headers["PAYPAL-CERT-URL"] = "https://api.paypal.com/v1/notifications/certs/CERT-unknown"

        with pytest.raises(WebhookVerificationError, match="answered 404"):
            webhook_provider(signer, clock).parse_webhook(body, headers)

    def test_an_unreachable_certificate_host_may_be_retried(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = capture_completed(signer)
        with respx.mock() as router, httpx.Client() as http:
            router.get(signer.cert_url).mock(side_effect=httpx.ConnectError("unreachable"))
            provider = PayPalProvider(CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock)
            with pytest.raises(ProviderUnavailableError) as info:
                provider.parse_webhook(body, signer.sign(body))

        assert info.value.should_retry

    def test_a_body_that_is_not_an_event_is_rejected(self, signer: PayPalWebhookSigner, clock: Clock) -> None:
        body = b'{"id": "WH-1"}'

        with pytest.raises(WebhookVerificationError, match="lacks id, event_type or resource"):
            webhook_provider(signer, clock).parse_webhook(body, signer.sign(body))


class TestApiWebhooks:
    """API verification asks PayPal's verify-webhook-signature endpoint."""

    @pytest.fixture
    def api_provider(self, clock: Clock) -> Iterator[PayPalProvider]:
        with httpx.Client() as http:
            yield PayPalProvider(
                CLIENT_ID, CLIENT_SECRET, WEBHOOK_ID, http_client=http, clock=clock, webhook_verification="api"
            )

    def test_success_yields_the_event(
        self, api: respx.MockRouter, api_provider: PayPalProvider, signer: PayPalWebhookSigner
    ) -> None:
        route = api.post("/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": "SUCCESS"}
        )
        api.get("/v2/payments/captures/3C679366HH908993F").respond(200, json=paypal_capture())
        body = capture_completed(signer)
        headers = signer.sign(body, transmission_id="69cd13f0-d67a-11e5-baa3-778b53f4ae55")

        event = api_provider.parse_webhook(body, lower(headers))

        sent = sent_json(route)
        assert_schema("webhooks", "verify_webhook_signature", sent)
        assert {
            "auth_algo": "SHA256withRSA",
            "cert_url": signer.cert_url,
            "transmission_id": "69cd13f0-d67a-11e5-baa3-778b53f4ae55",
            "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
            "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
            "webhook_id": WEBHOOK_ID,
            "webhook_event": json.loads(body),
        } == sent
        assert f"Bearer {TOKEN}" == route.calls[0].request.headers["Authorization"]
        assert PaymentStatus.SUCCEEDED == event.status

    def test_failure_is_rejected(
        self, api: respx.MockRouter, api_provider: PayPalProvider, signer: PayPalWebhookSigner
    ) -> None:
        api.post("/v1/notifications/verify-webhook-signature").respond(200, json={"verification_status": "FAILURE"})
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="did not verify"):
            api_provider.parse_webhook(body, signer.sign(body))

    def test_a_refused_verification_request_is_rejected(
        self, api: respx.MockRouter, api_provider: PayPalProvider, signer: PayPalWebhookSigner
    ) -> None:
        api.post("/v1/notifications/verify-webhook-signature").respond(
            400, json=paypal_error("INVALID_PARAMETER_SYNTAX", http_status=400)
        )
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="refused"):
            api_provider.parse_webhook(body, signer.sign(body))

    def test_a_stale_delivery_is_rejected_without_a_call(
        self, api: respx.MockRouter, api_provider: PayPalProvider, signer: PayPalWebhookSigner
    ) -> None:
        route = api.post("/v1/notifications/verify-webhook-signature").respond(
            200, json={"verification_status": "SUCCESS"}
        )
        body = capture_completed(signer)

        with pytest.raises(WebhookVerificationError, match="tolerance"):
            api_provider.parse_webhook(body, signer.sign(body, transmission_time=NOW - timedelta(hours=1)))

        assert 0 == route.call_count


def event(event_type: str, resource: Mapping[str, Any], *, resource_type: str | None = None) -> dict[str, Any]:
    envelope = {
        "id": "WH-7Y7254563A4550640-11V2185806837105M",
        "event_version": "1.0",
        "create_time": "2025-06-01T12:00:00.000Z",
        "resource_type": resource_type or event_type.split(".")[1].lower(),
        "event_type": event_type,
        "summary": event_type,
        "resource": dict(resource),
    }
    assert_schema("webhooks", "event", envelope)
    return envelope


class TestEventNormalization:
    """PayPal's event types become paykit events keyed by the order id."""

    def test_order_approved_changes_no_status(self) -> None:
        normalized = normalize_event(event("CHECKOUT.ORDER.APPROVED", paypal_order(status="APPROVED")))

        assert (EventKind.PAYMENT, None, "5O190127TN364715T", "pay_1") == (
            normalized.kind,
            normalized.status,
            normalized.provider_ref,
            normalized.payment_id,
        )
        assert datetime(2025, 6, 1, 12, 0, tzinfo=UTC) == normalized.occurred_at

    def test_order_completed_with_a_capture_succeeded(self) -> None:
        normalized = normalize_event(
            event("CHECKOUT.ORDER.COMPLETED", paypal_order(status="COMPLETED", captures=[paypal_capture()]))
        )

        assert (PaymentStatus.SUCCEEDED, Money.of("12.50", "USD"), {"capture_id": "3C679366HH908993F"}) == (
            normalized.status,
            normalized.amount_captured,
            normalized.provider_data,
        )

    def test_order_completed_with_a_declined_capture_failed(self) -> None:
        normalized = normalize_event(
            event(
                "CHECKOUT.ORDER.COMPLETED",
                paypal_order(status="COMPLETED", captures=[paypal_capture(status="DECLINED")]),
            )
        )

        assert PaymentStatus.FAILED == normalized.status

    @pytest.mark.parametrize(
        ("event_type", "status", "expected"),
        [
            ("PAYMENT.CAPTURE.COMPLETED", "COMPLETED", PaymentStatus.SUCCEEDED),
            ("PAYMENT.CAPTURE.PENDING", "PENDING", PaymentStatus.PROCESSING),
            ("PAYMENT.CAPTURE.DENIED", "DECLINED", PaymentStatus.FAILED),
            ("PAYMENT.CAPTURE.DECLINED", "DECLINED", PaymentStatus.FAILED),
        ],
    )
    def test_capture_events_find_their_order(self, event_type: str, status: str, expected: PaymentStatus) -> None:
        normalized = normalize_event(event(event_type, paypal_capture(status=status)))

        assert (EventKind.PAYMENT, expected, "5O190127TN364715T", "pay_1", "3C679366HH908993F") == (
            normalized.kind,
            normalized.status,
            normalized.provider_ref,
            normalized.payment_id,
            normalized.provider_data["capture_id"],
        )

    def test_a_declined_capture_says_why(self) -> None:
        normalized = normalize_event(event("PAYMENT.CAPTURE.DENIED", paypal_capture(status="DECLINED")))

        assert ("capture_declined", None) == (normalized.failure_code, normalized.amount_captured)

    def test_a_partial_capture_of_an_authorization_is_no_amount_mismatch(self) -> None:
        capture = paypal_capture(
            amount={"currency_code": "USD", "value": "10.00"}, authorization_id="0VF52814937998046"
        )

        normalized = normalize_event(event("PAYMENT.CAPTURE.COMPLETED", capture))

        assert (None, Money.of("10", "USD")) == (normalized.amount, normalized.amount_captured)

    @pytest.mark.parametrize("event_type", ["PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"])
    def test_refund_events(self, event_type: str) -> None:
        normalized = normalize_event(event(event_type, paypal_refund(total_refunded="7.50"), resource_type="refund"))

        assert (
            EventKind.REFUND,
            "1JU08902781691411",
            RefundStatus.SUCCEEDED,
            "pay_1",
            Money.of("5", "USD"),
            {"capture_id": "3C679366HH908993F"},
        ) == (
            normalized.kind,
            normalized.refund_ref,
            normalized.refund_status,
            normalized.payment_id,
            normalized.amount_refunded,
            normalized.provider_data,
        )

    @pytest.mark.parametrize(
        ("event_type", "status", "expected"),
        [
            ("PAYMENT.AUTHORIZATION.CREATED", "CREATED", PaymentStatus.AUTHORIZED),
            ("PAYMENT.AUTHORIZATION.VOIDED", "VOIDED", PaymentStatus.CANCELED),
        ],
    )
    def test_authorization_events(self, event_type: str, status: str, expected: PaymentStatus) -> None:
        normalized = normalize_event(event(event_type, paypal_authorization(status=status)))

        assert (expected, "5O190127TN364715T", {"authorization_id": "0VF52814937998046"}) == (
            normalized.status,
            normalized.provider_ref,
            normalized.provider_data,
        )

    def test_dispute_events(self) -> None:
        dispute = {
            "dispute_id": "PP-D-27803",
            "status": "OPEN",
            "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "dispute_amount": {"currency_code": "USD", "value": "3.00"},
            "disputed_transactions": [{"seller_transaction_id": "3C679366HH908993F", "custom": "pay_1"}],
        }

        normalized = normalize_event(event("CUSTOMER.DISPUTE.CREATED", dispute))

        assert (EventKind.DISPUTE, "pay_1", None) == (normalized.kind, normalized.payment_id, normalized.amount)
        assert {
            "dispute_id": "PP-D-27803",
            "dispute_status": "OPEN",
            "dispute_reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            "dispute_amount": "3.00 USD",
            "capture_id": "3C679366HH908993F",
        } == normalized.provider_data

    def test_unknown_types_are_ignored(self) -> None:
        normalized = normalize_event(event("BILLING.SUBSCRIPTION.CREATED", {"id": "I-BW452GLLEP1G"}))

        assert (EventKind.IGNORED, None, None) == (normalized.kind, normalized.status, normalized.provider_ref)


# -- through PaymentService and handle_webhook ----------------------------------


class PayPalSandbox:
    """A respx stand-in for PayPal that answers with the paykit ids it was sent."""

    def __init__(self, router: respx.MockRouter, signer: PayPalWebhookSigner) -> None:
        self.router = router
        self.orders: dict[str, dict[str, Any]] = {}
        router.post(f"{API}/v1/oauth2/token").respond(200, json={"access_token": TOKEN, "expires_in": 32400})
        router.get(signer.cert_url).mock(side_effect=signer.handler)
        # The confirming GETs of webhook resources: what the signer's event bodies hold.
        router.get(url__regex=rf"{API}/v2/payments/(captures|refunds|authorizations)/[^/]+$").mock(
            side_effect=signer.handler
        )
        self.create = router.post(f"{API}/v2/checkout/orders").mock(side_effect=self._create)
        self.capture = router.post(url__regex=rf"{API}/v2/checkout/orders/\w+/capture").mock(side_effect=self._capture)
        self.authorize = router.post(url__regex=rf"{API}/v2/checkout/orders/\w+/authorize").mock(
            side_effect=self._authorize
        )
        self.capture_authorization = router.post(url__regex=rf"{API}/v2/payments/authorizations/\w+/capture").mock(
            side_effect=self._capture_authorization
        )
        self.refund = router.post(url__regex=rf"{API}/v2/payments/captures/\w+/refund").mock(
            side_effect=lambda request: httpx.Response(
                201, json=paypal_refund(value=json.loads(request.content)["amount"]["value"])
            )
        )

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert_schema("orders", "order_request", body)
        unit = body["purchase_units"][0]
        order_id = f"ORDER{len(self.orders) + 1}"
        self.orders[order_id] = {"custom_id": unit["custom_id"], "amount": unit["amount"], "intent": body["intent"]}
        return httpx.Response(
            200, json=paypal_order(order_id, intent=body["intent"], amount=unit["amount"], custom_id=unit["custom_id"])
        )

    def _order_id(self, request: httpx.Request) -> str:
        return request.url.path.split("/")[4]

    def _capture(self, request: httpx.Request) -> httpx.Response:
        order_id = self._order_id(request)
        order = self.orders[order_id]
        capture = paypal_capture(amount=order["amount"], order_id=order_id, custom_id=order["custom_id"])
        return httpx.Response(
            201,
            json=paypal_order(
                order_id, status="COMPLETED", amount=order["amount"], custom_id=order["custom_id"], captures=[capture]
            ),
        )

    def _authorize(self, request: httpx.Request) -> httpx.Response:
        order_id = self._order_id(request)
        order = self.orders[order_id]
        authorization = paypal_authorization(order_id=order_id, custom_id=order["custom_id"])
        return httpx.Response(
            201,
            json=paypal_order(
                order_id,
                status="COMPLETED",
                intent="AUTHORIZE",
                amount=order["amount"],
                custom_id=order["custom_id"],
                authorizations=[authorization],
            ),
        )

    def _capture_authorization(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert_schema("payments", "capture_request", body)
        amount = body.get("amount", {"currency_code": "USD", "value": "12.50"})
        return httpx.Response(201, json=paypal_capture(amount=amount, authorization_id="0VF52814937998046"))


@pytest.fixture
def service_setup(signer: PayPalWebhookSigner, clock: Clock) -> Iterator[tuple[PaymentService, PayPalSandbox]]:
    with respx.mock(assert_all_called=False) as router, httpx.Client() as http:
        sandbox = PayPalSandbox(router, signer)
        provider = PayPalProvider(
            CLIENT_ID,
            CLIENT_SECRET,
            WEBHOOK_ID,
            http_client=http,
            clock=clock,
            return_url="https://shop.example/paypal/return",
        )
        yield PaymentService(storage=MemoryStorage(), providers=[provider], clock=clock), sandbox


class TestThroughTheService:
    """The adapter drives PaymentService flows and webhooks end to end."""

    def test_pay_then_refund_in_part(self, service_setup: tuple[PaymentService, PayPalSandbox]) -> None:
        service, sandbox = service_setup

        payment = service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal")
        created = sandbox.create.calls[0].request
        assert (PaymentStatus.REQUIRES_ACTION, "ORDER1") == (payment.status, payment.provider_ref)
        assert "https://www.sandbox.paypal.com/checkoutnow?token=ORDER1" == payment.redirect_url
        assert f"paykit-{payment.id}-create" == created.headers["PayPal-Request-Id"]
        assert payment.id == json.loads(created.content)["purchase_units"][0]["custom_id"]

        payment = service.confirm_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, 1250) == (payment.status, payment.captured_minor)
        assert "3C679366HH908993F" == payment.provider_data["capture_id"]

        refund = service.refund_payment(payment.id, amount=Money.of("5", "USD"))
        assert RefundStatus.SUCCEEDED == refund.status
        assert "/v2/payments/captures/3C679366HH908993F/refund" == sandbox.refund.calls[0].request.url.path
        assert PaymentStatus.PARTIALLY_REFUNDED == service.get_payment(payment.id).status

    def test_authorize_then_capture_in_part(self, service_setup: tuple[PaymentService, PayPalSandbox]) -> None:
        service, sandbox = service_setup
        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal", capture_method="manual"
        )

        payment = service.confirm_payment(payment.id)
        assert (PaymentStatus.AUTHORIZED, "0VF52814937998046") == (
            payment.status,
            payment.provider_data["authorization_id"],
        )

        payment = service.capture_payment(payment.id, amount=Money.of("10", "USD"))
        assert (PaymentStatus.SUCCEEDED, 1000) == (payment.status, payment.captured_minor)
        assert {"final_capture": True, "amount": {"currency_code": "USD", "value": "10.00"}} == json.loads(
            sandbox.capture_authorization.calls[0].request.content
        )

    def test_a_signed_capture_webhook_settles_the_payment_once(
        self, service_setup: tuple[PaymentService, PayPalSandbox], signer: PayPalWebhookSigner
    ) -> None:
        service, _ = service_setup
        payment = service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal")
        body = signer.event_body(
            "PAYMENT.CAPTURE.COMPLETED", paypal_capture(order_id="ORDER1", custom_id=payment.id), event_id="WH-1"
        )

        first = handle_webhook(service, "paypal", body=body, headers=signer.sign(body))
        again = handle_webhook(service, "paypal", body=body, headers=signer.sign(body))

        assert (200, "applied", 200, "duplicate") == (
            first.status_code,
            first.outcome,
            again.status_code,
            again.outcome,
        )
        stored = service.get_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, 1250, "3C679366HH908993F") == (
            stored.status,
            stored.captured_minor,
            stored.provider_data["capture_id"],
        )

    def test_a_forged_webhook_changes_nothing(
        self, service_setup: tuple[PaymentService, PayPalSandbox], signer: PayPalWebhookSigner
    ) -> None:
        service, _ = service_setup
        payment = service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal")
        body = signer.event_body("PAYMENT.CAPTURE.COMPLETED", paypal_capture(order_id="ORDER1", custom_id=payment.id))
        headers = signer.sign(body)

        response = handle_webhook(service, "paypal", body=body.replace(b"12.50", b"1.50"), headers=headers)

        assert 400 == response.status_code
        assert PaymentStatus.REQUIRES_ACTION == service.get_payment(payment.id).status

    def test_a_declined_funding_source_leaves_the_payer_a_second_try(
        self, service_setup: tuple[PaymentService, PayPalSandbox]
    ) -> None:
        service, sandbox = service_setup
        payment = service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal")
        sandbox.capture.mock(
            side_effect=None, return_value=httpx.Response(422, json=paypal_error("INSTRUMENT_DECLINED"))
        )

        payment = service.confirm_payment(payment.id)

        assert PaymentStatus.REQUIRES_ACTION == payment.status
        assert "https://www.sandbox.paypal.com/checkoutnow?token=ORDER1" == payment.redirect_url

    def test_a_refused_transaction_fails_the_payment(self, service_setup: tuple[PaymentService, PayPalSandbox]) -> None:
        service, sandbox = service_setup
        payment = service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="paypal")
        sandbox.capture.mock(
            side_effect=None, return_value=httpx.Response(422, json=paypal_error("TRANSACTION_REFUSED"))
        )

        with pytest.raises(PaymentDeclinedError):
            service.confirm_payment(payment.id)

        stored = service.get_payment(payment.id)
        assert (PaymentStatus.FAILED, "TRANSACTION_REFUSED") == (stored.status, stored.failure_code)
