"""Records built directly with values paykit refuses raise InvalidRequestError, paykit's one error family."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest

from paykit import InvalidRequestError, LineItem, Money, PaykitError, Plan

KWD = Money.of("12.500", "KWD")


@pytest.mark.parametrize(
    ("build", "where"),
    [
        (lambda: LineItem(description="Consulting", quantity=0, unit_amount=KWD), "LineItem: quantity"),
        (lambda: LineItem(description="", quantity=1, unit_amount=KWD), "LineItem: description"),
        (
            lambda: LineItem(description="Support", quantity=1, unit_amount=KWD, tax_rate=Decimal("1.5")),
            "LineItem: tax_rate",
        ),
        (lambda: Plan(amount=KWD, interval_count=0), "Plan: interval_count"),
        (lambda: Plan(amount=Money.zero("KWD")), "Plan: amount"),
    ],
)
def test_a_refused_value_is_an_invalid_request_naming_the_field(build: object, where: str) -> None:
    with pytest.raises(InvalidRequestError, match=f"^invalid {where}: ") as raised:
        build()  # type: ignore[operator]

    assert isinstance(raised.value, PaykitError)
    assert isinstance(raised.value, ValueError)


def test_the_message_never_echoes_the_refused_value() -> None:
    """A card number typed into a description is refused without being repeated, here or in a chained error."""
    with pytest.raises(InvalidRequestError) as raised:
        LineItem(description="4242 4242 4242 4242", quantity=1, unit_amount=KWD)

    assert "4242" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_model_validate_keeps_pydantics_error_for_frameworks() -> None:
    """FastAPI and friends validate request bodies with model_validate: their 422 handling sees ValidationError."""
    with pytest.raises(pydantic.ValidationError):
        LineItem.model_validate({"description": "Consulting", "quantity": 0, "unit_amount": KWD})


def test_valid_records_are_built_as_before() -> None:
    line = LineItem(description="Consulting", quantity=3, unit_amount=KWD, tax_rate=Decimal("0.05"))

    assert (3, Money.of("37.500", "KWD")) == (line.quantity, line.unit_amount * 3)
