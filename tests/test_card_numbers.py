"""Free-form fields refuse values that look like card numbers; everything else passes."""

from __future__ import annotations

import time

import pytest

from paykit import InvalidRequestError, LineItem, Money, PaymentService
from paykit._cards import contains_card_number
from paykit._decisions.common import check_metadata, check_text


class TestContainsCardNumber:
    """A Luhn-valid run of 13 to 19 digits, in one piece or grouped by spaces or dashes."""

    @pytest.mark.parametrize(
        "text",
        [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "card: 4111 1111 1111 1111 exp 12/29",
            "4111 1111 1111 1111 12/29",
            "pay with 5555555555554444 please",
            "378282246310005",
            "6011111111111117",
            "4222222222222",
            "4000056655665556",
            "x4242424242424242x",
            "6304000000000000",
            "3530111333300000",
        ],
    )
    def test_card_numbers_are_found(self, text: str) -> None:
        assert contains_card_number(text)

    @pytest.mark.parametrize(
        "text",
        [
            "4111111111111112",
            "4111 1111 1111 1112",
            "Order 123456789012",
            "ORD-2026-11-30-0042",
            "invoice INV-2026-000001",
            "+965 2222 3333",
            "0000000000000000",
            "12345678901234567890123",
            "pay_3f9c1a2b4d5e6f708192a3b4",
            "4111  1111  1111  1111",
            "",
            "١٢٣٤",
        ],
    )
    def test_other_text_is_not_a_card_number(self, text: str) -> None:
        assert not contains_card_number(text)

    def test_single_digits_apart_still_count(self) -> None:
        assert contains_card_number(" ".join("4111111111111111"))

    @pytest.mark.parametrize("text", ["10 " * 100_000, "9" * 200_000, "0-" * 100_000])
    def test_long_hostile_text_is_checked_in_linear_time(self, text: str) -> None:
        started = time.perf_counter()

        assert not contains_card_number(text)
        assert time.perf_counter() - started < 2


class TestFreeTextChecks:
    """The checks the service runs on free text raise InvalidRequestError."""

    def test_check_text(self) -> None:
        assert "order 42" == check_text("order 42", "description")
        assert check_text(None, "reason") is None
        with pytest.raises(InvalidRequestError, match="reason looks like a card number"):
            check_text("refund 4111 1111 1111 1111", "reason")

    def test_metadata_values(self) -> None:
        assert {"order": "ORD-123456789012"} == check_metadata({"order": "ORD-123456789012"})
        with pytest.raises(InvalidRequestError, match="looks like a card number"):
            check_metadata({"note": "4111-1111-1111-1111"})

    def test_metadata_keys_are_not_checked_for_cards(self) -> None:
        assert {"4111111111111111": "x"} == check_metadata({"4111111111111111": "x"})


class TestLineItemsAndService:
    """Line item descriptions and payment metadata refuse card numbers through the public API."""

    def test_line_item_description(self) -> None:
        with pytest.raises(ValueError, match="looks like a card number"):
            LineItem(description="4111 1111 1111 1111", quantity=1, unit_amount=Money.of("1", "USD"))

    def test_invoice_with_a_card_number_line(self, service: PaymentService) -> None:
        with pytest.raises(InvalidRequestError, match="looks like a card number"):
            service.create_invoice(
                user_id="u1",
                currency="USD",
                line_items=[{"description": "4111111111111111", "quantity": 1, "unit_amount": Money.of("1", "USD")}],
            )

    def test_payment_metadata(self, service: PaymentService) -> None:
        with pytest.raises(InvalidRequestError, match="looks like a card number"):
            service.initialize_payment(
                user_id="u1", amount=Money.of("5", "USD"), provider="fake", metadata={"pan": "5555555555554444"}
            )
        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("5", "USD"), provider="fake", metadata={"order": "12345678"}
        )
        assert {"order": "12345678"} == payment.metadata


class TestServiceFreeText:
    """The service refuses card numbers in a payment's description and a refund's reason, storing nothing."""

    def test_payment_description(self, service: PaymentService) -> None:
        with pytest.raises(InvalidRequestError, match="description looks like a card number"):
            service.initialize_payment(
                user_id="u1", amount=Money.of("5.00", "USD"), provider="fake", description="card 4111111111111111"
            )
        assert [] == service.list_payments().items

    def test_refund_reason(self, service: PaymentService) -> None:
        payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
        payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
        with pytest.raises(InvalidRequestError, match="reason looks like a card number"):
            service.refund_payment(payment.id, reason="customer card 4111-1111-1111-1111")
        assert ([], Money.of("5.00", "USD")) == (
            service.list_refunds(payment.id),
            service.get_payment(payment.id).amount_refundable,
        )


class TestPaykitIds:
    """paykit's own ids may hold a Luhn-valid digit run; the demo once refused its own invoice id for it."""

    def test_an_id_with_a_luhn_valid_run_is_not_a_card(self) -> None:
        from paykit._decisions.common import check_metadata, check_text

        own = "inv_ab4111111111111111cdef12"
        assert contains_card_number(own)  # the raw rule would refuse it
        assert {"invoice_id": own} == check_metadata({"invoice_id": own})
        assert check_text(f"for {own}", "description") == f"for {own}"

    def test_every_generated_id_passes_the_checks(self) -> None:
        from paykit._decisions.common import check_metadata, keyed_id, new_id

        ids = [new_id("inv") for _ in range(20_000)] + [keyed_id("inv", "invoice", str(i)) for i in range(20_000)]
        assert all(check_metadata({"invoice_id": i}) for i in ids)

    def test_a_card_next_to_an_id_is_still_refused(self) -> None:
        from paykit._decisions.common import check_text

        with pytest.raises(InvalidRequestError):
            check_text("inv_ab4111111111111111cdef12 paid with 4111 1111 1111 1111", "description")
