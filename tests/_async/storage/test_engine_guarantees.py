# Source of the generated sync twin (scripts/unasync.py): edit here.
"""What the engine guarantees with money, on memory and on the MongoDB-wire server (tests/_storages.py).

Each class states one guarantee of the issue "One engine for every write" and
shows it under the fault that broke it: a refund webhook before the refund's
answer, a key reused on another payment, unclear provider answers, amounts a
provider cannot take.

Written once for both APIs (tests/_sync/storage/test_engine_guarantees.py is
generated from here). Webhooks are delivered verified then
applied, as the webhook entry points do with a valid one. The thread races and the
503 answer are in tests/storage/test_engine_guarantees_sync_only.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from paykit import (
    AsyncPaymentService,
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    Money,
    NotificationKind,
    PaymentStatus,
    ProviderUnavailableError,
    RefundStatus,
    WebhookOutcome,
)
from paykit.providers._base import ProviderCapabilities
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.testing import AsyncFakeProvider, FakeWebhook, ManualClock
from tests._storages import mongo_server_fixture, storage_params

pytestmark = pytest.mark.anyio


@pytest.fixture(params=storage_params(AsyncStorage))
def store(request: pytest.FixtureRequest) -> AsyncStorage:
    if request.param == "memory":
        return AsyncMemoryStorage()
    return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "real_mongo_storage"))  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
async def service(
    store: AsyncStorage, fake: AsyncFakeProvider, clock: ManualClock
) -> AsyncIterator[AsyncPaymentService]:
    async with AsyncPaymentService(storage=store, providers=[fake], clock=clock) as svc:
        yield svc


KWD = "KWD"


def kwd(value: str) -> Money:
    return Money.of(value, KWD)


async def paid(service: AsyncPaymentService, amount: str = "10.000", key: str | None = None) -> str:
    payment = await service.initialize_payment(user_id="u1", amount=kwd(amount), provider="fake", idempotency_key=key)
    await service.confirm_payment(payment.id, payment_method="pm_card_visa")
    return payment.id


async def settle_later(service: AsyncPaymentService, clock: ManualClock) -> None:
    clock.advance(minutes=5)
    await service.reconcile(older_than=timedelta(minutes=1))


async def refund_actions(service: AsyncPaymentService, payment_id: str) -> list[str]:
    return [
        str(e.payload.get("outcome"))
        for e in await service.audit_trail(payment_id)
        if e.action == AuditAction.PAYMENT_REFUND
    ]


async def deliver(service: AsyncPaymentService, provider: AsyncFakeProvider, hook: FakeWebhook) -> WebhookOutcome:
    """What handle_webhook does with a valid delivery: verify and normalize, then apply."""
    return await service.apply_webhook_event(await provider.parse_webhook(hook.body, hook.headers))


class EchoesBeforeAnswering(AsyncFakeProvider):
    """A provider whose refund webhook reaches paykit before the refund call returns."""

    service: AsyncPaymentService

    async def refund_payment(self, payment: Any, refund: Any, *, idempotency_key: str) -> Any:
        answer = await super().refund_payment(payment, refund, idempotency_key=idempotency_key)
        hook = self.refund_webhook(answer.provider_ref)
        assert WebhookOutcome.APPLIED == await deliver(self.service, self, hook)
        return answer


class TestRefundCountedOnce:
    """A refund's webhook and its answer, in any order, count its amount once."""

    async def test_webhook_before_the_answer(self, store: AsyncStorage, clock: ManualClock) -> None:
        fake = EchoesBeforeAnswering(clock=clock.unix)
        async with AsyncPaymentService(storage=store, providers=[fake], clock=clock) as service:
            fake.service = service
            payment_id = await paid(service)
            refund = await service.refund_payment(payment_id, amount=kwd("2.000"))

            payment = await service.get_payment(payment_id)
            assert (RefundStatus.SUCCEEDED, 2000, {}) == (
                refund.status,
                payment.refunded_minor,
                payment.pending_refunds,
            )
            assert fake.refunded_amount(payment.provider_ref or "") == payment.amount_refunded
            assert ["succeeded"] == await refund_actions(service, payment_id)

    async def test_webhook_after_the_answer_is_a_duplicate(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service)
        refund = await service.refund_payment(payment_id, amount=kwd("2.000"))
        hook = fake.refund_webhook(refund.id)

        first = await deliver(service, fake, hook)
        again = await deliver(service, fake, hook)

        assert ("duplicate", "duplicate") == (first, again)
        assert 2000 == (await service.get_payment(payment_id)).refunded_minor


class TestKeysBoundToTheirPayment:
    """A refund key reused on another payment is a conflict, and changes nothing anywhere."""

    async def test_refund_key_on_another_payment(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        a, b = await paid(service), await paid(service)
        first = await service.refund_payment(a, amount=kwd("1.000"), idempotency_key="refund-7")

        with pytest.raises(IdempotencyConflictError) as raised:
            await service.refund_payment(b, amount=kwd("1.000"), idempotency_key="refund-7")

        assert b == raised.value.payment_id
        payment_b = await service.get_payment(b)
        assert (0, {}, []) == (payment_b.refunded_minor, payment_b.pending_refunds, await service.list_refunds(b))
        assert [first] == await service.list_refunds(a)
        assert 1000 == (await service.get_payment(a)).refunded_minor
        assert 1 == len(fake.refunds_for(first.id))

    async def test_confirm_key_on_another_payment(self, service: AsyncPaymentService) -> None:
        a = await service.initialize_payment(user_id="u1", amount=kwd("1.000"), provider="fake")
        b = await service.initialize_payment(user_id="u1", amount=kwd("1.000"), provider="fake")
        await service.confirm_payment(a.id, payment_method="pm_card_visa", idempotency_key="c-1")

        with pytest.raises(IdempotencyConflictError):
            await service.confirm_payment(b.id, payment_method="pm_card_visa", idempotency_key="c-1")

        assert PaymentStatus.PENDING == (await service.get_payment(b.id)).status


class TestUnclearRefundAnswers:
    """An unclear answer keeps the reservation; a lookup comes before any resend; totals end equal."""

    async def test_timeout_after_success_then_a_keyed_retry(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("refund_timeout_after_success")
        with pytest.raises(ProviderUnavailableError):
            await service.refund_payment(payment_id, amount=kwd("2.000"), idempotency_key="r1")
        assert kwd("8.000") == (await service.get_payment(payment_id)).amount_refundable

        refund = await service.refund_payment(payment_id, amount=kwd("2.000"), idempotency_key="r1")

        assert (RefundStatus.SUCCEEDED, 1) == (refund.status, len(fake.refunds_for(refund.id)))
        assert 1 == len(fake.calls_to("refund_payment"))
        assert 2000 == (await service.get_payment(payment_id)).refunded_minor

    async def test_timeout_after_success_then_reconcile(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("refund_timeout_after_success")
        with pytest.raises(ProviderUnavailableError):
            await service.refund_payment(payment_id, amount=kwd("2.000"))
        fake.forget_idempotency_keys()  # a day later: the provider's key is gone, the refund is not

        await settle_later(service, clock)

        payment = await service.get_payment(payment_id)
        [refund] = await service.list_refunds(payment_id)
        assert (RefundStatus.SUCCEEDED, 2000, {}) == (refund.status, payment.refunded_minor, payment.pending_refunds)
        assert 1 == len(fake.refunds_for(refund.id))

    async def test_replayed_server_error(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("refund_replayed_server_error")
        for _ in range(2):  # the caller's own retry gets the provider's saved 500 again
            with pytest.raises(ProviderUnavailableError):
                await service.refund_payment(payment_id, amount=kwd("2.000"), idempotency_key="r1")

        await settle_later(service, clock)

        [refund] = await service.list_refunds(payment_id)
        payment = await service.get_payment(payment_id)
        assert (RefundStatus.SUCCEEDED, 2000) == (refund.status, payment.refunded_minor)
        assert 1 == len(fake.refunds_for(refund.id))
        assert fake.refunded_amount(payment.provider_ref or "") == payment.amount_refunded

    async def test_pending_refund_whose_webhook_is_lost(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("refund_pending")
        refund = await service.refund_payment(payment_id, amount=kwd("2.000"))
        assert (RefundStatus.PENDING, kwd("8.000")) == (
            refund.status,
            (await service.get_payment(payment_id)).amount_refundable,
        )
        fake.settle_refund(refund.id, RefundStatus.SUCCEEDED)  # its webhook never comes

        await settle_later(service, clock)

        assert RefundStatus.SUCCEEDED == (await service.get_refund(refund.id)).status
        assert (2000, {}) == (
            (await service.get_payment(payment_id)).refunded_minor,
            (await service.get_payment(payment_id)).pending_refunds,
        )

    async def test_refund_failing_after_it_succeeded(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("refund_fails_later")
        refund = await service.refund_payment(payment_id, amount=kwd("10.000"))
        assert PaymentStatus.REFUNDED == (await service.get_payment(payment_id)).status
        hook = fake.refund_webhook(refund.id)

        answers = [await deliver(service, fake, hook) for _ in range(2)]

        payment = await service.get_payment(payment_id)
        assert ["applied", "duplicate"] == answers
        assert (0, PaymentStatus.SUCCEEDED, kwd("10.000")) == (
            payment.refunded_minor,
            payment.status,
            payment.amount_refundable,
        )
        assert RefundStatus.FAILED == (await service.get_refund(refund.id)).status
        assert ["succeeded", "reversed"] == await refund_actions(service, payment_id)
        kinds = [n.kind for n in await service.list_notifications("u1", limit=50)]
        assert 1 == kinds.count(NotificationKind.REFUND_FAILED)

    async def test_given_up_after_bounded_attempts(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        payment_id = await paid(service)
        fake.fail_next("timeout", times=20)  # nothing ever reaches the provider
        with pytest.raises(ProviderUnavailableError):
            await service.refund_payment(payment_id, amount=kwd("2.000"))
        for _ in range(8):
            await settle_later(service, clock)

        [refund] = await service.list_refunds(payment_id)
        payment = await service.get_payment(payment_id)
        assert (RefundStatus.FAILED, 5) == (refund.status, refund.attempts)
        assert ({}, kwd("10.000")) == (payment.pending_refunds, payment.amount_refundable)
        assert 5 == len(fake.calls_to("refund_payment"))


class TestProviderRulesFirst:
    """What the provider cannot take is refused before anything is stored or reserved."""

    async def test_initialize_with_an_amount_the_provider_refuses(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        fake.amount_rule = stripe_rule
        with pytest.raises(InvalidRequestError):
            await service.initialize_payment(user_id="u1", amount=kwd("1.001"), provider="fake", idempotency_key="k")
        assert [] == (await service.list_payments()).items
        assert [] == fake.calls_to("create_payment")

    async def test_refund_with_an_amount_the_provider_refuses(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service)
        fake.amount_rule = stripe_rule
        with pytest.raises(InvalidRequestError) as raised:
            await service.refund_payment(payment_id, amount=kwd("0.005"))
        payment = await service.get_payment(payment_id)
        assert payment_id == raised.value.payment_id
        assert ({}, [], kwd("10.000")) == (
            payment.pending_refunds,
            await service.list_refunds(payment_id),
            payment.amount_refundable,
        )

    async def test_provider_without_refunds(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        payment_id = await paid(service)
        fake.capabilities = ProviderCapabilities(refunds=False, saved_payment_methods=True)
        with pytest.raises(InvalidStateError):
            await service.refund_payment(payment_id)
        assert ({}, []) == (
            (await service.get_payment(payment_id)).pending_refunds,
            await service.list_refunds(payment_id),
        )


def stripe_rule(amount: Money) -> None:
    """Stripe's rule for three-decimal currencies: the minor amount must end in 0."""
    if amount.currency == KWD and amount.minor_units % 10:
        raise InvalidRequestError(f"Stripe cannot take {amount}")


class TestEventsFoundByCapture:
    """A refund event that names only the capture (PayPal's refunds and reversals) finds its payment."""

    async def test_reversal_by_capture_id(self, service: AsyncPaymentService, store: AsyncStorage) -> None:
        from paykit import EventKind, WebhookEvent

        payment = await service.get_payment(await paid(service))
        with_capture = payment.model_copy(
            update={"version": payment.version + 1, "provider_data": {**payment.provider_data, "capture_id": "CAP9"}}
        )
        assert await store.update_payment(with_capture, expected_version=payment.version)
        event = WebhookEvent(
            provider="fake",
            event_id="WH-REVERSED-1",
            type="PAYMENT.CAPTURE.REVERSED",
            kind=EventKind.REFUND,
            refund_ref="reversal:CAP9",
            refund_status=RefundStatus.SUCCEEDED,
            amount_refunded=kwd("10.000"),
            provider_data={"origin": "reversal", "capture_id": "CAP9"},
        )

        outcomes = [await service.apply_webhook_event(event) for _ in range(2)]

        after = await service.get_payment(payment.id)
        [refund] = await service.list_refunds(payment.id)
        assert ["applied", "duplicate"] == [o.value for o in outcomes]
        assert (PaymentStatus.REFUNDED, 10000) == (after.status, after.refunded_minor)
        assert ("reversed by the provider", RefundStatus.SUCCEEDED) == (refund.reason, refund.status)
        assert {"KWD": "10.000"} == (await service.metrics()).as_dict()["refunds_by_currency"]
