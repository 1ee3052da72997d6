"""Exact money: integer minor units plus an ISO 4217 currency."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ._errors import CurrencyMismatchError, InvalidRequestError

__all__ = ["CURRENCY_EXPONENTS", "MAX_MINOR_UNITS", "Money", "currency_exponent"]

MAX_MINOR_UNITS: Final = 2**63 - 1
"""The largest amount in minor units: what a 64-bit integer (and so MongoDB) holds exactly."""

_MAX_AMOUNT_CHARS: Final = 64
_PLAIN_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_SIMPLE_DECIMAL: Final = re.compile(r"(-?)([0-9]{1,15})(?:\.([0-9]+))?", re.ASCII)
"""The amounts :meth:`Money.of` reads with integer arithmetic alone (its general path reads the others)."""

# ISO 4217 list one (active codes, "minor unit" column), including fund codes
# with a defined minor unit. Codes whose minor unit is "N.A." (XAU, XDR, XXX...)
# are not money a payment can be taken in and are left out on purpose.
_ISO_4217: Final = """
AED 2 AFN 2 ALL 2 AMD 2 AOA 2 ARS 2 AUD 2 AWG 2 AZN 2 BAM 2 BBD 2 BDT 2 BGN 2 BHD 3
BIF 0 BMD 2 BND 2 BOB 2 BOV 2 BRL 2 BSD 2 BTN 2 BWP 2 BYN 2 BZD 2 CAD 2 CDF 2 CHE 2
CHF 2 CHW 2 CLF 4 CLP 0 CNY 2 COP 2 COU 2 CRC 2 CUP 2 CVE 2 CZK 2 DJF 0 DKK 2 DOP 2
DZD 2 EGP 2 ERN 2 ETB 2 EUR 2 FJD 2 FKP 2 GBP 2 GEL 2 GHS 2 GIP 2 GMD 2 GNF 0 GTQ 2
GYD 2 HKD 2 HNL 2 HTG 2 HUF 2 IDR 2 ILS 2 INR 2 IQD 3 IRR 2 ISK 0 JMD 2 JOD 3 JPY 0
KES 2 KGS 2 KHR 2 KMF 0 KPW 2 KRW 0 KWD 3 KYD 2 KZT 2 LAK 2 LBP 2 LKR 2 LRD 2 LSL 2
LYD 3 MAD 2 MDL 2 MGA 2 MKD 2 MMK 2 MNT 2 MOP 2 MRU 2 MUR 2 MVR 2 MWK 2 MXN 2 MXV 2
MYR 2 MZN 2 NAD 2 NGN 2 NIO 2 NOK 2 NPR 2 NZD 2 OMR 3 PAB 2 PEN 2 PGK 2 PHP 2 PKR 2
PLN 2 PYG 0 QAR 2 RON 2 RSD 2 RUB 2 RWF 0 SAR 2 SBD 2 SCR 2 SDG 2 SEK 2 SGD 2 SHP 2
SLE 2 SOS 2 SRD 2 SSP 2 STN 2 SVC 2 SYP 2 SZL 2 THB 2 TJS 2 TMT 2 TND 3 TOP 2 TRY 2
TTD 2 TWD 2 TZS 2 UAH 2 UGX 0 USD 2 USN 2 UYI 0 UYU 2 UYW 4 UZS 2 VED 2 VES 2 VND 0
VUV 0 WST 2 XAF 0 XCD 2 XCG 2 XOF 0 XPF 0 YER 2 ZAR 2 ZMW 2 ZWG 2
"""

_pairs = _ISO_4217.split()
CURRENCY_EXPONENTS: Final[dict[str, int]] = {
    code: int(exp) for code, exp in zip(_pairs[::2], _pairs[1::2], strict=True)
}
"""ISO 4217 currency code -> number of minor-unit digits."""
del _pairs


def currency_exponent(currency: str) -> int:
    """Return the ISO 4217 exponent of ``currency`` (``"KWD"`` -> 3).

    Raises:
        InvalidRequestError: The code is not an ISO 4217 currency.
    """
    try:
        return CURRENCY_EXPONENTS[currency]
    except (KeyError, TypeError):
        raise InvalidRequestError(f"unknown currency {currency!r}; expected an ISO 4217 code such as 'USD'") from None


def _normalize_currency(currency: object) -> str:
    if not isinstance(currency, str):
        raise InvalidRequestError(f"currency must be a str, not {type(currency).__name__}")
    code = currency.strip().upper()
    currency_exponent(code)
    return code


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount of one currency, held as integer minor units.

    >>> Money.of("12.500", "KWD")
    Money('12.500', 'KWD')
    >>> Money.of("12.5", "KWD").minor_units
    12500

    Build it with :meth:`of` (major units, from ``str``, ``int`` or ``Decimal``)
    or :meth:`from_minor`. Floats are refused: they cannot hold money exactly.
    Arithmetic and comparison work only within one currency.
    """

    minor_units: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor_units) is not int:
            raise InvalidRequestError(f"minor_units must be an int, not {type(self.minor_units).__name__}")
        if abs(self.minor_units) > MAX_MINOR_UNITS:
            # Not echoed: str() of an int past 4,300 digits raises ValueError itself.
            raise InvalidRequestError("minor_units is beyond the 64-bit range")
        # A code already in canonical form (every Money built from another) needs no normalizing.
        if type(self.currency) is not str or self.currency not in CURRENCY_EXPONENTS:
            object.__setattr__(self, "currency", _normalize_currency(self.currency))

    @classmethod
    def _total(cls, minor_units: int, currency: str) -> Money:
        """A sum over many payments (``metrics()``), which may exceed what one amount can hold."""
        total = object.__new__(cls)
        object.__setattr__(total, "minor_units", int(minor_units))
        object.__setattr__(total, "currency", _normalize_currency(currency))
        return total

    @classmethod
    def of(cls, amount: str | int | Decimal, currency: str) -> Money:
        """Build from an amount in major units (``"12.50"`` USD is 1250 cents).

        Raises:
            InvalidRequestError: ``amount`` is a float or not a number, ``currency``
                is unknown, ``amount`` has more decimals than the currency allows,
                is beyond the 64-bit range, or is longer than 64 characters or digits.
        """
        code = _normalize_currency(currency)
        exponent = CURRENCY_EXPONENTS[code]
        if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
            raise InvalidRequestError(
                f"amount must be a str, int or Decimal, not {type(amount).__name__}; "
                "floats cannot represent money exactly"
            )
        if isinstance(amount, str):
            if len(amount) > _MAX_AMOUNT_CHARS:
                # Checked before anything else reads it: the error must not echo it either.
                raise InvalidRequestError(f"amount is longer than {_MAX_AMOUNT_CHARS} characters")
            simple = _SIMPLE_DECIMAL.fullmatch(amount.strip())
            if simple is not None and len(simple[3] or "") <= exponent:
                # The common case ("12.50"), in integers: at most 15 whole digits and no more decimals than
                # the currency has, so within range and exact; what the Decimal path below gives for it.
                whole, fraction = simple[2], simple[3] or ""
                minor = int(whole) * 10**exponent + int(fraction.ljust(exponent, "0") or "0")
                return cls(-minor if simple[1] else minor, code)
            if not _PLAIN_DECIMAL.fullmatch(amount.strip()):
                raise InvalidRequestError(f"amount {amount!r} is not a plain decimal number such as '12.50'")
        elif isinstance(amount, int) and abs(amount) > MAX_MINOR_UNITS:
            raise InvalidRequestError("amount is beyond the 64-bit range")
        try:
            value = Decimal(amount.strip()) if isinstance(amount, str) else Decimal(amount)
        except (InvalidOperation, ValueError):
            raise InvalidRequestError("amount is not a number") from None
        sign, digits, power = value.as_tuple()
        if not isinstance(power, int):
            raise InvalidRequestError("amount is not a finite number")
        if len(digits) > _MAX_AMOUNT_CHARS:
            raise InvalidRequestError(f"amount has more than {_MAX_AMOUNT_CHARS} digits")
        # Exact integer arithmetic: a Decimal context would silently round past 28 digits.
        coefficient = int("".join(map(str, digits)))
        shift = power + exponent
        if coefficient == 0:
            minor = 0
        elif shift >= 0:
            if len(digits) + shift > 19:
                raise InvalidRequestError(f"amount {amount!r} is beyond the 64-bit range")
            minor = coefficient * 10**shift
        else:
            minor, rest = divmod(coefficient, 10 ** min(-shift, len(digits) + 1))
            if rest or -shift > len(digits):
                raise InvalidRequestError(f"{code} has {exponent} decimal places; {amount!r} has more")
        return cls(-minor if sign else minor, code)

    @classmethod
    def from_minor(cls, minor_units: int, currency: str) -> Money:
        """Build from integer minor units (cents, fils, yen...)."""
        return cls(minor_units, currency)

    @classmethod
    def zero(cls, currency: str) -> Money:
        """Zero in ``currency``."""
        return cls(0, currency)

    @property
    def exponent(self) -> int:
        """The currency's ISO 4217 exponent."""
        return CURRENCY_EXPONENTS[self.currency]

    @property
    def amount(self) -> Decimal:
        """The amount in major units, with exactly ``exponent`` decimals."""
        return Decimal(self.minor_units).scaleb(-self.exponent)  # exact: 19 digits fit the 28-digit context

    def to_decimal_string(self) -> str:
        """The amount as a plain decimal string (``"12.500"``, ``"1000"`` for JPY)."""
        # Integer arithmetic: the same digits as formatting ``amount``, without building a Decimal.
        exponent = CURRENCY_EXPONENTS[self.currency]
        if exponent == 0:
            return str(self.minor_units)
        whole, fraction = divmod(abs(self.minor_units), 10**exponent)
        sign = "-" if self.minor_units < 0 else ""
        return f"{sign}{whole}.{fraction:0{exponent}d}"

    def is_zero(self) -> bool:
        """Whether the amount is zero."""
        return self.minor_units == 0

    def _check(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise InvalidRequestError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatchError(
                f"cannot combine {self.currency} with {other.currency}; convert explicitly first"
            )
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.minor_units + self._check(other).minor_units, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.minor_units - self._check(other).minor_units, self.currency)

    def __mul__(self, factor: int) -> Money:
        if type(factor) is not int:
            raise InvalidRequestError("Money can only be multiplied by an int")
        return Money(self.minor_units * factor, self.currency)

    __rmul__ = __mul__

    def __neg__(self) -> Money:
        return Money(-self.minor_units, self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.minor_units < self._check(other).minor_units

    def __le__(self, other: Money) -> bool:
        return self.minor_units <= self._check(other).minor_units

    def __gt__(self, other: Money) -> bool:
        return self.minor_units > self._check(other).minor_units

    def __ge__(self, other: Money) -> bool:
        return self.minor_units >= self._check(other).minor_units

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"

    def __repr__(self) -> str:
        return f"Money({self.to_decimal_string()!r}, {self.currency!r})"

    def __format__(self, spec: str) -> str:
        """``str(money)`` formatted as a string: ``f"{money:>14}"`` pads ``"12.500 KWD"``."""
        return format(str(self), spec)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # What it validates and serializes to, so models holding Money (a FastAPI response_model) have a schema.
        return {
            "title": "Money",
            "type": "object",
            "properties": {
                "minor_units": {"type": "integer"},
                "currency": {"type": "string", "enum": sorted(CURRENCY_EXPONENTS)},
            },
            "required": ["minor_units", "currency"],
            "additionalProperties": False,
        }

    @classmethod
    def __get_pydantic_core_schema__(cls, source: type[Any], handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def from_mapping(value: Any) -> Money:
            if isinstance(value, Money):
                return value
            if isinstance(value, dict) and set(value) == {"minor_units", "currency"}:
                return cls(value["minor_units"], value["currency"])
            raise InvalidRequestError("expected Money or {'minor_units': int, 'currency': str}")

        return core_schema.no_info_plain_validator_function(
            from_mapping,
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda m: {"minor_units": m.minor_units, "currency": m.currency}
            ),
        )
