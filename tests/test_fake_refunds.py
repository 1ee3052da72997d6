"""FakeProvider's refunds: kept by paykit refund id, looked up, and failed on demand like a real provider."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from paykit import (
    EventKind,
    InvalidRequestError,
    Money,
    Payment,
    PaymentDeclinedError,
    ProviderRequestError,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
)
from paykit.providers._base import CreatePaymentRequest
from paykit.providers.stripe import StripeProvider
from paykit.testing import FakeProvider

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
CLOCK = NOW.timestamp()


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider(clock=lambda: CLOCK)


@pytest.fixture
def payment(fake: FakeProvider) -> Payment:
    """A captured 10.00 USD payment at the fake."""
    amount = Money.of("10.00", "USD")
    created = fake.create_payment(
        CreatePaymentRequest(
            payment_id="pay_1", user_id="u1", amount=amount, capture_method="automatic", idempotency_key="init"
        )
    )
    stored = Payment(
        id="pay_1",
        user_id="u1",
        provider="fake",
        amount=amount,
        provider_ref=created.provider_ref,
        created_at=NOW,
        updated_at=NOW,
    )
    fake.confirm_payment(stored, payment_method_ref="pm_card_visa", idempotency_key="confirm")
    return stored


def refund_of(amount: str = "2.00", refund_id: str = "ref_1", provider_ref: str | None = None) -> Refund:
    return Refund(
        id=refund_id,
        payment_id="pay_1",
        user_id="u1",
        provider="fake",
        amount=Money.of(amount, "USD"),
        provider_ref=provider_ref,
        created_at=NOW,
        updated_at=NOW,
    )


def test_lookup_capability_and_no_amount_rule(fake: FakeProvider) -> None:
    assert fake.capabilities.refund_lookup is True
    fake.check_amount(Money.of("0.005", "KWD"))


def test_amount_rule_can_be_a_providers(fake: FakeProvider) -> None:
    """amount_rule lets a test give the fake Stripe's amount rule."""
    fake.amount_rule = StripeProvider("sk_test_rule", webhooks=False).check_amount

    with pytest.raises(InvalidRequestError):
        fake.check_amount(Money.of("0.005", "KWD"))
    fake.check_amount(Money.of("0.010", "KWD"))


def test_refunds_are_kept_by_paykit_id_and_found(fake: FakeProvider, payment: Payment) -> None:
    answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")

    assert fake.refunds_for("ref_1") == [answer]
    assert fake.find_refund(payment, refund_of()) == answer
    assert fake.find_refund(payment, refund_of(refund_id="ref_2")) is None
    assert fake.retrieve_refund(payment, refund_of(provider_ref=answer.provider_ref)) == answer
    assert fake.refunded_amount(payment.provider_ref or "") == Money.of("2.00", "USD")
    assert [c.refund_id for c in fake.calls_to("refund_payment")] == ["ref_1"]
    assert [c.refund_id for c in fake.calls_to("find_refund")] == ["ref_1", "ref_2"]


def test_same_key_never_refunds_twice(fake: FakeProvider, payment: Payment) -> None:
    first = fake.refund_payment(payment, refund_of(), idempotency_key="k1")
    again = fake.refund_payment(payment, refund_of(), idempotency_key="k1")

    assert first == again
    assert len(fake.refunds_for("ref_1")) == 1
    assert len(fake.calls_to("refund_payment")) == 2


def test_concurrent_resends_with_one_key_make_one_refund(fake: FakeProvider, payment: Payment) -> None:
    barrier = threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        fake.refund_payment(payment, refund_of(), idempotency_key="k1")

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(fake.calls_to("refund_payment")) == 8
    assert len(fake.refunds_for("ref_1")) == 1


def test_unknown_refund_is_a_request_error(fake: FakeProvider, payment: Payment) -> None:
    with pytest.raises(ProviderRequestError):
        fake.retrieve_refund(payment, refund_of(provider_ref="re_nope"))


class TestRefundFaults:
    """Each refund fault, as the service's tests will meet it."""

    def test_timeout_after_success(self, fake: FakeProvider, payment: Payment) -> None:
        """The refund exists at the provider although the caller saw a timeout."""
        fake.fail_next("refund_timeout_after_success")

        with pytest.raises(ProviderUnavailableError) as info:
            fake.refund_payment(payment, refund_of(), idempotency_key="k1")

        assert info.value.should_retry is True
        found = fake.find_refund(payment, refund_of())
        assert found is not None
        assert found.status is RefundStatus.SUCCEEDED
        assert fake.refund_payment(payment, refund_of(), idempotency_key="k1") == found
        assert len(fake.refunds_for("ref_1")) == 1

    def test_replayed_server_error(self, fake: FakeProvider, payment: Payment) -> None:
        """A 500 is replayed for the same key, nothing is refunded; another key goes through."""
        fake.fail_next("refund_replayed_server_error")

        for _ in range(3):
            with pytest.raises(ProviderUnavailableError) as info:
                fake.refund_payment(payment, refund_of(), idempotency_key="k1")
            assert (info.value.http_status, info.value.should_retry) == (500, True)
        assert fake.refunds_for("ref_1") == []
        assert fake.find_refund(payment, refund_of()) is None

        fake.forget_idempotency_keys()
        answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")
        assert answer.status is RefundStatus.SUCCEEDED

    def test_forgotten_key_creates_a_second_refund(self, fake: FakeProvider, payment: Payment) -> None:
        fake.refund_payment(payment, refund_of(), idempotency_key="k1")
        fake.forget_idempotency_keys()
        fake.refund_payment(payment, refund_of(), idempotency_key="k1")

        assert len(fake.refunds_for("ref_1")) == 2
        assert fake.refunded_amount(payment.provider_ref or "") == Money.of("4.00", "USD")

    def test_pending_then_settled_silently(self, fake: FakeProvider, payment: Payment) -> None:
        fake.fail_next("refund_pending")
        answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")
        assert answer.status is RefundStatus.PENDING

        fake.settle_refund("ref_1", RefundStatus.SUCCEEDED)

        found = fake.find_refund(payment, refund_of())
        assert found is not None
        assert found.status is RefundStatus.SUCCEEDED
        assert fake.retrieve_refund(payment, refund_of(provider_ref=answer.provider_ref)).status is (
            RefundStatus.SUCCEEDED
        )

    def test_pending_then_settled_by_webhook(self, fake: FakeProvider, payment: Payment) -> None:
        fake.fail_next("refund_pending")
        answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")

        hook = fake.refund_webhook(answer.provider_ref, RefundStatus.SUCCEEDED, event_id="evt_r1")
        event = fake.parse_webhook(hook.body, hook.headers)

        assert (event.kind, event.type, event.event_id) == (EventKind.REFUND, "refund.succeeded", "evt_r1")
        assert (event.refund_ref, event.refund_id, event.refund_status) == (
            answer.provider_ref,
            "ref_1",
            RefundStatus.SUCCEEDED,
        )
        assert (event.provider_ref, event.payment_id, event.amount_refunded) == (
            payment.provider_ref,
            "pay_1",
            Money.of("2.00", "USD"),
        )

    def test_fails_later(self, fake: FakeProvider, payment: Payment) -> None:
        """Answered SUCCEEDED, then FAILED at the provider; its webhook says so, and the money is back."""
        fake.fail_next("refund_fails_later")
        answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")
        assert answer.status is RefundStatus.SUCCEEDED

        found = fake.find_refund(payment, refund_of())
        assert found is not None
        assert found.status is RefundStatus.FAILED
        hook = fake.refund_webhook("ref_1")
        event = fake.parse_webhook(hook.body, hook.headers)
        assert (event.type, event.refund_status) == ("refund.failed", RefundStatus.FAILED)
        assert event.failure_message
        assert fake.refunded_amount(payment.provider_ref or "") == Money(0, "USD")

    def test_succeeded_refund_failed_later_by_webhook(self, fake: FakeProvider, payment: Payment) -> None:
        answer = fake.refund_payment(payment, refund_of(), idempotency_key="k1")

        hook = fake.refund_webhook(answer.provider_ref, RefundStatus.FAILED, failure_message="card closed")
        event = fake.parse_webhook(hook.body, hook.headers)

        assert (event.refund_status, event.failure_message) == (RefundStatus.FAILED, "card closed")
        assert fake.refunds_for("ref_1")[0].status is RefundStatus.FAILED

    def test_timeout_and_server_error_refund_nothing(self, fake: FakeProvider, payment: Payment) -> None:
        fake.fail_next("timeout")
        fake.fail_next("server_error")
        for _ in range(2):
            with pytest.raises(ProviderUnavailableError):
                fake.refund_payment(payment, refund_of(), idempotency_key="k1")

        assert fake.refunds_for("ref_1") == []
        assert fake.refund_payment(payment, refund_of(), idempotency_key="k1").status is RefundStatus.SUCCEEDED

    def test_decline_refunds_nothing(self, fake: FakeProvider, payment: Payment) -> None:
        fake.fail_next("decline")
        with pytest.raises(PaymentDeclinedError):
            fake.refund_payment(payment, refund_of(), idempotency_key="k1")
        assert fake.refunds_for("ref_1") == []

    def test_lookup_faults(self, fake: FakeProvider, payment: Payment) -> None:
        fake.fail_next_lookup("timeout")
        fake.fail_next_lookup("server_error")

        with pytest.raises(ProviderUnavailableError):
            fake.find_refund(payment, refund_of())
        with pytest.raises(ProviderUnavailableError):
            fake.retrieve_refund(payment, refund_of(provider_ref="re_x"))
        assert fake.find_refund(payment, refund_of()) is None
