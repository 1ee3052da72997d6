# Generated from tests/_async/test_service.py by scripts/unasync.py: do not edit.
"""PaymentService on MemoryStorage and FakeProvider: the payment lifecycle as users drive it.

Written once for both APIs: this async source runs on the async service, and
scripts/unasync.py makes tests/_sync/test_service.py, its sync twin. Thread and
handle_webhook tests live in tests/test_service_sync_only.py, their asyncio
counterparts in tests/test_service_asyncio.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from paykit import (
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    Money,
    NotFoundError,
    PaymentDeclinedError,
    PaymentService,
    PaymentStatus,
    ProviderUnavailableError,
    RefundStatus,
    StorageError,
)
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock

USD_50 = Money.of("50.00", "USD")


def _init(service: PaymentService, amount: Money = USD_50, **kwargs: Any) -> Any:
    return service.initialize_payment(user_id="u1", amount=amount, provider="fake", **kwargs)


def _paid(service: PaymentService, amount: Money = USD_50) -> Any:
    return service.confirm_payment(_init(service, amount).id, payment_method="pm_card_visa")


def _actions(service: PaymentService, payment_id: str) -> list[AuditAction]:
    return [e.action for e in service.audit_trail(payment_id)]


class TestInitialize:
    """initialize_payment stores first, then registers with the provider."""

    def test_pending_payment_with_provider_reference(self, service: PaymentService, fake: FakeProvider) -> None:
        """A new payment gets the provider's reference and client secret."""
        payment = _init(service, metadata={"order": "42"})

        assert PaymentStatus.PENDING == payment.status
        assert payment.provider_ref is not None
        assert payment.client_secret is not None
        assert {"order": "42"} == payment.metadata
        assert [f"paykit-{payment.id}-create"] == [c.idempotency_key for c in fake.calls_to("create_payment")]

    def test_client_secret_hidden_from_repr(self, service: PaymentService) -> None:
        """The client secret never shows in a payment's repr."""
        payment = _init(service)
        secret = payment.client_secret.get_secret_value()

        assert secret not in repr(payment)

    def test_same_key_returns_same_payment_with_one_provider_call(
        self, service: PaymentService, fake: FakeProvider
    ) -> None:
        """An idempotent replay returns the first payment; the provider sees one call."""
        first = _init(service, idempotency_key="order-42")
        second = _init(service, idempotency_key="order-42")

        assert first == second
        assert 1 == len(fake.calls_to("create_payment"))

    def test_same_key_other_amount_conflicts(self, service: PaymentService) -> None:
        """Reusing a key with another amount raises IdempotencyConflictError."""
        _init(service, idempotency_key="order-42")

        with pytest.raises(IdempotencyConflictError):
            _init(service, Money.of("50.01", "USD"), idempotency_key="order-42")

    def test_provider_outage_leaves_pending_and_retry_completes(
        self, service: PaymentService, fake: FakeProvider
    ) -> None:
        """A crash-like provider failure leaves PENDING; a retry with the key completes with the same provider key."""
        fake.fail_next("timeout")
        with pytest.raises(ProviderUnavailableError):
            _init(service, idempotency_key="order-7")
        stored = service.list_payments(user_id="u1").items

        assert [(PaymentStatus.PENDING, None)] == [(p.status, p.provider_ref) for p in stored]

        payment = _init(service, idempotency_key="order-7")

        assert payment.id == stored[0].id
        assert payment.provider_ref is not None
        keys = [c.idempotency_key for c in fake.calls_to("create_payment")]
        assert [f"paykit-{payment.id}-create"] * 2 == keys

    def test_reconcile_registers_a_stranded_pending_payment(
        self, service: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """reconcile() completes a payment whose provider call never happened."""
        fake.fail_next("server_error")
        with pytest.raises(ProviderUnavailableError):
            _init(service)
        clock.advance(minutes=5)

        report = service.reconcile()

        (payment,) = service.list_payments().items
        assert (1, 1, {}) == (report.checked, report.updated, report.errors)
        assert payment.provider_ref is not None

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"amount": Money.of("0", "USD")}, "positive"),
            ({"amount": Money.of("-1", "USD")}, "positive"),
            ({"amount": 50}, "Money"),
            ({"provider": "nope"}, "unknown provider"),
            ({"user_id": ""}, "user_id"),
            ({"capture_method": "later"}, "capture_method"),
            ({"idempotency_key": "has space"}, "idempotency_key"),
            ({"metadata": {"n": 1}}, "metadata"),
            ({"payment_method": "4242424242424242"}, "card number"),
        ],
    )
    def test_bad_input_raises_and_writes_nothing(
        self, service: PaymentService, fake: FakeProvider, kwargs: dict[str, Any], message: str
    ) -> None:
        """Every bad argument is an InvalidRequestError and nothing is stored or sent."""
        args: dict[str, Any] = {"user_id": "u1", "amount": USD_50, "provider": "fake", **kwargs}

        with pytest.raises(InvalidRequestError, match=message):
            service.initialize_payment(**args)

        assert [] == service.list_payments().items
        assert [] == fake.calls


class TestConfirm:
    """confirm_payment drives the provider's answer into the status table."""

    def test_success_captures_the_amount(self, service: PaymentService) -> None:
        """An automatic-capture payment succeeds with its amount captured."""
        payment = _paid(service)

        assert (PaymentStatus.SUCCEEDED, USD_50) == (payment.status, payment.amount_captured)
        assert [AuditAction.PAYMENT_INIT, AuditAction.PAYMENT_CONFIRM] == _actions(service, payment.id)

    def test_decline_fails_the_payment(self, service: PaymentService, fake: FakeProvider) -> None:
        """A decline raises PaymentDeclinedError naming the payment, which is stored FAILED."""
        payment = _init(service)
        fake.behavior = "decline"

        with pytest.raises(PaymentDeclinedError) as caught:
            service.confirm_payment(payment.id, payment_method="pm_card_visa")

        stored = service.get_payment(payment.id)
        assert (payment.id, "insufficient_funds") == (caught.value.payment_id, caught.value.decline_code)
        assert (PaymentStatus.FAILED, "insufficient_funds") == (stored.status, stored.failure_code)

    def test_requires_action_hands_back_next_action(self, service: PaymentService, fake: FakeProvider) -> None:
        """3-D Secure leaves REQUIRES_ACTION with the provider's next action."""
        fake.behavior = "require_action"

        payment = service.confirm_payment(_init(service).id)

        assert PaymentStatus.REQUIRES_ACTION == payment.status
        assert "redirect_to_url" == (payment.next_action or {})["type"]

    def test_confirming_twice_is_refused(self, service: PaymentService) -> None:
        """A succeeded payment cannot be confirmed again."""
        payment = _paid(service)

        with pytest.raises(InvalidStateError, match="succeeded"):
            service.confirm_payment(payment.id)

    def test_keyed_confirm_replays_without_a_provider_call(self, service: PaymentService, fake: FakeProvider) -> None:
        """Confirming again with the same key returns the payment and calls nobody."""
        payment = _init(service)
        first = service.confirm_payment(payment.id, idempotency_key="c-1")
        second = service.confirm_payment(payment.id, idempotency_key="c-1")

        assert first == second
        assert 1 == len(fake.calls_to("confirm_payment"))
        with pytest.raises(IdempotencyConflictError):
            service.confirm_payment(payment.id, payment_method="pm_card_mastercard", idempotency_key="c-1")

    def test_unknown_payment(self, service: PaymentService) -> None:
        """An unknown id is NotFoundError."""
        with pytest.raises(NotFoundError):
            service.confirm_payment("pay_missing")


class TestCaptureAndCancel:
    """Manual capture and cancellation."""

    def test_partial_capture_limits_refunds(self, service: PaymentService) -> None:
        """A partial capture succeeds with what was captured, and only that is refundable."""
        payment = _init(service, capture_method="manual")
        payment = service.confirm_payment(payment.id)
        assert PaymentStatus.AUTHORIZED == payment.status

        payment = service.capture_payment(payment.id, amount=Money.of("30.00", "USD"))

        assert (PaymentStatus.SUCCEEDED, Money.of("30.00", "USD")) == (payment.status, payment.amount_captured)
        with pytest.raises(InvalidStateError):
            service.refund_payment(payment.id, amount=Money.of("30.01", "USD"))

    def test_capture_above_authorized_is_refused(self, service: PaymentService) -> None:
        """Capturing more than was authorized raises before any provider call."""
        payment = service.confirm_payment(_init(service, capture_method="manual").id)

        with pytest.raises(InvalidRequestError, match="authorized"):
            service.capture_payment(payment.id, amount=Money.of("50.01", "USD"))
        with pytest.raises(InvalidRequestError):
            service.capture_payment(payment.id, amount=Money.of("10", "EUR"))

    def test_capture_needs_authorization(self, service: PaymentService) -> None:
        """Only AUTHORIZED payments are captured."""
        with pytest.raises(InvalidStateError):
            service.capture_payment(_init(service).id)

    def test_cancel_authorized(self, service: PaymentService) -> None:
        """An authorized payment can be canceled, and then not captured."""
        payment = service.confirm_payment(_init(service, capture_method="manual").id)

        payment = service.cancel_payment(payment.id)

        assert PaymentStatus.CANCELED == payment.status
        assert AuditAction.PAYMENT_CANCEL == _actions(service, payment.id)[-1]
        with pytest.raises(InvalidStateError):
            service.capture_payment(payment.id)

    def test_cancel_succeeded_is_refused(self, service: PaymentService) -> None:
        """A captured payment is refunded, not canceled."""
        with pytest.raises(InvalidStateError):
            service.cancel_payment(_paid(service).id)


class TestRefunds:
    """Refunds never exceed what was captured."""

    def test_partials_then_full(self, service: PaymentService) -> None:
        """Several partial refunds move to PARTIALLY_REFUNDED, then REFUNDED."""
        payment = _paid(service)

        service.refund_payment(payment.id, amount=Money.of("20.00", "USD"))
        assert PaymentStatus.PARTIALLY_REFUNDED == service.get_payment(payment.id).status
        rest = service.refund_payment(payment.id)

        payment = service.get_payment(payment.id)
        assert Money.of("30.00", "USD") == rest.amount
        assert (PaymentStatus.REFUNDED, USD_50) == (payment.status, payment.amount_refunded)
        assert [RefundStatus.SUCCEEDED] * 2 == [r.status for r in service.list_refunds(payment.id)]

    def test_over_refund_is_refused_and_writes_nothing(self, service: PaymentService) -> None:
        """Refunding above what remains raises and stores no refund."""
        payment = _paid(service)

        with pytest.raises(InvalidStateError, match="remains refundable"):
            service.refund_payment(payment.id, amount=Money.of("50.01", "USD"))

        assert [] == service.list_refunds(payment.id)
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status

    def test_refund_needs_a_capture(self, service: PaymentService) -> None:
        """A payment that captured nothing cannot be refunded."""
        with pytest.raises(InvalidStateError):
            service.refund_payment(_init(service).id)

    def test_refund_in_another_currency_is_refused(self, service: PaymentService) -> None:
        """Currencies never mix."""
        with pytest.raises(InvalidRequestError):
            service.refund_payment(_paid(service).id, amount=Money.of("1.000", "KWD"))

    def test_keyed_refund_replays(self, service: PaymentService, fake: FakeProvider) -> None:
        """The same refund key returns the same refund; other parameters conflict."""
        payment = _paid(service)
        first = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-1")
        second = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-1")

        assert first.id == second.id
        assert 1 == len(fake.calls_to("refund_payment"))
        with pytest.raises(IdempotencyConflictError):
            service.refund_payment(payment.id, amount=Money.of("6.00", "USD"), idempotency_key="r-1")

    def test_declined_refund_releases_the_reservation(self, service: PaymentService, fake: FakeProvider) -> None:
        """A refund the provider refuses is FAILED and its amount refundable again."""
        payment = _paid(service)
        fake.fail_next("decline")

        with pytest.raises(PaymentDeclinedError):
            service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))

        payment = service.get_payment(payment.id)
        assert [RefundStatus.FAILED] == [r.status for r in service.list_refunds(payment.id)]
        assert (USD_50, PaymentStatus.SUCCEEDED) == (payment.amount_refundable, payment.status)

    def test_refund_outage_keeps_reservation_until_retry(self, service: PaymentService, fake: FakeProvider) -> None:
        """A provider outage keeps the amount reserved; the keyed retry completes with the same provider key."""
        payment = _paid(service)
        fake.fail_next("timeout")
        with pytest.raises(ProviderUnavailableError):
            service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-9")
        assert Money.of("45.00", "USD") == service.get_payment(payment.id).amount_refundable

        refund = service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-9")

        keys = {c.idempotency_key for c in fake.calls_to("refund_payment")}
        assert (RefundStatus.SUCCEEDED, {f"paykit-{refund.id}-refund"}) == (refund.status, keys)
        assert Money.of("5.00", "USD") == service.get_payment(payment.id).amount_refunded


class TestStatusUpdates:
    """The generic updater and events never move a payment backwards."""

    def test_api_update_backwards_raises(self, service: PaymentService) -> None:
        """update_payment_status refuses an illegal transition."""
        payment = _paid(service)

        with pytest.raises(InvalidStateError, match="cannot move"):
            service.update_payment_status("fake", payment.provider_ref, PaymentStatus.PROCESSING)

    def test_api_update_repeated_is_a_noop(self, service: PaymentService) -> None:
        """Applying the same status twice writes one audit entry."""
        payment = _init(service)

        service.update_payment_status("fake", payment.provider_ref, "processing")
        again = service.update_payment_status("fake", payment.provider_ref, "processing")

        assert PaymentStatus.PROCESSING == again.status
        assert 1 == _actions(service, payment.id).count(AuditAction.PAYMENT_STATUS_UPDATE)

    @pytest.mark.parametrize(
        ("status", "captured", "match"),
        [
            ("succeeded", Money.of("50.01", "USD"), "more than the payment"),
            ("succeeded", Money.of("5.00", "EUR"), "in EUR"),
            ("succeeded", Money.of("0.00", "USD"), "must be positive"),
            ("succeeded", Money.of("-5.00", "USD"), "must be positive"),
            ("succeeded", 5.0, "must be a paykit.Money"),
            ("authorized", Money.of("5.00", "USD"), "goes with succeeded"),
            ("failed", Money.of("5.00", "USD"), "goes with succeeded"),
        ],
    )
    def test_api_update_refuses_an_impossible_capture(
        self, service: PaymentService, status: str, captured: Any, match: str
    ) -> None:
        """amount_captured is a positive amount of the payment's currency, at most its amount, with SUCCEEDED.

        A capture above the payment let refunds pay out more than the customer paid, and one on a failed
        payment counted as revenue.
        """
        payment = _init(service)

        with pytest.raises(InvalidRequestError, match=match) as raised:
            service.update_payment_status("fake", payment.provider_ref, status, amount_captured=captured)

        stored = service.get_payment(payment.id)
        assert (raised.value.payment_id, PaymentStatus.PENDING) == (payment.id, stored.status)
        assert Money.of("0.00", "USD") == stored.amount_captured
        assert [AuditAction.PAYMENT_INIT] == _actions(service, payment.id)

    def test_api_update_takes_a_partial_capture(self, service: PaymentService) -> None:
        """A capture up to the amount is recorded, and only it can be refunded."""
        payment = _init(service)

        updated = service.update_payment_status(
            "fake", payment.provider_ref, "succeeded", amount_captured=Money.of("20.00", "USD")
        )

        assert (PaymentStatus.SUCCEEDED, Money.of("20.00", "USD")) == (updated.status, updated.amount_refundable)
        with pytest.raises(InvalidStateError, match=r"20\.00 USD remains refundable"):
            service.refund_payment(payment.id, amount=Money.of("20.01", "USD"))

    @pytest.mark.parametrize("status", [PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED])
    def test_api_update_refuses_refund_statuses(self, service: PaymentService, status: PaymentStatus) -> None:
        """A refund status alone would leave the payment REFUNDED with all of it still refundable and in revenue."""
        payment = _paid(service)

        with pytest.raises(InvalidRequestError, match="refund_payment"):
            service.update_payment_status("fake", payment.provider_ref, status)

        stored = service.get_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, USD_50) == (stored.status, stored.amount_refundable)
        assert {"USD": "50.00"} == service.metrics().as_dict()["net_by_currency"]


class _BrokenStorage(MemoryStorage):
    """Memory storage whose chosen method fails as a database outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def __getattribute__(self, name: str) -> Any:
        if name != "broken" and name in object.__getattribute__(self, "broken"):

            def fail(*args: Any, **kwargs: Any) -> Any:
                raise StorageError("database unreachable")

            return fail
        return super().__getattribute__(name)


class TestReconcile:
    """reconcile() is the answer to a lost webhook."""

    def test_lost_success_webhook(self, service: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        """A payment that settled at the provider without telling us is moved forward."""
        fake.behavior = "processing"
        payment = service.confirm_payment(_init(service).id)
        fake.settle(payment.provider_ref, PaymentStatus.SUCCEEDED)

        assert 0 == service.reconcile().checked  # too recent: a webhook may still come
        clock.advance(minutes=2)
        report = service.reconcile()

        assert (1, 1) == (report.checked, report.updated)
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status

    def test_accept_then_fail(self, service: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        """An asynchronously failed payment is found FAILED."""
        fake.behavior = "accept_then_fail"
        payment = service.confirm_payment(_init(service).id)
        assert PaymentStatus.PROCESSING == payment.status
        clock.advance(minutes=2)

        service.reconcile()

        assert PaymentStatus.FAILED == service.get_payment(payment.id).status


class TestAuditAndSecrets:
    """Every operation is audited; no secret reaches logs or audit entries."""

    def test_audit_entries_carry_actor_and_statuses(self, service: PaymentService) -> None:
        """Entries say who, when, and the status before and after."""
        payment = service.confirm_payment(_init(service, actor="alice").id, actor="bob")

        init, confirm = service.audit_trail(payment.id)
        assert ("alice", None, "pending") == (init.actor, None, init.status_after)
        assert ("bob", "pending", "succeeded") == (confirm.actor, confirm.status_before, confirm.status_after)


class TestListing:
    """Keyset pagination by user and status."""

    def test_pages_newest_first_without_gaps(self, service: PaymentService, clock: ManualClock) -> None:
        """Walking the cursor yields every payment once, newest first."""
        made = []
        for _ in range(7):
            made.append(_init(service).id)
            clock.advance(seconds=1)

        seen: list[str] = []
        cursor = None
        while True:
            page = service.list_payments(user_id="u1", limit=3, cursor=cursor)
            seen.extend(p.id for p in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

        assert list(reversed(made)) == seen

    def test_status_filter_and_bad_arguments(self, service: PaymentService) -> None:
        """Filtering by status; a bad limit, status or cursor is InvalidRequestError."""
        paid = _paid(service)
        _init(service)

        assert [paid.id] == [p.id for p in service.list_payments(status="succeeded").items]
        for kwargs in ({"limit": 0}, {"limit": 501}, {"status": "lost"}, {"cursor": "!!"}):
            with pytest.raises(InvalidRequestError):
                service.list_payments(**kwargs)  # type: ignore[arg-type]


class TestHealthAndMetrics:
    """health() and metrics() report per currency, never summing currencies."""

    def test_metrics_per_currency(self, service: PaymentService) -> None:
        """Revenue, refunds and net are kept per currency."""
        usd = _paid(service)
        _paid(service, Money.of("1.500", "KWD"))
        _init(service, Money.of("100", "JPY"))
        service.refund_payment(usd.id, amount=Money.of("5.00", "USD"))

        metrics = service.metrics()

        assert {"KWD": Money.of("1.500", "KWD"), "USD": USD_50} == metrics.revenue_by_currency
        assert Money.of("45.00", "USD") == metrics.net_by_currency["USD"]
        assert (3, 1) == (metrics.total, metrics.pending)
        assert {"KWD": "0.000", "USD": "5.00"} == metrics.as_dict()["refunds_by_currency"]

    def test_metrics_sum_exactly_past_64_bits(self, service: PaymentService) -> None:
        """Three payments of the largest amount one can hold: revenue and net are exact, never an error."""
        top = Money.from_minor(2**63 - 1, "USD")
        for _ in range(3):
            _paid(service, top)

        metrics = service.metrics()

        assert 3 * (2**63 - 1) == metrics.revenue_by_currency["USD"].minor_units
        assert "276701161105643274.21" == metrics.as_dict()["net_by_currency"]["USD"]

    def test_health_counts_the_last_day(self, service: PaymentService, clock: ManualClock) -> None:
        """Payments older than 24 h drop out of the recent count."""
        _init(service)
        clock.advance(hours=25)
        _init(service)

        health = service.health()

        assert (True, 1, ["fake"]) == (health.ok, health.payments_last_24h, health.providers)

    def test_health_when_storage_is_down(self, fake: FakeProvider, clock: ManualClock) -> None:
        """An unreachable storage makes health not ok, without raising."""
        storage = _BrokenStorage()
        storage.broken = {"ping"}

        health = PaymentService(storage=storage, providers=[fake], clock=clock).health()

        assert (False, None) == (health.ok, health.payments_last_24h)
        assert "unavailable" == health.as_dict()["status"]


def test_clock_must_be_aware(fake: FakeProvider) -> None:
    """A naive clock is refused at the first operation."""
    from datetime import datetime

    naive: Callable[[], datetime] = datetime.now
    service = PaymentService(storage=MemoryStorage(), providers=[fake], clock=naive)

    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        _init(service)


class TestInvoiceRetries:
    """An invoice whose payment was declined can be paid again, and only once at a time."""

    def test_declined_then_retried_then_replayed(self, service: PaymentService, fake: FakeProvider) -> None:
        """After a decline a new payment starts; calling again returns that new payment."""
        from paykit import InvoiceStatus, LineItem

        invoice = service.create_invoice(
            user_id="u1", currency="USD", line_items=[LineItem(description="x", quantity=1, unit_amount=USD_50)]
        )
        service.send_invoice(invoice.id)
        first = service.pay_invoice(invoice.id, provider="fake")
        fake.behavior = "decline"
        with pytest.raises(PaymentDeclinedError):
            service.confirm_payment(first.id, payment_method="pm_card_visa")
        fake.behavior = "succeed"

        second = service.pay_invoice(invoice.id, provider="fake")
        again = service.pay_invoice(invoice.id, provider="fake")
        service.confirm_payment(second.id, payment_method="pm_card_visa")

        assert second.id != first.id
        assert again.id == second.id
        assert (InvoiceStatus.PAID, second.id) == (
            service.get_invoice(invoice.id).status,
            service.get_invoice(invoice.id).payment_id,
        )


class _AlwaysStale(MemoryStorage):
    """A storage where every compare-and-set loses to another writer."""

    def update_payment(self, payment: Any, *, expected_version: int, effects: Any = ()) -> bool:
        return False


def test_endless_contention_is_a_storage_error(
    fake: FakeProvider, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every write loses, the caller gets a StorageError to retry, not a hang."""
    import paykit._sync.engine

    monkeypatch.setattr(paykit._sync.engine, "_CAS_ATTEMPTS", 3)
    service = PaymentService(storage=_AlwaysStale(), providers=[fake], clock=clock)

    with pytest.raises(StorageError, match="kept changing"):
        _init(service)


def test_reconcile_of_an_unchanged_payment_writes_nothing(
    service: PaymentService, fake: FakeProvider, storage: MemoryStorage, clock: ManualClock
) -> None:
    """Checking a payment the provider has not moved leaves no event record and no audit entry."""
    fake.behavior = "processing"
    payment = service.confirm_payment(_init(service).id)
    clock.advance(minutes=2)
    before = (service.get_payment(payment.id).version, len(service.audit_trail(payment.id)))

    report = service.reconcile()

    assert (1, 0) == (report.checked, report.updated)
    assert before == (service.get_payment(payment.id).version, len(service.audit_trail(payment.id)))
    assert storage.get_webhook_event("fake", f"reconcile:{payment.id}:{payment.version}") is None


def test_reconcile_finishes_a_refund_interrupted_by_an_outage(
    service: PaymentService, fake: FakeProvider, clock: ManualClock
) -> None:
    """An unkeyed refund that timed out stays reserved until reconcile() sends it with its first provider key."""
    payment = _paid(service)
    fake.fail_next("timeout")
    with pytest.raises(ProviderUnavailableError):
        service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))
    assert Money.of("45.00", "USD") == service.get_payment(payment.id).amount_refundable
    clock.advance(minutes=2)

    report = service.reconcile()

    payment = service.get_payment(payment.id)
    (refund,) = service.list_refunds(payment.id)
    keys = [c.idempotency_key for c in fake.calls_to("refund_payment")]
    assert (1, {}) == (report.updated, report.errors)
    assert (RefundStatus.SUCCEEDED, Money.of("5.00", "USD")) == (refund.status, payment.amount_refunded)
    assert [f"paykit-{refund.id}-refund"] * 2 == keys
    assert {} == payment.pending_refunds


def test_default_payment_method_is_set_at_the_provider_first(service: PaymentService, fake: FakeProvider) -> None:
    """Choosing a default tells the provider, with the user's customer; choosing it again calls nobody."""
    first = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
    second = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
    customer = service.storage.get_customer_ref("fake", "u1")

    service.set_default_payment_method("u1", second.id)
    service.set_default_payment_method("u1", second.id)

    calls = [(c.idempotency_key, c.provider_ref) for c in fake.calls_to("set_default_payment_method")]
    assert [(customer, second.provider_ref)] == calls
    assert [False, True] == [m.is_default for m in service.list_payment_methods("u1")]
    assert first.is_default
