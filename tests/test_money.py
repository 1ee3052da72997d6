"""Money: exact amounts in ISO 4217 currencies, as a user of ``paykit.Money`` sees them."""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from paykit import (
    CURRENCY_EXPONENTS,
    CurrencyMismatchError,
    InvalidRequestError,
    Money,
    PaykitError,
    currency_exponent,
)

CODES = sorted(CURRENCY_EXPONENTS)
codes = st.sampled_from(CODES)
realistic_minor = st.integers(min_value=-(10**15), max_value=10**15)


class TestCurrencyTable:
    """The full ISO 4217 table ships, with the exponents ISO publishes."""

    @pytest.mark.parametrize(
        ("code", "exponent"),
        [
            ("KWD", 3),
            ("BHD", 3),
            ("JOD", 3),
            ("OMR", 3),
            ("TND", 3),
            ("LYD", 3),
            ("IQD", 3),
            ("JPY", 0),
            ("KRW", 0),
            ("ISK", 0),
            ("UGX", 0),
            ("VND", 0),
            ("CLP", 0),
            ("PYG", 0),
            ("XOF", 0),
            ("CLF", 4),
            ("UYW", 4),
            ("USD", 2),
            ("EUR", 2),
            ("GBP", 2),
            ("CHF", 2),
            ("INR", 2),
            ("BRL", 2),
            ("SAR", 2),
            ("AED", 2),
        ],
    )
    def test_spot_checks(self, code: str, exponent: int) -> None:
        """Well-known currencies have their ISO exponent."""
        assert exponent == currency_exponent(code)
        assert exponent == Money.zero(code).exponent

    def test_table_is_complete(self) -> None:
        """The table holds the whole active list, not a handful of codes."""
        assert len(CURRENCY_EXPONENTS) >= 165

    def test_codes_are_three_uppercase_letters(self) -> None:
        """Every code is an ISO alpha-3 code and every exponent a small int."""
        assert [] == [c for c in CODES if not (len(c) == 3 and c.isalpha() and c.isupper())]
        assert set() == {e for e in CURRENCY_EXPONENTS.values() if e not in (0, 2, 3, 4)}

    @pytest.mark.parametrize("code", ["XXX", "XAU", "XDR", "ABC", "", "US", "usdd", "€"])
    def test_unknown_or_non_money_codes_are_refused(self, code: str) -> None:
        """Codes without a minor unit (gold, SDR, testing) and made-up codes are unknown."""
        with pytest.raises(InvalidRequestError, match="currency"):
            currency_exponent(code)
        with pytest.raises(InvalidRequestError):
            Money.of("1", code)

    def test_currency_is_normalized(self) -> None:
        """Lower case and surrounding blanks are accepted and normalized."""
        assert Money.of("1.00", "USD") == Money.of("1", " usd ")
        assert "KWD" == Money.from_minor(5, "kwd").currency


class TestConstruction:
    """Money is built from str, int or Decimal; anything inexact is refused."""

    @pytest.mark.parametrize(
        ("amount", "code", "minor"),
        [
            ("12.500", "KWD", 12500),
            ("12.5", "KWD", 12500),
            ("0.001", "BHD", 1),
            ("12.50", "USD", 1250),
            ("12", "USD", 1200),
            ("1000", "JPY", 1000),
            ("1000.0", "JPY", 1000),
            ("0.0001", "CLF", 1),
            ("-3.25", "EUR", -325),
            (" 7.10 ", "EUR", 710),
            (42, "USD", 4200),
            (42, "JPY", 42),
            (0, "KWD", 0),
            (Decimal("19.99"), "USD", 1999),
            (Decimal("1.230"), "OMR", 1230),
            (Decimal("1E+2"), "USD", 10000),
        ],
    )
    def test_of(self, amount: str | int | Decimal, code: str, minor: int) -> None:
        """Major units become exact integer minor units."""
        assert minor == Money.of(amount, code).minor_units

    @pytest.mark.parametrize("amount", [12.5, 0.1, 1.0, float("nan"), float("inf"), -float("inf")])
    def test_floats_are_refused(self, amount: float) -> None:
        """A float never becomes money, not even a round one."""
        with pytest.raises(InvalidRequestError, match="float"):
            Money.of(amount, "USD")  # type: ignore[arg-type]

    @pytest.mark.parametrize("amount", [True, False, None, [1], b"1", object()])
    def test_other_types_are_refused(self, amount: object) -> None:
        """Bools (ints by accident), None and other objects are refused."""
        with pytest.raises(InvalidRequestError):
            Money.of(amount, "USD")  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        "amount", ["NaN", "nan", "sNaN", "Infinity", "-inf", Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")]
    )
    def test_non_finite_is_refused(self, amount: str | Decimal) -> None:
        """NaN and infinities are not amounts."""
        with pytest.raises(InvalidRequestError):
            Money.of(amount, "USD")

    @pytest.mark.parametrize("amount", ["", "  ", "abc", "12,50", "1.2.3", "$5", "5 USD", "0x10"])
    def test_garbage_is_refused(self, amount: str) -> None:
        """Strings that are not plain numbers are refused with InvalidRequestError."""
        with pytest.raises(InvalidRequestError):
            Money.of(amount, "USD")

    @pytest.mark.parametrize(
        ("amount", "code"),
        [
            ("12.345", "USD"),
            ("0.001", "EUR"),
            ("1.5", "JPY"),
            ("100.01", "KRW"),
            ("1.0001", "KWD"),
            ("0.00001", "CLF"),
            (Decimal("0.005"), "USD"),
        ],
    )
    def test_too_many_decimals_are_refused(self, amount: str | Decimal, code: str) -> None:
        """More decimals than the currency has is an error, never a silent rounding."""
        with pytest.raises(InvalidRequestError, match="decimal"):
            Money.of(amount, code)

    def test_tiny_exponent_is_not_rounded_to_zero(self) -> None:
        """An amount far below the minor unit is refused, not underflowed to zero."""
        with pytest.raises(InvalidRequestError):
            Money.of("1e-999999999", "USD")

    def test_huge_exponent_is_an_invalid_request(self) -> None:
        """An absurd exponent raises paykit's error, not a decimal module exception."""
        with pytest.raises(InvalidRequestError):
            Money.of("1e999999999", "USD")

    @pytest.mark.parametrize(
        "amount",
        ["12345678901234567890123456789.01", "1234567890123456789012345678.9", "99999999999999999999999999999.99"],
    )
    def test_long_amounts_are_exact_or_refused(self, amount: str) -> None:
        """An amount with more digits than a default decimal context holds is never silently rounded."""
        try:
            money = Money.of(amount, "USD")
        except InvalidRequestError:
            return
        assert Decimal(amount) == money.amount
        assert int(Decimal(amount) * 100) == money.minor_units

    @pytest.mark.parametrize(
        "amount",
        [
            "1" * 5000,
            "0." + "0" * 4999 + "1",
            "1." + "0" * 5000,
            "0" * 5000 + "1",
            " " * 5000 + "1",
            "1" * 65,
            Decimal("1" * 5000),
            Decimal("1" + "0" * 4999 + ".5"),
            10**5000,
            -(10**5000),
            2**63,
            "\u0661\u0662",
            "\u00b9",
            "12.5\x00",
            "",
        ],
        ids=lambda amount: f"{type(amount).__name__}-{len(str(amount)) if not isinstance(amount, int) else 'big'}",
    )
    def test_unparseable_or_over_long_amounts_are_invalid_requests(self, amount: str | int | Decimal) -> None:
        """Over-long, huge or non-ASCII amounts raise InvalidRequestError, never a bare ValueError."""
        with pytest.raises(InvalidRequestError) as info:
            Money.of(amount, "USD")

        assert len(str(info.value)) < 200

    def test_64_characters_are_still_read(self) -> None:
        """The length limit is far above any real amount."""
        assert 1250 == Money.of("0" * 59 + "12.50", "USD").minor_units

    @pytest.mark.parametrize("minor", [10**5000, -(10**5000), 2**63], ids=["huge", "negative-huge", "2**63"])
    def test_direct_construction_refuses_huge_ints_without_echoing_them(self, minor: int) -> None:
        """Money(...) past 64 bits is an InvalidRequestError, even past int()'s string limit."""
        with pytest.raises(InvalidRequestError, match="64-bit range"):
            Money(minor, "USD")

    def test_direct_construction_needs_int_minor_units(self) -> None:
        """The dataclass constructor refuses float, bool and Decimal minor units."""
        for bad in (1.0, True, Decimal(1), "100"):
            with pytest.raises(InvalidRequestError):
                Money(bad, "USD")  # type: ignore[arg-type]

    def test_from_minor_and_zero(self) -> None:
        """from_minor and zero are the integer-side constructors."""
        assert Money.of("0.250", "KWD") == Money.from_minor(250, "KWD")
        assert Money.of("0", "JPY") == Money.zero("JPY")
        assert Money.zero("USD").is_zero()
        assert not Money.from_minor(1, "USD").is_zero()

    def test_errors_are_paykit_value_errors(self) -> None:
        """Bad amounts raise an error that is both a PaykitError and a ValueError."""
        with pytest.raises(InvalidRequestError) as info:
            Money.of(1.5, "USD")  # type: ignore[arg-type]
        assert isinstance(info.value, PaykitError)
        assert isinstance(info.value, ValueError)


class TestMinorUnits:
    """Minor units convert both ways for every exponent."""

    @pytest.mark.parametrize(
        ("minor", "code", "decimal"),
        [
            (12500, "KWD", "12.500"),
            (1, "BHD", "0.001"),
            (1250, "USD", "12.50"),
            (5, "USD", "0.05"),
            (1000, "JPY", "1000"),
            (1, "CLF", "0.0001"),
            (-1, "USD", "-0.01"),
            (0, "UYW", "0.0000"),
        ],
    )
    def test_to_decimal_string(self, minor: int, code: str, decimal: str) -> None:
        """The decimal string always has exactly the currency's number of decimals."""
        money = Money.from_minor(minor, code)
        assert decimal == money.to_decimal_string()
        assert Decimal(decimal) == money.amount

    def test_large_minor_units_print_exactly(self) -> None:
        """A large amount keeps every digit in its major-unit forms (or is refused outright)."""
        try:
            money = Money.from_minor(10**40 + 1, "USD")
        except InvalidRequestError:
            return
        assert "1" + "0" * 37 + "0.01" == money.to_decimal_string()
        assert Decimal(10**40 + 1) / 100 == money.amount


class TestFormatting:
    """str and repr show the exact amount and the currency."""

    @pytest.mark.parametrize(
        ("money", "text", "rep"),
        [
            (Money.of("12.5", "KWD"), "12.500 KWD", "Money('12.500', 'KWD')"),
            (Money.of("1000", "JPY"), "1000 JPY", "Money('1000', 'JPY')"),
            (Money.of("0.1", "USD"), "0.10 USD", "Money('0.10', 'USD')"),
            (Money.of("-2", "CLF"), "-2.0000 CLF", "Money('-2.0000', 'CLF')"),
        ],
    )
    def test_str_and_repr(self, money: Money, text: str, rep: str) -> None:
        """str is '<amount> <code>'; repr is an expression that builds the same value."""
        assert text == str(money)
        assert rep == repr(money)

    def test_format_spec_applies_to_the_text(self) -> None:
        """f-string alignment and width work as on str(money); an empty spec is str(money)."""
        kwd = Money.of("12.5", "KWD")
        assert ("12.500 KWD", "    12.500 KWD", "12.500 KWD**") == (f"{kwd}", f"{kwd:>14}", f"{kwd:*<12}")

    def test_repr_evaluates_back(self) -> None:
        """eval(repr(m)) == m (with Money bound to Money.of)."""
        money = Money.of("7.125", "KWD")
        assert money == eval(repr(money), {"Money": Money.of})


class TestArithmetic:
    """Addition, subtraction, multiplication and comparison within one currency."""

    def test_add_sub_neg(self) -> None:
        """Sums and differences stay exact in minor units."""
        a, b = Money.of("0.10", "USD"), Money.of("0.20", "USD")
        assert Money.of("0.30", "USD") == a + b
        assert Money.of("-0.10", "USD") == a - b
        assert Money.of("-0.10", "USD") == -a
        assert Money.of("0.600", "KWD") == sum([Money.of("0.200", "KWD")] * 3, Money.zero("KWD"))

    def test_multiply_by_int(self) -> None:
        """Money times an int (either side) is exact; other factors are refused."""
        assert Money.of("37.500", "KWD") == Money.of("12.500", "KWD") * 3
        assert Money.of("37.500", "KWD") == 3 * Money.of("12.500", "KWD")
        for factor in (1.5, Decimal("2"), True, "2"):
            with pytest.raises(InvalidRequestError):
                Money.of("1", "USD") * factor  # type: ignore[operator]

    def test_comparison(self) -> None:
        """Ordering compares amounts of one currency."""
        small, big = Money.of("1.00", "EUR"), Money.of("1.01", "EUR")
        assert small < big
        assert small <= big
        assert big > small
        assert big >= small
        assert small <= Money.of("1", "EUR")
        assert [small, big] == sorted([big, small])
        assert big == max(small, big)

    def test_equality_and_hash(self) -> None:
        """Equal amounts in one currency are equal and hash alike; other currencies differ."""
        assert Money.of("1.0", "USD") == Money.of("1.00", "usd")
        assert 1 == len({Money.of("1.0", "USD"), Money.from_minor(100, "USD")})
        assert Money.from_minor(100, "USD") != Money.from_minor(100, "EUR")
        plain_number: object = 100
        assert Money.from_minor(100, "USD") != plain_number

    @pytest.mark.parametrize(
        "op",
        [
            lambda a, b: a + b,
            lambda a, b: a - b,
            lambda a, b: a < b,
            lambda a, b: a <= b,
            lambda a, b: a > b,
            lambda a, b: a >= b,
        ],
    )
    def test_currencies_never_mix(self, op: Any) -> None:
        """Arithmetic or ordering across currencies raises CurrencyMismatchError."""
        with pytest.raises(CurrencyMismatchError):
            op(Money.of("1", "USD"), Money.of("1", "EUR"))
        with pytest.raises(CurrencyMismatchError):
            op(Money.of("1.000", "KWD"), Money.of("1.000", "BHD"))

    @pytest.mark.parametrize("other", [1, Decimal("1"), "1", None])
    def test_money_never_combines_with_plain_numbers(self, other: object) -> None:
        """Adding or comparing Money with a bare number is refused."""
        with pytest.raises(InvalidRequestError):
            Money.of("1", "USD") + other  # type: ignore[operator]
        with pytest.raises(InvalidRequestError):
            _ = Money.of("1", "USD") < other  # type: ignore[operator]


class TestImmutability:
    """Money is a frozen value."""

    def test_cannot_be_changed(self) -> None:
        """Assigning an attribute fails and leaves the value as it was."""
        money = Money.of("5", "USD")
        with pytest.raises(dataclasses.FrozenInstanceError):
            money.minor_units = 1  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            money.currency = "EUR"  # type: ignore[misc]
        assert Money.of("5", "USD") == money

    def test_operations_return_new_values(self) -> None:
        """a + b leaves a and b untouched."""
        a, b = Money.of("1", "USD"), Money.of("2", "USD")
        _ = a + b
        assert (Money.of("1", "USD"), Money.of("2", "USD")) == (a, b)


class _Priced(BaseModel):
    price: Money


class TestPydantic:
    """Money inside pydantic models serializes to integer minor units and back."""

    def test_round_trip(self) -> None:
        """model_dump gives ints (never floats) and model_validate restores the value."""
        model = _Priced(price=Money.of("12.500", "KWD"))
        dumped = model.model_dump(mode="json")
        assert {"price": {"minor_units": 12500, "currency": "KWD"}} == dumped
        assert model == _Priced.model_validate(dumped)
        assert model == _Priced.model_validate_json(model.model_dump_json())

    def test_json_schema_describes_what_is_serialized(self) -> None:
        """Models holding Money have a JSON schema (FastAPI builds one per response_model), and dumps match it."""
        jsonschema = pytest.importorskip("jsonschema")
        schema = _Priced.model_json_schema(mode="serialization")
        dumped = _Priced(price=Money.of("12.500", "KWD")).model_dump(mode="json")

        jsonschema.validate(dumped, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"price": {"minor_units": 1250.5, "currency": "KWD"}}, schema)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"price": "12.500 KWD"}, schema)

    def test_fastapi_documents_a_payment_response(self) -> None:
        """A FastAPI route returning a Payment gets an OpenAPI document instead of a schema error."""
        fastapi = pytest.importorskip("fastapi")
        from paykit import Payment

        app = fastapi.FastAPI()

        @app.get("/payments/{payment_id}", response_model=Payment)
        def read(payment_id: str) -> None:  # pragma: no cover - only documented, never called
            raise NotImplementedError

        amount = app.openapi()["components"]["schemas"]["Payment"]["properties"]["amount"]
        assert ({"minor_units", "currency"}, "integer") == (
            set(amount["required"]),
            amount["properties"]["minor_units"]["type"],
        )

    def test_float_minor_units_are_refused(self) -> None:
        """A float in serialized data is refused."""
        with pytest.raises(ValueError, match="minor_units"):
            _Priced.model_validate({"price": {"minor_units": 1250.0, "currency": "USD"}})


class TestProperties:
    """Round trips hold for any amount in any currency."""

    @given(minor=realistic_minor, code=codes)
    def test_decimal_string_round_trip(self, minor: int, code: str) -> None:
        """of(to_decimal_string()) gives back the same money."""
        money = Money.from_minor(minor, code)
        assert money == Money.of(money.to_decimal_string(), code)
        assert money == Money.of(money.amount, code)

    @given(minor=realistic_minor, code=codes)
    def test_decimal_string_shape(self, minor: int, code: str) -> None:
        """The string has exactly ``exponent`` decimals and no exponent notation."""
        text = Money.from_minor(minor, code).to_decimal_string()
        exponent = currency_exponent(code)
        assert "E" not in text.upper()
        assert exponent == (len(text.partition(".")[2]))

    @given(a=realistic_minor, b=realistic_minor, code=codes)
    def test_arithmetic_matches_integers(self, a: int, b: int, code: str) -> None:
        """Money arithmetic and ordering agree with integer arithmetic on minor units."""
        x, y = Money.from_minor(a, code), Money.from_minor(b, code)
        assert a + b == (x + y).minor_units
        assert a - b == (x - y).minor_units
        assert (a < b) == (x < y)
        assert x == x + y - y

    @given(minor=realistic_minor, code=codes, extra=st.integers(min_value=1, max_value=9))
    def test_one_digit_too_many_is_refused(self, minor: int, code: str, extra: int) -> None:
        """Appending a non-zero digit past the currency's exponent is refused."""
        text = Money.from_minor(minor, code).to_decimal_string()
        longer = f"{text}{extra}" if "." in text else f"{text}.{extra}"
        with pytest.raises(InvalidRequestError):
            Money.of(longer, code)

    @given(value=st.floats(allow_nan=True, allow_infinity=True), code=codes)
    def test_no_float_is_ever_money(self, value: float, code: str) -> None:
        """Every float is refused, whatever its value."""
        with pytest.raises(InvalidRequestError):
            Money.of(value, code)  # type: ignore[arg-type]

    @given(minor=realistic_minor, code=codes)
    def test_amount_is_exact_decimal(self, minor: int, code: str) -> None:
        """amount * 10**exponent is exactly the minor units."""
        money = Money.from_minor(minor, code)
        assert minor == money.amount.scaleb(money.exponent)
        assert not isinstance(money.amount, float)
        assert math.isfinite(money.amount)
