"""PayPal amounts checked before anything is sent, and refunds retrieved by PayPal's id.

Answers are validated against PayPal's Payments v2 OpenAPI schema, as in test_paypal.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import jsonschema
import pytest
import respx
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from paykit import (
    InvalidRequestError,
    InvalidStateError,
    Money,
    Payment,
    PaymentStatus,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
)
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.paypal import PayPalProvider

from .._shared import shared_path

API = "https://api-m.sandbox.paypal.com"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CAPTURE_ID = "3C679366HH908993F"
REFUND_ID = "1JU08902781691411"

_SPEC = json.loads(shared_path("specs", "paypal", "payments_payment_v2.json").read_text())
_REGISTRY: Registry[Any] = Registry().with_resources(
    [("urn:paypal:payments", Resource.from_contents(_SPEC, default_specification=DRAFT4))]
)


def assert_refund_schema(instance: object) -> None:
    """Validate ``instance`` as PayPal's Payments v2 ``refund``."""
    validator = jsonschema.Draft4Validator(
        {"$ref": "urn:paypal:payments#/components/schemas/refund"}, registry=_REGISTRY
    )
    validator.validate(instance)


def paypal_refund(status: str = "COMPLETED", **extra: Any) -> dict[str, Any]:
    refund: dict[str, Any] = {
        "id": REFUND_ID,
        "status": status,
        "amount": {"currency_code": "USD", "value": "5.00"},
        "custom_id": "pay_1",
        "create_time": "2025-06-01T12:00:00Z",
        "update_time": "2025-06-01T12:00:00Z",
        "links": [
            {"href": f"{API}/v2/payments/refunds/{REFUND_ID}", "rel": "self", "method": "GET"},
            {"href": f"{API}/v2/payments/captures/{CAPTURE_ID}", "rel": "up", "method": "GET"},
        ],
        **extra,
    }
    assert_refund_schema(refund)
    return refund


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        router.post("/v1/oauth2/token", name="token").respond(
            200, json={"access_token": "A21AAtoken", "token_type": "Bearer", "expires_in": 32400}
        )
        yield router


@pytest.fixture
def provider() -> Iterator[PayPalProvider]:
    with httpx.Client() as http:
        yield PayPalProvider("client", "secret", "WH1", http_client=http, clock=lambda: NOW)


def make_payment(amount: Money | None = None) -> Payment:
    return Payment(
        id="pay_1",
        user_id="u1",
        provider="paypal",
        amount=amount or Money.of("12.50", "USD"),
        status=PaymentStatus.SUCCEEDED,
        provider_ref="5O190127TN364715T",
        provider_data={"capture_id": CAPTURE_ID},
        captured_minor=(amount or Money.of("12.50", "USD")).minor_units,
        created_at=NOW,
        updated_at=NOW,
    )


def make_refund(amount: Money | None = None, provider_ref: str | None = REFUND_ID) -> Refund:
    return Refund(
        id="ref_1",
        payment_id="pay_1",
        user_id="u1",
        provider="paypal",
        amount=amount or Money.of("5.00", "USD"),
        provider_ref=provider_ref,
        created_at=NOW,
        updated_at=NOW,
    )


class TestCheckAmount:
    """check_amount is the rule every PayPal request applies, without I/O."""

    @pytest.mark.parametrize(
        "money", [Money.of("12.50", "USD"), Money.of("150", "HUF"), Money.of("100", "JPY"), Money.of("3", "TWD")]
    )
    def test_accepted(self, provider: PayPalProvider, money: Money) -> None:
        provider.check_amount(money)

    @pytest.mark.parametrize(
        "money", [Money.of("1.50", "HUF"), Money.of("0.50", "TWD"), Money(0, "USD"), Money.of("1.000", "KWD")]
    )
    def test_refused(self, provider: PayPalProvider, money: Money) -> None:
        with pytest.raises(InvalidRequestError):
            provider.check_amount(money)

    def test_create_and_refund_refuse_the_same_amounts_without_a_request(
        self, api: respx.MockRouter, provider: PayPalProvider
    ) -> None:
        orders = api.post("/v2/checkout/orders")
        refunds = api.post(f"/v2/payments/captures/{CAPTURE_ID}/refund")
        request = CreatePaymentRequest(
            payment_id="pay_1",
            user_id="u1",
            amount=Money.of("1.50", "HUF"),
            capture_method="automatic",
            idempotency_key="k1",
        )
        with pytest.raises(InvalidRequestError):
            provider.create_payment(request)
        with pytest.raises(InvalidRequestError):
            provider.refund_payment(
                make_payment(Money.of("150", "HUF")), make_refund(Money.of("1.50", "HUF")), idempotency_key="k2"
            )

        assert (orders.call_count, refunds.call_count, api["token"].call_count) == (0, 0, 0)


class TestRetrieveRefund:
    """retrieve_refund is GET /v2/payments/refunds/{id}; PayPal has no lookup by paykit's id."""

    def test_no_lookup_by_paykit_id(self, provider: PayPalProvider) -> None:
        assert provider.capabilities.refund_lookup is False
        with pytest.raises(InvalidStateError):
            provider.find_refund(make_payment(), make_refund())

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("COMPLETED", RefundStatus.SUCCEEDED),
            ("PENDING", RefundStatus.PENDING),
            ("FAILED", RefundStatus.FAILED),
            ("CANCELLED", RefundStatus.CANCELED),
        ],
    )
    def test_reads_the_refund(
        self, api: respx.MockRouter, provider: PayPalProvider, status: str, expected: RefundStatus
    ) -> None:
        route = api.get(f"/v2/payments/refunds/{REFUND_ID}").respond(200, json=paypal_refund(status))

        result = provider.retrieve_refund(make_payment(), make_refund())

        assert (result.provider_ref, result.status) == (REFUND_ID, expected)
        assert route.calls.last.request.headers["Authorization"] == "Bearer A21AAtoken"

    def test_failure_reason_is_kept(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get(f"/v2/payments/refunds/{REFUND_ID}").respond(
            200, json=paypal_refund("FAILED", status_details={"reason": "ECHECK"})
        )

        result = provider.retrieve_refund(make_payment(), make_refund())

        assert (result.status, result.failure_message) == (RefundStatus.FAILED, "ECHECK")

    @pytest.mark.parametrize("ref", [None, "", "1JU0/../../v1/oauth2", "1JU0?x=1"])
    def test_bad_or_missing_id_is_refused_before_any_request(
        self, api: respx.MockRouter, provider: PayPalProvider, ref: str | None
    ) -> None:
        with pytest.raises(InvalidRequestError):
            provider.retrieve_refund(make_payment(), make_refund(provider_ref=ref))
        assert api["token"].call_count == 0

    def test_unknown_refund_is_a_request_error(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get(f"/v2/payments/refunds/{REFUND_ID}").respond(
            404,
            json={
                "name": "RESOURCE_NOT_FOUND",
                "message": "The specified resource does not exist.",
                "debug_id": "90957fca61718",
                "details": [{"issue": "INVALID_RESOURCE_ID", "description": "Specified resource ID does not exist."}],
            },
        )

        with pytest.raises(ProviderRequestError):
            provider.retrieve_refund(make_payment(), make_refund())

    def test_outage_is_unavailable(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        api.get(f"/v2/payments/refunds/{REFUND_ID}").mock(side_effect=httpx.ReadTimeout("timed out"))

        with pytest.raises(ProviderUnavailableError):
            provider.retrieve_refund(make_payment(), make_refund())

    def test_refund_of_another_capture_is_an_error(self, api: respx.MockRouter, provider: PayPalProvider) -> None:
        refund = paypal_refund()
        refund["links"][1]["href"] = f"{API}/v2/payments/captures/9OTHER9CAPTURE9"
        api.get(f"/v2/payments/refunds/{REFUND_ID}").respond(200, json=refund)

        with pytest.raises(ProviderError, match="9OTHER9CAPTURE9"):
            provider.retrieve_refund(make_payment(), make_refund())
