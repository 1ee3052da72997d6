"""service.explain(): one payment's timeline, and the provider's view of it under ``live``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest

from paykit import (
    Explanation,
    Money,
    NotFoundError,
    Notification,
    Payment,
    PaymentService,
    PaymentStatus,
    ProviderUnavailableError,
    Refund,
    RefundStatus,
)
from paykit.notify import CallbackNotifier
from paykit.storage import MemoryStorage, Storage
from paykit.testing import FakeProvider, ManualClock
from paykit.webhooks import handle_webhook


@pytest.fixture(params=["memory", pytest.param("mongo_server", marks=pytest.mark.mongo_server)])
def any_storage(request: pytest.FixtureRequest) -> Storage:
    """Memory, and MongoStorage on the suite's MongoDB-wire server."""
    if request.param == "memory":
        return MemoryStorage()
    return request.getfixturevalue("real_mongo_storage")  # type: ignore[no-any-return]


@pytest.fixture
def delivered() -> list[Notification]:
    return []


@pytest.fixture
def app(
    any_storage: Storage, fake: FakeProvider, clock: ManualClock, delivered: list[Notification]
) -> Iterator[PaymentService]:
    notifier = CallbackNotifier(delivered.append, name="app")
    with PaymentService(storage=any_storage, providers=[fake], notifiers=[notifier], clock=clock) as service:
        yield service


def deliver(service: PaymentService, hook: Any) -> str:
    response = handle_webhook(service, "fake", hook.body, hook.headers)
    assert 200 == response.status_code
    return response.outcome


def lifecycle(service: PaymentService, fake: FakeProvider, clock: ManualClock) -> tuple[Payment, Refund]:
    """A payment settled by a webhook delivered twice, echoed by a second event, a stale event, a refund."""
    fake.behavior = "processing"
    payment = service.initialize_payment(user_id="alice", amount=Money.of("49.99", "USD"), provider="fake")
    payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
    clock.advance(seconds=3)
    paid = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_paid")
    assert ["applied", "duplicate"] == [deliver(service, paid) for _ in range(2)]
    clock.advance(seconds=1)
    assert "duplicate" == deliver(service, fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_echo"))
    clock.advance(seconds=1)
    assert "stale" == deliver(service, fake.webhook(payment, PaymentStatus.PROCESSING, event_id="evt_late"))
    clock.advance(minutes=5)
    fake.behavior = "succeed"
    refund = service.refund_payment(payment.id, amount=Money.of("10.00", "USD"), reason="damaged box")
    service.dispatch_notifications()
    return service.get_payment(payment.id), refund


class TestTimeline:
    """Every record about the payment, oldest first, on memory and on MongoDB."""

    def test_oldest_first_with_every_kind_of_record(
        self, app: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        payment, _ = lifecycle(app, fake, clock)

        explanation = app.explain(payment.id)

        times = [entry.at for entry in explanation.timeline]
        assert sorted(times) == times
        assert {"audit", "webhook", "refund", "notification"} == {e.kind for e in explanation.timeline}
        assert app.audit_trail(payment.id) == list(explanation.audit)
        assert len(explanation.audit) + len(explanation.webhook_events) + len(explanation.refunds) + len(
            explanation.notifications
        ) == len(explanation.timeline)

    def test_webhook_events_with_their_outcomes(
        self, app: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """The applied event, a second event for a status already reached, the stale one; the refund's event."""
        payment, _ = lifecycle(app, fake, clock)

        explanation = app.explain(payment.id)

        outcomes = [(r.event_id, r.outcome) for r in explanation.webhook_events]
        assert [("evt_paid", "applied"), ("evt_echo", "duplicate"), ("evt_late", "stale")] == outcomes
        lines = [e.summary for e in explanation.timeline if e.kind == "webhook"]
        assert "payment.succeeded evt_paid from fake: applied" == lines[0]
        applied_at = next(
            i for i, e in enumerate(explanation.timeline) if e.summary.endswith("evt_paid from fake: applied")
        )
        caused = explanation.timeline[applied_at + 1]
        assert ("audit", "PAYMENT_STATUS_UPDATE processing -> succeeded by webhook:fake (event evt_paid)") == (
            caused.kind,
            caused.summary,
        )

    def test_refunds_and_provider_references(self, app: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        payment, refund = lifecycle(app, fake, clock)

        explanation = app.explain(payment.id)

        (stored,) = explanation.refunds
        assert (refund.id, RefundStatus.SUCCEEDED, 1) == (stored.id, stored.status, stored.attempts)
        assert {
            "payment": payment.provider_ref,
            f"refund {refund.id}": stored.provider_ref,
        } == explanation.provider_refs
        line = next(e for e in explanation.timeline if e.kind == "refund")
        assert f"{refund.id} 10.00 USD: succeeded, provider ref {stored.provider_ref}, 1 attempt" == line.summary
        assert {"amount": "10.00", "currency": "USD", "reason": "damaged box"}.items() <= line.details.items()

    def test_notifications_with_their_delivery_state(
        self, app: PaymentService, fake: FakeProvider, clock: ManualClock, delivered: list[Notification]
    ) -> None:
        payment, _ = lifecycle(app, fake, clock)

        explanation = app.explain(payment.id)

        assert {n.id for n in delivered} == {n.id for n in explanation.notifications}
        assert {("delivered", ("app",), 1)} == {
            (n.delivery, n.delivered_to, n.attempts) for n in explanation.notifications
        }
        lines = [e.summary for e in explanation.timeline if e.kind == "notification"]
        assert "payment_succeeded for alice: delivered to app, 1 attempt" in lines

    def test_provider_data_is_a_provider_reference(self, service: PaymentService, fake: FakeProvider) -> None:
        """Ids a provider keeps beside its reference (a PayPal capture id) are listed with it."""
        payment = service.initialize_payment(user_id="u", amount=Money.of("5.00", "USD"), provider="fake")
        service.storage.update_payment(
            payment.model_copy(update={"version": payment.version + 1, "provider_data": {"capture_id": "CAP-1"}}),
            expected_version=payment.version,
        )

        assert {"payment": payment.provider_ref, "capture_id": "CAP-1"} == service.explain(payment.id).provider_refs

    def test_notifications_about_a_refund(self, service: PaymentService, fake: FakeProvider) -> None:
        """A refund that fails after succeeding notifies about the refund; the payment's explanation shows it."""
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        fake.fail_next("refund_fails_later")
        refund = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))
        failed = fake.refund_webhook(refund.id)
        assert "applied" == handle_webhook(service, "fake", failed.body, failed.headers).outcome

        explanation = service.explain(payment.id)

        about_refund = [n for n in explanation.notifications if n.subject_id == refund.id]
        assert [("refund_failed", "pending")] == [(n.kind.value, n.delivery) for n in about_refund]
        assert RefundStatus.FAILED == explanation.refunds[0].status

    def test_unknown_payment(self, service: PaymentService) -> None:
        with pytest.raises(NotFoundError):
            service.explain("pay_missing")


class TestLive:
    """live=True asks the provider and flags every difference; a provider error is reported, not raised."""

    def test_agreeing_provider(self, app: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        payment, refund = lifecycle(app, fake, clock)

        explanation = app.explain(payment.id, live=True)

        assert (True, PaymentStatus.SUCCEEDED, Money.of("49.99", "USD")) == (
            explanation.live,
            explanation.provider_status,
            explanation.provider_captured,
        )
        assert {refund.id: RefundStatus.SUCCEEDED} == explanation.provider_refund_statuses
        assert ((), ()) == (explanation.differences, explanation.provider_errors)
        assert "no differences: the provider agrees with paykit" in explanation.render()

    def test_a_payment_settled_without_a_webhook(self, service: PaymentService, fake: FakeProvider) -> None:
        fake.behavior = "processing"
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
        fake.settle(payment.provider_ref or "", PaymentStatus.SUCCEEDED)

        explanation = service.explain(payment.id, live=True)

        assert [
            "the provider says the payment is succeeded; paykit has processing "
            "(an event paykit has not received: reconcile() applies it)",
            "the provider captured 20.00 USD; paykit recorded 0.00 USD",
        ] == list(explanation.differences)
        assert PaymentStatus.PROCESSING == service.get_payment(payment.id).status  # explain writes nothing
        assert "differences:" in explanation.render()

    def test_a_refund_settled_silently(self, service: PaymentService, fake: FakeProvider) -> None:
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        fake.fail_next("refund_pending")
        refund = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))
        fake.settle_refund(refund.id, RefundStatus.FAILED, failure_message="card closed")

        explanation = service.explain(payment.id, live=True)

        assert [
            f"refund {refund.id} (5.00 USD): the provider says failed; paykit has pending (provider: card closed)"
        ] == list(explanation.differences)
        assert {refund.id: RefundStatus.FAILED} == explanation.provider_refund_statuses

    def test_provider_errors_are_reported(
        self, service: PaymentService, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        refund = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))

        def unavailable(_: Payment) -> None:
            raise ProviderUnavailableError("the fake provider answered 503", provider="fake", http_status=503)

        monkeypatch.setattr(fake, "retrieve_payment", unavailable)
        fake.fail_next_lookup("timeout", times=2)  # a read is tried twice

        explanation = service.explain(payment.id, live=True)

        assert (None, (), {}) == (
            explanation.provider_status,
            explanation.differences,
            explanation.provider_refund_statuses,
        )
        assert [
            "retrieve_payment failed: ProviderUnavailableError: the fake provider answered 503",
            f"retrieve_refund {refund.id} failed: ProviderUnavailableError: the fake provider timed out",
        ] == list(explanation.provider_errors)
        assert "could not ask: retrieve_payment failed" in explanation.render()
        assert explanation.as_dict()["live"]["errors"] == list(explanation.provider_errors)

    def test_a_provider_this_service_does_not_have(self, service: PaymentService, storage: MemoryStorage) -> None:
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")

        explanation = PaymentService(storage=storage).explain(payment.id, live=True)

        assert ("provider 'fake' is not configured in this service",) == explanation.provider_errors

    def test_a_payment_the_provider_does_not_know_yet(
        self, service: PaymentService, fake: FakeProvider, storage: MemoryStorage
    ) -> None:
        fake.fail_next("timeout")
        with pytest.raises(ProviderUnavailableError):
            service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        (payment,) = service.list_payments(user_id="u").items

        explanation = service.explain(payment.id, live=True)

        assert ("retrieve_payment not called: the payment has no provider reference yet",) == (
            explanation.provider_errors
        )
        assert [] == fake.calls_to("retrieve_payment")


class TestValues:
    """An explanation is a frozen value that prints and serializes without secrets."""

    def test_no_secret_anywhere(self, service: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        payment, _ = lifecycle(service, fake, clock)
        assert payment.client_secret is not None
        secret = payment.client_secret.get_secret_value()

        explanation = service.explain(payment.id, live=True)

        for text in (explanation.render(), json.dumps(explanation.as_dict()), repr(explanation)):
            assert secret not in text
        assert "client_secret" not in json.dumps(explanation.as_dict())

    def test_json_ready_with_decimal_amounts(
        self, service: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        payment, _ = lifecycle(service, fake, clock)

        data = json.loads(json.dumps(service.explain(payment.id, live=True).as_dict()))

        assert {"amount": "49.99", "captured": "49.99", "refunded": "10.00", "currency": "USD"}.items() <= data[
            "payment"
        ].items()
        assert ("succeeded", "49.99", []) == (data["live"]["status"], data["live"]["captured"], data["differences"])
        assert None is service.explain(payment.id).as_dict()["live"]

    def test_frozen(self, service: PaymentService) -> None:
        payment = service.initialize_payment(user_id="u", amount=Money.of("20.00", "USD"), provider="fake")
        explanation: Explanation = service.explain(payment.id)

        with pytest.raises(dataclasses.FrozenInstanceError):
            explanation.live = True  # type: ignore[misc]

    def test_render_reads_as_a_timeline(self, service: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        payment, _ = lifecycle(service, fake, clock)

        text = service.explain(payment.id).render()

        assert text.startswith(f"payment {payment.id}: 49.99 USD via fake, partially_refunded (user alice)")
        assert "timeline (oldest first):" in text
        assert "2026-01-01 00:00:03  webhook       payment.succeeded evt_paid from fake: applied" in text
