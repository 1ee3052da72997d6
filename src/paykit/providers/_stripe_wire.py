"""Stripe's wire format, without I/O: amounts, statuses, request params, webhooks.

Everything here is pure so that the synchronous adapter and a future async one
share every decision; nothing imports ``stripe``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from .._errors import InvalidRequestError, WebhookVerificationError
from .._models import EventKind, RefundStatus, WebhookEvent, trusted
from .._money import CURRENCY_EXPONENTS, Money
from .._status import DisputeStatus, PaymentStatus
from ._base import CreatePaymentRequest, ProviderPayment, ProviderPaymentMethod, ProviderRefund
from ._json import load_object

__all__ = [
    "METADATA_PAYMENT_ID",
    "METADATA_REFUND_ID",
    "METADATA_USER_ID",
    "PROVIDER_NAME",
    "STRIPE_ZERO_DECIMAL_CURRENCIES",
    "capture_params",
    "check_object_id",
    "check_stripe_amount",
    "create_payment_params",
    "from_stripe_amount",
    "map_payment_intent_status",
    "map_refund_status",
    "normalize_event",
    "parse_signature_header",
    "read_payment_intent",
    "read_payment_method",
    "read_refund",
    "redact_secrets",
    "refund_id_of",
    "refund_list_params",
    "refund_params",
    "stripe_exponent",
    "to_stripe_amount",
    "verify_and_parse_webhook",
    "verify_signature",
]

PROVIDER_NAME: Final = "stripe"
METADATA_PAYMENT_ID: Final = "paykit_payment_id"
METADATA_USER_ID: Final = "paykit_user_id"
METADATA_REFUND_ID: Final = "paykit_refund_id"

STRIPE_ZERO_DECIMAL_CURRENCIES: Final = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
"""Currencies Stripe takes in whole units, whatever their ISO 4217 exponent."""

# Stripe keeps ISK two-decimal for backwards compatibility although ISO 4217
# gives it no minor unit: 100 ISK is sent as 10000.
_TWO_DECIMAL_QUIRKS: Final = frozenset({"ISK"})

_PI_STATUSES: Final[Mapping[str, PaymentStatus]] = {
    "requires_payment_method": PaymentStatus.PENDING,
    "requires_confirmation": PaymentStatus.PENDING,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "processing": PaymentStatus.PROCESSING,
    "requires_capture": PaymentStatus.AUTHORIZED,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}

_REFUND_STATUSES: Final[Mapping[str, RefundStatus]] = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}

_PAYMENT_INTENT_EVENTS: Final = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.processing",
        "payment_intent.requires_action",
        "payment_intent.amount_capturable_updated",
    }
)
_OBJECT_ID: Final = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_REFUND_LIST_LIMIT: Final = 100
# The event type itself says how the refund ended, whatever status its object shows.
_REFUND_EVENT_STATUS: Final[Mapping[str, RefundStatus]] = {"refund.failed": RefundStatus.FAILED}
_REFUND_EVENTS: Final = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
_DISPUTE_EVENTS: Final = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
_DISPUTE_FUNDS: Final[Mapping[str, Literal["withdrawn", "reinstated"]]] = {
    "charge.dispute.funds_withdrawn": "withdrawn",
    "charge.dispute.funds_reinstated": "reinstated",
}
# Stripe's dispute statuses; retired ones (charge_refunded) and prevented (stopped before a
# chargeback, by Visa RDR) close the inquiry without a chargeback.
_DISPUTE_STATUS: Final[Mapping[str, DisputeStatus]] = {
    "warning_needs_response": DisputeStatus.WARNING_NEEDS_RESPONSE,
    "warning_under_review": DisputeStatus.WARNING_UNDER_REVIEW,
    "warning_closed": DisputeStatus.WARNING_CLOSED,
    "needs_response": DisputeStatus.NEEDS_RESPONSE,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    "charge_refunded": DisputeStatus.WARNING_CLOSED,
    "prevented": DisputeStatus.WARNING_CLOSED,
}
DISPUTE_EVIDENCE_FIELDS: Final = frozenset(
    {
        "access_activity_log",
        "billing_address",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_tracking_number",
        "uncategorized_text",
    }
)
"""The text fields of Stripe's dispute ``evidence`` paykit sends (file fields need an upload first)."""


# -- amounts -------------------------------------------------------------------


def stripe_exponent(currency: str) -> int:
    """The number of decimals Stripe expects for ``currency`` (upper-case ISO code)."""
    if currency in STRIPE_ZERO_DECIMAL_CURRENCIES:
        return 0
    if currency in _TWO_DECIMAL_QUIRKS:
        return 2
    return CURRENCY_EXPONENTS[currency]


def to_stripe_amount(money: Money) -> tuple[int, str]:
    """Convert ``money`` to Stripe's ``amount`` integer and lower-case ``currency``.

    Args:
        money: The amount to send.

    Returns:
        ``(amount, currency)`` as Stripe's API takes them.

    Raises:
        InvalidRequestError: The amount cannot be sent exactly: a three-decimal
            amount whose last digit is not 0 (Stripe requires it), or a fraction
            of a currency Stripe takes in whole units. Nothing is ever rounded.
    """
    iso = money.exponent
    target = stripe_exponent(money.currency)
    if target >= iso:
        amount = money.minor_units * 10 ** (target - iso)
    else:
        amount, rest = divmod(money.minor_units, 10 ** (iso - target))
        if rest:
            raise InvalidRequestError(f"Stripe cannot charge {money}: it takes {money.currency} in whole units")
    if target == 3 and amount % 10:
        raise InvalidRequestError(
            f"Stripe cannot charge {money}: three-decimal amounts must end in 0 "
            f"(for example {Money(amount - amount % 10, money.currency)} or "
            f"{Money(amount - amount % 10 + 10, money.currency)}); paykit never rounds"
        )
    return amount, money.currency.lower()


def check_stripe_amount(money: Money) -> None:
    """Raise unless Stripe can take ``money`` as a charge or refund amount. Pure.

    The same rules :func:`to_stripe_amount` applies to every request, plus one:
    the amount must be positive.

    Raises:
        InvalidRequestError: Not positive, or not sendable exactly (see :func:`to_stripe_amount`).
    """
    _sendable_amount(money)


def _sendable_amount(money: Money) -> tuple[int, str]:
    """The one amount rule of every Stripe request: positive, and exact in Stripe's units."""
    if money.minor_units <= 0:
        raise InvalidRequestError(f"Stripe amounts must be positive, not {money}")
    return to_stripe_amount(money)


def from_stripe_amount(amount: int, currency: str) -> Money:
    """Read a Stripe ``amount`` (in Stripe's units) of ``currency`` back as Money.

    Raises:
        InvalidRequestError: ``currency`` is unknown, or the amount does not fit
            the ISO 4217 exponent exactly (an ISK amount not a multiple of 100).
    """
    if type(amount) is not int:
        raise InvalidRequestError(f"Stripe amount must be an integer, got {type(amount).__name__}")
    code, shift = _unit_shift(currency)
    if shift >= 0:
        return Money(amount * 10**shift, code)
    minor, rest = divmod(amount, 10**-shift)
    if rest:
        raise InvalidRequestError(f"Stripe amount {amount} {code} has a fraction {code} cannot hold")
    return Money(minor, code)


@functools.lru_cache(maxsize=64)
def _unit_shift(currency: str) -> tuple[str, int]:
    """The ISO code of Stripe's ``currency`` and its ISO minus Stripe exponent (webhook hot path)."""
    code = currency.upper()
    if code not in CURRENCY_EXPONENTS:
        raise InvalidRequestError(f"unknown currency {currency!r}")
    return code, CURRENCY_EXPONENTS[code] - stripe_exponent(code)


# -- statuses ------------------------------------------------------------------


def map_payment_intent_status(status: str, last_payment_error: object = None) -> PaymentStatus:
    """Map a PaymentIntent ``status`` to paykit's.

    A PaymentIntent back at ``requires_payment_method`` with a
    ``last_payment_error`` was attempted and failed.

    Raises:
        InvalidRequestError: ``status`` is not a PaymentIntent status.
    """
    try:
        mapped = _PI_STATUSES[status]
    except (KeyError, TypeError):
        raise InvalidRequestError(f"unknown PaymentIntent status {status!r}") from None
    if status == "requires_payment_method" and last_payment_error:
        return PaymentStatus.FAILED
    return mapped


def map_refund_status(status: str) -> RefundStatus:
    """Map a Stripe Refund ``status`` to paykit's.

    Raises:
        InvalidRequestError: ``status`` is not a Refund status.
    """
    try:
        return _REFUND_STATUSES[status]
    except (KeyError, TypeError):
        raise InvalidRequestError(f"unknown Refund status {status!r}") from None


# -- requests ------------------------------------------------------------------


def create_payment_params(
    request: CreatePaymentRequest, *, payment_method_types: Sequence[str] | None
) -> dict[str, Any]:
    """The ``POST /v1/payment_intents`` parameters for ``request``.

    Args:
        request: What the service asks for.
        payment_method_types: Restrict the PaymentIntent to these types, or
            ``None`` to let Stripe's automatic payment methods decide.

    Raises:
        InvalidRequestError: The amount breaks Stripe's amount rules.
    """
    amount, currency = _sendable_amount(request.amount)
    metadata = dict(request.metadata)
    metadata[METADATA_PAYMENT_ID] = request.payment_id
    metadata[METADATA_USER_ID] = request.user_id
    params: dict[str, Any] = {
        "amount": amount,
        "currency": currency,
        "capture_method": request.capture_method,
        "metadata": metadata,
    }
    if payment_method_types is not None:
        params["payment_method_types"] = list(payment_method_types)
    if request.description is not None:
        params["description"] = request.description
    if request.customer_ref is not None:
        params["customer"] = request.customer_ref
    if request.payment_method_ref is not None:
        params["payment_method"] = request.payment_method_ref
    if request.off_session:
        # A renewal: confirm now on the saved method; Stripe answers 402 card_error when the bank
        # declines (card_declined) or wants the customer (authentication_required).
        params["confirm"] = True
        params["off_session"] = True
    return params


def capture_params(amount: Money | None, payment_currency: str) -> dict[str, Any]:
    """The ``capture`` parameters: empty for a full capture.

    Raises:
        InvalidRequestError: ``amount`` is of another currency or breaks Stripe's amount rules.
    """
    if amount is None:
        return {}
    return {"amount_to_capture": _amount_in(amount, payment_currency)}


def refund_params(
    *, payment_intent: str, amount: Money, payment_currency: str, payment_id: str, refund_id: str
) -> dict[str, Any]:
    """The ``POST /v1/refunds`` parameters.

    Raises:
        InvalidRequestError: ``amount`` is of another currency or breaks Stripe's amount rules.
    """
    return {
        "payment_intent": payment_intent,
        "amount": _amount_in(amount, payment_currency),
        "metadata": {METADATA_PAYMENT_ID: payment_id, METADATA_REFUND_ID: refund_id},
    }


def check_object_id(value: str | None, what: str) -> str:
    """``value`` if it can be a Stripe object id, so it is safe to put in a URL path or query.

    Raises:
        InvalidRequestError: ``value`` is missing or holds anything but letters, digits and ``_``.
    """
    if not isinstance(value, str) or not _OBJECT_ID.match(value):
        raise InvalidRequestError(f"{what} {value!r} is not a Stripe id")
    return value


def refund_list_params(payment_intent: str, *, starting_after: str | None = None) -> dict[str, Any]:
    """The ``GET /v1/refunds`` parameters listing a PaymentIntent's refunds, one page of 100.

    Raises:
        InvalidRequestError: An id is not a Stripe id.
    """
    params: dict[str, Any] = {
        "payment_intent": check_object_id(payment_intent, "PaymentIntent"),
        "limit": _REFUND_LIST_LIMIT,
    }
    if starting_after is not None:
        params["starting_after"] = check_object_id(starting_after, "Refund")
    return params


def _amount_in(amount: Money, currency: str) -> int:
    if amount.currency != currency:
        raise InvalidRequestError(f"amount is in {amount.currency}, the payment in {currency}")
    return _sendable_amount(amount)[0]


# -- responses -----------------------------------------------------------------


def _id_of(value: object) -> str | None:
    """An expandable field: a plain id, or an expanded object carrying ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        ident = value.get("id")
        return ident if isinstance(ident, str) else None
    return None


def _failure(error: object) -> tuple[str | None, str | None]:
    if not isinstance(error, dict):
        return None, None
    code = error.get("decline_code") or error.get("code")
    message = error.get("message")
    return (code if isinstance(code, str) else None, message if isinstance(message, str) else None)


def _plain(value: Any) -> Any:
    """Deep-copy a JSON-like value into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _payment_intent_core(
    pi: Mapping[str, Any],
) -> tuple[str, PaymentStatus, Money | None, str | None, str | None, dict[str, str]]:
    """What webhooks and API answers both need: id, status, captured, failure, ids."""
    try:
        ident = pi["id"]
        error = pi.get("last_payment_error")
        status = map_payment_intent_status(pi["status"], error)
        currency = pi["currency"]
    except KeyError as exc:
        raise InvalidRequestError(f"PaymentIntent lacks {exc.args[0]!r}") from None
    received = pi.get("amount_received")
    amount_captured = from_stripe_amount(received, currency) if received is not None else None
    failure_code, failure_message = _failure(error) if error else (None, None)
    provider_data: dict[str, str] = {}
    charge = _id_of(pi.get("latest_charge"))
    if charge:
        provider_data["stripe_charge_id"] = charge
    customer = _id_of(pi.get("customer"))
    if customer:
        provider_data["stripe_customer_id"] = customer
    return str(ident), status, amount_captured, failure_code, failure_message, provider_data


def read_payment_intent(pi: Mapping[str, Any]) -> ProviderPayment:
    """Normalize a PaymentIntent object.

    Raises:
        InvalidRequestError: A field is missing or has an unexpected value.
    """
    ident, status, amount_captured, failure_code, failure_message, provider_data = _payment_intent_core(pi)
    next_action = pi.get("next_action")
    redirect_url = None
    if isinstance(next_action, Mapping):
        next_action = _plain(next_action)
        redirect = next_action.get("redirect_to_url")
        if isinstance(redirect, Mapping) and isinstance(redirect.get("url"), str):
            redirect_url = redirect["url"]
    else:
        next_action = None
    client_secret = pi.get("client_secret")
    return ProviderPayment(
        provider_ref=ident,
        status=status,
        amount_captured=amount_captured,
        client_secret=client_secret if isinstance(client_secret, str) else None,
        redirect_url=redirect_url,
        next_action=next_action,
        payment_method_ref=_id_of(pi.get("payment_method")),
        failure_code=failure_code,
        failure_message=failure_message,
        provider_data=provider_data,
    )


def read_refund(refund: Mapping[str, Any]) -> ProviderRefund:
    """Normalize a Refund object.

    Raises:
        InvalidRequestError: A field is missing or has an unexpected value.
    """
    try:
        ident, status = refund["id"], map_refund_status(refund["status"])
    except KeyError as exc:
        raise InvalidRequestError(f"Refund lacks {exc.args[0]!r}") from None
    reason = refund.get("failure_reason")
    return ProviderRefund(
        provider_ref=str(ident),
        status=status,
        failure_message=reason if isinstance(reason, str) else None,
    )


def refund_id_of(refund: Mapping[str, Any]) -> str | None:
    """The paykit refund id echoed in a Refund's ``metadata.paykit_refund_id``; ``None`` without one."""
    metadata = refund.get("metadata")
    if isinstance(metadata, Mapping):
        value = metadata.get(METADATA_REFUND_ID)
        return value if isinstance(value, str) and value else None
    return None


def read_payment_method(pm: Mapping[str, Any]) -> ProviderPaymentMethod:
    """Normalize a PaymentMethod object (brand, last 4 digits and expiry only).

    Raises:
        InvalidRequestError: The object has no ``id``.
    """
    ident = pm.get("id")
    if not isinstance(ident, str):
        raise InvalidRequestError("PaymentMethod lacks 'id'")
    kind = pm.get("type")
    card = pm.get("card")
    card = card if isinstance(card, Mapping) else {}

    def text(key: str) -> str | None:
        value = card.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = card.get(key)
        return value if type(value) is int else None

    return ProviderPaymentMethod(
        provider_ref=ident,
        type=kind if isinstance(kind, str) else "card",
        brand=text("brand"),
        last4=text("last4"),
        exp_month=number("exp_month"),
        exp_year=number("exp_year"),
    )


def redact_secrets(value: Any) -> Any:
    """Copy a JSON-like value with every ``client_secret`` replaced by ``"[redacted]"``.

    Stripe's error bodies embed the PaymentIntent, client secret included.
    """
    if isinstance(value, Mapping):
        return {
            k: ("[redacted]" if k == "client_secret" and v is not None else redact_secrets(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


# -- webhooks ------------------------------------------------------------------


_MAX_SIGNATURE_HEADER: Final = 8192
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}", re.ASCII)
_HEX_SIGNATURE: Final = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


def parse_signature_header(header: str) -> tuple[int, list[str]]:
    """Split ``Stripe-Signature`` into its timestamp and its ``v1`` signatures.

    Raises:
        WebhookVerificationError: No timestamp, one that is not 1-12 ASCII digits,
            no well-formed ``v1`` (64 hex digits), or a header over 8 KB.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    if len(header) > _MAX_SIGNATURE_HEADER:
        raise WebhookVerificationError("Stripe-Signature header is too long")
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            # ASCII digits only: str.isdigit() also admits superscripts that int() refuses,
            # and a few thousand digits exceed int()'s string limit.
            if not _TIMESTAMP.fullmatch(value):
                raise WebhookVerificationError("Stripe-Signature timestamp is not an integer")
            timestamp = int(value)
        elif key == "v1" and _HEX_SIGNATURE.fullmatch(value):
            # Anything else cannot match a hex digest; comparing it (non-ASCII str) would raise.
            signatures.append(value)
    if timestamp is None:
        raise WebhookVerificationError("Stripe-Signature has no timestamp")
    if not signatures:
        raise WebhookVerificationError("Stripe-Signature has no v1 signature")
    return timestamp, signatures


def verify_signature(body: bytes, header: str, secrets: Sequence[bytes], *, now: float, tolerance: int) -> int:
    """Check a ``Stripe-Signature`` header against ``body``; return its timestamp.

    The signed message is ``f"{t}.{body}"``; any ``v1`` signature made with any
    of ``secrets`` (several during a rotation) is accepted, comparing in
    constant time. ``t`` must be within ``tolerance`` seconds of ``now`` in
    either direction: a timestamp from the future is as suspect as an old one.

    Raises:
        WebhookVerificationError: Malformed header, stale or future timestamp,
            or no signature matches. The message never includes a signature.
    """
    timestamp, signatures = parse_signature_header(header)
    if abs(now - timestamp) > tolerance:
        raise WebhookVerificationError(
            f"Stripe-Signature timestamp is {int(now - timestamp)} s away from now (tolerance {tolerance} s)"
        )
    message = b"%d.%s" % (timestamp, body)
    for secret in secrets:
        expected = hmac.digest(secret, message, hashlib.sha256).hex()
        # Every candidate is compared, in constant time; stopping at the first
        # matching secret only tells which secret signed, which is no secret.
        matched = False
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate)
        if matched:
            return timestamp
    raise WebhookVerificationError("no Stripe-Signature v1 signature matches the body")


def verify_and_parse_webhook(
    body: bytes, header: str | None, secrets: Sequence[bytes], *, now: float, tolerance: int
) -> WebhookEvent:
    """Verify a Stripe webhook request and normalize its event.

    Args:
        body: The raw request body, exactly as received.
        header: The ``Stripe-Signature`` header value.
        secrets: Endpoint signing secrets (``whsec_...``) as bytes.
        now: The current Unix time.
        tolerance: Largest accepted distance, in seconds, between ``now`` and
            the signed timestamp.

    Raises:
        WebhookVerificationError: Anything forged, stale or malformed.
    """
    if not secrets:
        raise WebhookVerificationError("no Stripe webhook secret is configured")
    if not header:
        raise WebhookVerificationError("missing Stripe-Signature header")
    verify_signature(body, header, secrets, now=now, tolerance=tolerance)
    return normalize_event(load_object(body, "Stripe webhook"))


def normalize_event(event: object) -> WebhookEvent:
    """Turn a decoded Stripe Event (plain dicts, as json.loads gives) into a :class:`WebhookEvent`.

    ``payment_intent.*`` events carry the PaymentIntent's status and amounts;
    ``refund.*`` and ``charge.refunded`` the refund's id, status and amount (in
    ``amount_refunded``; for ``charge.refunded`` only when the charge embeds its
    refunds) and paykit's refund id from the refund's metadata (``refund_id``);
    ``refund.failed`` is always a FAILED refund; ``charge.dispute.*`` the dispute's id, status and reason in
    ``provider_data``. Other types are ``EventKind.IGNORED``.

    Raises:
        WebhookVerificationError: The event lacks a field paykit needs.
    """
    try:
        if not isinstance(event, dict):
            raise TypeError("event is not an object")
        event_id = event["id"]
        event_type = event["type"]
        if not isinstance(event_id, str) or not isinstance(event_type, str):
            raise TypeError("id and type must be strings")
        created = event.get("created")
        occurred_at = datetime.fromtimestamp(created, UTC) if type(created) is int else None
        if event_type in _PAYMENT_INTENT_EVENTS:
            return _payment_intent_event(event_id, event_type, occurred_at, event["data"]["object"])
        if event_type == "charge.refunded":
            return _charge_refunded_event(event_id, event_type, occurred_at, event["data"]["object"])
        if event_type in _REFUND_EVENTS:
            return _refund_event(event_id, event_type, occurred_at, event["data"]["object"])
        if event_type in _DISPUTE_EVENTS:
            return _dispute_event(event_id, event_type, occurred_at, event["data"]["object"])
    except (KeyError, TypeError, ValueError, OverflowError, OSError, AttributeError) as exc:
        # InvalidRequestError is a ValueError: unknown statuses and currencies land here too;
        # AttributeError: a currency that is not a string (null) is a malformed event, not a 500.
        raise WebhookVerificationError(f"Stripe event is malformed: {type(exc).__name__}") from None
    return WebhookEvent(provider=PROVIDER_NAME, event_id=event_id, type=event_type, kind=EventKind.IGNORED)


def _metadata_id(obj: Mapping[str, Any]) -> str | None:
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        value = metadata.get(METADATA_PAYMENT_ID)
        return value if isinstance(value, str) else None
    return None


def _payment_intent_event(
    event_id: str, event_type: str, occurred_at: datetime | None, pi: Mapping[str, Any]
) -> WebhookEvent:
    ident, status, captured, failure_code, failure_message, provider_data = _payment_intent_core(pi)
    amount = from_stripe_amount(pi["amount"], pi["currency"])
    # Every value below is typed already (ids and failures checked as str, Money, the status enum, a fresh
    # dict of str): validating them again would return them unchanged, so the event is built directly.
    return trusted(
        WebhookEvent,
        provider=PROVIDER_NAME,
        event_id=event_id,
        type=event_type,
        kind=EventKind.PAYMENT,
        provider_ref=ident,
        payment_id=_metadata_id(pi),
        status=status,
        amount=amount,
        amount_captured=amount if captured == amount else captured,
        failure_code=failure_code,
        failure_message=failure_message,
        occurred_at=occurred_at,
        provider_data=provider_data,
    )


def _charge_refunded_event(
    event_id: str, event_type: str, occurred_at: datetime | None, charge: Mapping[str, Any]
) -> WebhookEvent:
    # Since API 2022-11-15 a charge no longer embeds its refunds; when it does,
    # the newest one is the refund this event reports. Without it, the
    # refund.* event for the same refund carries the details.
    refund: Mapping[str, Any] = {}
    refunds = charge.get("refunds")
    if isinstance(refunds, dict) and refunds.get("data"):
        refund = refunds["data"][0]
    captured = charge.get("amount_captured")
    currency = charge["currency"]
    return WebhookEvent(
        provider=PROVIDER_NAME,
        event_id=event_id,
        type=event_type,
        kind=EventKind.REFUND,
        provider_ref=_id_of(charge.get("payment_intent")),
        payment_id=_metadata_id(charge),
        status=PaymentStatus.REFUNDED if charge["refunded"] is True else PaymentStatus.PARTIALLY_REFUNDED,
        amount_captured=from_stripe_amount(captured, currency) if captured is not None else None,
        amount_refunded=from_stripe_amount(refund["amount"], currency) if refund else None,
        refund_ref=str(refund["id"]) if refund else None,
        refund_id=refund_id_of(refund) if refund else None,
        refund_status=map_refund_status(refund["status"]) if refund else None,
        occurred_at=occurred_at,
        provider_data={"stripe_charge_id": str(charge["id"])},
    )


def _refund_event(
    event_id: str, event_type: str, occurred_at: datetime | None, refund: Mapping[str, Any]
) -> WebhookEvent:
    normalized = read_refund(refund)
    return WebhookEvent(
        provider=PROVIDER_NAME,
        event_id=event_id,
        type=event_type,
        kind=EventKind.REFUND,
        provider_ref=_id_of(refund.get("payment_intent")),
        payment_id=_metadata_id(refund),
        amount_refunded=from_stripe_amount(refund["amount"], refund["currency"]),
        refund_ref=normalized.provider_ref,
        refund_id=refund_id_of(refund),
        refund_status=_REFUND_EVENT_STATUS.get(event_type, normalized.status),
        failure_message=normalized.failure_message,
        occurred_at=occurred_at,
    )


def _dispute_event(
    event_id: str, event_type: str, occurred_at: datetime | None, dispute: Mapping[str, Any]
) -> WebhookEvent:
    status = str(dispute["status"])
    data = {"stripe_dispute_id": str(dispute["id"]), "stripe_dispute_status": status}
    reason = dispute.get("reason")
    if isinstance(reason, str):
        data["stripe_dispute_reason"] = reason
    details = dispute.get("evidence_details")
    due = details.get("due_by") if isinstance(details, dict) else None
    mapped = _DISPUTE_STATUS.get(status)
    return WebhookEvent(
        provider=PROVIDER_NAME,
        event_id=event_id,
        type=event_type,
        kind=EventKind.DISPUTE,
        provider_ref=_id_of(dispute.get("payment_intent")),
        payment_id=_metadata_id(dispute),
        occurred_at=occurred_at,
        provider_data=data,
        dispute_ref=str(dispute["id"]),
        dispute_status=mapped,
        dispute_provider_status=status,
        dispute_amount=from_stripe_amount(dispute["amount"], dispute["currency"]),
        dispute_reason=reason if isinstance(reason, str) else None,
        dispute_outcome=status if mapped in (DisputeStatus.WON, DisputeStatus.LOST) else None,
        dispute_evidence_due_by=datetime.fromtimestamp(due, UTC) if type(due) is int else None,
        dispute_funds=_DISPUTE_FUNDS.get(event_type),
    )


def dispute_evidence_params(evidence: Mapping[str, str], *, submit: bool) -> dict[str, Any]:
    """``POST /v1/disputes/{id}`` parameters: ``evidence[...]`` text fields and ``submit``.

    Raises:
        InvalidRequestError: A field Stripe's evidence has no text field for, or an empty value.
    """
    unknown = sorted(set(evidence) - DISPUTE_EVIDENCE_FIELDS)
    if unknown:
        raise InvalidRequestError(f"Stripe dispute evidence has no text field {unknown[0]!r}")
    if not evidence or not all(isinstance(v, str) and v.strip() for v in evidence.values()):
        raise InvalidRequestError("dispute evidence needs at least one non-empty text field")
    return {"evidence": dict(evidence), "submit": submit}
