# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Invoices: exact totals, per-line half-up tax, unique numbers, draft -> open -> paid or void.

Written once for both APIs (tests/_sync/test_invoices.py is generated from here); the
thread and handle_webhook tests are in tests/test_invoices_sync_only.py.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from paykit import (
    AsyncPaymentService,
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    InvoiceStatus,
    LineItem,
    Money,
    NotFoundError,
    NotificationKind,
    PaymentDeclinedError,
    PaymentStatus,
    StorageError,
)
from paykit.testing import AsyncFakeProvider, ManualClock

pytestmark = pytest.mark.anyio


def line(amount: str, currency: str, quantity: int = 1, tax_rate: str | None = None) -> LineItem:
    """A line item with a str tax rate turned into a Decimal."""
    return LineItem(
        description="item",
        quantity=quantity,
        unit_amount=Money.of(amount, currency),
        tax_rate=None if tax_rate is None else Decimal(tax_rate),
    )


async def open_invoice(service: AsyncPaymentService, amount: str = "12.500", currency: str = "KWD") -> str:
    """Create and send a one-line invoice; return its id."""
    invoice = await service.create_invoice(user_id="u1", currency=currency, line_items=[line(amount, currency)])
    return (await service.send_invoice(invoice.id)).id


class TestLineTotals:
    """A line is quantity x unit amount, plus its own tax."""

    def test_subtotal_and_total(self) -> None:
        """Without tax, total is the subtotal; arithmetic is exact in minor units."""
        item = line("12.500", "KWD", quantity=3)
        assert Money.of("37.500", "KWD") == item.subtotal
        assert Money.zero("KWD") == item.tax
        assert Money.of("37.500", "KWD") == item.total

    async def test_invoice_sums_lines_exactly(self, service: AsyncPaymentService) -> None:
        """Invoice subtotal, tax and total are the exact sums of the lines."""
        invoice = await service.create_invoice(
            user_id="u1",
            currency="KWD",
            line_items=[
                line("12.500", "KWD", quantity=3),
                line("7.125", "KWD", tax_rate="0.05"),
                line("0.001", "KWD", quantity=7, tax_rate="0.15"),
            ],
        )
        assert Money.of("44.632", "KWD") == invoice.subtotal
        assert Money.of("0.357", "KWD") == invoice.tax
        assert Money.of("44.989", "KWD") == invoice.total
        assert invoice.subtotal + invoice.tax == invoice.total

    async def test_lines_may_be_mappings(self, service: AsyncPaymentService) -> None:
        """Plain dicts (e.g. from JSON) are accepted, with the tax rate as a string."""
        invoice = await service.create_invoice(
            user_id="u1",
            currency="USD",
            line_items=[
                {"description": "Plan", "quantity": 2, "unit_amount": Money.of("9.99", "USD"), "tax_rate": "0.2"}
            ],
        )
        assert Money.of("23.98", "USD") == invoice.total
        assert Decimal("0.2") == invoice.line_items[0].tax_rate


class TestTaxRounding:
    """Tax is rounded half-up to the minor unit, once per line, in any exponent."""

    @pytest.mark.parametrize(
        ("currency", "unit", "quantity", "rate", "tax"),
        [
            ("USD", "0.10", 1, "0.05", "0.01"),
            ("USD", "0.50", 1, "0.05", "0.03"),
            ("USD", "0.70", 1, "0.05", "0.04"),
            ("USD", "0.29", 1, "0.05", "0.01"),
            ("USD", "0.10", 5, "0.05", "0.03"),
            ("USD", "100.00", 1, "0", "0.00"),
            ("USD", "19.99", 3, "1", "59.97"),
            ("JPY", "10", 1, "0.05", "1"),
            ("JPY", "50", 1, "0.05", "3"),
            ("JPY", "1", 1, "0.08", "0"),
            ("JPY", "1999", 1, "0.1", "200"),
            ("KWD", "0.010", 1, "0.05", "0.001"),
            ("KWD", "0.050", 1, "0.05", "0.003"),
            ("KWD", "7.125", 1, "0.05", "0.356"),
            ("BHD", "1.000", 3, "0.1", "0.300"),
            ("CLF", "0.0010", 1, "0.05", "0.0001"),
        ],
    )
    def test_half_up_per_line(self, currency: str, unit: str, quantity: int, rate: str, tax: str) -> None:
        """Halves round up (2.5 -> 3, never to even), on quantity x unit, not per unit."""
        assert Money.of(tax, currency) == line(unit, currency, quantity, rate).tax

    async def test_rounded_per_line_not_on_the_sum(self, service: AsyncPaymentService) -> None:
        """Two lines of 0.5 cent tax each make 2 cents, not the 1 cent of the rounded sum."""
        invoice = await service.create_invoice(
            user_id="u1",
            currency="USD",
            line_items=[line("0.10", "USD", tax_rate="0.05"), line("0.10", "USD", tax_rate="0.05")],
        )
        assert Money.of("0.02", "USD") == invoice.tax
        assert Money.of("0.22", "USD") == invoice.total


class TestNumbers:
    """Invoice numbers are human-readable, sequential per year and never repeat."""

    async def test_sequential(self, service: AsyncPaymentService) -> None:
        """Numbers read PREFIX-YEAR-000001, -000002..."""
        numbers = [
            (await service.create_invoice(user_id="u1", currency="USD", line_items=[line("1", "USD")])).number
            for _ in range(3)
        ]
        assert ["INV-2026-000001", "INV-2026-000002", "INV-2026-000003"] == numbers

    async def test_prefix_and_year(self, fake: AsyncFakeProvider, clock: ManualClock, storage: Any) -> None:
        """The prefix is configurable and a new year starts a new series."""
        async with AsyncPaymentService(
            storage=storage, providers=[fake], clock=clock, invoice_prefix="ACME"
        ) as service:
            first = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("1", "USD")])
            clock.advance(days=365)
            second = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("1", "USD")])
        assert ("ACME-2026-000001", "ACME-2027-000001") == (first.number, second.number)


class TestLifecycle:
    """draft -> open (sent) -> paid, or void."""

    async def test_create_send(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        """A new invoice is a draft; sending opens it, notifies the user and is audited."""
        invoice = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("5", "USD")])
        assert InvoiceStatus.DRAFT == invoice.status
        clock.advance(minutes=1)
        sent = await service.send_invoice(invoice.id)
        assert InvoiceStatus.OPEN == sent.status
        assert clock() == sent.sent_at
        assert sent == await service.send_invoice(invoice.id)
        kinds = [n.kind for n in await service.list_notifications("u1") if n.subject_id == invoice.id]
        assert [NotificationKind.INVOICE_SENT] == kinds
        actions = [e.action for e in await service.audit_trail(invoice.id)]
        assert [AuditAction.INVOICE_CREATE, AuditAction.INVOICE_SEND] == actions

    async def test_void_draft_and_open(self, service: AsyncPaymentService) -> None:
        """Drafts and open invoices can be voided; voiding twice is a no-op."""
        draft = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("5", "USD")])
        voided = await service.void_invoice(draft.id)
        assert InvoiceStatus.VOID == voided.status
        assert voided == await service.void_invoice(draft.id)
        assert InvoiceStatus.VOID == (await service.void_invoice(await open_invoice(service))).status

    async def test_void_is_final(self, service: AsyncPaymentService) -> None:
        """A void invoice cannot be sent or paid."""
        invoice = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("5", "USD")])
        await service.void_invoice(invoice.id)
        with pytest.raises(InvalidStateError):
            await service.send_invoice(invoice.id)
        with pytest.raises(InvalidStateError):
            await service.pay_invoice(invoice.id, provider="fake")

    async def test_void_refused_while_its_payment_is_under_way(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """An invoice whose payment may still succeed is not voided: the payer would be charged for a void invoice.

        Once that payment is canceled (or fails), the invoice can be voided.
        """
        invoice_id = await open_invoice(service)
        payment = await service.pay_invoice(invoice_id, provider="fake")

        with pytest.raises(InvalidStateError, match="is pending; cancel or refund it first") as refused:
            await service.void_invoice(invoice_id)
        assert (payment.id, InvoiceStatus.OPEN) == (
            refused.value.payment_id,
            (await service.get_invoice(invoice_id)).status,
        )

        await service.cancel_payment(payment.id)
        assert InvoiceStatus.VOID == (await service.void_invoice(invoice_id)).status

    async def test_void_refused_once_its_payment_succeeded(self, service: AsyncPaymentService) -> None:
        """A payment that succeeded before its reaction marked the invoice paid still forbids voiding."""

        async def outage(reaction: Any) -> None:
            raise StorageError("down")  # the invoice's own write fails: its reaction is left for reconcile()

        invoice_id = await open_invoice(service)
        payment = await service.pay_invoice(invoice_id, provider="fake")
        service._engine.reactors["invoice_paid"] = outage
        await service.confirm_payment(payment.id)
        assert InvoiceStatus.OPEN == (await service.get_invoice(invoice_id)).status

        with pytest.raises(InvalidStateError, match="is succeeded"):
            await service.void_invoice(invoice_id)

    async def test_paid_invoice_message(self, service: AsyncPaymentService) -> None:
        """Paying a paid invoice says it is paid, not that it must be sent."""
        invoice_id = await open_invoice(service)
        await service.confirm_payment((await service.pay_invoice(invoice_id, provider="fake")).id)

        with pytest.raises(InvalidStateError) as refused:
            await service.pay_invoice(invoice_id, provider="fake")
        assert "cannot pay an invoice that is paid" == str(refused.value)

    async def test_draft_cannot_be_paid(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """Paying needs a sent invoice; the refusal creates no payment."""
        invoice = await service.create_invoice(user_id="u1", currency="USD", line_items=[line("5", "USD")])
        with pytest.raises(InvalidStateError):
            await service.pay_invoice(invoice.id, provider="fake")
        assert [] == fake.calls_to("create_payment")
        assert [] == (await service.list_payments(user_id="u1")).items

    async def test_paid_is_final(self, service: AsyncPaymentService) -> None:
        """A paid invoice cannot be voided or sent again."""
        invoice_id = await open_invoice(service)
        await service.confirm_payment((await service.pay_invoice(invoice_id, provider="fake")).id)
        with pytest.raises(InvalidStateError):
            await service.void_invoice(invoice_id)
        with pytest.raises(InvalidStateError):
            await service.send_invoice(invoice_id)
        assert InvoiceStatus.PAID == (await service.get_invoice(invoice_id)).status

    async def test_unknown_invoice(self, service: AsyncPaymentService) -> None:
        """Unknown ids raise NotFoundError."""
        for call in (service.get_invoice, service.send_invoice, service.void_invoice):
            with pytest.raises(NotFoundError):
                await call("inv_missing")


class TestPayInvoice:
    """pay_invoice creates one payment for the total; the invoice is paid when it succeeds."""

    async def test_one_payment_for_the_total(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """The payment is for the exact total, names the invoice, and is created once."""
        invoice_id = await open_invoice(service, "12.500", "KWD")
        payment = await service.pay_invoice(invoice_id, provider="fake")
        again = await service.pay_invoice(invoice_id, provider="fake")
        assert payment.id == again.id
        assert Money.of("12.500", "KWD") == payment.amount
        assert invoice_id == payment.invoice_id
        assert 1 == len(fake.calls_to("create_payment"))
        assert payment.id == (await service.get_invoice(invoice_id)).payment_id
        assert InvoiceStatus.OPEN == (await service.get_invoice(invoice_id)).status

    async def test_paid_when_confirmed(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        """Confirming the payment marks the invoice paid, with an INVOICE_PAID audit entry."""
        invoice_id = await open_invoice(service)
        payment = await service.pay_invoice(invoice_id, provider="fake")
        clock.advance(seconds=5)
        await service.confirm_payment(payment.id)
        invoice = await service.get_invoice(invoice_id)
        assert (InvoiceStatus.PAID, payment.id, clock()) == (invoice.status, invoice.payment_id, invoice.paid_at)
        assert AuditAction.INVOICE_PAID == (await service.audit_trail(invoice_id))[-1].action

    async def test_paid_by_reconcile(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, clock: ManualClock
    ) -> None:
        """A lost success webhook is made up for by reconcile()."""
        invoice_id = await open_invoice(service)
        payment = await service.pay_invoice(invoice_id, provider="fake")
        fake.behavior = "processing"
        await service.confirm_payment(payment.id)
        fake.settle((await service.get_payment(payment.id)).provider_ref or "", PaymentStatus.SUCCEEDED)
        clock.advance(minutes=5)
        await service.reconcile()
        assert InvoiceStatus.PAID == (await service.get_invoice(invoice_id)).status

    async def test_failed_payment_leaves_the_invoice_open(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """A declined payment does not pay the invoice."""
        invoice_id = await open_invoice(service)
        payment = await service.pay_invoice(invoice_id, provider="fake")
        fake.behavior = "decline"
        with pytest.raises(PaymentDeclinedError):
            await service.confirm_payment(payment.id)
        assert InvoiceStatus.OPEN == (await service.get_invoice(invoice_id)).status

    async def test_can_retry_after_a_declined_payment(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        """After a decline, paying the invoice again starts a new payment that can succeed."""
        invoice_id = await open_invoice(service)
        first = await service.pay_invoice(invoice_id, provider="fake")
        fake.behavior = "decline"
        with pytest.raises(PaymentDeclinedError):
            await service.confirm_payment(first.id)
        fake.behavior = "succeed"
        second = await service.pay_invoice(invoice_id, provider="fake")
        assert PaymentStatus.PENDING == second.status
        await service.confirm_payment(second.id)
        assert InvoiceStatus.PAID == (await service.get_invoice(invoice_id)).status


def _valid_lines() -> list[LineItem]:
    return [line("5.00", "USD")]


class TestBadInput:
    """Bad input raises InvalidRequestError and writes nothing."""

    @pytest.mark.parametrize(
        ("currency", "line_items"),
        [
            ("USD", []),
            ("USD", [line("5.00", "USD"), line("5.000", "KWD")]),
            ("EUR", [line("5.00", "USD")]),
            ("XXX", [line("5.00", "USD")]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": Money.of("5", "USD"), "tax_rate": 0.05}]),
            ("USD", [{"description": "x", "quantity": 0, "unit_amount": Money.of("5", "USD")}]),
            ("USD", [{"description": "x", "quantity": -2, "unit_amount": Money.of("5", "USD")}]),
            ("USD", [{"description": "x", "quantity": 1.0, "unit_amount": Money.of("5", "USD")}]),
            ("USD", [{"description": "x", "quantity": "1", "unit_amount": Money.of("5", "USD")}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": Money.of("-5", "USD")}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": Money.of("0", "USD")}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": Money.of("5", "USD"), "tax_rate": "-0.1"}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": Money.of("5", "USD"), "tax_rate": "1.5"}]),
            ("USD", [{"description": "", "quantity": 1, "unit_amount": Money.of("5", "USD")}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": 5}]),
            ("USD", [{"description": "x", "quantity": 1, "unit_amount": {"minor_units": 5.0, "currency": "USD"}}]),
            ("USD", [{"description": "x", "quantity": 1}]),
        ],
        ids=[
            "no-lines",
            "mixed-currencies",
            "line-in-other-currency",
            "unknown-currency",
            "float-tax-rate",
            "zero-quantity",
            "negative-quantity",
            "float-quantity",
            "str-quantity",
            "negative-amount",
            "zero-total",
            "negative-tax",
            "tax-above-100-percent",
            "empty-description",
            "int-amount",
            "float-minor-units",
            "missing-amount",
        ],
    )
    async def test_refused_and_nothing_written(
        self, service: AsyncPaymentService, currency: str, line_items: list[Any]
    ) -> None:
        """The call fails cleanly: no invoice under the key, no number used, no audit entry."""
        with pytest.raises(InvalidRequestError):
            await service.create_invoice(user_id="u1", currency=currency, line_items=line_items, idempotency_key="k1")
        invoice = await service.create_invoice(
            user_id="u1", currency="USD", line_items=_valid_lines(), idempotency_key="k1"
        )
        assert "INV-2026-000001" == invoice.number
        assert [AuditAction.INVOICE_CREATE] == [e.action for e in await service.audit_trail(invoice.id)]

    def test_line_item_refuses_float_tax_rate(self) -> None:
        """Building a LineItem with a float tax rate fails at once (a ValueError)."""
        with pytest.raises(ValueError, match="float"):
            LineItem(description="x", quantity=1, unit_amount=Money.of("1", "USD"), tax_rate=0.05)

    async def test_bad_user_and_metadata(self, service: AsyncPaymentService) -> None:
        """A blank user id or non-string metadata is refused."""
        with pytest.raises(InvalidRequestError):
            await service.create_invoice(user_id="", currency="USD", line_items=_valid_lines())
        with pytest.raises(InvalidRequestError):
            await service.create_invoice(user_id="u1", currency="USD", line_items=_valid_lines(), metadata={"n": 1})  # type: ignore[dict-item]
        assert (
            "INV-2026-000001"
            == (await service.create_invoice(user_id="u1", currency="USD", line_items=_valid_lines())).number
        )


class TestIdempotency:
    """create_invoice honours idempotency keys."""

    async def test_same_key_same_invoice(self, service: AsyncPaymentService) -> None:
        """A replay returns the first invoice and uses no new number."""
        first = await service.create_invoice(
            user_id="u1", currency="USD", line_items=_valid_lines(), idempotency_key="i-1"
        )
        again = await service.create_invoice(
            user_id="u1", currency="USD", line_items=_valid_lines(), idempotency_key="i-1"
        )
        assert first == again
        other = await service.create_invoice(user_id="u1", currency="USD", line_items=_valid_lines())
        assert "INV-2026-000002" == other.number

    async def test_same_key_other_lines_conflicts(self, service: AsyncPaymentService) -> None:
        """The same key with other lines raises IdempotencyConflictError."""
        await service.create_invoice(user_id="u1", currency="USD", line_items=_valid_lines(), idempotency_key="i-1")
        with pytest.raises(IdempotencyConflictError):
            await service.create_invoice(
                user_id="u1", currency="USD", line_items=[line("6.00", "USD")], idempotency_key="i-1"
            )

    async def test_numbers_have_the_documented_shape(self, service: AsyncPaymentService) -> None:
        """Every number matches PREFIX-YYYY-NNNNNN."""
        invoice = await service.create_invoice(user_id="u1", currency="USD", line_items=_valid_lines())
        assert re.fullmatch(r"INV-\d{4}-\d{6}", invoice.number)
