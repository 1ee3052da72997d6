# Generated from src/paykit/providers/_async/paypal.py by scripts/unasync.py: do not edit.
"""The PayPal adapter: Orders v2, Payments v2 captures and refunds, verified webhooks, on httpx.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

import httpx

from ..._errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidRequestError,
    InvalidStateError,
    ProviderError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from ..._log import get_logger
from ..._models import Dispute, EventKind, Payment, Refund, WebhookEvent
from ..._money import Money
from ..._status import PaymentStatus
from .. import _paypal_verify as verify
from .. import _paypal_wire as wire
from .._base import CreatePaymentRequest, ProviderCapabilities, ProviderPayment, ProviderRefund
from .._json import load_object
from .base import BaseProvider

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["PayPalProvider"]

# One logger name for both twins: what users configure does not depend on the API they use.
logger = get_logger("paykit.providers.paypal")

_BASE_URLS: Final = {
    "sandbox": "https://api-m.sandbox.paypal.com",
    "live": "https://api-m.paypal.com",
}
_TOKEN_MARGIN: Final = timedelta(minutes=5)
_CERT_CACHE_SIZE: Final = 16
# The payer can still fix these on PayPal's pages (another funding source, 3-D
# Secure, approval not given yet): the order lives on, it did not fail.
_PAYER_MUST_ACT: Final = frozenset({"INSTRUMENT_DECLINED", "PAYER_ACTION_REQUIRED", "ORDER_NOT_APPROVED"})
_ALREADY_DONE: Final = frozenset({"ORDER_ALREADY_CAPTURED", "ORDER_ALREADY_AUTHORIZED"})


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: datetime


def _utc_now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _translate_transport_errors(operation: str) -> Iterator[None]:
    """The one place httpx's exceptions become paykit's."""
    try:
        yield
    except httpx.HTTPError as exc:
        raise ProviderUnavailableError(
            f"PayPal could not be reached during {operation}: {type(exc).__name__}",
            provider=wire.PROVIDER_NAME,
            should_retry=wire.should_retry(None),
        ) from exc


def _json_body(response: httpx.Response) -> Mapping[str, Any] | str | None:
    if not response.content:
        return None
    try:
        parsed = response.json()
    except ValueError:
        return response.text[:2000]
    return parsed if isinstance(parsed, Mapping) else None


class PayPalProvider(BaseProvider):
    """PayPal Checkout (Orders v2) behind paykit's provider protocol.

    The payer approves the order on PayPal (the payment's ``redirect_url``),
    then :meth:`confirm_payment` captures it, or authorizes it for
    ``capture_method="manual"``; :meth:`capture_payment` then captures the
    authorization in full or in part. Every POST carries a ``PayPal-Request-Id``
    derived from paykit's idempotency key, so a retry never charges twice.

    Args:
        client_id: The REST app's client id.
        client_secret: The REST app's secret; never logged or shown in ``repr``.
        webhook_id: The id PayPal gave the webhook this app listens on; ``None``
            only with ``webhooks=False``.
        environment: ``"sandbox"`` or ``"live"``.
        http_client: The client to send requests through (tests pass one with a
            mock transport); by default the adapter makes and owns one.
        webhook_verification: ``"offline"`` checks signatures here against
            PayPal's certificate; ``"api"`` asks PayPal's verify endpoint.
        webhook_tolerance: How far a delivery's transmission time may be from now.
        clock: Returns the current aware time (token expiry, webhook age, certificates).
        return_url: Default page PayPal sends the payer to after approval.
        cancel_url: Default page PayPal sends a payer who cancels to.
        webhooks: ``False`` for an application that receives no PayPal webhooks
            (and relies on ``reconcile()``); every webhook is then refused.

    Raises:
        ConfigurationError: A required argument is empty or an option unknown.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       ``webhooks=False`` lets ``webhook_id`` be ``None``.
    """

    name = wire.PROVIDER_NAME
    capabilities = ProviderCapabilities(
        manual_capture=True,
        partial_capture=True,
        refunds=True,
        partial_refunds=True,
        saved_payment_methods=False,
        server_side_confirm=True,
        currencies=wire.PAYPAL_CURRENCIES,
        disputes=True,
    )

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        webhook_id: str | None,
        *,
        environment: Literal["sandbox", "live"] = "sandbox",
        http_client: httpx.Client | None = None,
        webhook_verification: Literal["offline", "api"] = "offline",
        webhook_tolerance: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = _utc_now,
        return_url: str | None = None,
        cancel_url: str | None = None,
        webhooks: bool = True,
    ) -> None:
        if not client_id or not client_secret:
            raise ConfigurationError("PayPalProvider needs client_id and client_secret")
        if webhooks and not webhook_id:
            raise ConfigurationError(
                "PayPalProvider needs webhook_id, the id of your webhook in PayPal's developer dashboard, "
                "to verify webhooks; pass webhook_id=None, webhooks=False if this application receives no PayPal "
                "webhooks"
            )
        if not webhooks and webhook_id:
            raise ConfigurationError("a webhook_id was given with webhooks=False; drop one or the other")
        if environment not in _BASE_URLS:
            raise ConfigurationError(f"environment must be 'sandbox' or 'live', not {environment!r}")
        if webhook_verification not in ("offline", "api"):
            raise ConfigurationError(f"webhook_verification must be 'offline' or 'api', not {webhook_verification!r}")
        if webhook_tolerance <= timedelta(0):
            raise ConfigurationError("webhook_tolerance must be positive")
        self._client_id = client_id
        self._client_secret = client_secret
        self._webhook_id = webhook_id or ""
        self._webhooks = webhooks
        self._environment = environment
        self._base_url = _BASE_URLS[environment]
        self._owns_http = http_client is None
        self._http = http_client if http_client is not None else httpx.Client(timeout=httpx.Timeout(30.0))
        self._webhook_verification = webhook_verification
        self._webhook_tolerance = webhook_tolerance
        self._clock = clock
        self._return_url = return_url
        self._cancel_url = cancel_url
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._certs: OrderedDict[str, list[x509.Certificate]] = OrderedDict()
        self._certs_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PayPalProvider(environment={self._environment!r}, webhook_verification={self._webhook_verification!r})"

    def close(self) -> None:
        """Close the HTTP client if the adapter created it."""
        if self._owns_http:
            self._http.close()

    # -- transport ------------------------------------------------------------

    def _access_token(self, *, stale: _Token | None = None) -> _Token:
        """A cached token; ``stale`` is one PayPal just refused, fetched anew once."""
        with self._token_lock:
            token = self._token
            if token is not None and token is not stale and self._clock() < token.refresh_at:
                return token
            with _translate_transport_errors("authentication"):
                response = self._http.post(
                    f"{self._base_url}/v1/oauth2/token",
                    data={"grant_type": "client_credentials"},
                    auth=(self._client_id, self._client_secret),
                    headers={"Accept": "application/json"},
                )
            body = _json_body(response)
            if response.is_error:
                raise wire.error_from_response(response.status_code, body)
            if not isinstance(body, Mapping) or not isinstance(body.get("access_token"), str):
                raise ProviderError(
                    "PayPal answered the token request without an access token",
                    provider=self.name,
                    http_status=response.status_code,
                )
            seconds = body.get("expires_in")
            expires_in = timedelta(seconds=seconds if isinstance(seconds, int) and seconds > 0 else 0)
            margin = min(_TOKEN_MARGIN, expires_in / 2)
            self._token = _Token(body["access_token"], self._clock() + expires_in - margin)
            logger.debug("paypal.token_refreshed", environment=self._environment)
            return self._token

    def _call(
        self,
        method: Literal["GET", "POST"],
        path: str,
        *,
        operation: str,
        json_body: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        multipart_input: Mapping[str, Any] | None = None,
    ) -> Mapping[str, Any]:
        """Send one API request; refresh the token once if PayPal refuses it.

        ``multipart_input`` sends a ``multipart/form-data`` body whose one part,
        ``input``, is that JSON (PayPal's evidence uploads), instead of ``json_body``.
        """
        files = None
        if multipart_input is not None:
            files = {"input": (None, json.dumps(multipart_input).encode(), "application/json")}
        headers = {"Accept": "application/json"}
        if method == "POST":
            headers["Prefer"] = "return=representation"
            if idempotency_key is not None:
                headers["PayPal-Request-Id"] = wire.paypal_request_id(idempotency_key)
        token = self._access_token()
        for attempt in (1, 2):
            headers["Authorization"] = f"Bearer {token.value}"
            with _translate_transport_errors(operation):
                response = self._http.request(
                    method,
                    f"{self._base_url}{path}",
                    headers=headers,
                    json=json_body if method == "POST" and files is None else None,
                    files=files,
                )
            if response.status_code == 401 and attempt == 1:
                token = self._access_token(stale=token)
                continue
            break
        body = _json_body(response)
        log = logger.bind(operation=operation, http_status=response.status_code)
        if response.is_error:
            error = wire.error_from_response(response.status_code, body)
            log.info("paypal.request_failed", code=error.code, debug_id=error.request_id)
            raise error
        log.debug("paypal.request")
        if body is None:
            return {}
        if not isinstance(body, Mapping):
            raise ProviderError(
                f"PayPal answered {operation} with a body that is not JSON",
                provider=self.name,
                http_status=response.status_code,
                body=body,
            )
        return body

    # -- payments -------------------------------------------------------------

    def create_payment(self, request: CreatePaymentRequest) -> ProviderPayment:
        """Create an order (CAPTURE, or AUTHORIZE for manual capture) for the payer to approve.

        Returns:
            The order as ``REQUIRES_ACTION``, ``redirect_url`` its approval link.

        Raises:
            InvalidRequestError: PayPal cannot take the amount or currency (no call made).
            ProviderError: PayPal refused the order.
        """
        body = wire.order_request(request, return_url=self._return_url, cancel_url=self._cancel_url)
        order = self._call(
            "POST",
            "/v2/checkout/orders",
            operation="create_order",
            json_body=body,
            idempotency_key=request.idempotency_key,
        )
        return wire.payment_from_order(order)

    def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """Fetch the order and read its status, capture or authorization.

        Raises:
            InvalidStateError: The payment has no PayPal order yet.
            ProviderError: PayPal failed.
        """
        return wire.payment_from_order(self._get_order(payment))

    def confirm_payment(
        self, payment: Payment, *, payment_method_ref: str | None, idempotency_key: str
    ) -> ProviderPayment:
        """Capture the approved order, or authorize it for manual capture.

        A payer who must act again (funding declined, approval missing, 3-D
        Secure) leaves the payment in ``REQUIRES_ACTION`` with its approval link
        and the reason in ``failure_code``.

        Raises:
            PaymentDeclinedError: PayPal declined the payment for good.
            ProviderError: PayPal failed otherwise.
        """
        order_id = self._order_id(payment)
        action = "authorize" if payment.capture_method == "manual" else "capture"
        try:
            order = self._call(
                "POST",
                f"/v2/checkout/orders/{wire.path_id(order_id, 'order')}/{action}",
                operation=f"{action}_order",
                json_body={},
                idempotency_key=idempotency_key,
            )
        except ProviderError as exc:
            if exc.code in _ALREADY_DONE:
                return self.retrieve_payment(payment)
            if exc.code in _PAYER_MUST_ACT:
                return ProviderPayment(
                    provider_ref=order_id,
                    status=PaymentStatus.REQUIRES_ACTION,
                    redirect_url=payment.redirect_url,
                    next_action={"type": "redirect", "reason": exc.code},
                    failure_code=exc.code,
                    failure_message=exc.message,
                )
            raise
        return wire.payment_from_order(order)

    def capture_payment(self, payment: Payment, *, amount: Money | None, idempotency_key: str) -> ProviderPayment:
        """Capture the authorization, in full (``amount=None``) or in part (final capture).

        Raises:
            InvalidRequestError: ``amount`` is in another currency or not one PayPal takes.
            InvalidStateError: The order holds no authorization.
            ProviderError: PayPal refused the capture.
        """
        if amount is not None and amount.currency != payment.currency:
            raise InvalidRequestError(f"cannot capture {amount} of a {payment.currency} payment")
        body = wire.authorization_capture_request(amount)
        authorization_id = payment.provider_data.get("authorization_id")
        if authorization_id is None:
            authorization_id = wire.find_authorization_id(self._get_order(payment))
        if authorization_id is None:
            raise InvalidStateError("the PayPal order holds no authorization to capture")
        capture = self._call(
            "POST",
            f"/v2/payments/authorizations/{wire.path_id(authorization_id, 'authorization')}/capture",
            operation="capture_authorization",
            json_body=body,
            idempotency_key=idempotency_key,
        )
        view = wire.payment_from_capture(self._order_id(payment), capture)
        return ProviderPayment(
            provider_ref=view.provider_ref,
            status=view.status,
            amount_captured=view.amount_captured,
            failure_code=view.failure_code,
            failure_message=view.failure_message,
            provider_data={"authorization_id": authorization_id, **view.provider_data},
        )

    def cancel_payment(self, payment: Payment, *, idempotency_key: str) -> ProviderPayment:
        """Void the authorization; an order never authorized or captured just lapses.

        Raises:
            InvalidStateError: PayPal already captured the order.
            ProviderError: PayPal refused the void.
        """
        if payment.provider_ref is None:
            return ProviderPayment(provider_ref="", status=PaymentStatus.CANCELED)
        authorization_id = payment.provider_data.get("authorization_id")
        if authorization_id is None:
            order = self._get_order(payment)
            current = wire.payment_from_order(order)
            if current.status in {PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING}:
                raise InvalidStateError("the PayPal order was already captured")
            authorization_id = wire.find_authorization_id(order)
            if authorization_id is None or current.status is PaymentStatus.CANCELED:
                # An unapproved or uncaptured order expires at PayPal on its own.
                return ProviderPayment(provider_ref=payment.provider_ref, status=PaymentStatus.CANCELED)
        self._call(
            "POST",
            f"/v2/payments/authorizations/{wire.path_id(authorization_id, 'authorization')}/void",
            operation="void_authorization",
            idempotency_key=idempotency_key,
        )
        return ProviderPayment(
            provider_ref=payment.provider_ref,
            status=PaymentStatus.CANCELED,
            provider_data={"authorization_id": authorization_id},
        )

    def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        """Refund ``refund.amount`` of the payment's capture (the amount is always explicit).

        Raises:
            InvalidRequestError: The amount is not one PayPal takes.
            InvalidStateError: The order holds no capture.
            ProviderError: PayPal refused the refund.
        """
        body = wire.refund_request(refund.amount, payment_id=payment.id)
        capture_id = payment.provider_data.get("capture_id")
        if capture_id is None:
            capture_id = wire.find_capture_id(self._get_order(payment))
        if capture_id is None:
            raise InvalidStateError("the PayPal order holds no capture to refund")
        answer = self._call(
            "POST",
            f"/v2/payments/captures/{wire.path_id(capture_id, 'capture')}/refund",
            operation="refund_capture",
            json_body=body,
            idempotency_key=idempotency_key,
        )
        return wire.refund_from_response(answer)

    def check_amount(self, amount: Money) -> None:
        """Raise unless PayPal can take ``amount``; the rule every request applies. No I/O.

        Raises:
            InvalidRequestError: A currency PayPal does not support, not positive,
                or a fraction of JPY, HUF or TWD (PayPal takes them in whole units).
        """
        wire.check_paypal_amount(amount)

    def retrieve_refund(self, payment: Payment, refund: Refund) -> ProviderRefund:
        """Fetch the refund ``refund.provider_ref`` (``GET /v2/payments/refunds/{id}``).

        PayPal cannot list a capture's refunds by paykit's refund id, so
        ``capabilities.refund_lookup`` stays false and :meth:`find_refund` is unsupported.

        Raises:
            InvalidRequestError: The refund has no PayPal id, or one that is not a PayPal id.
            ProviderError: PayPal failed (``ProviderRequestError`` for an unknown refund),
                or the refund belongs to another capture than the payment's.
        """
        refund_id = wire.path_id(refund.provider_ref, "refund")
        answer = self._call("GET", f"/v2/payments/refunds/{refund_id}", operation="get_refund")
        capture_id = payment.provider_data.get("capture_id")
        refunded_capture = wire.up_capture_id(answer.get("links"))
        if capture_id and refunded_capture and refunded_capture != capture_id:
            raise ProviderError(
                f"PayPal refund {refund_id} belongs to capture {refunded_capture}, not {capture_id}",
                provider=self.name,
            )
        return wire.refund_from_response(answer)

    def _order_id(self, payment: Payment) -> str:
        if not payment.provider_ref:
            raise InvalidStateError(f"payment {payment.id} has no PayPal order yet")
        return payment.provider_ref

    def _get_order(self, payment: Payment) -> Mapping[str, Any]:
        order_id = wire.path_id(self._order_id(payment), "order")
        return self._call("GET", f"/v2/checkout/orders/{order_id}", operation="get_order")

    # -- disputes -------------------------------------------------------------

    def accept_dispute(self, dispute: Dispute) -> None:
        """Accept the claim (``POST /v1/customer/disputes/{id}/accept-claim``): the buyer is refunded.

        Raises:
            ProviderError: PayPal refused (see the subclasses).
        """
        self._call(
            "POST",
            f"/v1/customer/disputes/{self._dispute_ref(dispute)}/accept-claim",
            operation="accept_dispute",
            json_body=wire.accept_claim_body("The merchant accepts the claim."),
        )

    def submit_dispute_evidence(self, dispute: Dispute, evidence: Mapping[str, str], *, submit: bool) -> None:
        """Send text evidence (``POST /v1/customer/disputes/{id}/provide-evidence``, multipart).

        The body is ``multipart/form-data`` with one ``input`` part, the JSON
        ``{"evidences": [{"evidence_type": ..., "notes": ...}]}``; documents are not
        uploaded. PayPal reviews evidence as soon as it is provided, so ``submit``
        must be true.

        Raises:
            InvalidRequestError: ``submit`` is false, or the evidence is malformed.
            ProviderError: PayPal refused (see the subclasses).
        """
        if not submit:
            raise InvalidRequestError("PayPal reviews evidence once provided: it cannot be staged (submit=False)")
        self._call(
            "POST",
            f"/v1/customer/disputes/{self._dispute_ref(dispute)}/provide-evidence",
            operation="submit_dispute_evidence",
            multipart_input=wire.provide_evidence_input(evidence),
        )

    @staticmethod
    def _dispute_ref(dispute: Dispute) -> str:
        if not dispute.provider_dispute_id:
            raise InvalidRequestError(f"dispute {dispute.id} has no PayPal dispute id")
        return wire.path_id(dispute.provider_dispute_id, "dispute")

    # -- webhooks -------------------------------------------------------------

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify a webhook delivery, confirm it with PayPal, and normalize its event.

        The body is parsed strictly before anything else (and, in ``"api"`` mode,
        sent to PayPal exactly as parsed, never re-encoded from something
        lenient). PayPal's signature covers only the CRC32 of the body, which
        any body can be made to match, so every event that changes a payment or
        records a refund is rebuilt from a GET of its capture, order,
        authorization or refund: the delivery says what to look at, PayPal's
        answer says what happened. The event carries the transmission id and
        the body's SHA-256 (``delivery_id``, ``delivery_digest``) so that
        ``handle_webhook`` refuses a transmission id replayed with another body.

        Raises:
            WebhookVerificationError: The delivery is forged, stale or malformed,
                or names a resource PayPal does not confirm.
            ProviderUnavailableError: PayPal's certificate host, verify endpoint or
                API could not be reached; PayPal will deliver again.
        """
        if not self._webhooks:
            raise WebhookVerificationError("this PayPalProvider was built with webhooks=False")
        transmission = verify.TransmissionHeaders.from_headers(headers)
        verify.check_transmission_time(
            transmission.transmission_time, now=self._clock(), tolerance=self._webhook_tolerance
        )
        event = load_object(body, "PayPal webhook")
        if self._webhook_verification == "offline":
            self._verify_offline(body, transmission)
        else:
            self._verify_through_api(event, transmission)
        try:
            normalized = self._confirmed(wire.normalize_event(event), event)
        except ProviderError:
            raise
        except InvalidRequestError as exc:
            raise WebhookVerificationError(f"PayPal webhook event is malformed: {exc.message}") from exc
        return normalized.model_copy(
            update={"delivery_id": transmission.transmission_id, "delivery_digest": hashlib.sha256(body).hexdigest()}
        )

    def _confirmed(self, event: WebhookEvent, raw: Mapping[str, Any]) -> WebhookEvent:
        """``event`` rebuilt from PayPal's answer about its resource, if it would change anything."""
        resource = raw["resource"]
        event_type = event.type
        if event_type == "CHECKOUT.ORDER.COMPLETED":
            order_id = self._webhook_id_of(resource.get("id"), "order")
            order = self._webhook_get(f"/v2/checkout/orders/{order_id}", "confirm_order")
            return wire.confirmed_order_event(event, order, order_id)
        if event_type == "PAYMENT.CAPTURE.REFUNDED":
            refund_id = self._webhook_id_of(resource.get("id"), "refund")
            refund = self._webhook_get(f"/v2/payments/refunds/{refund_id}", "confirm_refund")
            capture_id = self._webhook_id_of(wire.up_capture_id(refund.get("links")), "capture")
            capture = self._webhook_get(f"/v2/payments/captures/{capture_id}", "confirm_capture")
            return wire.confirmed_refund_event(event, refund, refund_id, capture, capture_id)
        if event_type == "PAYMENT.CAPTURE.REVERSED":
            capture_id = self._webhook_id_of(wire.up_capture_id(resource.get("links")), "capture")
            capture = self._webhook_get(f"/v2/payments/captures/{capture_id}", "confirm_capture")
            return wire.confirmed_reversal_event(event, event.amount_refunded, capture, capture_id)
        if event_type.startswith("PAYMENT.CAPTURE.") and event.kind is EventKind.PAYMENT:
            capture_id = self._webhook_id_of(resource.get("id"), "capture")
            capture = self._webhook_get(f"/v2/payments/captures/{capture_id}", "confirm_capture")
            return wire.confirmed_capture_event(event, capture, capture_id)
        if event_type.startswith("CUSTOMER.DISPUTE.") and event.dispute_ref:
            # A dispute now holds money and can take it out of revenue: believe PayPal's answer only.
            dispute_id = self._webhook_id_of(event.dispute_ref, "dispute")
            dispute = self._webhook_get(f"/v1/customer/disputes/{dispute_id}", "confirm_dispute")
            return wire.confirmed_dispute_event(event, dispute, dispute_id)
        if event_type.startswith("PAYMENT.AUTHORIZATION.") and event.kind is EventKind.PAYMENT:
            authorization_id = self._webhook_id_of(resource.get("id"), "authorization")
            authorization = self._webhook_get(
                f"/v2/payments/authorizations/{authorization_id}", "confirm_authorization"
            )
            return wire.confirmed_authorization_event(event, authorization, authorization_id)
        # CHECKOUT.ORDER.APPROVED changes no status and ignored types change nothing:
        # neither is worth a call.
        return event

    @staticmethod
    def _webhook_id_of(value: object, what: str) -> str:
        try:
            wire.path_id(value, what)
        except InvalidRequestError:
            raise WebhookVerificationError(f"PayPal webhook names a {what} id PayPal does not issue") from None
        return str(value)

    def _webhook_get(self, path: str, operation: str) -> Mapping[str, Any]:
        """GET a resource a delivery names; a resource PayPal does not know makes the delivery a forgery."""
        try:
            return self._call("GET", path, operation=operation)
        except ProviderError as exc:
            if isinstance(exc, ProviderUnavailableError | AuthenticationError) or exc.http_status not in (404, 403):
                raise
            raise WebhookVerificationError(f"PayPal does not confirm the webhook's resource ({exc.code})") from exc

    def _verify_offline(self, body: bytes, transmission: verify.TransmissionHeaders) -> None:
        certificates = self._certificate(verify.check_cert_url(transmission.cert_url))
        key = verify.check_certificate(certificates, now=self._clock())
        message = verify.signed_message(
            transmission.transmission_id, transmission.transmission_time, self._webhook_id, body
        )
        verify.verify_signature(key, message, transmission.transmission_sig, auth_algo=transmission.auth_algo)

    def _certificate(self, url: str) -> list[x509.Certificate]:
        with self._certs_lock:
            cached = self._certs.get(url)
            if cached is not None:
                self._certs.move_to_end(url)
                return cached
        with _translate_transport_errors("certificate download"):
            response = self._http.get(url, follow_redirects=False)
        if response.status_code >= 500 or response.status_code == 429:
            raise ProviderUnavailableError(
                "PayPal's certificate host failed", provider=self.name, http_status=response.status_code
            )
        if response.status_code != 200:
            raise WebhookVerificationError(f"PayPal certificate URL answered {response.status_code}")
        certificates = verify.load_certificates(response.content)
        with self._certs_lock:
            self._certs[url] = certificates
            while len(self._certs) > _CERT_CACHE_SIZE:
                self._certs.popitem(last=False)
        return certificates

    def _verify_through_api(self, event: Mapping[str, Any], transmission: verify.TransmissionHeaders) -> None:
        try:
            answer = self._call(
                "POST",
                "/v1/notifications/verify-webhook-signature",
                operation="verify_webhook",
                json_body={
                    "auth_algo": transmission.auth_algo,
                    "cert_url": transmission.cert_url,
                    "transmission_id": transmission.transmission_id,
                    "transmission_sig": transmission.transmission_sig,
                    "transmission_time": transmission.transmission_time,
                    "webhook_id": self._webhook_id,
                    "webhook_event": event,
                },
            )
        except ProviderError as exc:
            # PayPal refuses a verification request it finds malformed; bad
            # credentials and outages are ours to report, not the sender's fault.
            if isinstance(exc, ProviderUnavailableError | AuthenticationError):
                raise
            raise WebhookVerificationError(f"PayPal refused to verify the webhook ({exc.code})") from exc
        if answer.get("verification_status") != "SUCCESS":
            raise WebhookVerificationError("PayPal did not verify the webhook signature")
