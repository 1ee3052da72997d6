"""StripeProvider against respx-mocked Stripe: the real requests, Stripe-shaped answers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
import stripe
from hypothesis import given
from hypothesis import strategies as st

from paykit import PaymentService
from paykit._errors import (
    AuthenticationError,
    ConfigurationError,
    IdempotencyConflictError,
    InvalidRequestError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from paykit._models import EventKind, Payment, PaymentMethod, Refund, RefundStatus
from paykit._money import CURRENCY_EXPONENTS, Money
from paykit._status import PaymentStatus
from paykit.providers._base import CreatePaymentRequest, ProviderPaymentMethod
from paykit.providers._stripe_wire import (
    from_stripe_amount,
    map_payment_intent_status,
    normalize_event,
    to_stripe_amount,
)
from paykit.providers.stripe import StripeProvider
from paykit.storage import MemoryStorage
from paykit.testing import capture_logs
from paykit.testing._stripe import sign_stripe_webhook, stripe_event
from paykit.webhooks import handle_webhook

from .._shared import shared_path

FIXTURES = json.loads(shared_path("specs", "stripe", "fixtures3.json").read_text())["resources"]
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECRET = "whsec_test_secret_one"
OLD_SECRET = "whsec_test_secret_old"
API = "https://api.stripe.com"


def fixture(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of Stripe's example object ``name`` with ``changes`` applied."""
    obj: dict[str, Any] = copy.deepcopy(FIXTURES[name])
    obj.update(changes)
    return obj


def payment_intent(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "pi_123",
        "client_secret": "pi_123_secret_abc",
        "amount": 1250,
        "currency": "usd",
        "status": "requires_confirmation",
        "last_payment_error": None,
        "next_action": None,
        "metadata": {"paykit_payment_id": "pay_1", "paykit_user_id": "u1"},
    }
    return fixture("payment_intent", **{**base, **changes})


def make_payment(**changes: Any) -> Payment:
    values: dict[str, Any] = {
        "id": "pay_1",
        "user_id": "u1",
        "provider": "stripe",
        "amount": Money.of("12.50", "USD"),
        "provider_ref": "pi_123",
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return Payment(**values)


def form(request: httpx.Request) -> dict[str, str]:
    """The request's form-encoded body as a flat dict (Stripe never repeats keys)."""
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def stripe_error(status: int, **error: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers={"Request-Id": "req_test_1"})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


@pytest.fixture
def provider() -> Iterator[StripeProvider]:
    p = StripeProvider("sk_test_unit", webhook_secrets=[SECRET, OLD_SECRET], clock=lambda: NOW)
    yield p
    p.close()


def create_request(**changes: Any) -> CreatePaymentRequest:
    values: dict[str, Any] = {
        "payment_id": "pay_1",
        "user_id": "u1",
        "amount": Money.of("12.50", "USD"),
        "capture_method": "automatic",
        "idempotency_key": "paykit-pay_1-create",
    }
    values.update(changes)
    return CreatePaymentRequest(**values)


class TestAmounts:
    """Stripe's amount rules: zero-decimal, three-decimal, the ISK quirk; never rounding."""

    @pytest.mark.parametrize(
        ("money", "expected"),
        [
            (Money.of("12.50", "USD"), (1250, "usd")),
            (Money.of("1000", "JPY"), (1000, "jpy")),
            (Money.of("5.120", "KWD"), (5120, "kwd")),
            (Money.of("100", "ISK"), (10000, "isk")),
            (Money.of("1500", "MGA"), (1500, "mga")),
        ],
    )
    def test_converts_to_stripe_units(self, money: Money, expected: tuple[int, str]) -> None:
        """Each currency is sent in the units Stripe expects for it."""
        assert expected == to_stripe_amount(money)

    def test_three_decimal_amount_must_end_in_zero(self) -> None:
        """KWD 5.124 is rejected, naming the amount and both valid neighbours."""
        with pytest.raises(InvalidRequestError) as info:
            to_stripe_amount(Money.of("5.124", "KWD"))

        assert "5.124 KWD" in str(info.value)
        assert "5.120 KWD" in str(info.value)
        assert "5.130 KWD" in str(info.value)

    def test_fraction_of_whole_unit_currency_is_rejected(self) -> None:
        """MGA is two-decimal in ISO 4217 but whole units at Stripe: 12.34 cannot be sent."""
        with pytest.raises(InvalidRequestError, match="whole units"):
            to_stripe_amount(Money.of("12.34", "MGA"))

    def test_isk_amount_not_multiple_of_100_is_rejected_on_read(self) -> None:
        """A Stripe ISK amount with a fraction cannot become ISK Money."""
        with pytest.raises(InvalidRequestError):
            from_stripe_amount(10050, "isk")

    @given(
        currency=st.sampled_from(sorted(c for c, e in CURRENCY_EXPONENTS.items() if e <= 3)),
        major=st.integers(min_value=0, max_value=10**9),
    )
    def test_whole_amounts_round_trip(self, currency: str, major: int) -> None:
        """Any whole amount survives to Stripe and back unchanged."""
        money = Money.of(major, currency)

        assert money == from_stripe_amount(*to_stripe_amount(money))


class TestStatusMapping:
    """PaymentIntent statuses map to paykit's as PROVIDERS.md lists."""

    @pytest.mark.parametrize(
        ("stripe_status", "expected"),
        [
            ("requires_payment_method", PaymentStatus.PENDING),
            ("requires_confirmation", PaymentStatus.PENDING),
            ("requires_action", PaymentStatus.REQUIRES_ACTION),
            ("processing", PaymentStatus.PROCESSING),
            ("requires_capture", PaymentStatus.AUTHORIZED),
            ("succeeded", PaymentStatus.SUCCEEDED),
            ("canceled", PaymentStatus.CANCELED),
        ],
    )
    def test_maps_each_status(self, stripe_status: str, expected: PaymentStatus) -> None:
        """Each documented status has one paykit status."""
        assert expected == map_payment_intent_status(stripe_status)

    def test_failed_attempt_is_failed(self) -> None:
        """Back at requires_payment_method with a last_payment_error means the attempt failed."""
        assert map_payment_intent_status("requires_payment_method", {"code": "card_declined"}) == PaymentStatus.FAILED

    def test_unknown_status_is_rejected(self) -> None:
        """A status Stripe does not document is an error, not a guess."""
        with pytest.raises(InvalidRequestError):
            map_payment_intent_status("teleported")


class TestConstruction:
    """Constructor arguments are checked; capabilities say what Stripe supports."""

    def test_capabilities(self, provider: StripeProvider) -> None:
        """Stripe supports every optional capability."""
        caps = provider.capabilities

        assert (
            caps.manual_capture,
            caps.partial_capture,
            caps.refunds,
            caps.partial_refunds,
            caps.saved_payment_methods,
            caps.server_side_confirm,
        ) == (True, True, True, True, True, True)
        assert provider.name == "stripe"

    @pytest.mark.parametrize(
        "kwargs",
        [{"webhook_secrets": "whsec_x"}, {"webhook_tolerance": 0}, {"max_network_retries": -1}],
    )
    def test_rejects_bad_arguments(self, kwargs: dict[str, Any]) -> None:
        """A lone string as secrets, a zero tolerance or negative retries are refused."""
        with pytest.raises(ConfigurationError):
            StripeProvider("sk_test_x", **{"webhook_secrets": [SECRET], **kwargs})

    @pytest.mark.parametrize("secrets", [None, [], [""], [SECRET, ""]])
    def test_webhook_secrets_are_required(self, secrets: list[str] | None) -> None:
        """Without a usable secret every webhook would be a 400: refuse at construction, and say how to fix it."""
        with pytest.raises(ConfigurationError, match=r"needs webhook_secrets.*webhooks=False"):
            StripeProvider("sk_test_x", webhook_secrets=secrets)

    def test_webhooks_can_be_turned_off(self) -> None:
        """webhooks=False: no secret needed, and every webhook is refused as unverifiable."""
        p = StripeProvider("sk_test_x", webhooks=False)
        body = stripe_event("payment_intent.succeeded", payment_intent())
        headers = sign_stripe_webhook(body, SECRET)

        assert "StripeProvider(webhooks=False)" == repr(p)
        with pytest.raises(WebhookVerificationError, match="webhooks=False"):
            p.parse_webhook(body, headers)

    def test_secrets_with_webhooks_off_is_a_contradiction(self) -> None:
        with pytest.raises(ConfigurationError, match="webhooks=False"):
            StripeProvider("sk_test_x", webhook_secrets=[SECRET], webhooks=False)

    def test_repr_hides_secrets(self, provider: StripeProvider) -> None:
        """Neither the API key nor the webhook secrets appear in repr."""
        text = repr(provider)

        assert "sk_test_unit" not in text
        assert SECRET not in text

    def test_injected_http_client_and_api_base_are_used(self) -> None:
        """Requests go through the caller's httpx.Client to the configured address."""
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=payment_intent())

        with httpx.Client(transport=httpx.MockTransport(handler)) as client:
            p = StripeProvider("sk_test_x", webhooks=False, http_client=client, api_base="http://127.0.0.1:9")
            p.retrieve_payment(make_payment())

        assert [str(r.url) for r in seen] == ["http://127.0.0.1:9/v1/payment_intents/pi_123"]


class TestCreatePayment:
    """create_payment sends one PaymentIntent creation with paykit's ids."""

    def test_sends_amount_capture_method_metadata_and_key(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        """The form carries the amount in Stripe units, metadata and the idempotency key header."""
        route = api.post("/v1/payment_intents").respond(200, json=payment_intent())

        provider.create_payment(
            create_request(
                amount=Money.of("5.120", "KWD"),
                capture_method="manual",
                metadata={"order": "42"},
                description="Order 42",
                customer_ref="cus_1",
            )
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
            "description": "Order 42",
            "customer": "cus_1",
        }
        assert request.headers["idempotency-key"] == "paykit-pay_1-create"
        assert request.headers["authorization"] == "Bearer sk_test_unit"

    def test_reads_status_and_client_secret(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """The PaymentIntent's id, status and client secret come back normalized."""
        api.post("/v1/payment_intents").respond(
            200, json=payment_intent(status="requires_payment_method", latest_charge="ch_1")
        )

        result = provider.create_payment(create_request())

        assert (
            result.provider_ref,
            result.status,
            result.client_secret,
        ) == ("pi_123", PaymentStatus.PENDING, "pi_123_secret_abc")
        assert Money.of("0", "USD") == result.amount_captured
        assert dict(result.provider_data) == {"stripe_charge_id": "ch_1"}

    def test_three_decimal_rule_checked_before_any_request(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        """An amount Stripe would refuse never leaves the process."""
        route = api.post("/v1/payment_intents")

        with pytest.raises(InvalidRequestError):
            provider.create_payment(create_request(amount=Money.of("5.125", "KWD")))

        assert route.call_count == 0

    def test_return_url_kept_for_confirmation(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A return URL is remembered in provider_data and sent again at confirmation."""
        api.post("/v1/payment_intents").respond(200, json=payment_intent())
        confirm = api.post("/v1/payment_intents/pi_123/confirm").respond(
            200, json=payment_intent(status="succeeded", amount_received=1250)
        )

        created = provider.create_payment(create_request(return_url="https://shop.test/done"))
        provider.confirm_payment(
            make_payment(provider_data=dict(created.provider_data)),
            payment_method_ref=None,
            idempotency_key="k",
        )

        assert form(confirm.calls.last.request)["return_url"] == "https://shop.test/done"


class TestConfirmCaptureCancelRetrieve:
    """The other PaymentIntent calls hit their endpoints with the right fields."""

    def test_confirm_sends_new_payment_method(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A method the PaymentIntent does not have yet is sent with the confirmation."""
        route = api.post("/v1/payment_intents/pi_123/confirm").respond(
            200, json=payment_intent(status="succeeded", amount_received=1250, payment_method="pm_1")
        )

        result = provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="conf-1")

        assert form(route.calls.last.request) == {"payment_method": "pm_1"}
        assert route.calls.last.request.headers["idempotency-key"] == "conf-1"
        assert (PaymentStatus.SUCCEEDED, Money.of("12.50", "USD"), "pm_1") == (
            result.status,
            result.amount_captured,
            result.payment_method_ref,
        )

    def test_confirm_omits_method_already_set(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """The method given at creation is not sent twice."""
        route = api.post("/v1/payment_intents/pi_123/confirm").respond(200, json=payment_intent(status="processing"))

        provider.confirm_payment(
            make_payment(payment_method_ref="pm_1"), payment_method_ref="pm_1", idempotency_key="k"
        )

        assert route.calls.last.request.content == b""

    def test_requires_action_passes_next_action(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """3-D Secure: the app gets the next action, its redirect URL and the client secret."""
        next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.test/3ds"}}
        api.post("/v1/payment_intents/pi_123/confirm").respond(
            200, json=payment_intent(status="requires_action", next_action=next_action)
        )

        result = provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="k")

        assert result.status == PaymentStatus.REQUIRES_ACTION
        assert next_action == result.next_action
        assert result.redirect_url == "https://hooks.stripe.test/3ds"
        assert result.client_secret == "pi_123_secret_abc"

    def test_partial_capture_sends_amount_to_capture(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Capturing part of the amount sends amount_to_capture in Stripe units."""
        route = api.post("/v1/payment_intents/pi_123/capture").respond(
            200, json=payment_intent(status="succeeded", amount_received=500)
        )

        result = provider.capture_payment(make_payment(), amount=Money.of("5.00", "USD"), idempotency_key="cap-1")

        assert form(route.calls.last.request) == {"amount_to_capture": "500"}
        assert route.calls.last.request.headers["idempotency-key"] == "cap-1"
        assert Money.of("5.00", "USD") == result.amount_captured

    def test_full_capture_sends_no_amount(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A full capture leaves the amount to Stripe."""
        route = api.post("/v1/payment_intents/pi_123/capture").respond(
            200, json=payment_intent(status="succeeded", amount_received=1250)
        )

        provider.capture_payment(make_payment(), amount=None, idempotency_key="cap-1")

        assert route.calls.last.request.content == b""

    def test_capture_in_other_currency_is_rejected(self, provider: StripeProvider) -> None:
        """Capturing EUR of a USD payment never reaches Stripe."""
        with pytest.raises(InvalidRequestError):
            provider.capture_payment(make_payment(), amount=Money.of("1", "EUR"), idempotency_key="k")

    def test_cancel(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Cancel posts to the cancel endpoint and reads CANCELED."""
        route = api.post("/v1/payment_intents/pi_123/cancel").respond(200, json=payment_intent(status="canceled"))

        result = provider.cancel_payment(make_payment(), idempotency_key="can-1")

        assert result.status == PaymentStatus.CANCELED
        assert route.calls.last.request.headers["idempotency-key"] == "can-1"

    def test_retrieve_reads_failed_attempt(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A failed attempt reads as FAILED with the decline code and message."""
        error = {"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined."}
        route = api.get("/v1/payment_intents/pi_123").respond(
            200, json=payment_intent(status="requires_payment_method", last_payment_error=error)
        )

        result = provider.retrieve_payment(make_payment())

        assert route.call_count == 1
        assert (
            result.status,
            result.failure_code,
            result.failure_message,
        ) == (PaymentStatus.FAILED, "insufficient_funds", "Declined.")

    def test_payment_without_intent_is_rejected(self, provider: StripeProvider) -> None:
        """A payment never created at Stripe cannot be confirmed there."""
        with pytest.raises(InvalidRequestError):
            provider.confirm_payment(make_payment(provider_ref=None), payment_method_ref=None, idempotency_key="k")


class TestRefunds:
    """Refunds name the PaymentIntent, the amount and paykit's ids."""

    def make_refund(self, amount: str = "2.50") -> Refund:
        return Refund(
            id="ref_1",
            payment_id="pay_1",
            user_id="u1",
            provider="stripe",
            amount=Money.of(amount, "USD"),
            created_at=NOW,
            updated_at=NOW,
        )

    @pytest.mark.parametrize(
        ("stripe_status", "expected"),
        [("pending", RefundStatus.PENDING), ("succeeded", RefundStatus.SUCCEEDED), ("failed", RefundStatus.FAILED)],
    )
    def test_partial_refund(
        self, api: respx.MockRouter, provider: StripeProvider, stripe_status: str, expected: RefundStatus
    ) -> None:
        """The refund request carries the amount; its status is read back."""
        route = api.post("/v1/refunds").respond(
            200, json=fixture("refund", id="re_1", amount=250, status=stripe_status, payment_intent="pi_123")
        )

        result = provider.refund_payment(make_payment(), self.make_refund(), idempotency_key="ref-key")

        assert form(route.calls.last.request) == {
            "payment_intent": "pi_123",
            "amount": "250",
            "metadata[paykit_payment_id]": "pay_1",
            "metadata[paykit_refund_id]": "ref_1",
        }
        assert route.calls.last.request.headers["idempotency-key"] == "ref-key"
        assert ("re_1", expected) == (result.provider_ref, result.status)


class TestSavedPaymentMethods:
    """One Customer per user; methods attached, listed, made default and detached."""

    def test_first_save_creates_customer_once(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Without a customer_ref a Customer is created with a key derived from the user id."""
        customers = api.post("/v1/customers").respond(200, json=fixture("customer", id="cus_new"))
        attach = api.post("/v1/payment_methods/pm_1/attach").respond(
            200, json=fixture("payment_method", id="pm_1", customer="cus_new")
        )

        method, customer_ref = provider.save_payment_method("u1", "pm_1", customer_ref=None, idempotency_key="save-1")

        assert customer_ref == "cus_new"
        assert form(customers.calls.last.request) == {"metadata[paykit_user_id]": "u1"}
        assert customers.calls.last.request.headers["idempotency-key"] == "paykit-customer-u1"
        assert form(attach.calls.last.request) == {"customer": "cus_new"}
        assert attach.calls.last.request.headers["idempotency-key"] == "save-1"
        assert ProviderPaymentMethod("pm_1", "card", "visa", "4242", 8, 2030) == method

    def test_known_customer_is_reused(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """With a customer_ref no Customer is created."""
        customers = api.post("/v1/customers")
        api.post("/v1/payment_methods/pm_1/attach").respond(200, json=fixture("payment_method", id="pm_1"))

        _, customer_ref = provider.save_payment_method("u1", "pm_1", customer_ref="cus_1", idempotency_key="k")

        assert (customer_ref, customers.call_count) == ("cus_1", 0)

    def test_list_default_and_detach(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Listing reads card details; default and detach hit their endpoints."""
        api.get("/v1/customers/cus_1/payment_methods").respond(
            200,
            json={
                "object": "list",
                "url": "/v1/customers/cus_1/payment_methods",
                "has_more": False,
                "data": [fixture("payment_method", id="pm_1"), fixture("payment_method", id="pm_2")],
            },
        )
        update = api.post("/v1/customers/cus_1").respond(200, json=fixture("customer", id="cus_1"))
        detach = api.post("/v1/payment_methods/pm_1/detach").respond(200, json=fixture("payment_method"))
        saved = PaymentMethod(
            id="m1", user_id="u1", provider="stripe", provider_ref="pm_1", created_at=NOW, updated_at=NOW
        )
        second = saved.model_copy(update={"id": "m2", "provider_ref": "pm_2"})

        methods = provider.list_payment_methods("cus_1")
        provider.set_default_payment_method(second, customer_ref="cus_1")
        provider.delete_payment_method(saved)

        assert [(m.provider_ref, m.last4) for m in methods] == [("pm_1", "4242"), ("pm_2", "4242")]
        assert form(update.calls.last.request) == {"invoice_settings[default_payment_method]": "pm_2"}
        assert detach.call_count == 1


class TestErrorMapping:
    """Every Stripe failure becomes one PaykitError, keeping what a caller needs."""

    def call(self, provider: StripeProvider) -> None:
        provider.confirm_payment(make_payment(), payment_method_ref="pm_1", idempotency_key="k")

    def test_card_error_is_declined_with_code_and_redacted_body(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
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
            self.call(provider)

        error = info.value
        assert (
            error.decline_code,
            error.code,
            error.http_status,
            error.request_id,
            error.should_retry,
        ) == ("insufficient_funds", "card_declined", 402, "req_test_1", False)
        assert "pi_123_secret_abc" not in json.dumps(error.body)
        assert isinstance(error.__cause__, stripe.CardError)

    def test_logs_carry_no_secret(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Neither the API key nor a client secret reaches the logs, even on failure."""
        api.post("/v1/payment_intents").respond(200, json=payment_intent())
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(
                402, type="card_error", code="card_declined", message="Declined", payment_intent=payment_intent()
            )
        )

        with capture_logs() as logs:
            provider.create_payment(create_request())
            with pytest.raises(PaymentDeclinedError):
                self.call(provider)

        text = repr(logs)
        assert ["stripe payment created", "stripe call failed"] == [entry["event"] for entry in logs]
        assert "sk_test_unit" not in text
        assert "secret_abc" not in text

    def test_authentication_error_hides_key(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A 401 becomes AuthenticationError whose message quotes no key."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(
                401, type="invalid_request_error", message="Invalid API Key provided: sk_test_unit"
            )
        )

        with pytest.raises(AuthenticationError) as info:
            self.call(provider)

        assert "sk_test_unit" not in str(info.value)

    def test_permission_error_is_authentication_error(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A 403 from a restricted key is an AuthenticationError too."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(403, type="invalid_request_error", message="forbidden")
        )

        with pytest.raises(AuthenticationError):
            self.call(provider)

    @pytest.mark.parametrize(
        ("status", "error"),
        [
            (429, {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}),
            (500, {"type": "api_error", "message": "Something went wrong"}),
            (409, {"type": "invalid_request_error", "code": "lock_timeout", "message": "Busy"}),
        ],
    )
    def test_retryable_statuses(
        self, api: respx.MockRouter, provider: StripeProvider, status: int, error: dict[str, str]
    ) -> None:
        """Rate limits, 5xx and 409 are ProviderUnavailableError that may be retried."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(return_value=stripe_error(status, **error))

        with pytest.raises(ProviderUnavailableError) as info:
            self.call(provider)

        assert (True, status) == (info.value.should_retry, info.value.http_status)

    def test_idempotency_error(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A key reused with other parameters is an IdempotencyConflictError."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(400, type="idempotency_error", message="Keys for idempotent requests...")
        )

        with pytest.raises(IdempotencyConflictError):
            self.call(provider)

    def test_connection_error(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A network failure is ProviderUnavailableError, retryable, with nothing from httpx leaking."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(side_effect=httpx.ConnectError("refused"))

        with pytest.raises(ProviderUnavailableError) as info:
            self.call(provider)

        assert (info.value.should_retry, info.value.http_status) == (True, None)

    def test_invalid_request_is_provider_error_not_retried(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        """A 400/404 is a ProviderRequestError (an InvalidRequestError too), keeps Stripe's code, is not retried."""
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(
                404, type="invalid_request_error", code="resource_missing", message="No such payment_intent"
            )
        )

        with pytest.raises(ProviderError) as info:
            self.call(provider)

        assert type(info.value) is ProviderRequestError
        assert isinstance(info.value, InvalidRequestError)
        assert (info.value.code, info.value.should_retry) == ("resource_missing", False)
        assert "No such payment_intent" in str(info.value)

    def test_network_retries_use_the_same_idempotency_key(self, api: respx.MockRouter) -> None:
        """With max_network_retries a 500 is retried once, with the same Idempotency-Key."""
        route = api.post("/v1/payment_intents/pi_123/capture").mock(
            side_effect=[
                stripe_error(500, type="api_error", message="boom"),
                httpx.Response(200, json=payment_intent(status="succeeded", amount_received=1250)),
            ]
        )
        p = StripeProvider("sk_test_x", webhooks=False, max_network_retries=1)

        result = p.capture_payment(make_payment(), amount=None, idempotency_key="cap-7")
        p.close()

        assert result.status == PaymentStatus.SUCCEEDED
        assert [c.request.headers["idempotency-key"] for c in route.calls] == ["cap-7", "cap-7"]

    def test_unreadable_response_is_provider_error(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """A PaymentIntent with a status Stripe never documented is a ProviderError."""
        api.get("/v1/payment_intents/pi_123").respond(200, json=payment_intent(status="teleported"))

        with pytest.raises(ProviderError):
            provider.retrieve_payment(make_payment())


def signed(body: bytes, secret: str = SECRET, timestamp: int = NOW_TS) -> dict[str, str]:
    return sign_stripe_webhook(body, secret, timestamp=timestamp)


def succeeded_event(**changes: Any) -> bytes:
    return stripe_event(
        "payment_intent.succeeded",
        payment_intent(status="succeeded", amount_received=1250, latest_charge="ch_1", **changes),
        event_id="evt_1",
        created=NOW_TS,
    )


class TestWebhookVerification:
    """Stripe-Signature is checked like Stripe documents, future timestamps included."""

    def test_valid_signature(self, provider: StripeProvider) -> None:
        """A correctly signed event parses."""
        body = succeeded_event()

        event = provider.parse_webhook(body, signed(body))

        assert (event.event_id, event.type) == ("evt_1", "payment_intent.succeeded")

    def test_any_of_several_v1_signatures(self, provider: StripeProvider) -> None:
        """A header with several v1 values is accepted when one of them matches."""
        body = succeeded_event()
        good = signed(body)["stripe-signature"].split("v1=")[1]
        header = f"t={NOW_TS},v1={'0' * 64},v0=legacy,v1={good}"

        event = provider.parse_webhook(body, {"stripe-signature": header})

        assert event.event_id == "evt_1"

    def test_rotated_secret(self, provider: StripeProvider) -> None:
        """During a rotation the old secret still verifies."""
        body = succeeded_event()

        event = provider.parse_webhook(body, signed(body, secret=OLD_SECRET))

        assert event.event_id == "evt_1"

    @pytest.mark.parametrize(
        ("case", "body", "headers"),
        [
            ("tampered", succeeded_event(amount=1), signed(succeeded_event())),
            ("wrong secret", succeeded_event(), signed(succeeded_event(), secret="whsec_other")),
            ("stale", succeeded_event(), signed(succeeded_event(), timestamp=NOW_TS - 301)),
            ("future", succeeded_event(), signed(succeeded_event(), timestamp=NOW_TS + 301)),
            ("no header", succeeded_event(), {}),
            ("no timestamp", succeeded_event(), {"stripe-signature": "v1=abc"}),
            ("no v1", succeeded_event(), {"stripe-signature": f"t={NOW_TS},v0=abc"}),
            ("bad timestamp", succeeded_event(), {"stripe-signature": "t=soon,v1=abc"}),
            ("garbage", succeeded_event(), {"stripe-signature": "garbage"}),
        ],
    )
    def test_rejected(self, provider: StripeProvider, case: str, body: bytes, headers: dict[str, str]) -> None:
        """Forged, stale, future-dated and malformed requests raise WebhookVerificationError."""
        with pytest.raises(WebhookVerificationError) as info:
            provider.parse_webhook(body, headers)

        message = str(info.value)
        assert SECRET not in message
        assert OLD_SECRET not in message
        for value in headers.values():
            assert value.rsplit("v1=", 1)[-1] not in message or not value

    def test_timestamp_at_tolerance_edge_is_accepted(self, provider: StripeProvider) -> None:
        """Exactly 300 s old or ahead is still within tolerance."""
        body = succeeded_event()

        provider.parse_webhook(body, signed(body, timestamp=NOW_TS - 300))
        event = provider.parse_webhook(body, signed(body, timestamp=NOW_TS + 300))

        assert event.event_id == "evt_1"

    @pytest.mark.parametrize(
        "body",
        [b"{not json", b"\xff\xfe", b"[]", b'{"id": "evt_1"}', b'{"id": 5, "type": "x"}'],
    )
    def test_malformed_signed_body(self, provider: StripeProvider, body: bytes) -> None:
        """A correctly signed body that is not a Stripe event is rejected."""
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(body, signed(body))

    def test_missing_object_fields(self, provider: StripeProvider) -> None:
        """A payment_intent event whose object lacks its status is rejected."""
        body = stripe_event("payment_intent.succeeded", {"id": "pi_1"}, created=NOW_TS)

        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(body, signed(body))

    def test_no_secret_configured(self) -> None:
        """A provider built with webhooks=False accepts nothing."""
        body = succeeded_event()
        p = StripeProvider("sk_test_x", webhooks=False, clock=lambda: NOW)

        with pytest.raises(WebhookVerificationError):
            p.parse_webhook(body, signed(body))
        p.close()

    def test_helper_signature_verifies_with_stripe_python(self) -> None:
        """sign_stripe_webhook signs exactly as Stripe: stripe-python's own verifier accepts it."""
        body = b'{"id": "evt_x", "object": "event"}'
        headers = sign_stripe_webhook(body, SECRET)

        assert stripe.WebhookSignature.verify_header(body.decode(), headers["stripe-signature"], SECRET, 300)

    def test_helper_accepts_str_payload(self) -> None:
        """A str payload is signed as its UTF-8 bytes."""
        assert sign_stripe_webhook("{}", SECRET, 1) == sign_stripe_webhook(b"{}", SECRET, 1)


class TestHostileSignatureHeaders:
    """Every malformed Stripe-Signature or signed body is a WebhookVerificationError, never another exception."""

    GOOD_V1 = signed(succeeded_event())["stripe-signature"].split("v1=")[1]

    @pytest.mark.parametrize(
        "header",
        [
            f"t={NOW_TS},v1=\u00e9{'0' * 63}",
            f"t={NOW_TS},v1=\u0661\u0662",
            f"t={NOW_TS},v1=\ud800",
            "t=\u00b9\u00b2\u00b3,v1=" + "0" * 64,
            "t=\u0661\u0662\u0663,v1=" + "0" * 64,
            "t=\uff11\uff12,v1=" + "0" * 64,
            "t=" + "9" * 4300 + ",v1=" + "0" * 64,
            "t=" + "1" * 5000 + ",v1=" + "0" * 64,
            f"t=-{NOW_TS},v1=" + "0" * 64,
            f"t= {NOW_TS},v1=" + "0" * 64,
            f"t={NOW_TS}\r\nx-injected: 1,v1=" + "0" * 64,
            f"t={NOW_TS}," + ",".join(["v1=" + "0" * 64] * 200),
            "t=,v1=",
            ",,,=,=,",
            "\x00" * 100,
        ],
    )
    def test_malformed_headers_are_refused(self, provider: StripeProvider, header: str) -> None:
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(succeeded_event(), {"stripe-signature": header})

    def test_a_non_hex_v1_beside_a_good_one_is_skipped(self, provider: StripeProvider) -> None:
        header = f"t={NOW_TS},v1=\u00e9\u00e9,v1={self.GOOD_V1}"

        assert "evt_1" == provider.parse_webhook(succeeded_event(), {"stripe-signature": header}).event_id

    @pytest.mark.parametrize(
        "body",
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"a":' * 5000 + b"1" + b"}" * 5000,
            b'{"id": "evt_1", "type": "x", "n": 1e999999}',
            b'{"id": "evt_1", "type": "x", "n": ' + b"7" * 5000 + b"}",
            b'{"id": "evt_1", "type": "x", "n": NaN}',
            b'{"id": "\\ud800", "type": "x"}',
            b'{"id": "evt_1", "id": "evt_2", "type": "x"}',
            b'{"id": "evt_1", "type": "x", "s": "\xff"}',
            '{"id": "evt_1", "type": "x"}'.encode("utf-16"),
            b'{"id": "evt_1", "type": "payment_intent.succeeded", "created": 99999999999999999,'
            b' "data": {"object": {}}}',
        ],
    )
    def test_hostile_signed_bodies_are_refused(self, provider: StripeProvider, body: bytes) -> None:
        with pytest.raises(WebhookVerificationError):
            provider.parse_webhook(body, signed(body))

    def test_through_handle_webhook_they_are_400(self) -> None:
        p = StripeProvider("sk_test_unit", webhook_secrets=[SECRET], clock=lambda: NOW)
        storage = MemoryStorage()
        with PaymentService(storage=storage, providers=[p]) as service:
            answers = {
                handle_webhook(service, "stripe", succeeded_event(), {"stripe-signature": header}).status_code
                for header in ("t=\u00b9,v1=00", "t=" + "9" * 4300 + ",v1=00", f"t={NOW_TS},v1=\u00e9")
            }

        assert {400} == answers


class TestWebhookNormalization:
    """Each Stripe event type becomes the paykit event the service applies."""

    def test_payment_intent_succeeded(self) -> None:
        """Status, amounts, the paykit payment id and the charge id are read from the PaymentIntent."""
        event = normalize_event(json.loads(succeeded_event()))

        assert (
            event.kind,
            event.status,
            event.provider_ref,
            event.payment_id,
        ) == (EventKind.PAYMENT, PaymentStatus.SUCCEEDED, "pi_123", "pay_1")
        assert (Money.of("12.50", "USD"), Money.of("12.50", "USD")) == (event.amount, event.amount_captured)
        assert event.provider_data == {"stripe_charge_id": "ch_1"}
        assert event.occurred_at == NOW

    @pytest.mark.parametrize(
        ("event_type", "changes", "expected"),
        [
            (
                "payment_intent.payment_failed",
                {"status": "requires_payment_method", "last_payment_error": {"code": "card_declined"}},
                PaymentStatus.FAILED,
            ),
            ("payment_intent.canceled", {"status": "canceled"}, PaymentStatus.CANCELED),
            ("payment_intent.processing", {"status": "processing"}, PaymentStatus.PROCESSING),
            ("payment_intent.requires_action", {"status": "requires_action"}, PaymentStatus.REQUIRES_ACTION),
            ("payment_intent.amount_capturable_updated", {"status": "requires_capture"}, PaymentStatus.AUTHORIZED),
        ],
    )
    def test_payment_intent_statuses(self, event_type: str, changes: dict[str, Any], expected: PaymentStatus) -> None:
        """Every payment_intent event paykit handles maps to its status."""
        event = normalize_event(json.loads(stripe_event(event_type, payment_intent(**changes))))

        assert (EventKind.PAYMENT, expected) == (event.kind, event.status)

    def test_payment_failed_keeps_failure(self) -> None:
        """A failed payment carries the decline code."""
        pi = payment_intent(
            status="requires_payment_method",
            last_payment_error={"code": "card_declined", "decline_code": "stolen_card", "message": "Declined"},
        )
        event = normalize_event(json.loads(stripe_event("payment_intent.payment_failed", pi)))

        assert (event.failure_code, event.failure_message) == ("stolen_card", "Declined")

    @pytest.mark.parametrize(
        ("refunded", "expected"), [(True, PaymentStatus.REFUNDED), (False, PaymentStatus.PARTIALLY_REFUNDED)]
    )
    def test_charge_refunded_with_embedded_refund(self, refunded: bool, expected: PaymentStatus) -> None:
        """charge.refunded reports the newest embedded refund: id, status and its own amount."""
        charge = fixture(
            "charge",
            id="ch_1",
            amount=1250,
            amount_captured=1250,
            amount_refunded=1250 if refunded else 250,
            refunded=refunded,
            payment_intent="pi_123",
            refunds={"object": "list", "data": [fixture("refund", id="re_9", amount=250, status="succeeded")]},
        )
        event = normalize_event(json.loads(stripe_event("charge.refunded", charge)))

        assert (EventKind.REFUND, expected, "pi_123", "re_9", RefundStatus.SUCCEEDED) == (
            event.kind,
            event.status,
            event.provider_ref,
            event.refund_ref,
            event.refund_status,
        )
        assert Money.of("2.50", "USD") == event.amount_refunded
        assert event.provider_data == {"stripe_charge_id": "ch_1"}

    def test_charge_refunded_without_refunds_names_no_refund(self) -> None:
        """Current API versions do not embed refunds: the event names the payment only."""
        charge = fixture("charge", refunded=True, payment_intent="pi_123")
        charge.pop("refunds")
        event = normalize_event(json.loads(stripe_event("charge.refunded", charge)))

        assert (
            event.kind,
            event.provider_ref,
            event.refund_ref,
            event.amount_refunded,
        ) == (EventKind.REFUND, "pi_123", None, None)

    @pytest.mark.parametrize(
        "event_type", ["refund.created", "refund.updated", "refund.failed", "charge.refund.updated"]
    )
    def test_refund_events(self, event_type: str) -> None:
        """refund.* events carry the refund id and status, and the payment from metadata."""
        refund = fixture(
            "refund",
            id="re_1",
            status="failed",
            failure_reason="expired_or_canceled_card",
            payment_intent="pi_123",
            metadata={"paykit_payment_id": "pay_1", "paykit_refund_id": "ref_1"},
        )
        event = normalize_event(json.loads(stripe_event(event_type, refund)))

        assert (
            event.kind,
            event.refund_ref,
            event.refund_status,
            event.provider_ref,
            event.payment_id,
        ) == (EventKind.REFUND, "re_1", RefundStatus.FAILED, "pi_123", "pay_1")
        assert event.failure_message == "expired_or_canceled_card"

    @pytest.mark.parametrize("event_type", ["charge.dispute.created", "charge.dispute.closed"])
    def test_dispute_events(self, event_type: str) -> None:
        """Disputes name the PaymentIntent and carry the dispute's id, status and reason."""
        dispute = fixture("dispute", payment_intent="pi_123")
        event = normalize_event(json.loads(stripe_event(event_type, dispute)))

        assert (event.kind, event.provider_ref, event.status) == (EventKind.DISPUTE, "pi_123", None)
        assert event.provider_data == {
            "stripe_dispute_id": "dp_1Pgc71B7WZ01zgkWMevJiAUx",
            "stripe_dispute_status": "warning_needs_response",
            "stripe_dispute_reason": "general",
        }

    def test_unknown_type_is_ignored(self) -> None:
        """Stripe's own example event (plan.created) is acknowledged and ignored."""
        event = normalize_event(FIXTURES["event"])

        assert (
            event.kind,
            event.event_id,
            event.type,
        ) == (EventKind.IGNORED, "evt_1Pgc76B7WZ01zgkWwyRHS12y", "plan.created")

    def test_refetch_on_webhook_reports_current_state(self, api: respx.MockRouter) -> None:
        """With refetch_on_webhook the PaymentIntent is fetched and its current status wins."""
        route = api.get("/v1/payment_intents/pi_123").respond(
            200, json=payment_intent(status="canceled", amount_received=0)
        )
        p = StripeProvider("sk_test_x", webhook_secrets=[SECRET], refetch_on_webhook=True, clock=lambda: NOW)
        body = succeeded_event()

        event = p.parse_webhook(body, signed(body))
        p.close()

        assert route.call_count == 1
        assert (PaymentStatus.CANCELED, Money.of("0", "USD"), "evt_1") == (
            event.status,
            event.amount_captured,
            event.event_id,
        )
