"""KNET takes positive KWD only; check_amount tells so without I/O, as create and refund do."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
import respx

from paykit import InvalidRequestError, InvalidStateError, Money, Payment, PaymentStatus, Refund
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.knet import KnetProvider

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PAYMENT = Payment(
    id="pay_1",
    user_id="u1",
    provider="knet",
    amount=Money.of("12.500", "KWD"),
    status=PaymentStatus.SUCCEEDED,
    provider_ref="TRACK1",
    captured_minor=12500,
    provider_data={"paymentid": "100000000000001"},
    created_at=NOW,
    updated_at=NOW,
)


def refund_of(amount: Money) -> Refund:
    return Refund(
        id="ref_1", payment_id="pay_1", user_id="u1", provider="knet", amount=amount, created_at=NOW, updated_at=NOW
    )


def make_provider(http: httpx.Client) -> KnetProvider:
    return KnetProvider(
        "123456",
        "s3cretPW99",
        "ABCDEFGHIJKLMNOP",
        response_url="https://shop.example/knet/response",
        error_url="https://shop.example/knet/error",
        receipt_url="https://shop.example/knet/receipt",
        http_client=http,
    )


@pytest.mark.parametrize("money", [Money.of("0.001", "KWD"), Money.of("12.500", "KWD")])
def test_positive_kwd_is_accepted(money: Money) -> None:
    with httpx.Client() as http:
        make_provider(http).check_amount(money)


@pytest.mark.parametrize("money", [Money(0, "KWD"), Money.of("12.50", "USD"), Money.of("1.000", "BHD")])
def test_anything_else_is_refused(money: Money) -> None:
    with httpx.Client() as http, pytest.raises(InvalidRequestError):
        make_provider(http).check_amount(money)


def test_create_and_refund_refuse_the_same_amounts_without_a_request() -> None:
    with respx.mock(assert_all_called=False) as router, httpx.Client() as http:
        tranpipe = router.route()
        provider = make_provider(http)
        request = CreatePaymentRequest(
            payment_id="pay_1",
            user_id="u1",
            amount=Money.of("5.00", "USD"),
            capture_method="automatic",
            idempotency_key="k1",
        )
        with pytest.raises(InvalidRequestError):
            provider.create_payment(request)
        with pytest.raises(InvalidRequestError):
            provider.refund_payment(PAYMENT, refund_of(Money(0, "KWD")), idempotency_key="k2")

        assert tranpipe.call_count == 0


def test_refund_lookups_are_unsupported() -> None:
    """KNET has no refund lookup: the capability is false and the methods say so."""
    with httpx.Client() as http:
        provider = make_provider(http)
        assert provider.capabilities.refund_lookup is False
        with pytest.raises(InvalidStateError):
            provider.find_refund(PAYMENT, refund_of(Money.of("1.000", "KWD")))
        with pytest.raises(InvalidStateError):
            provider.retrieve_refund(PAYMENT, refund_of(Money.of("1.000", "KWD")))
