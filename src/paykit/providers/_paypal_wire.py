"""PayPal's wire format, free of I/O: amounts, request bodies, response and error mapping, events.

Everything here is a pure function of its arguments, so both twins in
:mod:`paykit.providers.paypal` (``PayPalProvider`` and ``AsyncPayPalProvider``)
share one copy of every decision about what PayPal is sent and what its answers mean.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

from .._errors import (
    AuthenticationError,
    InvalidRequestError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from .._models import CaptureMethod, EventKind, RefundStatus, WebhookEvent
from .._money import Money
from .._status import DisputeStatus, PaymentStatus
from ._base import CreatePaymentRequest, ProviderPayment, ProviderRefund

__all__ = [
    "NO_DECIMAL_CURRENCIES",
    "PAYPAL_CURRENCIES",
    "PROVIDER_NAME",
    "accept_claim_body",
    "authorization_capture_request",
    "check_paypal_amount",
    "confirmed_authorization_event",
    "confirmed_capture_event",
    "confirmed_dispute_event",
    "confirmed_order_event",
    "confirmed_refund_event",
    "confirmed_reversal_event",
    "error_from_response",
    "find_authorization_id",
    "find_capture_id",
    "money_from_paypal",
    "normalize_event",
    "order_request",
    "path_id",
    "payment_from_capture",
    "payment_from_order",
    "paypal_money",
    "paypal_request_id",
    "provide_evidence_input",
    "refund_from_response",
    "refund_request",
    "should_retry",
    "up_capture_id",
]

PROVIDER_NAME: Final = "paypal"

# developer.paypal.com/api/rest/reference/currency-codes/ (RUB was withdrawn).
PAYPAL_CURRENCIES: Final = frozenset(
    {
        "AUD", "BRL", "CAD", "CHF", "CNY", "CZK", "DKK", "EUR", "GBP", "HKD", "HUF", "ILS",
        "JPY", "MXN", "MYR", "NOK", "NZD", "PHP", "PLN", "SEK", "SGD", "THB", "TWD", "USD",
    }
)  # fmt: skip
"""Currencies PayPal accepts for payments."""

NO_DECIMAL_CURRENCIES: Final = frozenset({"HUF", "JPY", "TWD"})
"""Currencies PayPal takes in whole units only, whatever their ISO exponent."""

_PAYPAL_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}", re.ASCII)
_MAX_REQUEST_ID: Final = 108
_REQUEST_ID_CHARS: Final = re.compile(r"^[\x21-\x7e]+$")
_PAYPAL_TEXT_MAX: Final = 127
# Refund custom_id is restricted by PayPal's schema; other ids are free text.
_REFUND_CUSTOM_ID: Final = re.compile(r"^[A-Za-z0-9\-_.,]{1,127}$")

_DECLINE_ISSUES: Final = frozenset(
    {
        "ALIAS_DECLINED_BY_PROCESSOR",
        "AUTHORIZATION_DENIED",
        "CARD_EXPIRED",
        "COMPLIANCE_VIOLATION",
        "DECLINED_DUE_TO_RELATED_TXN",
        "INSTRUMENT_DECLINED",
        "MAX_NUMBER_OF_PAYMENT_ATTEMPTS_EXCEEDED",
        "PAYEE_BLOCKED_TRANSACTION",
        "PAYER_ACCOUNT_LOCKED_OR_CLOSED",
        "PAYER_ACCOUNT_RESTRICTED",
        "PAYER_ACTION_REQUIRED",
        "PAYER_CANNOT_PAY",
        "PAYMENT_SOURCE_DECLINED_BY_PROCESSOR",
        "REDIRECT_PAYER_FOR_ALTERNATE_FUNDING",
        "REFERENCED_CARD_EXPIRED",
        "TRANSACTION_BLOCKED_BY_PAYEE",
        "TRANSACTION_REFUSED",
    }
)

_CAPTURE_STATUS: Final = {
    "COMPLETED": PaymentStatus.SUCCEEDED,
    "PENDING": PaymentStatus.PROCESSING,
    "DECLINED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
    "PARTIALLY_REFUNDED": PaymentStatus.PARTIALLY_REFUNDED,
    "REFUNDED": PaymentStatus.REFUNDED,
}
_CAPTURED: Final = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_AUTHORIZATION_STATUS: Final = {
    "CREATED": PaymentStatus.AUTHORIZED,
    "PENDING": PaymentStatus.PROCESSING,
    "CAPTURED": PaymentStatus.SUCCEEDED,
    "PARTIALLY_CAPTURED": PaymentStatus.SUCCEEDED,
    "DENIED": PaymentStatus.FAILED,
    "VOIDED": PaymentStatus.CANCELED,
    "EXPIRED": PaymentStatus.CANCELED,
}
_REFUND_STATUS: Final = {
    "COMPLETED": RefundStatus.SUCCEEDED,
    "PENDING": RefundStatus.PENDING,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.CANCELED,
}
_APPROVAL_RELS: Final = ("payer-action", "approve")
# PayPal's order, capture and refund ids are short upper-case alphanumerics; anything
# else never goes into a URL path.


# -- amounts ------------------------------------------------------------------


def paypal_money(money: Money) -> dict[str, str]:
    """PayPal's ``{currency_code, value}`` for ``money``.

    Raises:
        InvalidRequestError: PayPal does not take the currency, or the amount has
            a fraction in a currency PayPal takes in whole units (never rounded).
    """
    if money.currency not in PAYPAL_CURRENCIES:
        raise InvalidRequestError(f"PayPal does not support {money.currency}")
    if money.currency in NO_DECIMAL_CURRENCIES and money.exponent:
        whole, fraction = divmod(money.minor_units, 10**money.exponent)
        if fraction:
            raise InvalidRequestError(f"PayPal takes {money.currency} in whole units only; {money} has a fraction")
        return {"currency_code": money.currency, "value": str(whole)}
    return {"currency_code": money.currency, "value": money.to_decimal_string()}


def _positive_paypal_money(money: Money) -> dict[str, str]:
    if money.minor_units <= 0:
        raise InvalidRequestError(f"PayPal amounts must be positive, not {money}")
    return paypal_money(money)


def check_paypal_amount(money: Money) -> None:
    """Raise unless PayPal can take ``money`` as an order, capture or refund amount. Pure.

    The rule every request applies: a currency PayPal supports, positive, and
    whole units for JPY, HUF and TWD (1.50 HUF is refused, never rounded).

    Raises:
        InvalidRequestError: PayPal cannot take the amount.
    """
    _positive_paypal_money(money)


def money_from_paypal(value: object) -> Money | None:
    """The :class:`Money` in a PayPal money object, or ``None`` if there is none."""
    if not isinstance(value, Mapping):
        return None
    currency, amount = value.get("currency_code"), value.get("value")
    if not isinstance(currency, str) or not isinstance(amount, str):
        return None
    return Money.of(amount, currency)


# -- requests -----------------------------------------------------------------


def paypal_request_id(idempotency_key: str) -> str:
    """The ``PayPal-Request-Id`` for a paykit idempotency key (at most 108 characters).

    Keys that fit are sent as they are, so PayPal's logs show paykit's ids; longer
    or unusual ones are hashed, which keeps them stable across retries.
    """
    if len(idempotency_key) <= _MAX_REQUEST_ID and _REQUEST_ID_CHARS.match(idempotency_key):
        return idempotency_key
    return "paykit-" + hashlib.sha256(idempotency_key.encode()).hexdigest()


def path_id(value: object, what: str) -> str:
    """A PayPal id made safe to put in a URL path: checked against PayPal's alphabet, then escaped.

    PayPal's order, capture, authorization and refund ids are letters, digits and
    hyphens. Anything else (``../../v1/oauth2/token?x=``) would move the request
    elsewhere, so it is refused rather than sent; the escaping is a second lock.

    Raises:
        InvalidRequestError: ``value`` is not 1-64 ASCII letters, digits or hyphens.
    """
    if not isinstance(value, str) or not _PAYPAL_ID.fullmatch(value):
        raise InvalidRequestError(f"the PayPal {what} id is not one PayPal issues")
    return quote(value, safe="")


def _intent(capture_method: CaptureMethod) -> str:
    return "AUTHORIZE" if capture_method == "manual" else "CAPTURE"


def order_request(request: CreatePaymentRequest, *, return_url: str | None, cancel_url: str | None) -> dict[str, Any]:
    """The body of ``POST /v2/checkout/orders`` for ``request``.

    Args:
        request: What the service asks for.
        return_url: Where PayPal sends the payer after approval (the request's own wins).
        cancel_url: Where PayPal sends a payer who cancels (the request's own wins).

    Raises:
        InvalidRequestError: The amount or currency is not one PayPal accepts.
    """
    unit: dict[str, Any] = {
        "custom_id": request.payment_id,
        "amount": _positive_paypal_money(request.amount),
    }
    invoice_id = request.metadata.get("invoice_id")
    if invoice_id:
        unit["invoice_id"] = invoice_id[:_PAYPAL_TEXT_MAX]
    if request.description:
        unit["description"] = request.description[:_PAYPAL_TEXT_MAX]
    body: dict[str, Any] = {"intent": _intent(request.capture_method), "purchase_units": [unit]}
    return_url = request.return_url or return_url
    cancel_url = request.cancel_url or cancel_url
    if return_url or cancel_url:
        context: dict[str, str] = {"user_action": "PAY_NOW"}
        if return_url:
            context["return_url"] = return_url
        if cancel_url:
            context["cancel_url"] = cancel_url
        body["payment_source"] = {"paypal": {"experience_context": context}}
    return body


def authorization_capture_request(amount: Money | None) -> dict[str, Any]:
    """The body capturing an authorization, in full (``None``) or in part; always final."""
    body: dict[str, Any] = {"final_capture": True}
    if amount is not None:
        body["amount"] = _positive_paypal_money(amount)
    return body


def refund_request(amount: Money, *, payment_id: str) -> dict[str, Any]:
    """The body refunding ``amount`` of a capture.

    The amount is always explicit: an empty body refunds whatever PayPal still
    holds, which may be more than paykit means to give back.
    """
    body: dict[str, Any] = {"amount": _positive_paypal_money(amount)}
    if _REFUND_CUSTOM_ID.match(payment_id):
        body["custom_id"] = payment_id
    return body


# -- responses ----------------------------------------------------------------


def _dict(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _first_unit(order: Mapping[str, Any]) -> Mapping[str, Any]:
    units = _list(order.get("purchase_units"))
    return _dict(units[0]) if units else {}


def _approval_url(links: object) -> str | None:
    by_rel = {_dict(link).get("rel"): _dict(link).get("href") for link in _list(links)}
    for rel in _APPROVAL_RELS:
        href = by_rel.get(rel)
        if isinstance(href, str):
            return href
    return None


def _related_ids(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return _dict(_dict(resource.get("supplementary_data")).get("related_ids"))


def find_capture_id(order: Mapping[str, Any]) -> str | None:
    """The id of the order's captured (or last) capture, if it has one."""
    captures = [_dict(c) for c in _list(_dict(_first_unit(order).get("payments")).get("captures"))]
    for capture in captures:
        if capture.get("status") in _CAPTURED and _str(capture.get("id")):
            return str(capture["id"])
    return _str(captures[-1].get("id")) if captures else None


def find_authorization_id(order: Mapping[str, Any]) -> str | None:
    """The id of the order's (last) authorization, if it has one."""
    payments = _dict(_first_unit(order).get("payments"))
    authorizations = [_dict(a) for a in _list(payments.get("authorizations"))]
    return _str(authorizations[-1].get("id")) if authorizations else None


def _failure(resource: Mapping[str, Any]) -> str | None:
    return _str(_dict(resource.get("status_details")).get("reason"))


def payment_from_capture(order_id: str, capture: Mapping[str, Any]) -> ProviderPayment:
    """A capture (``/v2/payments/...`` or inside an order) as a paykit payment view."""
    paypal_status = str(capture.get("status"))
    status = _CAPTURE_STATUS.get(paypal_status, PaymentStatus.PROCESSING)
    captured = money_from_paypal(capture.get("amount")) if paypal_status in _CAPTURED else None
    data = {"capture_id": str(capture["id"])} if _str(capture.get("id")) else {}
    failed = status is PaymentStatus.FAILED
    return ProviderPayment(
        provider_ref=order_id,
        status=status,
        amount_captured=captured,
        failure_code=(_failure(capture) or f"capture_{paypal_status.lower()}") if failed else None,
        failure_message="PayPal declined the capture" if failed else None,
        provider_data=data,
    )


def payment_from_order(order: Mapping[str, Any]) -> ProviderPayment:
    """An Orders v2 order as a paykit payment view.

    A ``COMPLETED`` order is only as good as what it holds: its capture (which
    may be ``DECLINED``) or, for the AUTHORIZE intent, its authorization.
    """
    order_id = str(order.get("id", ""))
    status = order.get("status")
    payments = _dict(_first_unit(order).get("payments"))
    captures = [_dict(c) for c in _list(payments.get("captures"))]
    authorizations = [_dict(a) for a in _list(payments.get("authorizations"))]
    data: dict[str, str] = {}
    authorization_id = find_authorization_id(order)
    if authorization_id:
        data["authorization_id"] = authorization_id
    if captures:
        capture_id = find_capture_id(order)
        capture = next((c for c in captures if c.get("id") == capture_id), captures[-1])
        view = payment_from_capture(order_id, capture)
        return ProviderPayment(
            provider_ref=view.provider_ref,
            status=view.status,
            amount_captured=view.amount_captured,
            failure_code=view.failure_code,
            failure_message=view.failure_message,
            provider_data={**data, **view.provider_data},
        )
    if authorizations:
        authorization = authorizations[-1]
        auth_status = _AUTHORIZATION_STATUS.get(str(authorization.get("status")), PaymentStatus.PROCESSING)
        failed = auth_status is PaymentStatus.FAILED
        return ProviderPayment(
            provider_ref=order_id,
            status=auth_status,
            failure_code="authorization_denied" if failed else None,
            failure_message="PayPal denied the authorization" if failed else None,
            provider_data=data,
        )
    if status == "VOIDED":
        return ProviderPayment(provider_ref=order_id, status=PaymentStatus.CANCELED, provider_data=data)
    if status == "COMPLETED":
        # Completed without a capture or authorization: nothing was taken.
        return ProviderPayment(
            provider_ref=order_id,
            status=PaymentStatus.FAILED,
            failure_code="no_capture",
            failure_message="PayPal completed the order without a capture",
        )
    return ProviderPayment(
        provider_ref=order_id,
        status=PaymentStatus.REQUIRES_ACTION,
        redirect_url=_approval_url(order.get("links")),
        next_action={"type": "redirect", "order_status": str(status)},
        provider_data=data,
    )


def refund_from_response(refund: Mapping[str, Any]) -> ProviderRefund:
    """A ``/v2/payments/captures/{id}/refund`` answer as a paykit refund view."""
    status = _REFUND_STATUS.get(str(refund.get("status")), RefundStatus.PENDING)
    reason = _str(_dict(refund.get("status_details")).get("reason"))
    return ProviderRefund(
        provider_ref=str(refund.get("id", "")),
        status=status,
        failure_message=reason if status in {RefundStatus.FAILED, RefundStatus.CANCELED} else None,
    )


# -- errors -------------------------------------------------------------------


def should_retry(http_status: int | None) -> bool:
    """Whether a request that failed with ``http_status`` may be sent again as it was.

    ``None`` means the request never got an answer (connection or timeout);
    every POST carries a ``PayPal-Request-Id``, so resending one is safe.
    """
    return http_status is None or http_status in {408, 409, 429} or http_status >= 500


def _issues(body: Mapping[str, Any]) -> list[str]:
    return [str(d["issue"]) for d in map(_dict, _list(body.get("details"))) if _str(d.get("issue"))]


def error_from_response(http_status: int, body: Mapping[str, Any] | str | None) -> ProviderError:
    """The :class:`ProviderError` for one of PayPal's error answers.

    PayPal errors carry ``name``, ``message``, ``details[].issue`` and
    ``debug_id`` (the OAuth endpoint: ``error`` and ``error_description``).
    The most specific issue becomes ``code``; ``debug_id`` the ``request_id``.
    """
    parsed = body if isinstance(body, Mapping) else {}
    issues = _issues(parsed)
    name = _str(parsed.get("name")) or _str(parsed.get("error"))
    code = issues[0] if issues else name
    message = _str(parsed.get("message")) or _str(parsed.get("error_description")) or f"HTTP {http_status}"
    details = [str(d["description"]) for d in map(_dict, _list(parsed.get("details"))) if _str(d.get("description"))]
    text = f"PayPal: {message}" + (f" ({code}: {details[0]})" if details else f" ({code})" if code else "")
    common: dict[str, Any] = {
        "provider": PROVIDER_NAME,
        "http_status": http_status,
        "code": code,
        "request_id": _str(parsed.get("debug_id")),
        "body": body,
    }
    decline = next((issue for issue in issues if issue in _DECLINE_ISSUES), None)
    if decline is not None:
        return PaymentDeclinedError(text, decline_code=decline, **common)
    if http_status == 401:
        return AuthenticationError(text, **common)
    if should_retry(http_status):
        return ProviderUnavailableError(text, **common)
    if http_status in (400, 404, 422):
        return ProviderRequestError(text, **common)
    return ProviderError(text, **common)


# -- webhook events -----------------------------------------------------------


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


_CAPTURE_PATH: Final = re.compile(r"/v2/payments/captures/(?P<id>[A-Za-z0-9-]{1,64})", re.ASCII)


def up_capture_id(links: object) -> str | None:
    """The capture id a refund's ``rel="up"`` link names, read strictly.

    The link must be a plain ``https://.../v2/payments/captures/<id>`` URL (no
    query, no fragment, nothing after the id); otherwise ``None``.
    """
    for link in map(_dict, _list(links)):
        href = link.get("href")
        if link.get("rel") != "up" or not isinstance(href, str):
            continue
        try:
            parts = urlsplit(href)
        except ValueError:
            return None
        match = _CAPTURE_PATH.fullmatch(parts.path)
        if parts.scheme != "https" or parts.query or parts.fragment or match is None:
            return None
        return match.group("id")
    return None


_CAPTURE_EVENT_STATUS: Final = {
    "PAYMENT.CAPTURE.COMPLETED": PaymentStatus.SUCCEEDED,
    "PAYMENT.CAPTURE.PENDING": PaymentStatus.PROCESSING,
    "PAYMENT.CAPTURE.DENIED": PaymentStatus.FAILED,
    "PAYMENT.CAPTURE.DECLINED": PaymentStatus.FAILED,
}
_AUTHORIZATION_EVENT_STATUS: Final = {
    "PAYMENT.AUTHORIZATION.CREATED": PaymentStatus.AUTHORIZED,
    "PAYMENT.AUTHORIZATION.VOIDED": PaymentStatus.CANCELED,
}
_REFUND_EVENTS: Final = frozenset({"PAYMENT.CAPTURE.REFUNDED", "PAYMENT.CAPTURE.REVERSED"})
_ORDER_EVENTS: Final = frozenset({"CHECKOUT.ORDER.APPROVED", "CHECKOUT.ORDER.COMPLETED"})


def normalize_event(event: Mapping[str, Any]) -> WebhookEvent:
    """A verified PayPal webhook event as a paykit :class:`WebhookEvent`.

    ``provider_ref`` is always the order id (capture and authorization events
    carry it in ``supplementary_data.related_ids``); ``payment_id`` comes from
    the ``custom_id`` paykit set. Event types paykit does not act on become
    :attr:`EventKind.IGNORED`.

    Raises:
        WebhookVerificationError: The event lacks its id, type or resource.
    """
    event_id, event_type = _str(event.get("id")), _str(event.get("event_type"))
    resource = event.get("resource")
    if event_id is None or event_type is None or not isinstance(resource, Mapping):
        raise WebhookVerificationError("PayPal webhook event lacks id, event_type or resource")
    common: dict[str, Any] = {
        "provider": PROVIDER_NAME,
        "event_id": event_id,
        "type": event_type,
        "occurred_at": _parse_time(event.get("create_time")),
    }
    if event_type in _ORDER_EVENTS:
        return _order_event(resource, common, approved=event_type == "CHECKOUT.ORDER.APPROVED")
    if event_type in _CAPTURE_EVENT_STATUS:
        return _capture_event(resource, common, _CAPTURE_EVENT_STATUS[event_type])
    if event_type in _REFUND_EVENTS:
        return _refund_event(resource, common)
    if event_type in _AUTHORIZATION_EVENT_STATUS:
        status = _AUTHORIZATION_EVENT_STATUS[event_type]
        related = _related_ids(resource)
        return WebhookEvent(
            kind=EventKind.PAYMENT,
            provider_ref=_str(related.get("order_id")),
            payment_id=_str(resource.get("custom_id")),
            status=status,
            amount=money_from_paypal(resource.get("amount")) if status is PaymentStatus.AUTHORIZED else None,
            provider_data={"authorization_id": str(resource["id"])} if _str(resource.get("id")) else {},
            **common,
        )
    if event_type.startswith("CUSTOMER.DISPUTE."):
        return _dispute_event(resource, common)
    return WebhookEvent(kind=EventKind.IGNORED, **common)


def _order_event(resource: Mapping[str, Any], common: dict[str, Any], *, approved: bool) -> WebhookEvent:
    view = payment_from_order(resource)
    unit = _first_unit(resource)
    # APPROVED means the payer agreed; nothing moved until the merchant captures
    # or authorizes, so the event changes no status.
    return WebhookEvent(
        kind=EventKind.PAYMENT,
        provider_ref=view.provider_ref or None,
        payment_id=_str(unit.get("custom_id")),
        status=None if approved else view.status,
        amount=money_from_paypal(unit.get("amount")),
        amount_captured=view.amount_captured,
        failure_code=view.failure_code,
        failure_message=view.failure_message,
        provider_data=dict(view.provider_data),
        **common,
    )


def _capture_event(resource: Mapping[str, Any], common: dict[str, Any], status: PaymentStatus) -> WebhookEvent:
    related = _related_ids(resource)
    amount = money_from_paypal(resource.get("amount"))
    succeeded = status is PaymentStatus.SUCCEEDED
    data = {"capture_id": str(resource["id"])} if _str(resource.get("id")) else {}
    if _str(related.get("authorization_id")):
        data["authorization_id"] = str(related["authorization_id"])
    failed = status is PaymentStatus.FAILED
    return WebhookEvent(
        kind=EventKind.PAYMENT,
        provider_ref=_str(related.get("order_id")),
        payment_id=_str(resource.get("custom_id")),
        status=status,
        # A capture of an authorization may be partial: only a CAPTURE-intent
        # capture must equal the payment's amount.
        amount=amount if succeeded and "authorization_id" not in data else None,
        amount_captured=amount if succeeded else None,
        failure_code=(_failure(resource) or "capture_declined") if failed else None,
        failure_message="PayPal declined the capture" if failed else None,
        provider_data=data,
        **common,
    )


def _refund_event(resource: Mapping[str, Any], common: dict[str, Any]) -> WebhookEvent:
    capture_id = up_capture_id(resource.get("links"))
    status = _REFUND_STATUS.get(str(resource.get("status")), RefundStatus.PENDING)
    return WebhookEvent(
        kind=EventKind.REFUND,
        provider_ref=_str(_related_ids(resource).get("order_id")),
        payment_id=_str(resource.get("custom_id")),
        refund_ref=_str(resource.get("id")),
        refund_status=status,
        # This refund's own amount, not the capture's running total: the service
        # records a refund made in PayPal's dashboard with it.
        amount_refunded=money_from_paypal(resource.get("amount")),
        provider_data={"capture_id": capture_id} if capture_id else {},
        **common,
    )


def _dispute_event(resource: Mapping[str, Any], common: dict[str, Any]) -> WebhookEvent:
    transactions = [_dict(t) for t in _list(resource.get("disputed_transactions"))]
    first = transactions[0] if transactions else {}
    disputed = money_from_paypal(resource.get("dispute_amount"))
    data = {
        key: value
        for key, value in {
            "dispute_id": _str(resource.get("dispute_id")),
            "dispute_status": _str(resource.get("status")),
            "dispute_reason": _str(resource.get("reason")),
            "dispute_amount": str(disputed) if disputed else None,
            "capture_id": _str(first.get("seller_transaction_id")),
        }.items()
        if value is not None
    }
    status = _str(resource.get("status"))
    outcome = _str(_dict(resource.get("dispute_outcome")).get("outcome_code"))
    mapped = _DISPUTE_STATUS.get(status or "")
    if status == "RESOLVED":
        mapped = _DISPUTE_OUTCOME.get(outcome or "", DisputeStatus.WARNING_CLOSED)
    # The disputed amount may be part of the payment: it stays out of
    # ``amount``, which the service compares with the payment's own.
    return WebhookEvent(
        kind=EventKind.DISPUTE,
        payment_id=_str(first.get("custom")),
        provider_data=data,
        dispute_ref=_str(resource.get("dispute_id")),
        dispute_status=mapped,
        dispute_provider_status=status,
        dispute_amount=disputed,
        dispute_reason=_str(resource.get("reason")),
        dispute_outcome=outcome,
        dispute_evidence_due_by=_parse_time(resource.get("seller_response_due_date")),
        **{**common, "occurred_at": _parse_time(resource.get("update_time")) or common["occurred_at"]},
    )


# The Customer Disputes API's dispute statuses; OTHER moves nothing. A dispute holds its
# amount from the start: PayPal holds the funds from the seller's balance while it is open.
_DISPUTE_STATUS: Final[Mapping[str, DisputeStatus]] = {
    "OPEN": DisputeStatus.NEEDS_RESPONSE,
    "WAITING_FOR_SELLER_RESPONSE": DisputeStatus.NEEDS_RESPONSE,
    "WAITING_FOR_BUYER_RESPONSE": DisputeStatus.UNDER_REVIEW,
    "UNDER_REVIEW": DisputeStatus.UNDER_REVIEW,
}
# A RESOLVED dispute's outcome, for the merchant: lost when the buyer got the money from
# the merchant; won when the claim failed, was withdrawn, or PayPal paid the buyer itself.
_DISPUTE_OUTCOME: Final[Mapping[str, DisputeStatus]] = {
    "RESOLVED_BUYER_FAVOUR": DisputeStatus.LOST,
    "ACCEPTED": DisputeStatus.LOST,
    "RESOLVED_SELLER_FAVOUR": DisputeStatus.WON,
    "RESOLVED_WITH_PAYOUT": DisputeStatus.WON,
    "CANCELED_BY_BUYER": DisputeStatus.WON,
    "DENIED": DisputeStatus.WON,
}
_EVIDENCE_TYPE: Final = re.compile(r"^[A-Z_]{1,255}$")


def confirmed_dispute_event(event: WebhookEvent, dispute: Mapping[str, Any], dispute_id: str) -> WebhookEvent:
    """A ``CUSTOMER.DISPUTE.*`` event rebuilt from ``GET /v1/customer/disputes/{id}``.

    Raises:
        WebhookVerificationError: The answer is about another dispute.
    """
    if dispute.get("dispute_id") != dispute_id:
        raise WebhookVerificationError("PayPal answered about another dispute")
    return _dispute_event(dispute, _common(event))


def accept_claim_body(note: str) -> dict[str, Any]:
    """``POST /v1/customer/disputes/{id}/accept-claim``: the merchant concedes, with a note."""
    return {"note": note[:2000]}


def provide_evidence_input(evidence: Mapping[str, str]) -> dict[str, Any]:
    """The ``input`` JSON part of ``POST /v1/customer/disputes/{id}/provide-evidence``: text evidence.

    ``evidence`` maps PayPal ``evidence_type`` values (``PROOF_OF_FULFILLMENT``,
    ``OTHER``...) to notes.

    Raises:
        InvalidRequestError: No evidence, an empty note, or a malformed evidence type.
    """
    if not evidence:
        raise InvalidRequestError("dispute evidence needs at least one evidence type and note")
    for kind, notes in evidence.items():
        if not _EVIDENCE_TYPE.match(kind):
            raise InvalidRequestError(f"PayPal evidence types are upper-case words, not {kind!r}")
        if not isinstance(notes, str) or not notes.strip():
            raise InvalidRequestError(f"evidence {kind} needs a note")
    return {"evidences": [{"evidence_type": kind, "notes": notes[:2000]} for kind, notes in evidence.items()]}


# -- events confirmed with PayPal's own answer ---------------------------------
#
# PayPal signs only the CRC32 of a webhook body, which any body can be made to
# match, so an event that moves money is rebuilt from a GET of its resource: the
# body names what to ask about, PayPal's answer says what happened.

_CONFIRMED_CAPTURE_STATUS: Final = {
    "COMPLETED": PaymentStatus.SUCCEEDED,
    # Refunds arrive as their own events; the capture itself did complete.
    "PARTIALLY_REFUNDED": PaymentStatus.SUCCEEDED,
    "REFUNDED": PaymentStatus.SUCCEEDED,
    "PENDING": PaymentStatus.PROCESSING,
    "DECLINED": PaymentStatus.FAILED,
    "FAILED": PaymentStatus.FAILED,
}
_CONFIRMED_AUTHORIZATION_STATUS: Final = {
    "CREATED": PaymentStatus.AUTHORIZED,
    "PENDING": PaymentStatus.PROCESSING,
    "DENIED": PaymentStatus.FAILED,
    "VOIDED": PaymentStatus.CANCELED,
    "EXPIRED": PaymentStatus.CANCELED,
    # CAPTURED and PARTIALLY_CAPTURED: the capture's own event settles the payment.
}
_REVERSED_CAPTURE_STATUSES: Final = frozenset({"REFUNDED", "PARTIALLY_REFUNDED", "REVERSED"})
_REVERSAL_REASONS: Final = frozenset({"CHARGEBACK", "BUYER_COMPLAINT", "REFUNDED"})


def _common(event: WebhookEvent) -> dict[str, Any]:
    return {
        "provider": PROVIDER_NAME,
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
    }


def _check_answer_id(resource: Mapping[str, Any], expected: str, what: str) -> None:
    if resource.get("id") != expected:
        raise WebhookVerificationError(f"PayPal answered about another {what}")


def confirmed_capture_event(event: WebhookEvent, capture: Mapping[str, Any], capture_id: str) -> WebhookEvent:
    """A capture event rebuilt from ``GET /v2/payments/captures/{id}``.

    Status, amounts, ``custom_id`` and the order id come from PayPal's answer;
    from the delivery only the event id, type and time are kept.

    Raises:
        WebhookVerificationError: The answer is about another capture.
    """
    _check_answer_id(capture, capture_id, "capture")
    status = _CONFIRMED_CAPTURE_STATUS.get(str(capture.get("status")))
    if status is None:
        return WebhookEvent(kind=EventKind.IGNORED, **_common(event))
    return _capture_event(capture, _common(event), status)


def confirmed_order_event(event: WebhookEvent, order: Mapping[str, Any], order_id: str) -> WebhookEvent:
    """A ``CHECKOUT.ORDER.COMPLETED`` event rebuilt from ``GET /v2/checkout/orders/{id}``.

    Raises:
        WebhookVerificationError: The answer is about another order.
    """
    _check_answer_id(order, order_id, "order")
    return _order_event(order, _common(event), approved=False)


def confirmed_authorization_event(
    event: WebhookEvent, authorization: Mapping[str, Any], authorization_id: str
) -> WebhookEvent:
    """An authorization event rebuilt from ``GET /v2/payments/authorizations/{id}``.

    Raises:
        WebhookVerificationError: The answer is about another authorization.
    """
    _check_answer_id(authorization, authorization_id, "authorization")
    status = _CONFIRMED_AUTHORIZATION_STATUS.get(str(authorization.get("status")))
    if status is None:
        return WebhookEvent(kind=EventKind.IGNORED, **_common(event))
    failed = status is PaymentStatus.FAILED
    return WebhookEvent(
        kind=EventKind.PAYMENT,
        provider_ref=_str(_related_ids(authorization).get("order_id")),
        payment_id=_str(authorization.get("custom_id")),
        status=status,
        amount=money_from_paypal(authorization.get("amount")) if status is PaymentStatus.AUTHORIZED else None,
        failure_code="authorization_denied" if failed else None,
        failure_message="PayPal denied the authorization" if failed else None,
        provider_data={"authorization_id": authorization_id},
        **_common(event),
    )


def _capture_owner(capture: Mapping[str, Any]) -> dict[str, Any]:
    """Where a capture's refunds and reversals find their payment: ``custom_id`` and order id."""
    return {
        "payment_id": _str(capture.get("custom_id")),
        "provider_ref": _str(_related_ids(capture).get("order_id")),
    }


def confirmed_refund_event(
    event: WebhookEvent, refund: Mapping[str, Any], refund_id: str, capture: Mapping[str, Any], capture_id: str
) -> WebhookEvent:
    """A ``PAYMENT.CAPTURE.REFUNDED`` event rebuilt from GETs of the refund and of its capture.

    Real refund resources carry neither ``custom_id`` nor an order id: both come
    from the capture the refund links to (``rel="up"``), so the service finds
    the payment. Status and amount are the refund's, as PayPal answers them.

    Raises:
        WebhookVerificationError: An answer is about another refund or capture.
    """
    _check_answer_id(refund, refund_id, "refund")
    _check_answer_id(capture, capture_id, "capture")
    status = _REFUND_STATUS.get(str(refund.get("status")), RefundStatus.PENDING)
    reason = _str(_dict(refund.get("status_details")).get("reason"))
    return WebhookEvent(
        kind=EventKind.REFUND,
        refund_ref=refund_id,
        refund_status=status,
        amount_refunded=money_from_paypal(refund.get("amount")),
        failure_message=reason if status in {RefundStatus.FAILED, RefundStatus.CANCELED} else None,
        provider_data={"capture_id": capture_id},
        **_capture_owner(capture),
        **_common(event),
    )


def confirmed_reversal_event(
    event: WebhookEvent, reversed_amount: Money | None, capture: Mapping[str, Any], capture_id: str
) -> WebhookEvent:
    """A ``PAYMENT.CAPTURE.REVERSED`` event, confirmed by a GET of the capture, as a refund.

    PayPal took the captured money back (a chargeback, a failed funding source):
    paykit records it as a refund made outside paykit, ``refund_ref`` =
    ``reversal:<capture id>`` (so once per capture) and ``provider_data["origin"]
    = "reversal"``. The capture must show it (refunded, or a chargeback or
    complaint reason); the amount is the delivery's, never more than the capture.

    Raises:
        WebhookVerificationError: The capture does not show a reversal, or the
            answer is about another capture.
    """
    _check_answer_id(capture, capture_id, "capture")
    capture_status = str(capture.get("status"))
    reason = _dict(capture.get("status_details")).get("reason")
    if capture_status not in _REVERSED_CAPTURE_STATUSES and reason not in _REVERSAL_REASONS:
        raise WebhookVerificationError("PayPal does not show the capture as reversed")
    captured = money_from_paypal(capture.get("amount"))
    amount = reversed_amount
    if amount is not None and amount.minor_units < 0:
        amount = -amount
    if captured is not None and (amount is None or amount.currency != captured.currency or amount > captured):
        amount = captured
    return WebhookEvent(
        kind=EventKind.REFUND,
        refund_ref=f"reversal:{capture_id}",
        refund_status=RefundStatus.SUCCEEDED,
        amount_refunded=amount,
        provider_data={"origin": "reversal", "capture_id": capture_id},
        **_capture_owner(capture),
        **_common(event),
    )
