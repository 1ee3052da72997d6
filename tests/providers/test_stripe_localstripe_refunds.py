"""Stripe refund lookups against localstripe, a stateful fake Stripe server run on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from paykit import Money, RefundStatus
from paykit._models import Payment, Refund
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.stripe import StripeProvider
from tests.providers._localstripe import LocalStripe, run_localstripe

pytestmark = pytest.mark.localstripe

API_KEY = "sk_test_localstripe_refunds"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[LocalStripe]:
    with run_localstripe() as server:
        yield server


@pytest.fixture
def provider(localstripe: LocalStripe) -> Iterator[StripeProvider]:
    p = StripeProvider(API_KEY, api_base=localstripe.api_base, webhooks=False)
    yield p
    p.close()


def paid(provider: StripeProvider, payment_id: str, amount: Money) -> Payment:
    """A payment confirmed with pm_card_visa at localstripe."""
    created = provider.create_payment(
        CreatePaymentRequest(
            payment_id=payment_id,
            user_id="u1",
            amount=amount,
            capture_method="automatic",
            idempotency_key=f"paykit-{payment_id}",
            payment_method_ref="pm_card_visa",
        )
    )
    now = datetime.now(UTC)
    payment = Payment(
        id=payment_id,
        user_id="u1",
        provider="stripe",
        amount=amount,
        provider_ref=created.provider_ref,
        payment_method_ref=created.payment_method_ref,
        created_at=now,
        updated_at=now,
    )
    provider.confirm_payment(payment, payment_method_ref="pm_card_visa", idempotency_key=f"confirm-{payment_id}")
    return payment


def refund_of(payment: Payment, refund_id: str, amount: str) -> Refund:
    now = datetime.now(UTC)
    return Refund(
        id=refund_id,
        payment_id=payment.id,
        user_id="u1",
        provider="stripe",
        amount=Money.of(amount, payment.amount.currency),
        created_at=now,
        updated_at=now,
    )


def test_refunds_are_found_by_paykit_id_and_retrieved(provider: StripeProvider) -> None:
    """Each refund is found by the paykit id in its metadata, and only on its own payment."""
    payment = paid(provider, "pay_lookup_1", Money.of("10.00", "USD"))
    other = paid(provider, "pay_lookup_2", Money.of("10.00", "USD"))
    first, second = refund_of(payment, "ref_a", "1.00"), refund_of(payment, "ref_b", "2.00")
    made_a = provider.refund_payment(payment, first, idempotency_key="refund-ref_a")
    made_b = provider.refund_payment(payment, second, idempotency_key="refund-ref_b")

    found_a = provider.find_refund(payment, first)
    found_b = provider.find_refund(payment, second)

    assert found_a is not None
    assert found_b is not None
    assert (found_a.provider_ref, found_b.provider_ref) == (made_a.provider_ref, made_b.provider_ref)
    assert found_a.status is RefundStatus.SUCCEEDED
    assert provider.find_refund(payment, refund_of(payment, "ref_never_sent", "1.00")) is None
    assert provider.find_refund(other, refund_of(other, "ref_a", "1.00")) is None
    retrieved = provider.retrieve_refund(payment, first.model_copy(update={"provider_ref": made_a.provider_ref}))
    assert (retrieved.provider_ref, retrieved.status) == (made_a.provider_ref, RefundStatus.SUCCEEDED)
