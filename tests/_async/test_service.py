# Source of the generated sync twin (scripts/unasync.py): edit here.
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
    AsyncPaymentService,
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    Money,
    NotFoundError,
    PaymentDeclinedError,
    PaymentStatus,
    ProviderUnavailableError,
    RefundStatus,
    StorageError,
)
from paykit.storage import AsyncMemoryStorage
from paykit.testing import AsyncFakeProvider, ManualClock

pytestmark = pytest.mark.anyio

USD_50 = Money.of("50.00", "USD")


async def _init(service: AsyncPaymentService, amount: Money = USD_50, **kwargs: Any) -> Any:
    return await service.initialize_payment(user_id="u1", amount=amount, provider="fake", **kwargs)


async def _paid(service: AsyncPaymentService, amount: Money = USD_50) -> Any:
    return await service.confirm_payment((await _init(service, amount)).id, payment_method="pm_card_visa")


async def _actions(service: AsyncPaymentService, payment_id: str) -> list[AuditAction]:
    return [e.action for e in await service.audit_trail(payment_id)]


class TestInitialize:
    """initialize_payment stores first, then registers with the provider."""

    async def test_pending_payment_with_provider_reference(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """A new payment gets the provider's reference and client secret."""
        payment = await _init(service, metadata={"order": "42"})

        assert PaymentStatus.PENDING == payment.status
        assert payment.provider_ref is not None
        assert payment.client_secret is not None
        assert {"order": "42"} == payment.metadata
        assert [f"paykit-{payment.id}-create"] == [c.idempotency_key for c in fake.calls_to("create_payment")]

    async def test_client_secret_hidden_from_repr(self, service: AsyncPaymentService) -> None:
        """The client secret never shows in a payment's repr."""
        payment = await _init(service)
        secret = payment.client_secret.get_secret_value()

        assert secret not in repr(payment)

    async def test_same_key_returns_same_payment_with_one_provider_call(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """An idempotent replay returns the first payment; the provider sees one call."""
        first = await _init(service, idempotency_key="order-42")
        second = await _init(service, idempotency_key="order-42")

        assert first == second
        assert 1 == len(fake.calls_to("create_payment"))

    async def test_same_key_other_amount_conflicts(self, service: AsyncPaymentService) -> None:
        """Reusing a key with another amount raises IdempotencyConflictError."""
        await _init(service, idempotency_key="order-42")

        with pytest.raises(IdempotencyConflictError):
            await _init(service, Money.of("50.01", "USD"), idempotency_key="order-42")

    async def test_provider_outage_leaves_pending_and_retry_completes(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """A crash-like provider failure leaves PENDING; a retry with the key completes with the same provider key."""
        fake.fail_next("timeout")
        with pytest.raises(ProviderUnavailableError):
            await _init(service, idempotency_key="order-7")
        stored = (await service.list_payments(user_id="u1")).items

        assert [(PaymentStatus.PENDING, None)] == [(p.status, p.provider_ref) for p in stored]

        payment = await _init(service, idempotency_key="order-7")

        assert payment.id == stored[0].id
        assert payment.provider_ref is not None
        keys = [c.idempotency_key for c in fake.calls_to("create_payment")]
        assert [f"paykit-{payment.id}-create"] * 2 == keys

    async def test_reconcile_registers_a_stranded_pending_payment(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        """reconcile() completes a payment whose provider call never happened."""
        fake.fail_next("server_error")
        with pytest.raises(ProviderUnavailableError):
            await _init(service)
        clock.advance(minutes=5)

        report = await service.reconcile()

        (payment,) = (await service.list_payments()).items
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
    async def test_bad_input_raises_and_writes_nothing(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, kwargs: dict[str, Any], message: str
    ) -> None:
        """Every bad argument is an InvalidRequestError and nothing is stored or sent."""
        args: dict[str, Any] = {"user_id": "u1", "amount": USD_50, "provider": "fake", **kwargs}

        with pytest.raises(InvalidRequestError, match=message):
            await service.initialize_payment(**args)

        assert [] == (await service.list_payments()).items
        assert [] == fake.calls


class TestConfirm:
    """confirm_payment drives the provider's answer into the status table."""

    async def test_success_captures_the_amount(self, service: AsyncPaymentService) -> None:
        """An automatic-capture payment succeeds with its amount captured."""
        payment = await _paid(service)

        assert (PaymentStatus.SUCCEEDED, USD_50) == (payment.status, payment.amount_captured)
        assert [AuditAction.PAYMENT_INIT, AuditAction.PAYMENT_CONFIRM] == await _actions(service, payment.id)

    async def test_decline_fails_the_payment(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """A decline raises PaymentDeclinedError naming the payment, which is stored FAILED."""
        payment = await _init(service)
        fake.behavior = "decline"

        with pytest.raises(PaymentDeclinedError) as caught:
            await service.confirm_payment(payment.id, payment_method="pm_card_visa")

        stored = await service.get_payment(payment.id)
        assert (payment.id, "insufficient_funds") == (caught.value.payment_id, caught.value.decline_code)
        assert (PaymentStatus.FAILED, "insufficient_funds") == (stored.status, stored.failure_code)

    async def test_requires_action_hands_back_next_action(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """3-D Secure leaves REQUIRES_ACTION with the provider's next action."""
        fake.behavior = "require_action"

        payment = await service.confirm_payment((await _init(service)).id)

        assert PaymentStatus.REQUIRES_ACTION == payment.status
        assert "redirect_to_url" == (payment.next_action or {})["type"]

    async def test_confirming_twice_is_refused(self, service: AsyncPaymentService) -> None:
        """A succeeded payment cannot be confirmed again."""
        payment = await _paid(service)

        with pytest.raises(InvalidStateError, match="succeeded"):
            await service.confirm_payment(payment.id)

    async def test_keyed_confirm_replays_without_a_provider_call(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """Confirming again with the same key returns the payment and calls nobody."""
        payment = await _init(service)
        first = await service.confirm_payment(payment.id, idempotency_key="c-1")
        second = await service.confirm_payment(payment.id, idempotency_key="c-1")

        assert first == second
        assert 1 == len(fake.calls_to("confirm_payment"))
        with pytest.raises(IdempotencyConflictError):
            await service.confirm_payment(payment.id, payment_method="pm_card_mastercard", idempotency_key="c-1")

    async def test_unknown_payment(self, service: AsyncPaymentService) -> None:
        """An unknown id is NotFoundError."""
        with pytest.raises(NotFoundError):
            await service.confirm_payment("pay_missing")


class TestCaptureAndCancel:
    """Manual capture and cancellation."""

    async def test_partial_capture_limits_refunds(self, service: AsyncPaymentService) -> None:
        """A partial capture succeeds with what was captured, and only that is refundable."""
        payment = await _init(service, capture_method="manual")
        payment = await service.confirm_payment(payment.id)
        assert PaymentStatus.AUTHORIZED == payment.status

        payment = await service.capture_payment(payment.id, amount=Money.of("30.00", "USD"))

        assert (PaymentStatus.SUCCEEDED, Money.of("30.00", "USD")) == (payment.status, payment.amount_captured)
        with pytest.raises(InvalidStateError):
            await service.refund_payment(payment.id, amount=Money.of("30.01", "USD"))

    async def test_capture_above_authorized_is_refused(self, service: AsyncPaymentService) -> None:
        """Capturing more than was authorized raises before any provider call."""
        payment = await service.confirm_payment((await _init(service, capture_method="manual")).id)

        with pytest.raises(InvalidRequestError, match="authorized"):
            await service.capture_payment(payment.id, amount=Money.of("50.01", "USD"))
        with pytest.raises(InvalidRequestError):
            await service.capture_payment(payment.id, amount=Money.of("10", "EUR"))

    async def test_capture_needs_authorization(self, service: AsyncPaymentService) -> None:
        """Only AUTHORIZED payments are captured."""
        with pytest.raises(InvalidStateError):
            await service.capture_payment((await _init(service)).id)

    async def test_cancel_authorized(self, service: AsyncPaymentService) -> None:
        """An authorized payment can be canceled, and then not captured."""
        payment = await service.confirm_payment((await _init(service, capture_method="manual")).id)

        payment = await service.cancel_payment(payment.id)

        assert PaymentStatus.CANCELED == payment.status
        assert AuditAction.PAYMENT_CANCEL == (await _actions(service, payment.id))[-1]
        with pytest.raises(InvalidStateError):
            await service.capture_payment(payment.id)

    async def test_cancel_succeeded_is_refused(self, service: AsyncPaymentService) -> None:
        """A captured payment is refunded, not canceled."""
        with pytest.raises(InvalidStateError):
            await service.cancel_payment((await _paid(service)).id)


class TestRefunds:
    """Refunds never exceed what was captured."""

    async def test_partials_then_full(self, service: AsyncPaymentService) -> None:
        """Several partial refunds move to PARTIALLY_REFUNDED, then REFUNDED."""
        payment = await _paid(service)

        await service.refund_payment(payment.id, amount=Money.of("20.00", "USD"))
        assert PaymentStatus.PARTIALLY_REFUNDED == (await service.get_payment(payment.id)).status
        rest = await service.refund_payment(payment.id)

        payment = await service.get_payment(payment.id)
        assert Money.of("30.00", "USD") == rest.amount
        assert (PaymentStatus.REFUNDED, USD_50) == (payment.status, payment.amount_refunded)
        assert [RefundStatus.SUCCEEDED] * 2 == [r.status for r in await service.list_refunds(payment.id)]

    async def test_over_refund_is_refused_and_writes_nothing(self, service: AsyncPaymentService) -> None:
        """Refunding above what remains raises and stores no refund."""
        payment = await _paid(service)

        with pytest.raises(InvalidStateError, match="remains refundable"):
            await service.refund_payment(payment.id, amount=Money.of("50.01", "USD"))

        assert [] == await service.list_refunds(payment.id)
        assert PaymentStatus.SUCCEEDED == (await service.get_payment(payment.id)).status

    async def test_refund_needs_a_capture(self, service: AsyncPaymentService) -> None:
        """A payment that captured nothing cannot be refunded."""
        with pytest.raises(InvalidStateError):
            await service.refund_payment((await _init(service)).id)

    async def test_refund_in_another_currency_is_refused(self, service: AsyncPaymentService) -> None:
        """Currencies never mix."""
        with pytest.raises(InvalidRequestError):
            await service.refund_payment((await _paid(service)).id, amount=Money.of("1.000", "KWD"))

    async def test_keyed_refund_replays(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """The same refund key returns the same refund; other parameters conflict."""
        payment = await _paid(service)
        first = await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-1")
        second = await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-1")

        assert first.id == second.id
        assert 1 == len(fake.calls_to("refund_payment"))
        with pytest.raises(IdempotencyConflictError):
            await service.refund_payment(payment.id, amount=Money.of("6.00", "USD"), idempotency_key="r-1")

    async def test_declined_refund_releases_the_reservation(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """A refund the provider refuses is FAILED and its amount refundable again."""
        payment = await _paid(service)
        fake.fail_next("decline")

        with pytest.raises(PaymentDeclinedError):
            await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))

        payment = await service.get_payment(payment.id)
        assert [RefundStatus.FAILED] == [r.status for r in await service.list_refunds(payment.id)]
        assert (USD_50, PaymentStatus.SUCCEEDED) == (payment.amount_refundable, payment.status)

    async def test_refund_outage_keeps_reservation_until_retry(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """A provider outage keeps the amount reserved; the keyed retry completes with the same provider key."""
        payment = await _paid(service)
        fake.fail_next("timeout")
        with pytest.raises(ProviderUnavailableError):
            await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-9")
        assert Money.of("45.00", "USD") == (await service.get_payment(payment.id)).amount_refundable

        refund = await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"), idempotency_key="r-9")

        keys = {c.idempotency_key for c in fake.calls_to("refund_payment")}
        assert (RefundStatus.SUCCEEDED, {f"paykit-{refund.id}-refund"}) == (refund.status, keys)
        assert Money.of("5.00", "USD") == (await service.get_payment(payment.id)).amount_refunded


class TestStatusUpdates:
    """The generic updater and events never move a payment backwards."""

    async def test_api_update_backwards_raises(self, service: AsyncPaymentService) -> None:
        """update_payment_status refuses an illegal transition."""
        payment = await _paid(service)

        with pytest.raises(InvalidStateError, match="cannot move"):
            await service.update_payment_status("fake", payment.provider_ref, PaymentStatus.PROCESSING)

    async def test_api_update_repeated_is_a_noop(self, service: AsyncPaymentService) -> None:
        """Applying the same status twice writes one audit entry."""
        payment = await _init(service)

        await service.update_payment_status("fake", payment.provider_ref, "processing")
        again = await service.update_payment_status("fake", payment.provider_ref, "processing")

        assert PaymentStatus.PROCESSING == again.status
        assert 1 == (await _actions(service, payment.id)).count(AuditAction.PAYMENT_STATUS_UPDATE)

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
    async def test_api_update_refuses_an_impossible_capture(
        self, service: AsyncPaymentService, status: str, captured: Any, match: str
    ) -> None:
        """amount_captured is a positive amount of the payment's currency, at most its amount, with SUCCEEDED.

        A capture above the payment let refunds pay out more than the customer paid, and one on a failed
        payment counted as revenue.
        """
        payment = await _init(service)

        with pytest.raises(InvalidRequestError, match=match) as raised:
            await service.update_payment_status("fake", payment.provider_ref, status, amount_captured=captured)

        stored = await service.get_payment(payment.id)
        assert (raised.value.payment_id, PaymentStatus.PENDING) == (payment.id, stored.status)
        assert Money.of("0.00", "USD") == stored.amount_captured
        assert [AuditAction.PAYMENT_INIT] == await _actions(service, payment.id)

    async def test_api_update_takes_a_partial_capture(self, service: AsyncPaymentService) -> None:
        """A capture up to the amount is recorded, and only it can be refunded."""
        payment = await _init(service)

        updated = await service.update_payment_status(
            "fake", payment.provider_ref, "succeeded", amount_captured=Money.of("20.00", "USD")
        )

        assert (PaymentStatus.SUCCEEDED, Money.of("20.00", "USD")) == (updated.status, updated.amount_refundable)
        with pytest.raises(InvalidStateError, match=r"20\.00 USD remains refundable"):
            await service.refund_payment(payment.id, amount=Money.of("20.01", "USD"))

    @pytest.mark.parametrize("status", [PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED])
    async def test_api_update_refuses_refund_statuses(
        self, service: AsyncPaymentService, status: PaymentStatus
    ) -> None:
        """A refund status alone would leave the payment REFUNDED with all of it still refundable and in revenue."""
        payment = await _paid(service)

        with pytest.raises(InvalidRequestError, match="refund_payment"):
            await service.update_payment_status("fake", payment.provider_ref, status)

        stored = await service.get_payment(payment.id)
        assert (PaymentStatus.SUCCEEDED, USD_50) == (stored.status, stored.amount_refundable)
        assert {"USD": "50.00"} == (await service.metrics()).as_dict()["net_by_currency"]


class _BrokenStorage(AsyncMemoryStorage):
    """Memory storage whose chosen method fails as a database outage would."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[str] = set()

    def __getattribute__(self, name: str) -> Any:
        if name != "broken" and name in object.__getattribute__(self, "broken"):

            async def fail(*args: Any, **kwargs: Any) -> Any:
                raise StorageError("database unreachable")

            return fail
        return super().__getattribute__(name)


class TestReconcile:
    """reconcile() is the answer to a lost webhook."""

    async def test_lost_success_webhook(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        """A payment that settled at the provider without telling us is moved forward."""
        fake.behavior = "processing"
        payment = await service.confirm_payment((await _init(service)).id)
        fake.settle(payment.provider_ref, PaymentStatus.SUCCEEDED)

        assert 0 == (await service.reconcile()).checked  # too recent: a webhook may still come
        clock.advance(minutes=2)
        report = await service.reconcile()

        assert (1, 1) == (report.checked, report.updated)
        assert PaymentStatus.SUCCEEDED == (await service.get_payment(payment.id)).status

    async def test_accept_then_fail(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        """An asynchronously failed payment is found FAILED."""
        fake.behavior = "accept_then_fail"
        payment = await service.confirm_payment((await _init(service)).id)
        assert PaymentStatus.PROCESSING == payment.status
        clock.advance(minutes=2)

        await service.reconcile()

        assert PaymentStatus.FAILED == (await service.get_payment(payment.id)).status


class TestAuditAndSecrets:
    """Every operation is audited; no secret reaches logs or audit entries."""

    async def test_audit_entries_carry_actor_and_statuses(self, service: AsyncPaymentService) -> None:
        """Entries say who, when, and the status before and after."""
        payment = await service.confirm_payment((await _init(service, actor="alice")).id, actor="bob")

        init, confirm = await service.audit_trail(payment.id)
        assert ("alice", None, "pending") == (init.actor, None, init.status_after)
        assert ("bob", "pending", "succeeded") == (confirm.actor, confirm.status_before, confirm.status_after)


class TestListing:
    """Keyset pagination by user and status."""

    async def test_pages_newest_first_without_gaps(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        """Walking the cursor yields every payment once, newest first."""
        made = []
        for _ in range(7):
            made.append((await _init(service)).id)
            clock.advance(seconds=1)

        seen: list[str] = []
        cursor = None
        while True:
            page = await service.list_payments(user_id="u1", limit=3, cursor=cursor)
            seen.extend(p.id for p in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor

        assert list(reversed(made)) == seen

    async def test_status_filter_and_bad_arguments(self, service: AsyncPaymentService) -> None:
        """Filtering by status; a bad limit, status or cursor is InvalidRequestError."""
        paid = await _paid(service)
        await _init(service)

        assert [paid.id] == [p.id for p in (await service.list_payments(status="succeeded")).items]
        for kwargs in ({"limit": 0}, {"limit": 501}, {"status": "lost"}, {"cursor": "!!"}):
            with pytest.raises(InvalidRequestError):
                await service.list_payments(**kwargs)  # type: ignore[arg-type]


class TestHealthAndMetrics:
    """health() and metrics() report per currency, never summing currencies."""

    async def test_metrics_per_currency(self, service: AsyncPaymentService) -> None:
        """Revenue, refunds and net are kept per currency."""
        usd = await _paid(service)
        await _paid(service, Money.of("1.500", "KWD"))
        await _init(service, Money.of("100", "JPY"))
        await service.refund_payment(usd.id, amount=Money.of("5.00", "USD"))

        metrics = await service.metrics()

        assert {"KWD": Money.of("1.500", "KWD"), "USD": USD_50} == metrics.revenue_by_currency
        assert Money.of("45.00", "USD") == metrics.net_by_currency["USD"]
        assert (3, 1) == (metrics.total, metrics.pending)
        assert {"KWD": "0.000", "USD": "5.00"} == metrics.as_dict()["refunds_by_currency"]

    async def test_metrics_sum_exactly_past_64_bits(self, service: AsyncPaymentService) -> None:
        """Three payments of the largest amount one can hold: revenue and net are exact, never an error."""
        top = Money.from_minor(2**63 - 1, "USD")
        for _ in range(3):
            await _paid(service, top)

        metrics = await service.metrics()

        assert 3 * (2**63 - 1) == metrics.revenue_by_currency["USD"].minor_units
        assert "276701161105643274.21" == metrics.as_dict()["net_by_currency"]["USD"]

    async def test_health_counts_the_last_day(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        """Payments older than 24 h drop out of the recent count."""
        await _init(service)
        clock.advance(hours=25)
        await _init(service)

        health = await service.health()

        assert (True, 1, ["fake"]) == (health.ok, health.payments_last_24h, health.providers)

    async def test_health_when_storage_is_down(self, fake: AsyncFakeProvider, clock: ManualClock) -> None:
        """An unreachable storage makes health not ok, without raising."""
        storage = _BrokenStorage()
        storage.broken = {"ping"}

        health = await AsyncPaymentService(storage=storage, providers=[fake], clock=clock).health()

        assert (False, None) == (health.ok, health.payments_last_24h)
        assert "unavailable" == health.as_dict()["status"]


async def test_clock_must_be_aware(fake: AsyncFakeProvider) -> None:
    """A naive clock is refused at the first operation."""
    from datetime import datetime

    naive: Callable[[], datetime] = datetime.now
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake], clock=naive)

    with pytest.raises(InvalidRequestError, match="timezone-aware"):
        await _init(service)


class TestInvoiceRetries:
    """An invoice whose payment was declined can be paid again, and only once at a time."""

    async def test_declined_then_retried_then_replayed(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """After a decline a new payment starts; calling again returns that new payment."""
        from paykit import InvoiceStatus, LineItem

        invoice = await service.create_invoice(
            user_id="u1", currency="USD", line_items=[LineItem(description="x", quantity=1, unit_amount=USD_50)]
        )
        await service.send_invoice(invoice.id)
        first = await service.pay_invoice(invoice.id, provider="fake")
        fake.behavior = "decline"
        with pytest.raises(PaymentDeclinedError):
            await service.confirm_payment(first.id, payment_method="pm_card_visa")
        fake.behavior = "succeed"

        second = await service.pay_invoice(invoice.id, provider="fake")
        again = await service.pay_invoice(invoice.id, provider="fake")
        await service.confirm_payment(second.id, payment_method="pm_card_visa")

        assert second.id != first.id
        assert again.id == second.id
        assert (InvoiceStatus.PAID, second.id) == (
            (await service.get_invoice(invoice.id)).status,
            (await service.get_invoice(invoice.id)).payment_id,
        )


class _AlwaysStale(AsyncMemoryStorage):
    """A storage where every compare-and-set loses to another writer."""

    async def update_payment(self, payment: Any, *, expected_version: int, effects: Any = ()) -> bool:
        return False


async def test_endless_contention_is_a_storage_error(
    fake: AsyncFakeProvider, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every write loses, the caller gets a StorageError to retry, not a hang."""
    import paykit._async.engine

    monkeypatch.setattr(paykit._async.engine, "_CAS_ATTEMPTS", 3)
    service = AsyncPaymentService(storage=_AlwaysStale(), providers=[fake], clock=clock)

    with pytest.raises(StorageError, match="kept changing"):
        await _init(service)


async def test_reconcile_of_an_unchanged_payment_writes_nothing(
    service: AsyncPaymentService, fake: AsyncFakeProvider, storage: AsyncMemoryStorage, clock: ManualClock
) -> None:
    """Checking a payment the provider has not moved leaves no event record and no audit entry."""
    fake.behavior = "processing"
    payment = await service.confirm_payment((await _init(service)).id)
    clock.advance(minutes=2)
    before = ((await service.get_payment(payment.id)).version, len(await service.audit_trail(payment.id)))

    report = await service.reconcile()

    assert (1, 0) == (report.checked, report.updated)
    assert before == ((await service.get_payment(payment.id)).version, len(await service.audit_trail(payment.id)))
    assert await storage.get_webhook_event("fake", f"reconcile:{payment.id}:{payment.version}") is None


async def test_reconcile_finishes_a_refund_interrupted_by_an_outage(
    service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
) -> None:
    """An unkeyed refund that timed out stays reserved until reconcile() sends it with its first provider key."""
    payment = await _paid(service)
    fake.fail_next("timeout")
    with pytest.raises(ProviderUnavailableError):
        await service.refund_payment(payment.id, amount=Money.of("5.00", "USD"))
    assert Money.of("45.00", "USD") == (await service.get_payment(payment.id)).amount_refundable
    clock.advance(minutes=2)

    report = await service.reconcile()

    payment = await service.get_payment(payment.id)
    (refund,) = await service.list_refunds(payment.id)
    keys = [c.idempotency_key for c in fake.calls_to("refund_payment")]
    assert (1, {}) == (report.updated, report.errors)
    assert (RefundStatus.SUCCEEDED, Money.of("5.00", "USD")) == (refund.status, payment.amount_refunded)
    assert [f"paykit-{refund.id}-refund"] * 2 == keys
    assert {} == payment.pending_refunds


async def test_default_payment_method_is_set_at_the_provider_first(
    service: AsyncPaymentService, fake: AsyncFakeProvider
) -> None:
    """Choosing a default tells the provider, with the user's customer; choosing it again calls nobody."""
    first = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
    second = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
    customer = await service.storage.get_customer_ref("fake", "u1")

    await service.set_default_payment_method("u1", second.id)
    await service.set_default_payment_method("u1", second.id)

    calls = [(c.idempotency_key, c.provider_ref) for c in fake.calls_to("set_default_payment_method")]
    assert [(customer, second.provider_ref)] == calls
    assert [False, True] == [m.is_default for m in await service.list_payment_methods("u1")]
    assert first.is_default
