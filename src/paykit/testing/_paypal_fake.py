"""A stateful fake PayPal account served through an httpx transport, so apps test the real adapter.

Written by hand, once for both APIs: :attr:`PayPalFake.transport` is both an
``httpx.BaseTransport`` and an ``httpx.AsyncBaseTransport``, so the same fake
serves :class:`~paykit.providers.paypal.PayPalProvider` and
:class:`~paykit.providers.paypal.AsyncPayPalProvider`. It speaks Orders v2 and
Payments v2 as PayPal's OpenAPI specs describe them, and signs its webhooks
the PayPal way with a test certificate it serves at the ``PAYPAL-CERT-URL``.
"""

from __future__ import annotations

import copy
import functools
import json
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from .._models import RefundStatus
from .._money import Money
from .._status import PaymentStatus
from ._clock import ManualClock
from ._stripe_fake import Fault
from ._wire_fake import AsyncEarlySink, EarlySink, FakeTransport, Outcome, RemotePayment, RemoteRefund, WebhookDelivery

if TYPE_CHECKING:
    from .._models import Payment
    from ..providers._async.paypal import AsyncPayPalProvider
    from ..providers._sync.paypal import PayPalProvider
    from ._paypal import PayPalWebhookSigner

__all__ = ["PayPalFake", "PayPalRequest"]

API_BASE = "https://api-m.sandbox.paypal.com"
IDEMPOTENCY_RETENTION = timedelta(hours=6)
"""How long PayPal replays the first answer for a ``PayPal-Request-Id`` (Orders v2 documents 6 hours)."""

_CAPTURED = frozenset({"COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"})
_S = PaymentStatus


@dataclass(frozen=True)
class PayPalRequest:
    """One API request the fake received (for assertions): method, path, operation, JSON body, request id."""

    method: str
    path: str
    operation: str
    body: Mapping[str, Any] | None
    request_id: str | None
    fault: Fault | None


@dataclass
class _Saved:
    status: int
    body: dict[str, Any] | None
    at: float


@functools.cache
def _signer() -> PayPalWebhookSigner:
    """One RSA key and certificate per process: making them takes a good fraction of a second."""
    from ._paypal import PayPalWebhookSigner  # noqa: PLC0415  # the paypal extra, on use

    return PayPalWebhookSigner(
        "unused",
        not_before=datetime(2000, 1, 1, tzinfo=UTC),
        not_after=datetime(2100, 1, 1, tzinfo=UTC),
    )


class PayPalFake:
    """A fake PayPal account: orders, authorizations, captures and refunds, with state.

    It answers the OAuth token request, Orders v2 (create, get, capture,
    authorize) and Payments v2 (authorization capture and void, capture
    refunds, gets of captures, authorizations and refunds) in PayPal's wire
    format; honours ``PayPal-Request-Id`` (the first answer is replayed for 6
    hours of ``clock`` time, with ``200`` instead of ``201``); refuses what
    PayPal refuses with its documented ``UNPROCESSABLE_ENTITY`` issues
    (``ORDER_NOT_APPROVED``, ``INSTRUMENT_DECLINED``, ``ORDER_ALREADY_CAPTURED``,
    ``REFUND_AMOUNT_EXCEEDED``...) and ``404 RESOURCE_NOT_FOUND``; and queues the
    webhooks PayPal would send, which :meth:`take_deliveries` hands out and
    :meth:`signed` signs with a test certificate the fake serves itself.

    The buyer is played by :meth:`approve` (the customer finishing checkout).

    >>> fake = PayPalFake()
    >>> provider = fake.provider()  # a real PayPalProvider whose HTTP goes to the fake

    Args:
        clock: Drives request-id expiry, timestamps and the webhook tolerance.
        client_id: The REST app's client id the fake expects.
        client_secret: Its secret (others get a 401 ``invalid_client``).
        webhook_id: The webhook id deliveries are signed for.
    """

    provider_name = "paypal"
    display_name = "PayPal"
    idempotency_retention = IDEMPOTENCY_RETENTION

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        client_id: str = "paykit-fake-client",
        client_secret: str = "paykit-fake-secret",
        webhook_id: str = "WH-PAYKIT-FAKE",
    ) -> None:
        self.clock = clock or ManualClock()
        self.client_id = client_id
        self.client_secret = client_secret
        self.webhook_id = webhook_id
        self.orders: dict[str, dict[str, Any]] = {}
        """Orders by id, as PayPal holds them (captures and authorizations inside)."""
        self.captures: dict[str, dict[str, Any]] = {}
        """Captures by id."""
        self.authorizations: dict[str, dict[str, Any]] = {}
        """Authorizations by id."""
        self.refunds: dict[str, dict[str, Any]] = {}
        """Refunds by id, in creation order."""
        self.requests: list[PayPalRequest] = []
        """Every API request received, in order."""
        self.exchanges: list[tuple[PayPalRequest, int, Any]] = []
        """(request, status, JSON answer) for every API answer (schema checks in tests)."""
        self.transport = FakeTransport(self)
        """The httpx transport (sync and async) that serves the fake."""
        self.early_sink: EarlySink | None = None
        """Receives a request's webhooks before its answer (sync clients)."""
        self.async_early_sink: AsyncEarlySink | None = None
        """The same for async clients."""
        self.on_request: Callable[[str], Fault | None] | None = None
        """Asked for a fault for each request's operation when none was injected (chaos uses it)."""
        self._funding: dict[str, str] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._outbox: list[WebhookDelivery] = []
        self._saved: dict[str, _Saved] = {}
        self._tokens: set[str] = set()
        self._seq = 0
        self._lock = threading.RLock()

    # -- wiring ------------------------------------------------------------------------

    def provider(self, **options: Any) -> PayPalProvider:
        """A real :class:`~paykit.providers.paypal.PayPalProvider` whose requests this fake answers."""
        from ..providers._sync.paypal import PayPalProvider  # noqa: PLC0415  # the paypal extra, on use

        return PayPalProvider(
            self.client_id,
            self.client_secret,
            self.webhook_id,
            http_client=httpx.Client(transport=self.transport),
            clock=self.clock,
            **options,
        )

    def async_provider(self, **options: Any) -> AsyncPayPalProvider:
        """A real :class:`~paykit.providers.paypal.AsyncPayPalProvider` whose requests this fake answers."""
        from ..providers._async.paypal import AsyncPayPalProvider  # noqa: PLC0415  # the paypal extra, on use

        return AsyncPayPalProvider(
            self.client_id,
            self.client_secret,
            self.webhook_id,
            http_client=httpx.AsyncClient(transport=self.transport),
            clock=self.clock,
            **options,
        )

    # -- steering ------------------------------------------------------------------------

    def inject(self, fault: Fault, *, on: str = "any", times: int = 1) -> None:
        """Make the next ``times`` requests of operation ``on`` fail with ``fault``.

        Operations: ``token``, ``create``, ``retrieve``, ``confirm`` (capture or
        authorize an order), ``capture`` (an authorization), ``cancel`` (void),
        ``refund``, ``retrieve_refund``, ``retrieve_capture``,
        ``retrieve_authorization``, or ``any``.
        """
        with self._lock:
            self._faults.setdefault(on, deque()).extend([fault] * times)

    def approve(self, order_id: str, *, funding: str = "ok") -> None:
        """The buyer approves the order on PayPal (finishes checkout): ``CHECKOUT.ORDER.APPROVED``.

        Args:
            order_id: The order (paykit's ``payment.provider_ref``).
            funding: What the buyer's funding does when the merchant captures or
                authorizes: ``"ok"``; ``"declined"`` (``422 INSTRUMENT_DECLINED``,
                the buyer may approve again with other funding); or ``"denied"``
                (a capture made with status ``DECLINED``, ``PAYMENT.CAPTURE.DENIED``).

        Raises:
            KeyError: PayPal has no such order.
            ValueError: The order cannot be approved now, or ``funding`` is unknown.
        """
        if funding not in {"ok", "declined", "denied"}:
            raise ValueError(f"funding must be 'ok', 'declined' or 'denied', not {funding!r}")
        with self._lock:
            order = self.orders[order_id]
            if order["status"] not in {"CREATED", "PAYER_ACTION_REQUIRED", "APPROVED"}:
                raise ValueError(f"order {order_id} is {order['status']}: it cannot be approved")
            order["status"] = "APPROVED"
            order["payer"] = {
                "name": {"given_name": "Test", "surname": "Buyer"},
                "email_address": "buyer@example.com",
                "payer_id": "QYR5Z8XDVJNXQ",
            }
            order["links"] = [self._link(f"/v2/checkout/orders/{order_id}", "self")]
            order["update_time"] = self._now()
            self._funding[order_id] = funding
            self._queue("CHECKOUT.ORDER.APPROVED", order)

    def take_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook queued since the last call, oldest first; they leave the fake's queue."""
        with self._lock:
            taken, self._outbox = self._outbox, []
            return taken

    def has_queued(self) -> bool:
        """Whether webhooks wait in the queue."""
        return bool(self._outbox)

    def signed(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """The body and ``PAYPAL-*`` headers of a delivery, signed now for :attr:`webhook_id`."""
        return delivery.body, _signer().sign(delivery.body, transmission_time=self.clock(), webhook_id=self.webhook_id)

    def forged(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """A forgery of ``delivery``: its body altered, signed for another webhook id."""
        body = delivery.body.replace(b'"status":"DECLINED"', b'"status":"COMPLETED"')
        return body, _signer().sign(body, transmission_time=self.clock(), webhook_id="WH-FORGER")

    # -- the test's view -----------------------------------------------------------------

    def capture_of(self, order_id: str) -> dict[str, Any] | None:
        """A copy of the order's capture (the captured one, else the last), if it has one."""
        with self._lock:
            captures = self._order_captures(order_id)
            chosen = next((c for c in captures if c["status"] in _CAPTURED), captures[-1] if captures else None)
            return copy.deepcopy(chosen)

    def refunds_of(self, order_id: str) -> list[dict[str, Any]]:
        """Copies of the refunds of the order's captures, oldest first."""
        with self._lock:
            ids = {c["id"] for c in self._order_captures(order_id)}
            return [copy.deepcopy(r) for r in self.refunds.values() if r["_capture_id"] in ids]

    def remote_payment(self, payment: Payment) -> RemotePayment | None:
        """What PayPal holds for ``payment`` (its order), for ``assert_consistent``."""
        with self._lock:
            order = self.orders.get(payment.provider_ref or "")
            if order is None:
                return None
            capture = self.capture_of(order["id"])
            authorizations = self._order_authorizations(order["id"])
            described = order["status"]
            if capture is not None:
                described = f"{order['status']}, capture {capture['status']}"
                if capture["status"] in _CAPTURED:
                    allowed = frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED})
                elif capture["status"] == "PENDING":
                    allowed = frozenset({_S.PROCESSING})
                else:
                    allowed = frozenset({_S.FAILED})
            elif authorizations:
                status = authorizations[-1]["status"]
                described = f"{order['status']}, authorization {status}"
                allowed = {"CREATED": frozenset({_S.AUTHORIZED}), "VOIDED": frozenset({_S.CANCELED})}.get(
                    status, frozenset({_S.FAILED})
                )
            else:
                # Not paid: waiting for the buyer, or lapsed (paykit cancels an unpaid order locally).
                allowed = frozenset({_S.REQUIRES_ACTION, _S.PENDING, _S.CANCELED})
            captured = _minor(capture["amount"]) if capture is not None and capture["status"] in _CAPTURED else 0
            refunds = [
                RemoteRefund(r["id"], _REFUND_STATUS[r["status"]], _minor(r["amount"]))
                for r in self.refunds_of(order["id"])
            ]
            return RemotePayment(
                ref=order["id"],
                status=described,
                allowed=allowed,
                captured_minor=captured,
                refunded_minor=sum(r.amount_minor for r in refunds if r.status is RefundStatus.SUCCEEDED),
                refunds=refunds,
                what="PayPal's order",
            )

    def charges(self) -> dict[str, list[str]]:
        """Map each paykit payment id to ids of the orders whose capture took its money."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for order in self.orders.values():
                capture = self.capture_of(order["id"])
                if capture is not None and capture["status"] in _CAPTURED:
                    found.setdefault(order["purchase_units"][0]["custom_id"], []).append(order["id"])
        return found

    def unknown_payment_ids(self) -> dict[str, str]:
        """Order id -> the paykit payment id (``custom_id``) it names."""
        with self._lock:
            return {o["id"]: o["purchase_units"][0].get("custom_id", "") for o in self.orders.values()}

    # -- serving ------------------------------------------------------------------------

    def _serve(self, request: httpx.Request) -> Outcome:
        method, path = request.method, request.url.path
        if method == "GET" and str(request.url) == _signer().cert_url:
            return Outcome(
                httpx.Response(200, content=_signer().cert_pem, headers={"Content-Type": "text/plain"}), None
            )
        body = _json(request.content) if method == "POST" and request.url.path != "/v1/oauth2/token" else None
        operation, handler, ident = self._route(method, path)
        request_id = request.headers.get("paypal-request-id")
        with self._lock:
            fault = self._next_fault(operation)
            record = PayPalRequest(method, path, operation, body, request_id, fault)
            self.requests.append(record)
            if fault is Fault.RESET_BEFORE_SENDING:
                return Outcome(None, httpx.WriteError("[Errno 104] Connection reset by peer"))
            if fault is Fault.UNAVAILABLE_503:
                return self._answer(record, 503, _error("SERVICE_UNAVAILABLE", "Service Unavailable."), None)
            if operation == "token":
                return self._answer(record, *self._token(request), fault)
            if request.headers.get("authorization", "").removeprefix("Bearer ") not in self._tokens:
                return self._answer(
                    record,
                    401,
                    {"error": "invalid_token", "error_description": "Token signature verification failed"},
                    None,
                )
            if handler is None:
                return self._answer(record, 404, _not_found(), None)
            if body is None and method == "POST":
                return self._answer(record, 400, _error("INVALID_REQUEST", "Request is not well-formed."), None)
            saved = self._replay(request_id) if method == "POST" else None
            if saved is not None:
                status = 200 if saved.status == 201 else saved.status
                return self._finish(record, status, copy.deepcopy(saved.body), fault, [])
            mark = len(self._outbox)
            if fault is Fault.SERVER_ERROR_500:
                status, answer = 500, _error("INTERNAL_SERVER_ERROR", "An internal server error occurred.")
            else:
                status, answer = handler(ident, body or {})
            if request_id is not None and method == "POST" and (200 <= status < 300 or status == 422):
                self._saved[request_id] = _Saved(status, copy.deepcopy(answer), self.clock.unix())
            early = self._outbox[mark:] if fault is Fault.WEBHOOKS_FIRST else []
            if early:
                del self._outbox[mark:]
            return self._finish(record, status, answer, fault, early)

    def _answer(self, record: PayPalRequest, status: int, body: Any, fault: Fault | None) -> Outcome:
        return self._finish(record, status, body, fault, [])

    def _finish(
        self, record: PayPalRequest, status: int, body: Any, fault: Fault | None, early: list[WebhookDelivery]
    ) -> Outcome:
        self.exchanges.append((record, status, copy.deepcopy(body)))
        headers = {"paypal-debug-id": self._next("")[-12:].lower()}
        response = (
            httpx.Response(status, headers=headers)
            if body is None
            else httpx.Response(status, json=body, headers=headers)
        )
        if fault is Fault.TIMEOUT_AFTER_SUCCESS:
            return Outcome(None, httpx.ReadTimeout("The read operation timed out"), early)
        if fault is Fault.RESET_AFTER_SENDING:
            return Outcome(None, httpx.RemoteProtocolError("Server disconnected without sending a response."), early)
        return Outcome(response, None, early)

    def _requeue(self, early: list[WebhookDelivery]) -> None:
        with self._lock:
            self._outbox.extend(early)

    def _next_fault(self, operation: str) -> Fault | None:
        for name in (operation, "any"):
            queue = self._faults.get(name)
            if queue:
                return queue.popleft()
        return self.on_request(operation) if self.on_request is not None else None

    def _replay(self, request_id: str | None) -> _Saved | None:
        if request_id is None:
            return None
        saved = self._saved.get(request_id)
        if saved is None:
            return None
        if self.clock.unix() - saved.at > IDEMPOTENCY_RETENTION.total_seconds():
            del self._saved[request_id]
            return None
        return saved

    def _route(
        self, method: str, path: str
    ) -> tuple[str, Callable[[str, dict[str, Any]], tuple[int, Any]] | None, str]:
        parts = path.strip("/").split("/")
        if method == "POST" and path == "/v1/oauth2/token":
            return "token", None, ""
        routes: dict[tuple[str, str, int, str], tuple[str, Callable[[str, dict[str, Any]], tuple[int, Any]]]] = {
            ("POST", "checkout/orders", 3, ""): ("create", self._create),
            ("GET", "checkout/orders", 4, ""): ("retrieve", self._get_order),
            ("POST", "checkout/orders", 5, "capture"): ("confirm", self._capture_order),
            ("POST", "checkout/orders", 5, "authorize"): ("confirm", self._authorize_order),
            ("GET", "payments/captures", 4, ""): ("retrieve_capture", self._get_capture),
            ("POST", "payments/captures", 5, "refund"): ("refund", self._refund),
            ("GET", "payments/refunds", 4, ""): ("retrieve_refund", self._get_refund),
            ("GET", "payments/authorizations", 4, ""): ("retrieve_authorization", self._get_authorization),
            ("POST", "payments/authorizations", 5, "capture"): ("capture", self._capture_authorization),
            ("POST", "payments/authorizations", 5, "void"): ("cancel", self._void),
        }
        if len(parts) < 3 or parts[0] != "v2":
            return "unknown", None, ""
        action = parts[4] if len(parts) == 5 else ""
        found = routes.get((method, "/".join(parts[1:3]), len(parts), action))
        if found is None:
            return "unknown", None, ""
        return found[0], found[1], parts[3] if len(parts) > 3 else ""

    def _token(self, request: httpx.Request) -> tuple[int, dict[str, Any]]:
        expected = httpx.BasicAuth(self.client_id, self.client_secret)
        probe = next(expected.auth_flow(httpx.Request("POST", request.url)))
        if request.headers.get("authorization") != probe.headers["authorization"]:
            return 401, {"error": "invalid_client", "error_description": "Client Authentication failed"}
        token = f"A21AA{self._next('')}"
        self._tokens.add(token)
        return 200, {
            "scope": "https://uri.paypal.com/services/payments/payment",
            "access_token": token,
            "token_type": "Bearer",
            "app_id": "APP-80W284485P519543T",
            "expires_in": 32400,
            "nonce": f"{self._now()}paykit",
        }

    # -- Orders v2 --------------------------------------------------------------------------

    def _create(self, _: str, body: dict[str, Any]) -> tuple[int, Any]:
        intent = body.get("intent")
        units = body.get("purchase_units")
        if intent not in {"CAPTURE", "AUTHORIZE"} or not isinstance(units, list) or len(units) != 1:
            return 400, _error(
                "INVALID_REQUEST",
                "Request is not well-formed, syntactically incorrect, or violates schema.",
                "MISSING_REQUIRED_PARAMETER",
                "A required parameter is missing.",
            )
        unit = copy.deepcopy(units[0])
        try:
            _minor(unit["amount"])
        except (KeyError, TypeError, ValueError, ArithmeticError):
            return 422, _error(
                "UNPROCESSABLE_ENTITY",
                "The requested action could not be performed, semantically incorrect, or failed business validation.",
                "CANNOT_BE_ZERO_OR_NEGATIVE",
                "Must be greater than zero. If the currency supports decimals, only two decimal place precision "
                "is supported.",
            )
        ident = self._next("")
        unit.setdefault("reference_id", "default")
        unit["payee"] = {"email_address": "merchant@example.com", "merchant_id": "C7CYMKZDG8D6E"}
        context = (body.get("payment_source") or {}).get("paypal", {}).get("experience_context")
        rel = "payer-action" if context else "approve"
        order = {
            "id": ident,
            "intent": intent,
            "status": "PAYER_ACTION_REQUIRED" if context else "CREATED",
            "purchase_units": [unit],
            "create_time": self._now(),
            "links": [
                self._link(f"/v2/checkout/orders/{ident}", "self"),
                {"href": f"https://www.sandbox.paypal.com/checkoutnow?token={ident}", "rel": rel, "method": "GET"},
            ],
        }
        if context:
            order["payment_source"] = {"paypal": {}}
        self.orders[ident] = order
        return 201, copy.deepcopy(order)

    def _get_order(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        order = self.orders.get(ident)
        return (200, copy.deepcopy(order)) if order is not None else (404, _not_found())

    def _order_ready(self, ident: str, intent: str) -> tuple[dict[str, Any] | None, tuple[int, Any] | None]:
        order = self.orders.get(ident)
        if order is None:
            return None, (404, _not_found())
        if order["intent"] != intent:
            return None, _unprocessable(
                "ACTION_DOES_NOT_MATCH_INTENT",
                f"Order was created with an intent to '{order['intent']}'. Please use "
                "v2/checkout/orders/order_id/capture to complete the transaction or alternately Create an order "
                "with an intent of 'AUTHORIZE'.",
            )
        if order["status"] == "COMPLETED":
            if intent == "CAPTURE":
                return None, _unprocessable(
                    "ORDER_ALREADY_CAPTURED",
                    "Order already captured.If 'intent=CAPTURE' only one capture per order is allowed.",
                )
            return None, _unprocessable(
                "ORDER_ALREADY_AUTHORIZED",
                "Order already authorized.If 'intent=AUTHORIZE' only one authorization per order is allowed.",
            )
        if order["status"] != "APPROVED":
            tail = " or provide a valid `payment_source` in the request." if intent == "CAPTURE" else "."
            return None, _unprocessable(
                "ORDER_NOT_APPROVED",
                "Payer has not yet approved the Order for payment. Please redirect the payer to the "
                "'rel':'approve' url returned as part of the HATEOAS links within the Create Order call" + tail,
            )
        if self._funding.get(ident) == "declined":
            return None, _unprocessable(
                "INSTRUMENT_DECLINED",
                "The instrument presented  was either declined by the processor or bank, "
                "or it can't be used for this payment.",
            )
        return order, None

    def _capture_order(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        order, refused = self._order_ready(ident, "CAPTURE")
        if order is None:
            assert refused is not None  # noqa: S101
            return refused
        unit = order["purchase_units"][0]
        status = "DECLINED" if self._funding.get(ident) == "denied" else "COMPLETED"
        capture = self._new_capture(unit["amount"], status, unit.get("custom_id"), order_id=ident)
        unit["payments"] = {"captures": [capture]}
        order.update(status="COMPLETED", update_time=self._now())
        self._queue("PAYMENT.CAPTURE.COMPLETED" if status == "COMPLETED" else "PAYMENT.CAPTURE.DENIED", capture)
        self._queue("CHECKOUT.ORDER.COMPLETED", order)
        return 201, copy.deepcopy(order)

    def _authorize_order(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        order, refused = self._order_ready(ident, "AUTHORIZE")
        if order is None:
            assert refused is not None  # noqa: S101
            return refused
        unit = order["purchase_units"][0]
        auth_id = self._next("")
        authorization = {
            "id": auth_id,
            "status": "CREATED",
            "amount": dict(unit["amount"]),
            "expiration_time": _iso(self.clock() + timedelta(days=29)),
            "create_time": self._now(),
            "update_time": self._now(),
            "supplementary_data": {"related_ids": {"order_id": ident}},
            "links": [
                self._link(f"/v2/payments/authorizations/{auth_id}", "self"),
                self._link(f"/v2/payments/authorizations/{auth_id}/capture", "capture", "POST"),
                self._link(f"/v2/payments/authorizations/{auth_id}/void", "void", "POST"),
            ],
        }
        if unit.get("custom_id"):
            authorization["custom_id"] = unit["custom_id"]
        self.authorizations[auth_id] = authorization
        unit["payments"] = {"authorizations": [authorization]}
        order.update(status="COMPLETED", update_time=self._now())
        self._queue("PAYMENT.AUTHORIZATION.CREATED", authorization)
        return 201, copy.deepcopy(order)

    # -- Payments v2 ------------------------------------------------------------------------

    def _capture_authorization(self, ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        authorization = self.authorizations.get(ident)
        if authorization is None:
            return 404, _not_found()
        if authorization["status"] == "VOIDED":
            return _unprocessable("AUTHORIZATION_VOIDED", "A voided authorization cannot be captured or reauthorized. ")
        if authorization["status"] in {"CAPTURED", "PARTIALLY_CAPTURED"}:
            return _unprocessable("AUTHORIZATION_ALREADY_CAPTURED", "Authorization has previously been captured.")
        amount = body.get("amount") or authorization["amount"]
        if amount.get("currency_code") != authorization["amount"]["currency_code"]:
            return _unprocessable("CURRENCY_MISMATCH", "Currency of capture must match the authorization.")
        if not 0 < _minor(amount) <= _minor(authorization["amount"]):
            return _unprocessable(
                "MAX_CAPTURE_AMOUNT_EXCEEDED",
                "Capture amount exceeds allowable limit. Please contact customer service or your account manager "
                "to request the change to your overage limit. The default overage limit is 115%, which allows the "
                "sum of all captures to be up to 115% of the order amount. The ability to over capture is "
                "subjected to regulatory approvals.",
            )
        order_id = authorization["supplementary_data"]["related_ids"]["order_id"]
        capture = self._new_capture(
            dict(amount), "COMPLETED", authorization.get("custom_id"), order_id=order_id, authorization_id=ident
        )
        full = _minor(amount) == _minor(authorization["amount"])
        authorization.update(status="CAPTURED" if full else "PARTIALLY_CAPTURED", update_time=self._now())
        unit = self.orders[order_id]["purchase_units"][0]
        unit["payments"]["authorizations"] = [copy.deepcopy(authorization)]
        unit["payments"]["captures"] = [capture]
        self._queue("PAYMENT.CAPTURE.COMPLETED", capture)
        return 201, copy.deepcopy(capture)

    def _void(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        authorization = self.authorizations.get(ident)
        if authorization is None:
            return 404, _not_found()
        if authorization["status"] == "VOIDED":
            return _unprocessable(
                "PREVIOUSLY_VOIDED", "Authorization has been previously voided and hence cannot be voided again."
            )
        if authorization["status"] != "CREATED":
            return _unprocessable(
                "PREVIOUSLY_CAPTURED", "Authorization has been previously captured and hence cannot be voided."
            )
        authorization.update(status="VOIDED", update_time=self._now())
        order_id = authorization["supplementary_data"]["related_ids"]["order_id"]
        self.orders[order_id]["purchase_units"][0]["payments"]["authorizations"] = [copy.deepcopy(authorization)]
        self._queue("PAYMENT.AUTHORIZATION.VOIDED", authorization)
        return 200, copy.deepcopy(authorization)

    def _refund(self, ident: str, body: dict[str, Any]) -> tuple[int, Any]:
        capture = self.captures.get(ident)
        if capture is None:
            return 404, _not_found()
        if capture["status"] == "REFUNDED":
            return _unprocessable("CAPTURE_FULLY_REFUNDED", "The capture has already been fully refunded")
        if capture["status"] not in {"COMPLETED", "PARTIALLY_REFUNDED"}:
            return _unprocessable("REFUND_NOT_ALLOWED", "Capture cannot be refunded.")
        taken = sum(
            _minor(r["amount"])
            for r in self.refunds.values()
            if r["_capture_id"] == ident and r["status"] in {"COMPLETED", "PENDING"}
        )
        remaining = _minor(capture["amount"]) - taken
        amount = body.get("amount") or _paypal_amount(remaining, capture["amount"]["currency_code"])
        if amount.get("currency_code") != capture["amount"]["currency_code"]:
            return _unprocessable(
                "REFUND_CAPTURE_CURRENCY_MISMATCH", "Refund must be in the same currency as the capture"
            )
        if not 0 < _minor(amount) <= remaining:
            return _unprocessable(
                "REFUND_AMOUNT_EXCEEDED",
                "The refund amount must be less than or equal to the capture amount that has not yet been refunded.",
            )
        refund_id = self._next("")
        refund = {
            "id": refund_id,
            "status": "COMPLETED",
            "amount": dict(amount),
            "seller_payable_breakdown": {"gross_amount": dict(amount), "net_amount": dict(amount)},
            "create_time": self._now(),
            "update_time": self._now(),
            "links": [
                self._link(f"/v2/payments/refunds/{refund_id}", "self"),
                self._link(f"/v2/payments/captures/{ident}", "up"),
            ],
        }
        if body.get("invoice_id"):
            refund["invoice_id"] = body["invoice_id"]
        self.refunds[refund_id] = {**refund, "_capture_id": ident, "_custom_id": body.get("custom_id")}
        capture["status"] = "REFUNDED" if _minor(amount) == remaining else "PARTIALLY_REFUNDED"
        capture["update_time"] = self._now()
        self._sync_capture(capture)
        self._queue("PAYMENT.CAPTURE.REFUNDED", refund)
        return 201, copy.deepcopy(refund)

    def _get_capture(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        capture = self.captures.get(ident)
        return (200, copy.deepcopy(capture)) if capture is not None else (404, _not_found())

    def _get_authorization(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        found = self.authorizations.get(ident)
        return (200, copy.deepcopy(found)) if found is not None else (404, _not_found())

    def _get_refund(self, ident: str, _: dict[str, Any]) -> tuple[int, Any]:
        refund = self.refunds.get(ident)
        if refund is None:
            return 404, _not_found()
        return 200, {k: copy.deepcopy(v) for k, v in refund.items() if not k.startswith("_")}

    # -- helpers ------------------------------------------------------------------------------

    def _new_capture(
        self,
        amount: Mapping[str, str],
        status: str,
        custom_id: str | None,
        *,
        order_id: str,
        authorization_id: str | None = None,
    ) -> dict[str, Any]:
        ident = self._next("")
        related = {"order_id": order_id}
        if authorization_id:
            related["authorization_id"] = authorization_id
        capture: dict[str, Any] = {
            "id": ident,
            "status": status,
            "amount": dict(amount),
            "final_capture": True,
            "seller_protection": {"status": "ELIGIBLE", "dispute_categories": ["ITEM_NOT_RECEIVED"]},
            "create_time": self._now(),
            "update_time": self._now(),
            "supplementary_data": {"related_ids": related},
            "links": [
                self._link(f"/v2/payments/captures/{ident}", "self"),
                self._link(f"/v2/payments/captures/{ident}/refund", "refund", "POST"),
            ],
        }
        if custom_id:
            capture["custom_id"] = custom_id
        self.captures[ident] = capture
        return capture

    def _sync_capture(self, capture: dict[str, Any]) -> None:
        order = self.orders[capture["supplementary_data"]["related_ids"]["order_id"]]
        payments = order["purchase_units"][0]["payments"]
        payments["captures"] = [capture if c["id"] == capture["id"] else c for c in payments["captures"]]

    def _order_captures(self, order_id: str) -> list[dict[str, Any]]:
        return [c for c in self.captures.values() if c["supplementary_data"]["related_ids"]["order_id"] == order_id]

    def _order_authorizations(self, order_id: str) -> list[dict[str, Any]]:
        return [
            a for a in self.authorizations.values() if a["supplementary_data"]["related_ids"]["order_id"] == order_id
        ]

    def _now(self) -> str:
        return _iso(self.clock())

    def _link(self, path: str, rel: str, method: str = "GET") -> dict[str, str]:
        return {"href": f"{API_BASE}{path}", "rel": rel, "method": method}

    def _next(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:06d}PKFAKE{self._seq * 7919 % 100000:05d}"

    def _queue(self, event_type: str, resource: Mapping[str, Any]) -> None:
        event_id = f"WH-{self._next('')}"
        public = {k: copy.deepcopy(v) for k, v in resource.items() if not k.startswith("_")}
        body = _signer().event_body(event_type, public, event_id=event_id, create_time=self.clock())
        _signer().resources.clear()  # the fake answers GETs itself; the shared signer keeps nothing
        self._outbox.append(WebhookDelivery(event_id, event_type, body, int(self.clock.unix())))


_REFUND_STATUS = {
    "COMPLETED": RefundStatus.SUCCEEDED,
    "PENDING": RefundStatus.PENDING,
    "FAILED": RefundStatus.FAILED,
    "CANCELLED": RefundStatus.CANCELED,
}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _minor(amount: Mapping[str, str]) -> int:
    return Money.of(amount["value"], amount["currency_code"]).minor_units


def _paypal_amount(minor: int, currency: str) -> dict[str, str]:
    return {"currency_code": currency, "value": Money.from_minor(minor, currency).to_decimal_string()}


def _json(content: bytes) -> dict[str, Any] | None:
    if not content:
        return {}
    try:
        parsed = json.loads(content)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _error(name: str, message: str, issue: str | None = None, description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "message": message,
        "debug_id": "f1d2c3b4a5e69",
        "links": [
            {
                "href": "https://developer.paypal.com/api/rest/reference/orders/v2/errors/",
                "rel": "information_link",
                "method": "GET",
            }
        ],
    }
    if issue is not None:
        body["details"] = [{"issue": issue, "description": description or message}]
    return body


def _unprocessable(issue: str, description: str) -> tuple[int, dict[str, Any]]:
    body = _error(
        "UNPROCESSABLE_ENTITY",
        "The requested action could not be performed, semantically incorrect, or failed business validation.",
    )
    body["details"] = [{"issue": issue, "description": description}]
    return 422, body


def _not_found() -> dict[str, Any]:
    return _error(
        "RESOURCE_NOT_FOUND",
        "The specified resource does not exist.",
        "INVALID_RESOURCE_ID",
        "Specified resource ID does not exist. Please check the resource ID and try again.",
    )
