"""KNET helpers for tests: KNET's encrypted response leg and a fake tranPipe.

Tests of an application that takes KNET payments need two things from KNET:
the form it POSTs to the response URL (encrypted with the terminal's resource
key), and answers to the inquiry and refund calls paykit makes to confirm and
refund payments. :func:`knet_response_body` builds the first;
:class:`FakeKnet` plays KNET for both, behind an ``httpx.MockTransport``.

The ``IPAY...`` error codes the fake answers with follow KNET's format; they
are stand-ins, not a catalogue of KNET's real codes.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from .._money import Money
from ..providers._knet_crypto import decrypt_trandata, encrypt_trandata
from ..providers._knet_wire import CURRENCY, UDF_NAMES, format_amount, parse_amount, parse_xml_fields

__all__ = ["FakeKnet", "KnetTransaction", "knet_error_body", "knet_payment_request", "knet_response_body"]


def _amount_text(amt: str | Money) -> str:
    return format_amount(amt) if isinstance(amt, Money) else amt


def knet_response_body(
    resource_key: str,
    *,
    trackid: str,
    result: str = "CAPTURED",
    amt: str | Money = "12.500",
    paymentid: str = "100202412345678901",
    tranid: str = "202412345678901",
    ref: str = "412345678901",
    auth: str = "B12345",
    postdate: str = "0101",
    udfs: Mapping[str, str] | None = None,
    plain_ids: bool = True,
) -> bytes:
    """The form body KNET POSTs to the response URL after a payment.

    .. versionadded:: 0.1.0

    Args:
        resource_key: The terminal's 16-character resource key.
        trackid: The payment's track id (``payment.provider_ref`` in paykit).
        result: ``CAPTURED``, ``NOT CAPTURED``, ``CANCELED`` or ``HOST TIMEOUT``.
        amt: The amount, ``"12.500"`` or KWD :class:`~paykit.Money`.
        paymentid: KNET's payment id.
        tranid: KNET's transaction id.
        ref: The reference (sequence) number.
        auth: The authorization code.
        postdate: The posting date, ``MMDD``.
        udfs: ``udf1``..``udf5`` values to echo.
        plain_ids: Also send ``paymentid`` and ``trackid`` unencrypted, as KNET does.

    Returns:
        ``application/x-www-form-urlencoded`` bytes with ``trandata``.
    """
    fields = [
        ("paymentid", paymentid),
        ("result", result),
        ("auth", auth),
        ("avr", "N"),
        ("ref", ref),
        ("tranid", tranid),
        ("postdate", postdate),
        ("trackid", trackid),
        *((name, (udfs or {}).get(name, "")) for name in UDF_NAMES),
        ("amt", _amount_text(amt)),
        ("authRespCode", "00" if result == "CAPTURED" else "05"),
    ]
    # KNET concatenates the decrypted fields raw, spaces included.
    trandata = encrypt_trandata("&".join(f"{k}={v}" for k, v in fields), resource_key)
    form = [("paymentid", paymentid), ("trackid", trackid)] if plain_ids else []
    form.append(("trandata", trandata))
    return urlencode(form).encode()


def knet_error_body(
    *,
    trackid: str | None,
    paymentid: str | None = None,
    error: str = "IPAY0100055",
    error_text: str = "Payment could not be processed",
    amt: str | Money | None = None,
) -> bytes:
    """The unencrypted form KNET POSTs to the error URL.

    .. versionadded:: 0.1.0

    Returns:
        Form bytes with ``Error``, ``ErrorText`` and the ids given.
    """
    form = [("Error", error), ("ErrorText", error_text)]
    form += [(k, v) for k, v in (("paymentid", paymentid), ("trackid", trackid)) if v]
    if amt is not None:
        form.append(("amt", _amount_text(amt)))
    return urlencode(form).encode()


def knet_payment_request(redirect_url: str, resource_key: str) -> dict[str, str]:
    """Decrypt the purchase request inside a KNET payment page URL.

    .. versionadded:: 0.1.0

    Returns:
        The plain-text fields (``id``, ``password``, ``action``, ``amt``,
        ``trackid``, ``udf1``...), split the way KNET splits them.
    """
    query = dict(parse_qsl(urlsplit(redirect_url).query))
    plain = decrypt_trandata(query["trandata"], resource_key)
    return dict(pair.partition("=")[::2] for pair in plain.split("&"))


@dataclass
class KnetTransaction:
    """One transaction the fake KNET knows."""

    paymentid: str
    trackid: str
    amt: str
    result: str = "CAPTURED"
    tranid: str = ""
    ref: str = ""
    auth: str = "B12345"
    postdate: str = "0101"
    udfs: dict[str, str] = field(default_factory=dict)
    refunded_fils: int = 0

    def reply_xml(self) -> str:
        """The inquiry answer KNET gives for this transaction."""
        fields = [
            ("result", self.result),
            ("auth", self.auth),
            ("ref", self.ref),
            ("avr", "N"),
            ("postdate", self.postdate),
            ("tranid", self.tranid),
            ("payid", self.paymentid),
            *((name, self.udfs.get(name, "")) for name in UDF_NAMES),
            ("trackid", self.trackid),
            ("amt", self.amt),
            ("authRespCode", "00" if self.result == "CAPTURED" else "05"),
        ]
        return "".join(f"<{k}>{v}</{k}>" for k, v in fields)


class FakeKnet:
    """KNET in memory: completes payments and answers the tranPipe endpoint.

    .. versionadded:: 0.1.0

    >>> knet = FakeKnet("ABCDEFGHIJKLMNOP")
    >>> client = httpx.Client(transport=knet.transport())

    Args:
        resource_key: The terminal's resource key (the provider's too).
        tranportal_id: When set, requests with another id are refused.
        tranportal_password: When set, requests with another password are refused.

    Attributes:
        transactions: Every transaction, by KNET payment id.
        requests: The fields of every tranPipe request received, in order.
    """

    def __init__(
        self,
        resource_key: str,
        *,
        tranportal_id: str | None = None,
        tranportal_password: str | None = None,
    ) -> None:
        self.resource_key = resource_key
        self._id = tranportal_id
        self._password = tranportal_password
        self.transactions: dict[str, KnetTransaction] = {}
        self.requests: list[dict[str, str]] = []
        self._ids = itertools.count(1)

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):012d}"

    def transport(self) -> httpx.MockTransport:
        """An ``httpx.MockTransport`` answering with :meth:`handler`."""
        return httpx.MockTransport(self.handler)

    def add_transaction(
        self, *, trackid: str, amt: str | Money, result: str = "CAPTURED", paymentid: str | None = None
    ) -> KnetTransaction:
        """Record a transaction as if a customer had paid on KNET's page."""
        paymentid = paymentid or self._next_id("100")
        txn = KnetTransaction(
            paymentid=paymentid,
            trackid=trackid,
            amt=_amount_text(amt),
            result=result,
            tranid=self._next_id("200"),
            ref=self._next_id("4"),
        )
        self.transactions[paymentid] = txn
        return txn

    def complete_payment(self, redirect_url: str, *, result: str = "CAPTURED") -> bytes:
        """Play the customer on KNET's payment page.

        Decrypts the purchase request in ``redirect_url`` (as KNET does),
        records the transaction with ``result`` and returns the form KNET then
        POSTs to the response URL.

        Raises:
            ValueError: The request's credentials or action are not what KNET accepts.
        """
        request = knet_payment_request(redirect_url, self.resource_key)
        if not self._credentials_ok(request) or request.get("action") != "1":
            raise ValueError("KNET would refuse this payment request")
        txn = self.add_transaction(trackid=request["trackid"], amt=request["amt"], result=result)
        txn.udfs = {name: request.get(name, "") for name in UDF_NAMES}
        return knet_response_body(
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

    def _credentials_ok(self, fields: Mapping[str, str]) -> bool:
        return (self._id is None or fields.get("id") == self._id) and (
            self._password is None or fields.get("password") == self._password
        )

    def _find(self, transid: str, kind: str) -> KnetTransaction | None:
        if kind.lower() == "paymentid":
            return self.transactions.get(transid)
        attribute = "trackid" if kind.lower() == "trackid" else "tranid"
        matches = [t for t in self.transactions.values() if getattr(t, attribute) == transid]
        return matches[-1] if matches else None

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer one tranPipe request (inquiry or refund) like KNET."""
        fields = parse_xml_fields(request.content.decode("utf-8"))
        self.requests.append(fields)
        if not self._credentials_ok(fields):
            return _text("!ERROR!-IPAY0100124-Problem occurred while validating tranportal id")
        txn = self._find(fields.get("transid", ""), fields.get("udf5", ""))
        if txn is None:
            return _text("!ERROR!-IPAY0100263-Transaction not found")
        action = fields.get("action")
        if action == "8":
            return _text(txn.reply_xml())
        if action == "2":
            return self._refund(txn, fields)
        return _text("!ERROR!-IPAY0100004-Invalid action type")

    def _refund(self, txn: KnetTransaction, fields: Mapping[str, str]) -> httpx.Response:
        if txn.result != "CAPTURED":
            return _text("!ERROR!-IPAY0100160-Original transaction not captured")
        fils = parse_amount(fields.get("amt", "0")).minor_units
        if fils <= 0 or txn.refunded_fils + fils > parse_amount(txn.amt).minor_units:
            return _text("<result>FAILURE(REFUND AMOUNT EXCEEDS)</result>")
        txn.refunded_fils += fils
        reply = [
            ("result", "CAPTURED"),
            ("ref", self._next_id("4")),
            ("postdate", txn.postdate),
            ("tranid", self._next_id("300")),
            ("payid", txn.paymentid),
            ("trackid", fields.get("trackid", "")),
            ("amt", Money(fils, CURRENCY).to_decimal_string()),
        ]
        return _text("".join(f"<{k}>{v}</{k}>" for k, v in reply))


def _text(body: str) -> httpx.Response:
    return httpx.Response(200, text=body, headers={"content-type": "text/plain;charset=UTF-8"})
