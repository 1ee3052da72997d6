"""A stateful fake Stripe account served through an httpx transport, so apps test the real adapter.

Written by hand, once for both APIs: :class:`StripeFake.transport` is both an
``httpx.BaseTransport`` and an ``httpx.AsyncBaseTransport``, so the same fake
serves :class:`~paykit.providers.stripe.StripeProvider` (over ``httpx.Client``)
and :class:`~paykit.providers.stripe.AsyncStripeProvider` (over
``httpx.AsyncClient``). Requests are form-encoded exactly as stripe-python
sends them; answers and events have the fields of Stripe's own API objects.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import httpx

from .._models import RefundStatus
from .._status import PaymentStatus
from ._clock import ManualClock
from ._stripe import sign_stripe_webhook, stripe_event
from ._wire_fake import RemotePayment, RemoteRefund

if TYPE_CHECKING:
    from .._models import Payment
    from ..providers._async.stripe import AsyncStripeProvider
    from ..providers._sync.stripe import StripeProvider

__all__ = ["Fault", "StripeDelivery", "StripeFake", "StripeRequest"]

API_BASE = "https://api.stripe.com"
IDEMPOTENCY_RETENTION = timedelta(hours=24)
"""How long Stripe replays the first answer for an idempotency key."""

SUCCEEDING_CARDS: frozenset[str] = frozenset(
    {"pm_card_visa", "pm_card_visa_debit", "pm_card_mastercard", "pm_card_amex", "pm_card_discover", "pm_card_jcb"}
)
"""Test PaymentMethods Stripe charges successfully."""

DECLINING_CARDS: Mapping[str, tuple[str, str, str]] = {
    # PaymentMethod: (code, decline_code, message), as Stripe's testing page documents them.
    "pm_card_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_visa_chargeDeclined": ("card_declined", "generic_decline", "Your card was declined."),
    "pm_card_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_visa_chargeDeclinedInsufficientFunds": (
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedLostCard": ("card_declined", "lost_card", "Your card was declined."),
    "pm_card_chargeDeclinedStolenCard": ("card_declined", "stolen_card", "Your card was declined."),
    "pm_card_chargeDeclinedExpiredCard": ("expired_card", "expired_card", "Your card has expired."),
    "pm_card_chargeDeclinedIncorrectCvc": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "pm_card_chargeDeclinedProcessingError": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
"""Test PaymentMethods Stripe declines (``402``, a ``card_error``)."""

AUTHENTICATION_CARDS: frozenset[str] = frozenset(
    {"pm_card_authenticationRequired", "pm_card_threeDSecure2Required", "pm_card_authenticationRequiredOnSetup"}
)
"""Test PaymentMethods that need 3-D Secure: the PaymentIntent waits in ``requires_action``."""


_S = PaymentStatus
_INTENT_STATUS: dict[str, frozenset[PaymentStatus]] = {
    "requires_payment_method": frozenset({_S.PENDING}),
    "requires_confirmation": frozenset({_S.PENDING}),
    "requires_action": frozenset({_S.REQUIRES_ACTION}),
    "processing": frozenset({_S.PROCESSING}),
    "requires_capture": frozenset({_S.AUTHORIZED}),
    "succeeded": frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED}),
    "canceled": frozenset({_S.CANCELED}),
}
_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}


class Fault(Enum):
    """What goes wrong with one API request (see :meth:`StripeFake.inject`)."""

    TIMEOUT_AFTER_SUCCESS = "timeout after success"
    """Stripe does the work and saves the key's answer; the client sees a read timeout."""
    RESET_BEFORE_SENDING = "reset before sending"
    """The connection drops before Stripe sees the request: nothing done, nothing saved."""
    RESET_AFTER_SENDING = "reset after sending"
    """Stripe does the work and saves the answer; the connection drops before it arrives."""
    UNAVAILABLE_503 = "503 from the edge"
    """Stripe's edge answers 503 before the endpoint runs: nothing done, nothing saved."""
    SERVER_ERROR_500 = "500, nothing done"
    """The endpoint fails before doing anything; the 500 is saved for the key and replayed."""
    WEBHOOKS_FIRST = "webhooks before the answer"
    """Stripe does the work and its events are delivered before the answer returns."""


@dataclass(frozen=True)
class StripeDelivery:
    """One Stripe event ready to be delivered: its id, type and exact JSON body."""

    event_id: str
    type: str
    body: bytes
    created: int


@dataclass(frozen=True)
class StripeRequest:
    """One API request the fake received (for assertions): method, path, form parameters, headers."""

    method: str
    path: str
    operation: str
    params: Mapping[str, str]
    idempotency_key: str | None
    fault: Fault | None


@dataclass
class _Saved:
    fingerprint: str
    status: int
    body: dict[str, Any]
    at: float


@dataclass
class _Outcome:
    response: httpx.Response | None
    error: httpx.HTTPError | None
    early: list[StripeDelivery] = field(default_factory=list)


EarlySink = Callable[[list[StripeDelivery]], None]
AsyncEarlySink = Callable[[list[StripeDelivery]], Awaitable[None]]


class StripeFake:
    """A fake Stripe account: PaymentIntents, captures, cancels and Refunds, with state.

    It keeps what it was asked to do, answers in Stripe's wire format, honours
    ``Idempotency-Key`` the way Stripe does (the first answer, a 402 or a 500
    included, is replayed for 24 hours of ``clock`` time; other parameters get an
    ``idempotency_error``), declines Stripe's documented test PaymentMethods
    (:data:`DECLINING_CARDS`, :data:`AUTHENTICATION_CARDS`), and queues the
    events Stripe would send, which :meth:`take_deliveries` hands out signed with
    :attr:`webhook_secret`.

    >>> fake = StripeFake()
    >>> provider = fake.provider()  # a real StripeProvider whose HTTP goes to the fake

    Args:
        clock: Drives idempotency-key expiry, object and event timestamps and the
            providers' webhook tolerance; a fresh :class:`ManualClock` by default.
        api_key: The secret key the fake expects (others get a 401).
        webhook_secret: The endpoint secret the fake signs events with.
    """

    provider_name = "stripe"
    display_name = "Stripe"
    idempotency_retention = IDEMPOTENCY_RETENTION

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        api_key: str = "sk_test_paykit_fake",
        webhook_secret: str = "whsec_paykit_fake",
    ) -> None:
        self.clock = clock or ManualClock()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.intents: dict[str, dict[str, Any]] = {}
        """PaymentIntents by id, as Stripe holds them."""
        self.refunds: dict[str, dict[str, Any]] = {}
        """Refunds by id, in creation order."""
        self.requests: list[StripeRequest] = []
        """Every request received, in order."""
        self.transport = _Transport(self)
        """The httpx transport (sync and async) that serves the fake."""
        self.early_sink: EarlySink | None = None
        """Receives a request's events before its answer (:attr:`Fault.WEBHOOKS_FIRST`, sync clients)."""
        self.async_early_sink: AsyncEarlySink | None = None
        """The same for async clients."""
        self.on_request: Callable[[str], Fault | None] | None = None
        """Asked for a fault for each request's operation when none was injected (chaos uses it)."""
        self._faults: dict[str, deque[Fault]] = {}
        self._outbox: list[StripeDelivery] = []
        self._saved: dict[str, _Saved] = {}
        self._seq = 0
        self._lock = threading.RLock()

    # -- wiring ------------------------------------------------------------------------

    def provider(self, **options: Any) -> StripeProvider:
        """A real :class:`~paykit.providers.stripe.StripeProvider` whose requests this fake answers."""
        from ..providers._sync.stripe import StripeProvider  # noqa: PLC0415  # the stripe extra, on use

        return StripeProvider(
            self.api_key,
            webhook_secrets=[self.webhook_secret],
            http_client=httpx.Client(transport=self.transport, base_url=API_BASE),
            clock=self.clock,
            **options,
        )

    def async_provider(self, **options: Any) -> AsyncStripeProvider:
        """A real :class:`~paykit.providers.stripe.AsyncStripeProvider` whose requests this fake answers."""
        from ..providers._async.stripe import AsyncStripeProvider  # noqa: PLC0415  # the stripe extra, on use

        return AsyncStripeProvider(
            self.api_key,
            webhook_secrets=[self.webhook_secret],
            http_client=httpx.AsyncClient(transport=self.transport, base_url=API_BASE),
            clock=self.clock,
            **options,
        )

    # -- steering ------------------------------------------------------------------------

    def inject(self, fault: Fault, *, on: str = "any", times: int = 1) -> None:
        """Make the next ``times`` requests of operation ``on`` fail with ``fault``.

        Operations: ``create``, ``confirm``, ``capture``, ``cancel``, ``retrieve``,
        ``refund``, ``retrieve_refund``, ``list_refunds``, or ``any``.
        """
        with self._lock:
            self._faults.setdefault(on, deque()).extend([fault] * times)

    def complete_action(self, intent_id: str, *, succeed: bool = True) -> None:
        """The customer finishes (or fails) 3-D Secure on a ``requires_action`` PaymentIntent."""
        with self._lock:
            intent = self.intents[intent_id]
            if intent["status"] != "requires_action":
                raise ValueError(f"{intent_id} is {intent['status']}, not requires_action")
            intent["next_action"] = None
            if succeed:
                self._authorize(intent)
            else:
                self._decline(intent, ("card_declined", "generic_decline", "Your card was declined."))

    def settle_refund(self, refund_id: str, status: str = "succeeded", *, failure_reason: str | None = None) -> None:
        """A pending refund reaches ``status`` (or a succeeded one fails later, as banks do)."""
        with self._lock:
            refund = self.refunds[refund_id]
            was = refund["status"]
            refund["status"] = status
            if status == "failed":
                refund["failure_reason"] = failure_reason or "expired_or_canceled_card"
            self._queue("refund.updated", refund)
            if status == "failed":
                self._queue("refund.failed", refund)
            elif status == "succeeded" and was != "succeeded":
                self._queue_charge_refunded(refund)

    def take_deliveries(self) -> list[StripeDelivery]:
        """Every event queued since the last call, oldest first; they leave the fake's queue."""
        with self._lock:
            taken, self._outbox = self._outbox, []
            return taken

    def has_queued(self) -> bool:
        """Whether events wait in the queue."""
        return bool(self._outbox)

    def signed(self, delivery: StripeDelivery) -> tuple[bytes, dict[str, str]]:
        """The body and headers of a delivery, signed with :attr:`webhook_secret` now."""
        return delivery.body, sign_stripe_webhook(delivery.body, self.webhook_secret, timestamp=int(self.clock.unix()))

    def forged(self, delivery: StripeDelivery) -> tuple[bytes, dict[str, str]]:
        """A forgery of ``delivery``: its body altered to succeed, signed with another secret."""
        body = delivery.body.replace(b'"status": "requires_payment_method"', b'"status": "succeeded"')
        return body, sign_stripe_webhook(body, "whsec_forger", timestamp=int(self.clock.unix()))

    # -- the test's view -----------------------------------------------------------------

    def refunded_minor(self, intent_id: str) -> int:
        """What Stripe has refunded of ``intent_id`` (succeeded refunds), in Stripe's units."""
        with self._lock:
            return sum(
                r["amount"]
                for r in self.refunds.values()
                if r["payment_intent"] == intent_id and r["status"] == "succeeded"
            )

    def refunds_of(self, intent_id: str) -> list[dict[str, Any]]:
        """Copies of the Refunds of ``intent_id``, oldest first."""
        with self._lock:
            return [copy.deepcopy(r) for r in self.refunds.values() if r["payment_intent"] == intent_id]

    def remote_payment(self, payment: Payment) -> RemotePayment | None:
        """What Stripe holds for ``payment`` (its PaymentIntent), for ``assert_consistent``."""
        with self._lock:
            intent = self.intents.get(payment.provider_ref or "")
            if intent is None:
                return None
            allowed = _INTENT_STATUS.get(intent["status"], frozenset())
            if intent["status"] == "requires_payment_method" and intent["last_payment_error"] is not None:
                allowed = allowed | {PaymentStatus.FAILED}
            # Stripe's units per paykit minor unit (100 for ISK's two-decimal quirk, else 1).
            scale = intent["amount"] // payment.amount.minor_units if payment.amount.minor_units else 1
            scale = scale or 1
            refunds = [
                RemoteRefund(
                    r["id"], _REFUND_STATUS[r["status"]], r["amount"] // scale, r["metadata"].get("paykit_refund_id")
                )
                for r in self.refunds_of(intent["id"])
            ]
            return RemotePayment(
                ref=intent["id"],
                status=intent["status"],
                allowed=allowed,
                captured_minor=intent["amount_received"] // scale,
                refunded_minor=sum(r.amount_minor for r in refunds if r.status is RefundStatus.SUCCEEDED),
                refunds=refunds,
                what="Stripe's PaymentIntent",
            )

    def charges(self) -> dict[str, list[str]]:
        """Map each paykit payment id to ids of its PaymentIntents that succeeded."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for intent in self.intents.values():
                paykit_id = intent["metadata"].get("paykit_payment_id")
                if paykit_id is not None and intent["status"] == "succeeded":
                    found.setdefault(paykit_id, []).append(intent["id"])
        return found

    def unknown_payment_ids(self) -> dict[str, str]:
        """PaymentIntent id -> the paykit payment id its metadata names."""
        with self._lock:
            return {
                i["id"]: i["metadata"]["paykit_payment_id"]
                for i in self.intents.values()
                if "paykit_payment_id" in i["metadata"]
            }

    def _requeue(self, early: list[StripeDelivery]) -> None:
        with self._lock:
            self._outbox.extend(early)

    # -- serving ------------------------------------------------------------------------

    def _serve(self, request: httpx.Request) -> _Outcome:
        method, path = request.method, request.url.path
        params = _form(request.content.decode() if method == "POST" else request.url.query.decode())
        operation, handler, ident = self._route(method, path)
        key = request.headers.get("idempotency-key")
        with self._lock:
            fault = self._next_fault(operation)
            self.requests.append(StripeRequest(method, path, operation, params, key, fault))
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _Outcome(_error(401, "invalid_request_error", "Invalid API Key provided."), None)
            if fault is Fault.RESET_BEFORE_SENDING:
                return _Outcome(None, httpx.WriteError("[Errno 104] Connection reset by peer"))
            if fault is Fault.UNAVAILABLE_503:
                return _Outcome(_error(503, "api_error", "Stripe is temporarily unavailable."), None)
            if handler is None:
                return _Outcome(
                    _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path})"), None
                )
            fingerprint = hashlib.sha256(f"{method} {path} {request.content.decode()}".encode()).hexdigest()
            replayed = self._replay(key, fingerprint) if method == "POST" else None
            if replayed is not None:
                return self._answer(replayed, fault, [])
            mark = len(self._outbox)
            if fault is Fault.SERVER_ERROR_500:
                status, body = 500, _error_body("api_error", "An unknown error occurred.")
            else:
                status, body = handler(ident, params)
            if key is not None and method == "POST" and status not in {400, 401, 404}:
                self._saved[key] = _Saved(fingerprint, status, copy.deepcopy(body), self.clock.unix())
            response = httpx.Response(status, json=body, headers={"request-id": self._next("req_")})
            early = self._outbox[mark:] if fault is Fault.WEBHOOKS_FIRST else []
            if early:
                del self._outbox[mark:]
            return self._answer(response, fault, early)

    @staticmethod
    def _answer(response: httpx.Response, fault: Fault | None, early: list[StripeDelivery]) -> _Outcome:
        if fault is Fault.TIMEOUT_AFTER_SUCCESS:
            return _Outcome(None, httpx.ReadTimeout("The read operation timed out"), early)
        if fault is Fault.RESET_AFTER_SENDING:
            return _Outcome(None, httpx.RemoteProtocolError("Server disconnected without sending a response."), early)
        return _Outcome(response, None, early)

    def _next_fault(self, operation: str) -> Fault | None:
        for name in (operation, "any"):
            queue = self._faults.get(name)
            if queue:
                return queue.popleft()
        return self.on_request(operation) if self.on_request is not None else None

    def _replay(self, key: str | None, fingerprint: str) -> httpx.Response | None:
        if key is None:
            return None
        now = self.clock.unix()
        for old in [k for k, s in self._saved.items() if now - s.at >= IDEMPOTENCY_RETENTION.total_seconds()]:
            del self._saved[old]
        saved = self._saved.get(key)
        if saved is None:
            return None
        if saved.fingerprint != fingerprint:
            return _error(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
            )
        return httpx.Response(saved.status, json=copy.deepcopy(saved.body), headers={"idempotent-replayed": "true"})

    _Handler = Callable[[str, dict[str, str]], tuple[int, dict[str, Any]]]

    def _route(self, method: str, path: str) -> tuple[str, _Handler | None, str]:
        parts = path.strip("/").split("/")
        if parts[:2] == ["v1", "payment_intents"]:
            if len(parts) == 2 and method == "POST":
                return "create", self._create, ""
            if len(parts) == 3 and method == "GET":
                return "retrieve", self._retrieve, parts[2]
            if len(parts) == 4 and method == "POST" and parts[3] in {"confirm", "capture", "cancel"}:
                handlers = {"confirm": self._confirm, "capture": self._capture, "cancel": self._cancel}
                return parts[3], handlers[parts[3]], parts[2]
        if parts[:2] == ["v1", "refunds"]:
            if len(parts) == 2:
                return ("refund", self._refund, "") if method == "POST" else ("list_refunds", self._list_refunds, "")
            if len(parts) == 3 and method == "GET":
                return "retrieve_refund", self._retrieve_refund, parts[2]
        return "unknown", None, ""

    # -- PaymentIntents --------------------------------------------------------------------

    def _create(self, _: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        amount = params.get("amount", "")
        if not amount.isdigit() or int(amount) < 1 or "currency" not in params:
            return 400, _error_body("invalid_request_error", "Invalid amount or currency.", param="amount")
        ident = self._next("pi_")
        intent = _payment_intent(
            ident,
            amount=int(amount),
            currency=params["currency"],
            capture_method=params.get("capture_method", "automatic"),
            metadata=_nested(params, "metadata"),
            description=params.get("description"),
            created=int(self.clock.unix()),
            types=[v for k, v in sorted(params.items()) if k.startswith("payment_method_types[")] or ["card"],
        )
        self.intents[ident] = intent
        self._queue("payment_intent.created", intent)
        if "payment_method" in params:
            intent["payment_method"] = params["payment_method"]
        return 200, copy.deepcopy(intent)

    def _confirm(self, ident: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(ident)
        if intent is None:
            return _missing("payment_intent", ident)
        if intent["status"] not in {"requires_payment_method", "requires_confirmation"}:
            return _unexpected_state(intent, "confirm")
        method = params.get("payment_method") or intent["payment_method"]
        if method is None:
            return 400, _error_body(
                "invalid_request_error",
                "You cannot confirm this PaymentIntent because it's missing a payment method.",
                code="payment_intent_unexpected_state",
            )
        intent["payment_method"] = method
        if method in DECLINING_CARDS:
            error = self._decline(intent, DECLINING_CARDS[method])
            return 402, {"error": error}
        if method in AUTHENTICATION_CARDS:
            intent["status"] = "requires_action"
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {
                    "url": f"https://hooks.stripe.com/3d_secure_2/hosted?payment_intent={ident}",
                    "return_url": params.get("return_url"),
                },
            }
            self._queue("payment_intent.requires_action", intent)
            return 200, copy.deepcopy(intent)
        if method not in SUCCEEDING_CARDS:
            return _missing("payment_method", method)
        self._authorize(intent)
        return 200, copy.deepcopy(intent)

    def _authorize(self, intent: dict[str, Any]) -> None:
        intent["latest_charge"] = self._next("ch_")
        intent["last_payment_error"] = None
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
            intent["amount_capturable"] = intent["amount"]
            self._queue("payment_intent.amount_capturable_updated", intent)
        else:
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            self._queue("payment_intent.succeeded", intent)

    def _decline(self, intent: dict[str, Any], reason: tuple[str, str, str]) -> dict[str, Any]:
        code, decline_code, message = reason
        error = {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "charge": self._next("ch_"),
            "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        }
        intent.update(status="requires_payment_method", last_payment_error=dict(error), latest_charge=error["charge"])
        self._queue("payment_intent.payment_failed", intent)
        return {**error, "payment_intent": copy.deepcopy(intent)}

    def _capture(self, ident: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(ident)
        if intent is None:
            return _missing("payment_intent", ident)
        if intent["status"] != "requires_capture":
            return _unexpected_state(intent, "capture")
        amount = int(params.get("amount_to_capture", intent["amount_capturable"]))
        if amount < 1 or amount > intent["amount_capturable"]:
            return 400, _error_body(
                "invalid_request_error",
                f"The amount_to_capture ({amount}) is greater than amount_capturable.",
                param="amount_to_capture",
            )
        intent.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._queue("payment_intent.succeeded", intent)
        return 200, copy.deepcopy(intent)

    def _cancel(self, ident: str, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(ident)
        if intent is None:
            return _missing("payment_intent", ident)
        if intent["status"] in {"succeeded", "canceled"}:
            return _unexpected_state(intent, "cancel")
        intent.update(status="canceled", amount_capturable=0, canceled_at=int(self.clock.unix()))
        intent["cancellation_reason"] = "requested_by_customer"
        self._queue("payment_intent.canceled", intent)
        return 200, copy.deepcopy(intent)

    def _retrieve(self, ident: str, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(ident)
        return (200, copy.deepcopy(intent)) if intent is not None else _missing("payment_intent", ident)

    # -- Refunds ------------------------------------------------------------------------------

    def _refund(self, _: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            return _missing("payment_intent", params.get("payment_intent", ""))
        if intent["status"] != "succeeded":
            return 400, _error_body(
                "invalid_request_error",
                f"This PaymentIntent ({intent['id']}) does not have a successful charge to refund.",
                code="charge_not_refundable",
            )
        amount = int(params.get("amount", intent["amount_received"]))
        taken = sum(
            r["amount"]
            for r in self.refunds.values()
            if r["payment_intent"] == intent["id"] and r["status"] in {"pending", "requires_action", "succeeded"}
        )
        if amount < 1 or amount > intent["amount_received"] - taken:
            return 400, _error_body(
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge",
                code="amount_too_large",
                param="amount",
            )
        refund = {
            "id": self._next("re_"),
            "object": "refund",
            "amount": amount,
            "balance_transaction": self._next("txn_"),
            "charge": intent["latest_charge"],
            "created": int(self.clock.unix()),
            "currency": intent["currency"],
            "customer": None,
            "customer_account": None,
            "destination_details": {"card": {"type": "refund"}, "type": "card"},
            "metadata": _nested(params, "metadata"),
            "payment_intent": intent["id"],
            "payment_method": intent["payment_method"],
            "reason": params.get("reason"),
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
        self.refunds[refund["id"]] = refund
        self._queue("refund.created", refund)
        self._queue_charge_refunded(refund)
        return 200, copy.deepcopy(refund)

    def _retrieve_refund(self, ident: str, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        refund = self.refunds.get(ident)
        return (200, copy.deepcopy(refund)) if refund is not None else _missing("refund", ident)

    def _list_refunds(self, _: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        newest_first = [
            r for r in reversed(self.refunds.values()) if r["payment_intent"] == params.get("payment_intent")
        ]
        after = params.get("starting_after")
        if after is not None:
            ids = [r["id"] for r in newest_first]
            newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
        size = min(int(params.get("limit", "10")), 100)
        return 200, {
            "object": "list",
            "url": "/v1/refunds",
            "has_more": len(newest_first) > size,
            "data": copy.deepcopy(newest_first[:size]),
        }

    # -- events ----------------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}fake{self._seq:010d}"

    def _queue(self, event_type: str, obj: Mapping[str, Any]) -> None:
        event_id = self._next("evt_")
        created = int(self.clock.unix())
        body = stripe_event(event_type, copy.deepcopy(dict(obj)), event_id=event_id, created=created)
        self._outbox.append(StripeDelivery(event_id, event_type, body, created))

    def _queue_charge_refunded(self, refund: dict[str, Any]) -> None:
        intent = self.intents[refund["payment_intent"]]
        refunded = self.refunded_minor(intent["id"])
        newest_first = [r for r in reversed(self.refunds.values()) if r["payment_intent"] == intent["id"]]
        charge = {
            "id": intent["latest_charge"],
            "object": "charge",
            "amount": intent["amount"],
            "amount_captured": intent["amount_received"],
            "amount_refunded": refunded,
            "captured": True,
            "currency": intent["currency"],
            "metadata": dict(intent["metadata"]),
            "paid": True,
            "payment_intent": intent["id"],
            "refunded": refunded >= intent["amount_received"],
            "refunds": {
                "object": "list",
                "url": f"/v1/charges/{intent['latest_charge']}/refunds",
                "has_more": False,
                "data": copy.deepcopy([refund] + [r for r in newest_first if r is not refund]),
            },
            "status": "succeeded",
        }
        self._queue("charge.refunded", charge)


class _Transport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Serves a :class:`StripeFake` to sync and async httpx clients alike."""

    def __init__(self, fake: StripeFake) -> None:
        self._fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()
        outcome = self._fake._serve(request)
        if outcome.early and self._fake.early_sink is not None:
            self._fake.early_sink(outcome.early)
        elif outcome.early:
            self._fake._outbox.extend(outcome.early)
        return _finish(outcome, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        outcome = self._fake._serve(request)
        if outcome.early and self._fake.async_early_sink is not None:
            result = self._fake.async_early_sink(outcome.early)
            if inspect.isawaitable(result):
                await result
        elif outcome.early:
            self._fake._outbox.extend(outcome.early)
        return _finish(outcome, request)


def _finish(outcome: _Outcome, request: httpx.Request) -> httpx.Response:
    if outcome.error is not None:
        outcome.error.request = request
        raise outcome.error
    assert outcome.response is not None  # noqa: S101  # one of the two is always set
    return outcome.response


def _payment_intent(
    ident: str,
    *,
    amount: int,
    currency: str,
    capture_method: str,
    metadata: dict[str, str],
    description: str | None,
    created: int,
    types: list[str],
) -> dict[str, Any]:
    """A new PaymentIntent with every field of Stripe's (``fixtures3.json``'s) ``payment_intent``."""
    return {
        "id": ident,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": f"{ident}_secret_fake",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": None,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": types,
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def _form(encoded: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(encoded, keep_blank_values=True).items()}


def _nested(params: Mapping[str, str], name: str) -> dict[str, str]:
    prefix = f"{name}["
    return {k[len(prefix) : -1]: v for k, v in params.items() if k.startswith(prefix) and k.endswith("]")}


def _error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **extra}}


def _error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(status, json=_error_body(kind, message))


def _missing(what: str, ident: str) -> tuple[int, dict[str, Any]]:
    return 404, _error_body("invalid_request_error", f"No such {what}: '{ident}'", code="resource_missing", param="id")


def _unexpected_state(intent: Mapping[str, Any], action: str) -> tuple[int, dict[str, Any]]:
    return 400, _error_body(
        "invalid_request_error",
        f"This PaymentIntent's status is {intent['status']}; you cannot {action} it.",
        code="payment_intent_unexpected_state",
        payment_intent=copy.deepcopy(dict(intent)),
    )
