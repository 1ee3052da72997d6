"""A small stateful fake of Stripe's API, served through respx, with faults injected per request.

It keeps what the fault model needs to be honest about Stripe: PaymentIntents
(create, confirm, retrieve), Refunds (create, retrieve, list by PaymentIntent
with ``has_more`` paging, ``metadata`` echoed), and ``Idempotency-Key`` the way
Stripe documents it: a key replays the first answer for the same parameters
(a 500 included, once the endpoint started executing), refuses other parameters
with an ``idempotency_error``, and is forgotten 24 hours (of the simulator's
clock) after it was first used. Requests that fail validation, or never reach
the endpoint (503 from the edge, a reset before sending), save nothing.

Every change to a Refund queues the events Stripe would send (``refund.created``,
``refund.updated``, ``refund.failed``, ``charge.refunded``); the test decides
whether they are delivered (signed, through ``paykit.webhooks.handle_webhook``),
delivered early (from inside the request, before its answer) or lost.

Object shapes come from Stripe's own examples (``fixtures3.json`` in the shared
specs beside the repository), read at import time.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

from paykit.testing import ManualClock
from paykit.testing._stripe import sign_stripe_webhook, stripe_event

FIXTURES_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "stripe" / "fixtures3.json"
RESOURCES: dict[str, Any] = json.loads(FIXTURES_PATH.read_text())["resources"]
API = "https://api.stripe.com"
KEY_RETENTION = timedelta(hours=24)


def resource(name: str, **changes: Any) -> dict[str, Any]:
    """A deep copy of Stripe's example ``name`` object with ``changes`` applied."""
    obj: dict[str, Any] = copy.deepcopy(RESOURCES[name])
    obj.update(changes)
    return obj


class Fault(Enum):
    """What goes wrong with one ``POST /v1/refunds`` request."""

    TIMEOUT_AFTER_SUCCESS = "timeout after success"
    """The refund is made and the key saved; the client sees ``httpx.ReadTimeout``."""
    RESET_BEFORE_SENDING = "reset before sending"
    """The connection drops before Stripe sees the request: nothing made, nothing saved."""
    RESET_AFTER_SENDING = "reset after sending"
    """The refund is made and the key saved; the connection drops before the answer."""
    UNAVAILABLE_503 = "503"
    """Stripe's edge answers 503 before the endpoint runs: nothing made, nothing saved."""
    REPLAYED_500_MADE = "500 replayed, refund made"
    """The refund is made, then the endpoint fails: 500, saved for the key and replayed."""
    REPLAYED_500_NOT_MADE = "500 replayed, nothing made"
    """The endpoint fails before making the refund: 500, saved for the key and replayed."""
    WEBHOOK_FIRST = "webhook before the answer"
    """The refund is made, its events are delivered, and only then is the answer returned."""
    WEBHOOK_FIRST_THEN_TIMEOUT = "webhook before a timeout"
    """The refund is made and its events delivered; the client then sees ``httpx.ReadTimeout``."""
    HELD = "held in flight"
    """Stripe holds the request (its key in use) until ``StripeSim.release`` is set, then makes the refund."""


@dataclass
class _Saved:
    fingerprint: str
    status: int
    body: dict[str, Any]
    at: float


@dataclass
class _Event:
    event_id: str
    type: str
    obj: dict[str, Any]


@dataclass
class StripeSim:
    """The fake Stripe account. Thread-safe; ``clock`` drives key expiry and event times."""

    clock: ManualClock
    secret: str
    page_size: int = 2
    """Refunds per list page at most, so ``has_more`` paging is exercised."""
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every Refund made, in creation order."""
    faults: deque[Fault] = field(default_factory=deque)
    refund_statuses: deque[str] = field(default_factory=deque)
    """Statuses of the next Refunds made (``succeeded`` when empty)."""
    events: list[_Event] = field(default_factory=list)
    """Events not delivered yet."""
    deliveries: list[tuple[str, int]] = field(default_factory=list)
    """(event type, HTTP status paykit answered) per delivery."""
    refund_posts: int = 0
    keys_used: list[str] = field(default_factory=list)
    sink: Callable[[bytes, dict[str, str]], int] | None = None
    held: threading.Event = field(default_factory=threading.Event)
    """Set once a ``HELD`` request reached Stripe."""
    release: threading.Event = field(default_factory=threading.Event)
    """Set by the test to let a ``HELD`` request go on."""
    _saved: dict[str, _Saved] = field(default_factory=dict)
    _in_flight: set[str] = field(default_factory=set)
    _seq: int = 0
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # -- the test's view ----------------------------------------------------------

    def succeeded_minor(self, intent: str) -> int:
        """What Stripe has refunded of ``intent``, in Stripe's units."""
        with self._lock:
            return sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent and _ok(r))

    def refunds_of(self, intent: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.refunds.values() if r["payment_intent"] == intent]

    def fail_refund(self, refund_ref: str, *, reason: str = "expired_or_canceled_card") -> None:
        """Stripe reports, later, that a refund failed; its events are queued."""
        self._move(refund_ref, "failed", failure_reason=reason)

    def settle_refund(self, refund_ref: str, status: str = "succeeded") -> None:
        """A pending refund reaches ``status`` at Stripe; its events are queued."""
        self._move(refund_ref, status)

    def lose_events(self) -> int:
        """Drop every queued event (a lost webhook); return how many."""
        with self._lock:
            lost = len(self.events)
            self.events.clear()
            return lost

    def deliver_events(self, *, only_refund: str | None = None) -> None:
        """Deliver queued events, signed, through the sink; Stripe keeps those answered non-2xx."""
        with self._lock:
            batch = [e for e in self.events if only_refund is None or _about(e, only_refund)]
            self.events = [e for e in self.events if e not in batch]
        kept = []
        for event in batch:
            if not self._deliver(event):
                kept.append(event)
        with self._lock:
            self.events.extend(kept)

    def _deliver(self, event: _Event) -> bool:
        assert self.sink is not None, "no webhook sink configured"
        created = int(self.clock.unix())
        body = stripe_event(event.type, event.obj, event_id=event.event_id, created=created)
        status = self.sink(body, sign_stripe_webhook(body, self.secret, timestamp=created))
        with self._lock:
            self.deliveries.append((event.type, status))
        return 200 <= status < 300

    # -- routes ---------------------------------------------------------------------

    @contextlib.contextmanager
    def serve(self) -> Iterator[respx.MockRouter]:
        """Mount the routes on a fresh respx router for the duration of the block."""
        with respx.mock(base_url=API, assert_all_called=False, assert_all_mocked=True) as router:
            self._routes(router)
            yield router

    def _routes(self, router: respx.MockRouter) -> None:
        router.post("/v1/payment_intents").mock(side_effect=self._idempotent(self._create_intent))
        router.post(path__regex=r"^/v1/payment_intents/(?P<ident>\w+)/confirm$").mock(
            side_effect=self._idempotent(self._confirm_intent)
        )
        router.get(path__regex=r"^/v1/payment_intents/(?P<ident>\w+)$").mock(side_effect=self._get_intent)
        router.post("/v1/refunds").mock(side_effect=self._post_refund)
        router.get("/v1/refunds").mock(side_effect=self._list_refunds)
        router.get(path__regex=r"^/v1/refunds/(?P<ident>\w+)$").mock(side_effect=self._get_refund)

    # -- idempotency ------------------------------------------------------------------

    def _forget_old_keys(self) -> None:
        now = self.clock.unix()
        for key in [k for k, saved in self._saved.items() if now - saved.at >= KEY_RETENTION.total_seconds()]:
            del self._saved[key]

    def _replay(self, request: httpx.Request) -> httpx.Response | None:
        """The saved answer for the request's key, an idempotency error, or ``None`` to execute it."""
        key = request.headers.get("idempotency-key")
        if key is None:
            return None
        self._forget_old_keys()
        fingerprint = f"{request.method} {request.url.path} {request.content.decode()}"
        saved = self._saved.get(key)
        if saved is None:
            if key in self._in_flight:
                return _error(409, "idempotency_error", "A request with this key is being processed; retry later.")
            self._in_flight.add(key)
            return None
        if saved.fingerprint != fingerprint:
            return _error(
                400,
                "idempotency_error",
                f"Keys for idempotent requests can only be used with the same parameters they were first used with. "
                f"Try using a key other than '{key}' if you meant to execute a different request.",
            )
        return httpx.Response(saved.status, json=saved.body, headers={"Idempotent-Replayed": "true"})

    def _save(self, request: httpx.Request, status: int, body: dict[str, Any]) -> httpx.Response:
        key = request.headers.get("idempotency-key")
        if key is not None:
            fingerprint = f"{request.method} {request.url.path} {request.content.decode()}"
            self._saved[key] = _Saved(fingerprint, status, copy.deepcopy(body), self.clock.unix())
            self._in_flight.discard(key)
        return httpx.Response(status, json=body, headers={"Request-Id": f"req_{self._next('')}"})

    def _release(self, request: httpx.Request) -> None:
        key = request.headers.get("idempotency-key")
        if key is not None:
            self._in_flight.discard(key)

    def _idempotent(
        self, handler: Callable[[httpx.Request, dict[str, str]], tuple[int, dict[str, Any]]]
    ) -> Callable[..., httpx.Response]:
        def side_effect(request: httpx.Request, **path: str) -> httpx.Response:
            with self._lock:
                replayed = self._replay(request)
                if replayed is not None:
                    return replayed
                status, body = handler(request, path)
                if status == 400:  # failed validation: nothing saved
                    self._release(request)
                    return httpx.Response(status, json=body)
                return self._save(request, status, body)

        return side_effect

    # -- PaymentIntents -------------------------------------------------------------------

    def _next(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq:08d}sim"

    def _create_intent(self, request: httpx.Request, _: dict[str, str]) -> tuple[int, dict[str, Any]]:
        params = _form(request)
        ident = self._next("pi_")
        intent = resource(
            "payment_intent",
            id=ident,
            amount=int(params["amount"]),
            amount_received=0,
            amount_capturable=0,
            currency=params["currency"],
            capture_method=params.get("capture_method", "automatic"),
            client_secret=f"{ident}_secret_sim",
            status="requires_payment_method",
            last_payment_error=None,
            next_action=None,
            latest_charge=None,
            payment_method=None,
            customer=None,
            metadata=_metadata(params),
            created=int(self.clock.unix()),
        )
        self.intents[ident] = intent
        return 200, intent

    def _confirm_intent(self, request: httpx.Request, path: dict[str, str]) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(path["ident"])
        if intent is None:
            return _missing("payment_intent", path["ident"])
        params = _form(request)
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            payment_method=params.get("payment_method", "pm_card_visa"),
            latest_charge=self._next("ch_"),
        )
        return 200, copy.deepcopy(intent)

    def _get_intent(self, request: httpx.Request, ident: str) -> httpx.Response:
        with self._lock:
            intent = self.intents.get(ident)
            if intent is None:
                return _response(*_missing("payment_intent", ident))
            return httpx.Response(200, json=copy.deepcopy(intent))

    # -- Refunds ------------------------------------------------------------------------------

    def _post_refund(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.refund_posts += 1
            key = request.headers.get("idempotency-key", "")
            self.keys_used.append(key)
            fault = self.faults.popleft() if self.faults else None
            if fault is Fault.RESET_BEFORE_SENDING:
                raise httpx.WriteError("[Errno 104] Connection reset by peer")
            if fault is Fault.UNAVAILABLE_503:
                return _error(503, "api_error", "Stripe is temporarily unavailable.")
            replayed = self._replay(request)
            if replayed is not None:
                return self._answer(replayed, fault)
        if fault is Fault.HELD:  # the key is in flight while Stripe works on it
            self.held.set()
            assert self.release.wait(30), "the held refund request was never released"
        with self._lock:
            if fault is Fault.REPLAYED_500_NOT_MADE:
                return self._save(request, 500, _error_body("api_error", "An unknown error occurred."))
            status, body = self._create_refund(request)
            if status == 400:
                self._release(request)
                return httpx.Response(status, json=body)
            if fault is Fault.REPLAYED_500_MADE:
                return self._save(request, 500, _error_body("api_error", "An unknown error occurred."))
            response = self._save(request, status, body)
        if fault in {Fault.WEBHOOK_FIRST, Fault.WEBHOOK_FIRST_THEN_TIMEOUT}:
            self.deliver_events(only_refund=body["id"])
        return self._answer(response, fault)

    @staticmethod
    def _answer(response: httpx.Response, fault: Fault | None) -> httpx.Response:
        if fault in {Fault.TIMEOUT_AFTER_SUCCESS, Fault.WEBHOOK_FIRST_THEN_TIMEOUT}:
            raise httpx.ReadTimeout("The read operation timed out")
        if fault is Fault.RESET_AFTER_SENDING:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return response

    def _create_refund(self, request: httpx.Request) -> tuple[int, dict[str, Any]]:
        params = _form(request)
        intent = self.intents.get(params.get("payment_intent", ""))
        if intent is None:
            return _missing("payment_intent", params.get("payment_intent", ""))
        amount = int(params.get("amount", intent["amount_received"]))
        taken = sum(
            r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent["id"] and r["status"] in _HELD
        )
        if amount <= 0 or amount > intent["amount_received"] - taken:
            return 400, _error_body(
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge",
                code="amount_too_large",
            )
        status = self.refund_statuses.popleft() if self.refund_statuses else "succeeded"
        refund = resource(
            "refund",
            id=self._next("re_"),
            amount=amount,
            currency=intent["currency"],
            charge=intent["latest_charge"],
            payment_intent=intent["id"],
            metadata=_metadata(params),
            status=status,
            created=int(self.clock.unix()),
        )
        self.refunds[refund["id"]] = refund
        self._queue("refund.created", refund)
        if status == "succeeded":
            self._queue_charge_refunded(refund)
        return 200, copy.deepcopy(refund)

    def _move(self, refund_ref: str, status: str, **changes: Any) -> None:
        with self._lock:
            refund = self.refunds[refund_ref]
            was = refund["status"]
            refund.update(status=status, **changes)
            self._queue("refund.updated", refund)
            if status == "failed":
                self._queue("refund.failed", refund)
            elif status == "succeeded" and was != "succeeded":
                self._queue_charge_refunded(refund)

    def _queue(self, event_type: str, obj: dict[str, Any]) -> None:
        self.events.append(_Event(self._next("evt_"), event_type, copy.deepcopy(obj)))

    def _queue_charge_refunded(self, refund: dict[str, Any]) -> None:
        intent = self.intents[refund["payment_intent"]]
        refunded = self.succeeded_minor(intent["id"])
        newest_first = [r for r in reversed(self.refunds.values()) if r["payment_intent"] == intent["id"]]
        newest_first.remove(refund)
        charge = resource(
            "charge",
            id=intent["latest_charge"],
            amount=intent["amount"],
            amount_captured=intent["amount_received"],
            amount_refunded=refunded,
            refunded=refunded >= intent["amount_received"],
            currency=intent["currency"],
            payment_intent=intent["id"],
            metadata=dict(intent["metadata"]),
            refunds={
                "object": "list",
                "url": f"/v1/charges/{intent['latest_charge']}/refunds",
                "has_more": False,
                "data": copy.deepcopy([refund, *newest_first]),
            },
        )
        self._queue("charge.refunded", charge)

    def _get_refund(self, request: httpx.Request, ident: str) -> httpx.Response:
        with self._lock:
            refund = self.refunds.get(ident)
            if refund is None:
                return _response(*_missing("refund", ident))
            return httpx.Response(200, json=copy.deepcopy(refund))

    def _list_refunds(self, request: httpx.Request) -> httpx.Response:
        query = {k: v[0] for k, v in parse_qs(request.url.query.decode()).items()}
        with self._lock:
            newest_first = [
                r for r in reversed(self.refunds.values()) if r["payment_intent"] == query.get("payment_intent")
            ]
            after = query.get("starting_after")
            if after is not None:
                ids = [r["id"] for r in newest_first]
                newest_first = newest_first[ids.index(after) + 1 :] if after in ids else []
            size = min(int(query.get("limit", "10")), self.page_size)
            page = newest_first[:size]
            body = {
                "object": "list",
                "url": "/v1/refunds",
                "has_more": len(newest_first) > size,
                "data": copy.deepcopy(page),
            }
            return httpx.Response(200, json=body)


_HELD = frozenset({"pending", "requires_action", "succeeded"})


def _ok(refund: dict[str, Any]) -> bool:
    return bool(refund["status"] == "succeeded")


def _about(event: _Event, refund_ref: str) -> bool:
    if event.obj.get("object") == "refund":
        return bool(event.obj["id"] == refund_ref)
    data = event.obj.get("refunds", {}).get("data") or [{}]
    return bool(data[0].get("id") == refund_ref)


def _form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode(), keep_blank_values=True).items()}


def _metadata(params: dict[str, str]) -> dict[str, str]:
    return {k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")}


def _error_body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **extra}}


def _error(status: int, kind: str, message: str) -> httpx.Response:
    return httpx.Response(status, json=_error_body(kind, message))


def _missing(what: str, ident: str) -> tuple[int, dict[str, Any]]:
    return 404, _error_body("invalid_request_error", f"No such {what}: '{ident}'", code="resource_missing", param="id")


def _response(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body)
