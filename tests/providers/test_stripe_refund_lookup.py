"""Stripe refunds looked up, checked and reported: amounts, lookups, refund events, refund errors.

Response bodies and webhook objects are Stripe's own example objects (``fixtures3.json``
from Stripe's OpenAPI repository, read from the shared specs beside the repo).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from paykit._errors import (
    InvalidRequestError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
)
from paykit._models import EventKind, Payment, Refund, RefundStatus
from paykit._money import Money
from paykit._status import PaymentStatus
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.stripe import StripeProvider
from paykit.testing._stripe import sign_stripe_webhook, stripe_event

FIXTURES_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "stripe" / "fixtures3.json"
RESOURCES: dict[str, Any] = json.loads(FIXTURES_PATH.read_text())["resources"]
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())
SECRET = "whsec_test_refunds"
API = "https://api.stripe.com"


def resource(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of Stripe's example ``name`` object with ``changes`` applied."""
    obj: dict[str, Any] = copy.deepcopy(RESOURCES[name])
    obj.update(changes)
    return obj


def stripe_refund(ident: str, refund_id: str | None = "ref_1", **changes: Any) -> dict[str, Any]:
    """Stripe's example Refund, for PaymentIntent pi_123, carrying paykit's metadata."""
    metadata = {"paykit_payment_id": "pay_1", "paykit_refund_id": refund_id} if refund_id else {}
    values: dict[str, Any] = {"id": ident, "payment_intent": "pi_123", "metadata": metadata}
    values.update(changes)
    return resource("refund", **values)


def refund_list(*refunds: dict[str, Any], has_more: bool = False) -> dict[str, Any]:
    """A Stripe list object of Refunds, as ``GET /v1/refunds`` answers."""
    return {"object": "list", "url": "/v1/refunds", "has_more": has_more, "data": list(refunds)}


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


def make_refund(**changes: Any) -> Refund:
    values: dict[str, Any] = {
        "id": "ref_1",
        "payment_id": "pay_1",
        "user_id": "u1",
        "provider": "stripe",
        "amount": Money.of("1.00", "USD"),
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(changes)
    return Refund(**values)


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}


def stripe_error(status: int, **error: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": error}, headers={"Request-Id": "req_refund_1"})


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


@pytest.fixture
def provider() -> Iterator[StripeProvider]:
    p = StripeProvider("sk_test_unit", webhook_secrets=[SECRET], clock=lambda: NOW)
    yield p
    p.close()


class TestCheckAmount:
    """check_amount applies, without I/O, the rule every Stripe request applies."""

    @pytest.mark.parametrize(
        "money",
        [
            Money.of("1.010", "KWD"),
            Money.of("0.010", "KWD"),
            Money.of("12.50", "USD"),
            Money.of("100", "JPY"),
            Money.of("100", "ISK"),
            Money.of("0.01", "USD"),
        ],
    )
    def test_accepted(self, provider: StripeProvider, money: Money) -> None:
        provider.check_amount(money)

    @pytest.mark.parametrize(
        "money",
        [
            Money.of("1.001", "KWD"),
            Money.of("0.005", "KWD"),
            Money.of("2.125", "BHD"),
            Money(0, "USD"),
        ],
    )
    def test_refused(self, provider: StripeProvider, money: Money) -> None:
        with pytest.raises(InvalidRequestError):
            provider.check_amount(money)

    def test_create_and_refund_apply_the_same_rule_before_any_request(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        """1.001 KWD is refused at creation and 0.005 KWD at refund, with nothing sent."""
        create = api.post("/v1/payment_intents")
        refund = api.post("/v1/refunds")
        request = CreatePaymentRequest(
            payment_id="pay_1",
            user_id="u1",
            amount=Money.of("1.001", "KWD"),
            capture_method="automatic",
            idempotency_key="k1",
        )
        with pytest.raises(InvalidRequestError):
            provider.create_payment(request)
        kwd = make_payment(amount=Money.of("2.000", "KWD"))
        with pytest.raises(InvalidRequestError):
            provider.refund_payment(kwd, make_refund(amount=Money.of("0.005", "KWD")), idempotency_key="k2")

        assert (create.call_count, refund.call_count) == (0, 0)


class TestRetrieveRefund:
    """retrieve_refund is GET /v1/refunds/{id}, the id checked before it goes into the URL."""

    def test_capabilities_declare_lookup(self, provider: StripeProvider) -> None:
        assert provider.capabilities.refund_lookup is True

    @pytest.mark.parametrize(
        ("stripe_status", "expected"),
        [
            ("pending", RefundStatus.PENDING),
            ("succeeded", RefundStatus.SUCCEEDED),
            ("failed", RefundStatus.FAILED),
            ("canceled", RefundStatus.CANCELED),
        ],
    )
    def test_reads_the_refund(
        self, api: respx.MockRouter, provider: StripeProvider, stripe_status: str, expected: RefundStatus
    ) -> None:
        route = api.get("/v1/refunds/re_1").respond(200, json=stripe_refund("re_1", status=stripe_status))

        result = provider.retrieve_refund(make_payment(), make_refund(provider_ref="re_1"))

        assert (result.provider_ref, result.status, route.call_count) == ("re_1", expected, 1)

    @pytest.mark.parametrize("ref", [None, "", "re_1/../../v1/charges", "re_1?expand=x", "re 1"])
    def test_bad_or_missing_id_is_refused_before_any_request(
        self, api: respx.MockRouter, provider: StripeProvider, ref: str | None
    ) -> None:
        route = api.route()
        with pytest.raises(InvalidRequestError):
            provider.retrieve_refund(make_payment(), make_refund(provider_ref=ref))
        assert route.call_count == 0

    def test_refund_of_another_payment_intent_is_an_error(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        api.get("/v1/refunds/re_1").respond(200, json=stripe_refund("re_1", payment_intent="pi_other"))

        with pytest.raises(ProviderError, match="pi_other"):
            provider.retrieve_refund(make_payment(), make_refund(provider_ref="re_1"))

    def test_refund_made_for_another_paykit_refund_is_an_error(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        api.get("/v1/refunds/re_1").respond(200, json=stripe_refund("re_1", refund_id="ref_other"))

        with pytest.raises(ProviderError, match="ref_other"):
            provider.retrieve_refund(make_payment(), make_refund(provider_ref="re_1"))

    def test_missing_refund_is_a_request_error(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        api.get("/v1/refunds/re_gone").mock(
            return_value=stripe_error(
                404, type="invalid_request_error", code="resource_missing", message="No such refund: 're_gone'"
            )
        )

        with pytest.raises(ProviderRequestError) as info:
            provider.retrieve_refund(make_payment(), make_refund(provider_ref="re_gone"))

        assert (info.value.code, info.value.should_retry) == ("resource_missing", False)


class TestFindRefund:
    """find_refund lists the PaymentIntent's refunds and matches metadata.paykit_refund_id."""

    def test_found_on_the_first_page(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        route = api.get("/v1/refunds").respond(
            200,
            json=refund_list(
                stripe_refund("re_3", refund_id="ref_other"),
                stripe_refund("re_2", refund_id=None),
                stripe_refund("re_1", status="pending"),
            ),
        )

        result = provider.find_refund(make_payment(), make_refund())

        assert result is not None
        assert (result.provider_ref, result.status) == ("re_1", RefundStatus.PENDING)
        assert query(route.calls.last.request) == {"payment_intent": "pi_123", "limit": "100"}

    def test_follows_has_more(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        """Page two starts after the last refund of page one."""
        route = api.get("/v1/refunds").mock(
            side_effect=[
                httpx.Response(
                    200,
                    json=refund_list(
                        stripe_refund("re_9", refund_id="ref_9"),
                        stripe_refund("re_8", refund_id="ref_8"),
                        has_more=True,
                    ),
                ),
                httpx.Response(200, json=refund_list(stripe_refund("re_1"), has_more=False)),
            ]
        )

        result = provider.find_refund(make_payment(), make_refund())

        assert result is not None
        assert result.provider_ref == "re_1"
        assert [query(c.request) for c in route.calls] == [
            {"payment_intent": "pi_123", "limit": "100"},
            {"payment_intent": "pi_123", "limit": "100", "starting_after": "re_8"},
        ]

    def test_none_when_no_refund_carries_the_id(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        route = api.get("/v1/refunds").mock(
            side_effect=[
                httpx.Response(200, json=refund_list(stripe_refund("re_2", refund_id="ref_2"), has_more=True)),
                httpx.Response(200, json=refund_list()),
            ]
        )

        assert provider.find_refund(make_payment(), make_refund()) is None
        assert route.call_count == 2

    def test_payment_without_or_with_a_bad_intent_is_refused_before_any_request(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        route = api.route()
        for ref in (None, "pi_1&payment_intent=pi_2"):
            with pytest.raises(InvalidRequestError):
                provider.find_refund(make_payment(provider_ref=ref), make_refund())
        assert route.call_count == 0

    def test_errors_go_through_the_adapters_mapping(self, api: respx.MockRouter, provider: StripeProvider) -> None:
        api.get("/v1/refunds").mock(return_value=stripe_error(503, type="api_error", message="Try again"))

        with pytest.raises(ProviderUnavailableError) as info:
            provider.find_refund(make_payment(), make_refund())

        assert (info.value.should_retry, info.value.http_status) == (True, 503)


def signed_event(provider: StripeProvider, event_type: str, obj: dict[str, Any]) -> Any:
    """Send ``obj`` through parse_webhook as Stripe would: an Event, signed."""
    body = stripe_event(event_type, obj, event_id="evt_refund_1", created=NOW_TS)
    return provider.parse_webhook(body, sign_stripe_webhook(body, SECRET, timestamp=NOW_TS))


class TestRefundEvents:
    """Refund events carry paykit's refund id, and a refund that fails later reads as failed."""

    @pytest.mark.parametrize(
        ("event_type", "stripe_status", "expected"),
        [
            ("refund.created", "pending", RefundStatus.PENDING),
            ("refund.created", "succeeded", RefundStatus.SUCCEEDED),
            ("refund.updated", "succeeded", RefundStatus.SUCCEEDED),
            ("refund.updated", "failed", RefundStatus.FAILED),
            ("refund.updated", "canceled", RefundStatus.CANCELED),
            ("refund.failed", "failed", RefundStatus.FAILED),
            ("charge.refund.updated", "failed", RefundStatus.FAILED),
            ("charge.refund.updated", "canceled", RefundStatus.CANCELED),
        ],
    )
    def test_refund_events(
        self, provider: StripeProvider, event_type: str, stripe_status: str, expected: RefundStatus
    ) -> None:
        refund = stripe_refund("re_1", status=stripe_status, amount=250)
        if stripe_status == "failed":
            refund["failure_reason"] = "expired_or_canceled_card"

        event = signed_event(provider, event_type, refund)

        assert (event.kind, event.refund_ref, event.refund_id, event.refund_status) == (
            EventKind.REFUND,
            "re_1",
            "ref_1",
            expected,
        )
        assert (event.provider_ref, event.payment_id, event.amount_refunded) == (
            "pi_123",
            "pay_1",
            Money.of("2.50", "USD"),
        )

    def test_refund_failed_is_failed_whatever_the_object_says(self, provider: StripeProvider) -> None:
        """refund.failed reports a failure even if the object shows another status."""
        event = signed_event(provider, "refund.failed", stripe_refund("re_1", status="pending"))

        assert event.refund_status is RefundStatus.FAILED

    def test_dashboard_refund_has_no_paykit_id(self, provider: StripeProvider) -> None:
        event = signed_event(provider, "refund.created", stripe_refund("re_5", refund_id=None))

        assert (event.refund_ref, event.refund_id) == ("re_5", None)

    def test_charge_refunded_with_embedded_refund_carries_the_id(self, provider: StripeProvider) -> None:
        charge = resource(
            "charge",
            id="ch_1",
            amount=1250,
            amount_captured=1250,
            amount_refunded=250,
            refunded=False,
            payment_intent="pi_123",
            metadata={"paykit_payment_id": "pay_1"},
            refunds=refund_list(stripe_refund("re_1", amount=250, status="succeeded")),
        )

        event = signed_event(provider, "charge.refunded", charge)

        assert (event.kind, event.status, event.refund_ref, event.refund_id, event.refund_status) == (
            EventKind.REFUND,
            PaymentStatus.PARTIALLY_REFUNDED,
            "re_1",
            "ref_1",
            RefundStatus.SUCCEEDED,
        )

    def test_charge_refunded_without_refunds_names_no_refund_id(self, provider: StripeProvider) -> None:
        charge = resource("charge", refunded=True, payment_intent="pi_123")
        charge.pop("refunds", None)

        event = signed_event(provider, "charge.refunded", charge)

        assert (event.refund_ref, event.refund_id) == (None, None)


class TestRefundErrors:
    """A refund POST that fails maps to errors the service can act on."""

    def call(self, provider: StripeProvider) -> None:
        provider.refund_payment(make_payment(), make_refund(), idempotency_key="refund-key-1")

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_server_errors_are_unavailable_and_retryable(
        self, api: respx.MockRouter, provider: StripeProvider, status: int
    ) -> None:
        api.post("/v1/refunds").mock(return_value=stripe_error(status, type="api_error", message="Server error"))

        with pytest.raises(ProviderUnavailableError) as info:
            self.call(provider)

        assert (info.value.should_retry, info.value.http_status) == (True, status)

    def test_server_error_stripe_says_not_to_retry_is_still_unavailable(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        """Stripe-Should-Retry: false on a 500 keeps the outcome unknown; only the retry hint changes."""
        response = stripe_error(500, type="api_error", message="Server error")
        response.headers["Stripe-Should-Retry"] = "false"
        api.post("/v1/refunds").mock(return_value=response)

        with pytest.raises(ProviderUnavailableError) as info:
            self.call(provider)

        assert (info.value.should_retry, info.value.http_status) == (False, 500)

    @pytest.mark.parametrize(
        "failure",
        [
            httpx.ConnectError("connection refused"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.ReadTimeout("read timed out"),
            httpx.RemoteProtocolError("Server disconnected without sending a response."),
            httpx.ReadError("[Errno 104] Connection reset by peer"),
            httpx.WriteError("[Errno 104] Connection reset by peer"),
        ],
        ids=["refused", "connect-timeout", "read-timeout", "reset-after-send", "read-reset", "reset-while-sending"],
    )
    def test_no_answer_is_unavailable_and_retryable(
        self, api: respx.MockRouter, provider: StripeProvider, failure: httpx.HTTPError
    ) -> None:
        """Before or after the request left, the outcome is unknown: retry with the same key, or look it up."""
        api.post("/v1/refunds").mock(side_effect=failure)

        with pytest.raises(ProviderUnavailableError) as info:
            self.call(provider)

        assert (info.value.should_retry, info.value.http_status) == (True, None)

    def test_invalid_request_is_a_request_error_not_retried(
        self, api: respx.MockRouter, provider: StripeProvider
    ) -> None:
        api.post("/v1/refunds").mock(
            return_value=stripe_error(
                400,
                type="invalid_request_error",
                code="charge_already_refunded",
                message="Charge ch_1 has already been refunded.",
            )
        )

        with pytest.raises(ProviderRequestError) as info:
            self.call(provider)

        assert (info.value.code, info.value.should_retry, info.value.http_status) == (
            "charge_already_refunded",
            False,
            400,
        )

    def test_replayed_500_is_retried_with_the_same_key_and_stays_unavailable(self, api: respx.MockRouter) -> None:
        """Stripe replays a 500 for the same key: the network retry gets it again."""
        route = api.post("/v1/refunds").mock(return_value=stripe_error(500, type="api_error", message="boom"))
        p = StripeProvider("sk_test_x", max_network_retries=1, webhooks=False)

        with pytest.raises(ProviderUnavailableError) as info:
            p.refund_payment(make_payment(), make_refund(), idempotency_key="refund-key-1")
        p.close()

        assert info.value.should_retry is True
        assert [c.request.headers["idempotency-key"] for c in route.calls] == ["refund-key-1", "refund-key-1"]
