"""KNET Tranportal wire format: building requests and reading answers. No I/O.

Everything here is shared by the sync adapter (``knet.py``) and a future async
one; the adapter only adds HTTP and the decisions that need it.

KNET speaks three formats:

* the payment init plain text, ``id=..&password=..&action=1&...``, concatenated
  raw (KNET does not URL-decode it), then encrypted into ``trandata``;
* the response leg, a form POST whose ``trandata`` decrypts to the same kind of
  ``key=value&...`` text, or plain ``Error``/``ErrorText`` fields on failure;
* the ``tranPipe`` XML endpoint for inquiry (action 8) and refund (action 2):
  a request made of bare XML elements, answered the same way, or with a line
  ``!ERROR!-IPAY0100xxx-message``.

Because the texts are concatenated raw, every value paykit puts in them is
checked against a conservative character set first: a ``&`` in a UDF would
otherwise inject a field (``udf1=x&amt=0.001``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .._errors import InvalidRequestError, ProviderError, WebhookVerificationError
from .._money import Money
from .._status import PaymentStatus

__all__ = [
    "CURRENCY",
    "CURRENCY_NUMERIC",
    "ENDPOINTS",
    "LANGUAGE_IDS",
    "PROVIDER",
    "REFUND_SUCCESS",
    "KnetEndpoints",
    "KnetResponse",
    "TranPipeReply",
    "build_inquiry_xml",
    "build_payment_page_url",
    "build_payment_plain_text",
    "build_refund_xml",
    "derive_trackid",
    "format_amount",
    "normalize_result",
    "parse_amount",
    "parse_form_body",
    "parse_key_value_text",
    "parse_tranpipe_reply",
    "parse_xml_fields",
    "receipt_redirect_line",
    "status_for_inquiry",
    "status_for_result",
    "udfs_from_metadata",
    "validate_udf",
]

PROVIDER: Final = "knet"
CURRENCY: Final = "KWD"
CURRENCY_NUMERIC: Final = "414"
TRACKID_MAX: Final = 40
UDF_MAX: Final = 255
UDF_NAMES: Final = ("udf1", "udf2", "udf3", "udf4", "udf5")

LANGUAGE_IDS: Final[Mapping[str, str]] = {"EN": "USA", "AR": "AR"}
"""paykit's language -> KNET ``langid`` (KNET's own samples use ``USA`` for English)."""

ACTION_PURCHASE: Final = "1"
ACTION_REFUND: Final = "2"
ACTION_INQUIRY: Final = "8"

IdKind = Literal["TrackID", "PaymentID", "TransID"]
"""What an inquiry or refund's ``<transid>`` holds; KNET reads it from ``<udf5>``."""


@dataclass(frozen=True, slots=True)
class KnetEndpoints:
    """The two KNET URLs of one environment."""

    payment_page: str
    tranpipe: str


ENDPOINTS: Final[Mapping[str, KnetEndpoints]] = {
    "test": KnetEndpoints(
        payment_page="https://kpaytest.com.kw/kpg/PaymentHTTP.htm",
        tranpipe="https://www.kpaytest.com.kw/kpg/tranPipe.htm?param=tranInit",
    ),
    "production": KnetEndpoints(
        payment_page="https://www.kpay.com.kw/kpg/PaymentHTTP.htm",
        tranpipe="https://www.kpay.com.kw/kpg/tranPipe.htm?param=tranInit",
    ),
}

_RESULT_STATUS: Final[Mapping[str, PaymentStatus]] = {
    "CAPTURED": PaymentStatus.SUCCEEDED,
    "NOT CAPTURED": PaymentStatus.FAILED,
    "DENIED BY RISK": PaymentStatus.FAILED,
    "CANCELED": PaymentStatus.CANCELED,
    "CANCELLED": PaymentStatus.CANCELED,
    "VOIDED": PaymentStatus.CANCELED,
    "HOST TIMEOUT": PaymentStatus.PROCESSING,
}

# An inquiry (action 8) answers about a transaction in its own words (K-064 v1.4
# §3.5.5): SUCCESS or CAPTURED for a captured payment, FAILURE or SUSPECTED for a
# failed one; the response leg's own results keep their meaning.
_INQUIRY_STATUS: Final[Mapping[str, PaymentStatus]] = {
    **_RESULT_STATUS,
    "SUCCESS": PaymentStatus.SUCCEEDED,
    "FAILURE": PaymentStatus.FAILED,
    "SUSPECTED": PaymentStatus.FAILED,
}

REFUND_SUCCESS: Final = "CAPTURED"
"""The only refund (action 2) ``result`` that means the refund succeeded (K-064 v1.4 §3.7.3)."""

# KNET's sample code lists these as "junk" for UDFs; @ and / are in its manual.
# & = + % would also break or re-shape the raw key=value text.
_UDF_FORBIDDEN: Final = frozenset("!#$%^&*()+[]\\';,{}|\":<>?~`@/=")
_ALNUM: Final = re.compile(r"[A-Za-z0-9]+")
_XML_FIELD: Final = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)>([^<]*)</\1>")
_KNET_ERROR: Final = re.compile(r"!ERROR!-?\s*(?P<code>[A-Z]+[0-9]+)?\s*-?\s*(?P<message>.*)", re.DOTALL)
_XML_ESCAPES: Final = (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&apos;", "'"), ("&amp;", "&"))


def derive_trackid(paykit_id: str) -> str:
    """Derive KNET's ``trackid`` (at most 40 alphanumerics) from a paykit id.

    Deterministic, so a retried initialization produces the same request. An
    id that already fits is used as is; otherwise its alphanumerics (for
    readability) are followed by 16 hex digits of its SHA-256, so ids that
    differ only in punctuation still get different track ids.

    Raises:
        InvalidRequestError: ``paykit_id`` is empty.
    """
    if not paykit_id:
        raise InvalidRequestError("cannot derive a KNET trackid from an empty id")
    if len(paykit_id) <= TRACKID_MAX and _ALNUM.fullmatch(paykit_id):
        return paykit_id
    readable = "".join(ch for ch in paykit_id if ch.isascii() and ch.isalnum())
    digest = hashlib.sha256(paykit_id.encode("utf-8")).hexdigest()[:16]
    return readable[: TRACKID_MAX - len(digest)] + digest


def format_amount(amount: Money) -> str:
    """KWD with exactly three decimals (``"12.500"``), from integer fils.

    Raises:
        InvalidRequestError: Not KWD, or not positive.
    """
    if amount.currency != CURRENCY:
        raise InvalidRequestError(f"KNET accepts only KWD, not {amount.currency}")
    if amount.minor_units <= 0:
        raise InvalidRequestError("a KNET amount must be positive")
    return amount.to_decimal_string()


def parse_amount(text: str) -> Money:
    """KNET's ``amt`` as KWD :class:`Money`.

    Raises:
        InvalidRequestError: Not a KWD amount.
    """
    return Money.of(text.strip(), CURRENCY)


def validate_udf(name: str, value: str) -> str:
    r"""Check one user-defined field before it enters the raw plain text.

    Raises:
        InvalidRequestError: Longer than 255 characters, or holding a control
            character or one of ``!#$%^&*()+[]\';,{}|":<>?~`@/=``.
    """
    if len(value) > UDF_MAX:
        raise InvalidRequestError(f"KNET {name} is longer than {UDF_MAX} characters")
    bad = sorted({ch for ch in value if ch in _UDF_FORBIDDEN or not ch.isprintable()})
    if bad:
        raise InvalidRequestError(f"KNET {name} must not contain {''.join(bad)!r}")
    return value


def udfs_from_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Pick ``udf1``..``udf5`` out of a payment's metadata, validated.

    Raises:
        InvalidRequestError: A UDF value is invalid (see :func:`validate_udf`).
    """
    return {name: validate_udf(name, metadata[name]) for name in UDF_NAMES if name in metadata}


def build_payment_plain_text(
    *,
    tranportal_id: str,
    password: str,
    langid: str,
    amount: Money,
    response_url: str,
    error_url: str,
    trackid: str,
    udfs: Mapping[str, str],
) -> str:
    """The purchase (action 1) plain text, in KNET's field order, raw-concatenated.

    Raises:
        InvalidRequestError: The amount is not positive KWD, or a UDF is invalid.
    """
    fields = [
        ("id", tranportal_id),
        ("password", password),
        ("action", ACTION_PURCHASE),
        ("langid", langid),
        ("currencycode", CURRENCY_NUMERIC),
        ("amt", format_amount(amount)),
        ("responseURL", response_url),
        ("errorURL", error_url),
        ("trackid", trackid),
    ]
    fields += [(name, validate_udf(name, udfs.get(name, ""))) for name in UDF_NAMES]
    return "&".join(f"{key}={value}" for key, value in fields)


def build_payment_page_url(
    endpoints: KnetEndpoints, *, trandata: str, tranportal_id: str, response_url: str, error_url: str
) -> str:
    """The KNET payment page URL the customer's browser is sent to."""
    query = (
        ("param", "paymentInit"),
        ("trandata", trandata),
        ("tranportalId", tranportal_id),
        ("responseURL", response_url),
        ("errorURL", error_url),
    )
    return endpoints.payment_page + "?" + "&".join(f"{k}={quote(v, safe=':/')}" for k, v in query)


def _reject_duplicates(pairs: Iterable[tuple[str, str]], what: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields and fields[key] != value:
            raise WebhookVerificationError(f"KNET {what} repeats the field {key!r}")
        fields[key] = value
    return fields


def parse_form_body(body: bytes) -> dict[str, str]:
    """Read the form KNET posts to the response or error URL.

    Raises:
        WebhookVerificationError: Not ASCII/UTF-8 form data, or a field repeated
            with different values.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError("KNET response body is not UTF-8 form data") from None
    try:
        pairs = parse_qsl(text.strip(), keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise WebhookVerificationError("KNET response body is not form data") from None
    return _reject_duplicates(pairs, "response body")


def parse_key_value_text(text: str) -> dict[str, str]:
    """Read decrypted ``trandata``: ``paymentid=..&result=CAPTURED&...``.

    Raises:
        WebhookVerificationError: A field repeated with different values.
    """
    return _reject_duplicates(parse_qsl(text.strip(), keep_blank_values=True), "trandata")


@dataclass(frozen=True, slots=True)
class KnetResponse:
    """The fields of a decrypted response leg that paykit acts on."""

    paymentid: str
    trackid: str
    result: str
    amt: str | None
    fields: Mapping[str, str] = field(repr=False)

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> KnetResponse:
        """Build from decrypted fields.

        Raises:
            WebhookVerificationError: ``paymentid``, ``trackid`` or ``result`` is missing.
        """
        missing = [name for name in ("paymentid", "trackid", "result") if not fields.get(name, "").strip()]
        if missing:
            raise WebhookVerificationError(f"KNET response lacks {', '.join(missing)}")
        amt = fields.get("amt", "").strip() or None
        return cls(
            paymentid=fields["paymentid"].strip(),
            trackid=fields["trackid"].strip(),
            result=normalize_result(fields["result"]),
            amt=amt,
            fields=dict(fields),
        )


def normalize_result(result: str) -> str:
    """KNET results compared case- and space-insensitively (``"not  captured"``)."""
    return " ".join(result.split()).upper()


def status_for_result(result: str) -> PaymentStatus | None:
    """The paykit status of a KNET response-leg ``result``; ``None`` when unknown."""
    return _RESULT_STATUS.get(normalize_result(result))


def status_for_inquiry(result: str) -> PaymentStatus | None:
    """The paykit status of an inquiry's ``result``; ``None`` when unknown.

    ``SUCCESS`` and ``CAPTURED`` mean captured; ``FAILURE`` and ``SUSPECTED`` a
    failed payment (K-064 v1.4 §3.5.5); the response leg's results
    (``NOT CAPTURED``, ``CANCELED``, ``HOST TIMEOUT``...) keep their meaning.
    A ``FAILURE`` with a reason in brackets (``FAILURE(…)``) is a failure too.
    """
    normalized = normalize_result(result)
    if normalized.startswith("FAILURE("):
        return PaymentStatus.FAILED
    return _INQUIRY_STATUS.get(normalized)


def _xml_value(name: str, value: str) -> str:
    # KNET's parser does not unescape entities, so values are checked, not escaped.
    if any(ch in value for ch in "<>&") or not value.isprintable():
        raise InvalidRequestError(f"KNET {name} contains characters the tranPipe XML cannot carry")
    return f"<{name}>{value}</{name}>"


def _build_xml(fields: Iterable[tuple[str, str]]) -> str:
    return "".join(_xml_value(name, value) for name, value in fields)


def build_inquiry_xml(
    *,
    tranportal_id: str,
    password: str,
    transid: str,
    id_kind: IdKind,
    trackid: str,
    amt: str | None = None,
) -> str:
    """The inquiry (action 8) request: ``<transid>`` holds a ``id_kind`` id.

    Raises:
        InvalidRequestError: A value holds ``<``, ``>``, ``&`` or a control character.
    """
    fields = [
        ("id", tranportal_id),
        ("password", password),
        ("action", ACTION_INQUIRY),
        ("currencycode", CURRENCY_NUMERIC),
        ("transid", transid),
        ("trackid", trackid),
        ("udf5", id_kind),
    ]
    if amt is not None:
        fields.insert(4, ("amt", amt))
    return _build_xml(fields)


def build_refund_xml(
    *,
    tranportal_id: str,
    password: str,
    amount: Money,
    transid: str,
    id_kind: IdKind,
    trackid: str,
) -> str:
    """The refund (action 2) request for ``amount`` of the transaction ``transid``.

    Raises:
        InvalidRequestError: The amount is not positive KWD, or a value cannot be carried.
    """
    return _build_xml(
        [
            ("id", tranportal_id),
            ("password", password),
            ("action", ACTION_REFUND),
            ("currencycode", CURRENCY_NUMERIC),
            ("amt", format_amount(amount)),
            ("transid", transid),
            ("trackid", trackid),
            ("udf5", id_kind),
        ]
    )


def parse_xml_fields(text: str) -> dict[str, str]:
    """The leaf elements of a tranPipe message, ``{"result": "CAPTURED", ...}``.

    Wrappers (``<response>``) are skipped; the first occurrence of a name wins.
    """
    fields: dict[str, str] = {}
    for match in _XML_FIELD.finditer(text):
        value = match.group(2).strip()
        for entity, char in _XML_ESCAPES:
            value = value.replace(entity, char)
        fields.setdefault(match.group(1), value)
    return fields


@dataclass(frozen=True, slots=True)
class TranPipeReply:
    """A successful tranPipe answer (an ``!ERROR!`` line raises instead)."""

    fields: Mapping[str, str]

    @property
    def result(self) -> str:
        """The normalized ``<result>``."""
        return normalize_result(self.fields.get("result", ""))

    @property
    def payid(self) -> str | None:
        """The KNET payment id the answer is about."""
        return self.fields.get("payid") or self.fields.get("paymentid") or None

    @property
    def trackid(self) -> str | None:
        """The merchant track id the answer is about."""
        return self.fields.get("trackid") or None

    @property
    def amt(self) -> str | None:
        """The transaction amount, as KNET wrote it."""
        return self.fields.get("amt") or None

    def provider_data(self) -> dict[str, str]:
        """The ids paykit keeps for later calls and support (no card data)."""
        names = {
            "payid": "paymentid",
            "tranid": "tranid",
            "ref": "ref",
            "auth": "auth",
            "postdate": "postdate",
        }
        return {ours: self.fields[theirs] for theirs, ours in names.items() if self.fields.get(theirs)}


def parse_tranpipe_reply(text: str, *, http_status: int) -> TranPipeReply:
    """Read a tranPipe answer.

    Raises:
        ProviderError: ``!ERROR!-IPAY0100xxx-...`` (``code`` is the IPAY code), or
            no ``<result>`` at all. A ``FAILURE`` result is returned: what it means
            depends on the request (see :func:`status_for_inquiry`, :data:`REFUND_SUCCESS`).
    """
    stripped = text.strip()
    if stripped.startswith("!ERROR!") or "!ERROR!" in stripped[:64]:
        match = _KNET_ERROR.search(stripped)
        code = match.group("code") if match else None
        message = (match.group("message") if match else "").strip() or "no message"
        raise ProviderError(
            f"KNET error {code or 'unknown'}: {message}",
            provider=PROVIDER,
            http_status=http_status,
            code=code,
            body=stripped,
        )
    reply = TranPipeReply(parse_xml_fields(stripped))
    if not reply.result:
        raise ProviderError("KNET answered without a result", provider=PROVIDER, http_status=http_status, body=stripped)
    # A FAILURE result is an answer, not an error: an inquiry reports a failed
    # payment with it, and a refund is refused unless its result is CAPTURED.
    return reply


def receipt_redirect_line(receipt_url: str, *, paymentid: str | None, trackid: str | None) -> str:
    """The one line KNET requires as the answer: ``REDIRECT=<receipt url>``.

    ``paymentid`` and ``trackid`` are appended so the receipt page can look the
    payment up (it must read the status from paykit, never from the query).
    """
    params = [(k, v) for k, v in (("paymentid", paymentid), ("trackid", trackid)) if v]
    if not params:
        return f"REDIRECT={receipt_url}"
    separator = "&" if urlsplit(receipt_url).query else "?"
    if receipt_url.endswith(("?", "&")):
        separator = ""
    return f"REDIRECT={receipt_url}{separator}{urlencode(params)}"
