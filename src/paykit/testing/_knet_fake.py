"""A stateful fake KNET Tranportal served through an httpx transport, so apps test the real adapter.

Written by hand, once for both APIs: :attr:`KnetFake.transport` serves
:class:`~paykit.providers.knet.KnetProvider` and
:class:`~paykit.providers.knet.AsyncKnetProvider` alike. It plays the three
legs of a KNET payment: the payment page (it decrypts the ``trandata`` of the
redirect with the resource key, as the gateway does), the encrypted response
POST the merchant's ``responseURL`` receives once the customer has paid
(:meth:`KnetFake.pay`), and the tranPipe XML inquiry (action 8) and refund
(action 2), answered per the K-064 manual.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

import httpx

from .._models import RefundStatus
from .._status import PaymentStatus
from ..providers._knet_crypto import encrypt_trandata
from ..providers._knet_wire import UDF_NAMES, parse_amount, parse_xml_fields
from ._clock import ManualClock
from ._knet import FakeKnet, KnetTransaction, knet_payment_request, knet_response_body
from ._stripe_fake import Fault
from ._wire_fake import AsyncEarlySink, EarlySink, FakeTransport, Outcome, RemotePayment, RemoteRefund, WebhookDelivery

if TYPE_CHECKING:
    from .._models import Payment
    from ..providers._async.knet import AsyncKnetProvider
    from ..providers._sync.knet import KnetProvider

__all__ = ["KnetFake", "KnetRefund"]

_S = PaymentStatus
_FORM = {"content-type": "application/x-www-form-urlencoded"}


@dataclass
class KnetRefund:
    """One refund (action 2) KNET made: its transaction id, the payment's track id, its fils."""

    tranid: str
    trackid: str
    paymentid: str
    fils: int


class KnetFake:
    """A fake KNET terminal: payment pages, customers paying, inquiries and refunds, with state.

    The gateway decrypts every ``paymentInit`` redirect with the resource key
    and refuses one with another terminal's credentials or action.
    :meth:`pay` plays the customer on the payment page and queues the
    encrypted POST KNET makes to the response URL (``trandata``, plus the plain
    ``paymentid`` and ``trackid``); :meth:`take_deliveries` hands those out.
    The tranPipe endpoint answers an inquiry with the transaction's state and a
    refund with ``<result>CAPTURED</result>`` when it went through, a
    ``FAILURE`` when it would exceed the capture (never refunded above it), and
    an ``!ERROR!`` for a transaction that was not captured. KNET has no
    idempotency keys.

    >>> fake = KnetFake()
    >>> provider = fake.provider()  # a real KnetProvider whose tranPipe calls go to the fake

    Args:
        clock: Shared with the service (KNET itself keeps no time paykit sees).
        tranportal_id: The terminal id the fake expects.
        tranportal_password: Its password.
        resource_key: The 16-character key the gateway encrypts with.
    """

    provider_name = "knet"
    display_name = "KNET"
    idempotency_retention = timedelta(0)

    def __init__(
        self,
        *,
        clock: ManualClock | None = None,
        tranportal_id: str = "123456",
        tranportal_password: str = "paykit-fake",
        resource_key: str = "PAYKITFAKEKEY016",
    ) -> None:
        self.clock = clock or ManualClock()
        self.tranportal_id = tranportal_id
        self.tranportal_password = tranportal_password
        self.resource_key = resource_key
        self._pipe = FakeKnet(resource_key, tranportal_id=tranportal_id, tranportal_password=tranportal_password)
        self.transactions: dict[str, KnetTransaction] = self._pipe.transactions
        """Every transaction (customer payment attempt), by KNET payment id."""
        self.initialized: dict[str, dict[str, str]] = {}
        """The decrypted purchase request of every payment page opened, by track id."""
        self.refunds: list[KnetRefund] = []
        """Every refund KNET made, in order."""
        self.requests: list[dict[str, str]] = self._pipe.requests
        """The fields of every tranPipe request, in order."""
        self.transport = FakeTransport(self)
        """The httpx transport (sync and async) that serves the fake."""
        self.early_sink: EarlySink | None = None
        """Unused: KNET's only webhook follows the customer's payment, not an API answer."""
        self.async_early_sink: AsyncEarlySink | None = None
        """Unused, as :attr:`early_sink`."""
        self.on_request: Callable[[str], Fault | None] | None = None
        """Asked for a fault per tranPipe request (``retrieve`` or ``refund``) when none was injected."""
        self._faults: dict[str, deque[Fault]] = {}
        self._outbox: list[WebhookDelivery] = []
        self._lock = threading.RLock()

    # -- wiring ------------------------------------------------------------------------

    def _options(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "response_url": "https://shop.example/knet/response",
            "error_url": "https://shop.example/knet/error",
            "receipt_url": "https://shop.example/knet/receipt",
            **options,
        }

    def provider(self, **options: Any) -> KnetProvider:
        """A real :class:`~paykit.providers.knet.KnetProvider` whose tranPipe calls this fake answers."""
        from ..providers._sync.knet import KnetProvider  # noqa: PLC0415  # the knet extra, on use

        return KnetProvider(
            self.tranportal_id,
            self.tranportal_password,
            self.resource_key,
            http_client=httpx.Client(transport=self.transport),
            **self._options(options),
        )

    def async_provider(self, **options: Any) -> AsyncKnetProvider:
        """A real :class:`~paykit.providers.knet.AsyncKnetProvider` whose tranPipe calls this fake answers."""
        from ..providers._async.knet import AsyncKnetProvider  # noqa: PLC0415  # the knet extra, on use

        return AsyncKnetProvider(
            self.tranportal_id,
            self.tranportal_password,
            self.resource_key,
            http_client=httpx.AsyncClient(transport=self.transport),
            **self._options(options),
        )

    # -- the customer ------------------------------------------------------------------

    def open(self, redirect_url: str) -> str:
        """The customer's browser opens the payment page: KNET decrypts and checks the request.

        Returns:
            The request's track id.

        Raises:
            ValueError: KNET would refuse the request (credentials, action, undecryptable).
        """
        try:
            request = knet_payment_request(redirect_url, self.resource_key)
        except Exception as exc:  # anything undecryptable is refused alike
            raise ValueError("KNET cannot decrypt this payment request") from exc
        if (
            request.get("id") != self.tranportal_id
            or request.get("password") != self.tranportal_password
            or request.get("action") != "1"
            or not request.get("trackid")
        ):
            raise ValueError("KNET would refuse this payment request")
        parse_amount(request.get("amt", ""))
        with self._lock:
            self.initialized[request["trackid"]] = request
        return request["trackid"]

    def pay(self, track_id: str, result: str = "CAPTURED") -> KnetTransaction:
        """The customer pays (or fails to) on the page opened for ``track_id``.

        Records the transaction and queues the encrypted POST KNET makes to the
        response URL.

        Args:
            track_id: A track id whose payment page was opened (:meth:`open`).
            result: ``CAPTURED``, ``NOT CAPTURED``, ``CANCELED`` or ``HOST TIMEOUT``.

        Raises:
            KeyError: No payment page was opened for ``track_id``.
            ValueError: The payment was already captured.
        """
        with self._lock:
            request = self.initialized[track_id]
            if any(t.trackid == track_id and t.result == "CAPTURED" for t in self.transactions.values()):
                raise ValueError(f"track id {track_id} was already captured")
            txn = self._pipe.add_transaction(trackid=track_id, amt=request["amt"], result=result)
            txn.udfs = {name: request.get(name, "") for name in UDF_NAMES}
            body = knet_response_body(
                self.resource_key,
                trackid=txn.trackid,
                result=result,
                amt=txn.amt,
                paymentid=txn.paymentid,
                tranid=txn.tranid,
                ref=txn.ref,
                auth=txn.auth,
                postdate=txn.postdate,
                udfs=txn.udfs,
            )
            event_id = f"{txn.paymentid}:{result}"
            self._outbox.append(WebhookDelivery(event_id, f"response.{result}", body, int(self.clock.unix())))
            return txn

    # -- deliveries ----------------------------------------------------------------------

    def take_deliveries(self) -> list[WebhookDelivery]:
        """Every response POST queued since the last call, oldest first."""
        with self._lock:
            taken, self._outbox = self._outbox, []
            return taken

    def has_queued(self) -> bool:
        """Whether response POSTs wait in the queue."""
        return bool(self._outbox)

    def signed(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """The response POST as KNET sends it (its ``trandata`` is encrypted with the resource key)."""
        return delivery.body, dict(_FORM)

    def forged(self, delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
        """A forgery: the same fields claiming ``CAPTURED``, encrypted with another key."""
        form = dict(parse_qsl(delivery.body.decode()))
        plain = f"paymentid={form.get('paymentid', '')}&result=CAPTURED&trackid={form.get('trackid', '')}&amt=1.000"
        forged = [("paymentid", form.get("paymentid", "")), ("trackid", form.get("trackid", ""))]
        forged.append(("trandata", encrypt_trandata(plain, "FORGEDKEY0000016")))
        return urlencode(forged).encode(), dict(_FORM)

    # -- steering --------------------------------------------------------------------------

    def inject(self, fault: Fault, *, on: str = "any", times: int = 1) -> None:
        """Make the next ``times`` tranPipe requests of ``on`` (``retrieve``, ``refund``, ``any``) fail."""
        with self._lock:
            self._faults.setdefault(on, deque()).extend([fault] * times)

    # -- the test's view -----------------------------------------------------------------

    def transaction_of(self, track_id: str) -> KnetTransaction | None:
        """The last transaction for ``track_id`` (the captured one if any)."""
        with self._lock:
            found = [t for t in self.transactions.values() if t.trackid == track_id]
            captured = [t for t in found if t.result == "CAPTURED"]
            chosen = captured or found
            return chosen[-1] if chosen else None

    def remote_payment(self, payment: Payment) -> RemotePayment | None:
        """What KNET holds for ``payment`` (its track id), for ``assert_consistent``."""
        track_id = payment.provider_ref or ""
        with self._lock:
            txn = self.transaction_of(track_id)
            refunds = [
                RemoteRefund(r.tranid, RefundStatus.SUCCEEDED, r.fils) for r in self.refunds if r.trackid == track_id
            ]
            if txn is None:
                allowed = frozenset({_S.REQUIRES_ACTION, _S.PENDING, _S.CANCELED})
            elif txn.result == "CAPTURED":
                allowed = frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED})
            else:
                allowed = frozenset({_S.FAILED, _S.CANCELED})
            captured = parse_amount(txn.amt).minor_units if txn is not None and txn.result == "CAPTURED" else 0
            return RemotePayment(
                ref=track_id,
                status=txn.result if txn is not None else ("not paid" if track_id in self.initialized else "unknown"),
                allowed=allowed,
                captured_minor=captured,
                refunded_minor=sum(r.amount_minor for r in refunds),
                refunds=refunds,
                what="KNET's transaction",
            )

    def charges(self) -> dict[str, list[str]]:
        """Track id -> payment ids of its captured transactions (a track id is one paykit payment)."""
        found: dict[str, list[str]] = {}
        with self._lock:
            for txn in self.transactions.values():
                if txn.result == "CAPTURED":
                    found.setdefault(txn.trackid, []).append(txn.paymentid)
        return found

    def unknown_payment_ids(self) -> dict[str, str]:
        """Nothing: KNET's track ids are derived from paykit ids, not paykit ids themselves."""
        return {}

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, request: httpx.Request) -> Outcome:
        path = request.url.path
        if path.endswith("/PaymentHTTP.htm"):
            try:
                track_id = self.open(str(request.url))
            except ValueError:
                return Outcome(httpx.Response(200, text="<html>Invalid Payment Request</html>"), None)
            return Outcome(httpx.Response(200, text=f"<html>KNET payment page {track_id}</html>"), None)
        if not path.endswith("/tranPipe.htm"):
            return Outcome(httpx.Response(404, text="Not Found"), None)
        fields = parse_xml_fields(request.content.decode("utf-8", "replace"))
        operation = {"8": "retrieve", "2": "refund"}.get(fields.get("action", ""), "unknown")
        with self._lock:
            fault = self._next_fault(operation)
            if fault is Fault.RESET_BEFORE_SENDING:
                return Outcome(None, httpx.WriteError("[Errno 104] Connection reset by peer"))
            if fault in {Fault.UNAVAILABLE_503, Fault.SERVER_ERROR_500}:
                status = 503 if fault is Fault.UNAVAILABLE_503 else 500
                return Outcome(httpx.Response(status, text="Service Unavailable"), None)
            response = self._pipe.handler(request)
            if operation == "refund":
                self._record_refund(fields, response.text)
        if fault is Fault.TIMEOUT_AFTER_SUCCESS:
            return Outcome(None, httpx.ReadTimeout("The read operation timed out"))
        if fault is Fault.RESET_AFTER_SENDING:
            return Outcome(None, httpx.RemoteProtocolError("Server disconnected without sending a response."))
        return Outcome(response, None)

    def _record_refund(self, fields: dict[str, str], reply: str) -> None:
        if reply.startswith("!ERROR!"):
            return
        answer = parse_xml_fields(reply)
        if answer.get("result") != "CAPTURED":
            return
        self.refunds.append(
            KnetRefund(
                tranid=answer.get("tranid", ""),
                trackid=answer.get("trackid", ""),
                paymentid=answer.get("payid", ""),
                fils=parse_amount(answer.get("amt", "0")).minor_units,
            )
        )

    def _requeue(self, early: list[WebhookDelivery]) -> None:
        with self._lock:
            self._outbox.extend(early)

    def _next_fault(self, operation: str) -> Fault | None:
        for name in (operation, "any"):
            queue = self._faults.get(name)
            if queue:
                return queue.popleft()
        return self.on_request(operation) if self.on_request is not None else None
