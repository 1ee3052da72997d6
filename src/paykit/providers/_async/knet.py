# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The KNET adapter: Kuwait's debit network over the raw Tranportal protocol.

The flow is a redirect, not an API call:

1. :meth:`AsyncKnetProvider.create_payment` encrypts the purchase request into
   ``trandata`` and returns the KNET payment page URL as the payment's redirect.
2. The customer pays on KNET's page; KNET POSTs the encrypted result to the
   merchant's ``response_url``. The application hands that request to
   ``paykit.webhooks.handle_webhook(service, "knet", body, headers)``, which
   calls :meth:`AsyncKnetProvider.parse_webhook`.
3. The response is authenticated only by its encryption, so the adapter asks
   KNET itself (an inquiry, action 8, on the tranPipe endpoint) and reports a
   result only when both agree. The answer to KNET is the single line
   ``REDIRECT=<receipt url>``; without it KNET voids the transaction.

Refunds (action 2) use the same tranPipe endpoint. Wire formats live in the
I/O-free :mod:`paykit.providers._knet_wire` and :mod:`._knet_crypto`.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Final, Literal
from urllib.parse import urlsplit

import httpx

from ..._errors import (
    ConfigurationError,
    InvalidRequestError,
    InvalidStateError,
    ProviderError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from ..._log import get_logger
from ..._models import EventKind, Payment, Refund, RefundStatus, WebhookEvent
from ..._money import Money
from ..._status import PaymentStatus
from .._base import CreatePaymentRequest, ProviderCapabilities, ProviderPayment, ProviderRefund
from .._knet_crypto import RESOURCE_KEY_LENGTH, decrypt_trandata, encrypt_trandata
from .._knet_wire import (
    CURRENCY,
    ENDPOINTS,
    LANGUAGE_IDS,
    PROVIDER,
    REFUND_SUCCESS,
    IdKind,
    KnetResponse,
    TranPipeReply,
    build_inquiry_xml,
    build_payment_page_url,
    build_payment_plain_text,
    build_refund_xml,
    derive_trackid,
    format_amount,
    parse_amount,
    parse_form_body,
    parse_key_value_text,
    parse_tranpipe_reply,
    receipt_redirect_line,
    status_for_inquiry,
    status_for_result,
    udfs_from_metadata,
)
from .base import AsyncBaseProvider

__all__ = ["AsyncKnetProvider"]

# One logger name for both twins: what users configure does not depend on the API they use.
logger = get_logger("paykit.providers.knet")

_DEFAULT_TIMEOUT: Final = httpx.Timeout(30.0, connect=10.0)
_PAYMENT_ID: Final = re.compile(r"[0-9A-Za-z]{1,64}", re.ASCII)
_TRACK_ID: Final = re.compile(r"[0-9A-Za-z]{1,40}", re.ASCII)
_FORBIDDEN_IN_CREDENTIALS: Final = frozenset("&=<>")
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _should_retry(failure: httpx.HTTPError | int, *, idempotent: bool) -> bool:
    """The one place deciding whether a failed tranPipe call may be repeated.

    A request that never left (connection refused, pool or connect timeout)
    is always safe to repeat. Anything else may have been processed: repeating
    is safe for an inquiry, but KNET has no idempotency keys, so a refund that
    timed out or got a 5xx must be checked, not resent.
    """
    if isinstance(failure, _NOT_SENT):
        return True
    return idempotent


@contextlib.contextmanager
def _httpx_errors(operation: str, *, idempotent: bool) -> Iterator[None]:
    """Translate every httpx exception raised inside into a PaykitError."""
    try:
        yield
    except httpx.HTTPError as exc:
        retry = _should_retry(exc, idempotent=idempotent)
        logger.warning("knet_call_failed", operation=operation, error=type(exc).__name__, should_retry=retry)
        raise ProviderUnavailableError(
            f"KNET {operation} failed: KNET could not be reached ({type(exc).__name__})",
            provider=PROVIDER,
            should_retry=retry,
        ) from exc


def _check_credential(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"AsyncKnetProvider needs a non-empty {name}")
    if any(ch in _FORBIDDEN_IN_CREDENTIALS or not ch.isprintable() or ch.isspace() for ch in value):
        # They are concatenated raw into trandata and the tranPipe XML.
        raise ConfigurationError(f"the KNET {name} must not contain '&', '=', '<', '>' or spaces")
    return value


def _check_url(name: str, url: str, *, production: bool, allow_query: bool) -> str:
    if not isinstance(url, str):
        raise ConfigurationError(f"{name} must be a URL string")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigurationError(f"{name} must be an absolute http(s) URL")
    if production and parts.scheme != "https":
        raise ConfigurationError(f"{name} must use https in production")
    if not allow_query and (parts.query or parts.fragment or "&" in url):
        raise ConfigurationError(f"KNET requires {name} without a query string or fragment")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise ConfigurationError(f"{name} must not contain spaces or control characters")
    return url


class AsyncKnetProvider(AsyncBaseProvider):
    """Payments through KNET's Tranportal (KWD only, redirect flow).

    >>> provider = AsyncKnetProvider(  # doctest: +SKIP
    ...     "tranportal-id", "tranportal-password", "16-char-res-key!",
    ...     response_url="https://shop.example/knet/response",
    ...     error_url="https://shop.example/knet/error",
    ...     receipt_url="https://shop.example/knet/receipt",
    ... )

    Args:
        tranportal_id: The terminal's Tranportal ID (from the bank).
        tranportal_password: The terminal's Tranportal password.
        resource_key: The terminal's 16-character resource key (AES key and IV).
        response_url: Where KNET POSTs the result; route it to ``handle_webhook``.
        error_url: Where KNET POSTs errors; route it to ``handle_webhook`` too.
        receipt_url: The page the customer lands on afterwards; paykit answers
            KNET with ``REDIRECT=<receipt_url>?paymentid=..&trackid=..``.
        environment: ``"test"`` (kpaytest.com.kw) or ``"production"`` (kpay.com.kw).
        language: ``"EN"`` or ``"AR"``, the payment page's language.
        http_client: The ``httpx.AsyncClient`` tranPipe calls go through (inject one
            to mock or share a pool). paykit closes only a client it created,
            in :meth:`aclose`.

    Raises:
        ConfigurationError: An argument is invalid (key length, URLs, https in
            production, characters KNET's raw formats cannot carry).
    """

    name = PROVIDER
    capabilities = ProviderCapabilities(
        manual_capture=False,
        partial_capture=False,
        refunds=True,
        partial_refunds=True,
        saved_payment_methods=False,
        server_side_confirm=False,
        idempotent_refunds=False,  # no idempotency keys at KNET: a lost refund answer is never resent
        currencies=frozenset({CURRENCY}),
    )

    def __init__(
        self,
        tranportal_id: str,
        tranportal_password: str,
        resource_key: str,
        *,
        response_url: str,
        error_url: str,
        receipt_url: str,
        environment: Literal["test", "production"] = "test",
        language: Literal["EN", "AR"] = "EN",
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if environment not in ENDPOINTS:
            raise ConfigurationError("environment must be 'test' or 'production'")
        if language not in LANGUAGE_IDS:
            raise ConfigurationError("language must be 'EN' or 'AR'")
        if (
            not isinstance(resource_key, str)
            or len(resource_key) != RESOURCE_KEY_LENGTH
            or not resource_key.isascii()
            or not resource_key.isprintable()
        ):
            raise ConfigurationError(f"the KNET resource key must be {RESOURCE_KEY_LENGTH} ASCII characters")
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError("http_client must be an httpx.AsyncClient")
        production = environment == "production"
        self._id = _check_credential("tranportal_id", tranportal_id)
        self._password = _check_credential("tranportal_password", tranportal_password)
        self._resource_key = resource_key
        self._response_url = _check_url("response_url", response_url, production=production, allow_query=False)
        self._error_url = _check_url("error_url", error_url, production=production, allow_query=False)
        self._receipt_url = _check_url("receipt_url", receipt_url, production=production, allow_query=True)
        self._environment = environment
        self._endpoints = ENDPOINTS[environment]
        self._langid = LANGUAGE_IDS[language]
        self._owned_http: httpx.AsyncClient | None = None
        if http_client is None:
            http_client = self._owned_http = httpx.AsyncClient(timeout=_DEFAULT_TIMEOUT)
        self._http = http_client

    def __repr__(self) -> str:
        return f"AsyncKnetProvider(environment={self._environment!r}, langid={self._langid!r})"

    async def aclose(self) -> None:
        """Close the HTTP client paykit created (an injected one is left open)."""
        if self._owned_http is not None:
            await self._owned_http.aclose()

    # -- payments --------------------------------------------------------------

    async def create_payment(self, request: CreatePaymentRequest) -> ProviderPayment:
        """Build the encrypted purchase request and the payment page URL. No I/O.

        ``trackid`` derives from the paykit payment id; ``udf1``..``udf5`` come
        from the metadata keys of those names. The same request always yields
        the same URL, so a retried initialization is harmless. ``return_url``
        and ``cancel_url`` are not used: KNET answers at the configured
        response, error and receipt URLs.

        Raises:
            InvalidRequestError: Not KWD, not positive, manual capture asked, or
                an invalid UDF.
        """
        self.check_amount(request.amount)
        if request.capture_method != "automatic":
            raise InvalidRequestError("KNET captures at once; manual capture is not supported")
        trackid = derive_trackid(request.payment_id)
        plain = build_payment_plain_text(
            tranportal_id=self._id,
            password=self._password,
            langid=self._langid,
            amount=request.amount,
            response_url=self._response_url,
            error_url=self._error_url,
            trackid=trackid,
            udfs=udfs_from_metadata(request.metadata),
        )
        redirect_url = build_payment_page_url(
            self._endpoints,
            trandata=encrypt_trandata(plain, self._resource_key),
            tranportal_id=self._id,
            response_url=self._response_url,
            error_url=self._error_url,
        )
        logger.info("knet_payment_initialized", trackid=trackid, amount=str(request.amount))
        return ProviderPayment(provider_ref=trackid, status=PaymentStatus.REQUIRES_ACTION, redirect_url=redirect_url)

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """Ask KNET for the payment's state (an inquiry), e.g. for ``reconcile()``.

        ``SUCCESS`` or ``CAPTURED`` is a captured payment; ``FAILURE``,
        ``SUSPECTED``, ``NOT CAPTURED``... a failed one (``status`` ``FAILED``,
        ``failure_code`` the result), not an error (K-064 v1.4 §3.5.5).

        Raises:
            ProviderError: KNET answered an error (``code`` is the IPAY code), a
                result paykit does not know, another transaction, or a capture
                of another amount.
            ProviderUnavailableError: KNET could not be reached or failed (5xx).
        """
        trackid = payment.provider_ref or derive_trackid(payment.id)
        paymentid = payment.provider_data.get("paymentid")
        amt = format_amount(payment.amount)
        if paymentid:
            reply = await self._inquire(transid=paymentid, id_kind="PaymentID", trackid=trackid, amt=amt)
        else:
            reply = await self._inquire(transid=trackid, id_kind="TrackID", trackid=trackid, amt=amt)
        if reply.trackid not in (None, trackid) or (paymentid and reply.payid not in (None, paymentid)):
            raise ProviderError("KNET inquiry answered about another transaction", provider=PROVIDER)
        status = status_for_inquiry(reply.result)
        if status is None:
            raise ProviderError(
                f"KNET inquiry returned an unknown result {reply.result!r}",
                provider=PROVIDER,
                code=reply.result,
            )
        captured = self._reply_amount(reply) if status is PaymentStatus.SUCCEEDED else None
        if captured is not None and captured != payment.amount:
            # reconcile() would otherwise record a success for another amount.
            raise ProviderError(
                f"KNET captured {captured} for a payment of {payment.amount}",
                provider=PROVIDER,
                code="AMOUNT_MISMATCH",
            )
        return ProviderPayment(
            provider_ref=trackid,
            status=status,
            amount_captured=captured,
            failure_code=reply.result if status is PaymentStatus.FAILED else None,
            provider_data=reply.provider_data(),
        )

    def check_amount(self, amount: Money) -> None:
        """Raise unless KNET can take ``amount``: KWD only, positive. No I/O.

        The rule every purchase and refund request applies (``format_amount``).

        Raises:
            InvalidRequestError: Not KWD, or not positive.
        """
        format_amount(amount)

    async def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        """Refund ``refund.amount`` (all or part) of a captured payment (action 2).

        KNET has no idempotency keys: paykit's refund reservation keeps a
        refund from being sent twice, and a refund that failed ambiguously
        (timeout, 5xx) comes back with ``should_retry=False``. The request
        carries the original transaction's track id (K-064 v1.4 §3.5.3), and
        only a ``CAPTURED`` result is a refund made (§3.7.3).

        Raises:
            InvalidRequestError: The refund is not positive KWD.
            InvalidStateError: No KNET transaction id is stored for the payment.
            ProviderError: KNET refused (``!ERROR!`` code, or any result but
                ``CAPTURED``, such as ``FAILURE``; ``code`` is the result).
            ProviderUnavailableError: KNET could not be reached or failed (5xx).
        """
        transid, id_kind = self._transaction_id(payment)
        # The original transaction's track id (K-064 v1.4 §3.5.3, the manual's refund
        # sample and the public plugins), not a new one per refund.
        trackid = payment.provider_ref or derive_trackid(payment.id)
        xml = build_refund_xml(
            tranportal_id=self._id,
            password=self._password,
            amount=refund.amount,
            transid=transid,
            id_kind=id_kind,
            trackid=trackid,
        )
        reply = await self._post("refund", xml, idempotent=False)
        if reply.result != REFUND_SUCCESS:
            # §3.7.3: only CAPTURED means the refund went through.
            raise ProviderError(
                f"KNET refused the refund: {reply.result}",
                provider=PROVIDER,
                code=reply.result,
                body=dict(reply.fields),
            )
        logger.info("knet_refund_succeeded", trackid=trackid, refund_id=refund.id)
        ref = reply.fields.get("tranid") or reply.payid or derive_trackid(refund.id)
        return ProviderRefund(provider_ref=ref, status=RefundStatus.SUCCEEDED)

    # -- the response leg --------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify KNET's POST to the response or error URL and normalize it.

        The encrypted ``trandata`` is decrypted and its result confirmed by an
        inquiry: every result must agree with what KNET answers (result class,
        amount, trackid, payment id), and ``HOST TIMEOUT`` takes the inquiry's
        result. A decrypted failure (``NOT CAPTURED``, ``CANCELED``) that KNET's
        inquiry does not know is accepted; one the inquiry reports captured is
        not. A POST with only plain ``Error``/``ErrorText`` fields is not
        authenticated: it becomes an event of kind ``UNVERIFIED`` and KNET is
        not called here (the service decides whether to ask).
        Every event carries ``reply_body="REDIRECT=<receipt url>..."``.

        The inquiry's ``SUCCESS`` counts as ``CAPTURED``, its ``FAILURE`` and
        ``SUSPECTED`` as failures (K-064 v1.4 §3.5.5).

        Raises:
            WebhookVerificationError: Undecryptable or malformed ``trandata`` (ids
                outside KNET's alphabet, values an inquiry cannot carry), or a
                response that KNET's inquiry contradicts.
            ProviderError: The confirming inquiry failed.
            ProviderUnavailableError: KNET could not be reached for it.
        """
        form = parse_form_body(body)
        trandata = form.get("trandata", "").strip()
        if not trandata:
            if form.get("Error") or form.get("ErrorText"):
                return self._error_event(form)
            raise WebhookVerificationError("KNET response has neither trandata nor an error")
        fields = parse_key_value_text(decrypt_trandata(trandata, self._resource_key))
        if "result" not in fields and (fields.get("Error") or fields.get("ErrorText")):
            return self._error_event(fields)
        response = KnetResponse.from_fields(fields)
        if not _PAYMENT_ID.fullmatch(response.paymentid) or not _TRACK_ID.fullmatch(response.trackid):
            raise WebhookVerificationError("KNET response's paymentid or trackid is malformed")
        for name in ("paymentid", "trackid"):
            plain = form.get(name, "").strip()
            if plain and plain != getattr(response, name):
                raise WebhookVerificationError(f"KNET response's plain {name} differs from its trandata")
        try:
            return await self._confirmed_event(response)
        except ProviderError:
            raise
        except InvalidRequestError as exc:
            # A value the inquiry cannot carry (``<`` in amt...): malformed, not a bad call of ours.
            raise WebhookVerificationError(f"KNET response is malformed: {exc.message}") from exc

    async def _confirmed_event(self, response: KnetResponse) -> WebhookEvent:
        claimed = status_for_result(response.result)
        if claimed is None:
            raise WebhookVerificationError(f"KNET response has an unknown result {response.result!r}")
        claimed_amount = self._response_amount(response)
        try:
            reply = await self._inquire(
                transid=response.paymentid, id_kind="PaymentID", trackid=response.trackid, amt=response.amt
            )
        except ProviderUnavailableError:
            raise
        except ProviderError as exc:
            if claimed in (PaymentStatus.SUCCEEDED, PaymentStatus.PROCESSING):
                raise
            # KNET may keep no inquirable record of a canceled or declined attempt. The claim
            # decrypted with the resource key, and a failure moves no money: accept it.
            logger.info("knet_failure_unconfirmed", trackid=response.trackid, code=exc.code)
            reply = TranPipeReply({"result": response.result, "payid": response.paymentid, "trackid": response.trackid})
        if reply.payid != response.paymentid or reply.trackid != response.trackid:
            raise WebhookVerificationError("KNET inquiry does not confirm the response's transaction")
        confirmed = status_for_inquiry(reply.result)
        if claimed is PaymentStatus.PROCESSING:
            status = confirmed
            result = reply.result
        else:
            # Success must be confirmed as success, and a failure must not hide a capture.
            captured_claim = claimed is PaymentStatus.SUCCEEDED
            captured_reply = confirmed is PaymentStatus.SUCCEEDED
            if captured_claim != captured_reply:
                raise WebhookVerificationError(
                    f"KNET inquiry answered {reply.result!r} for a response of {response.result!r}"
                )
            status = claimed
            result = response.result
        if status is None:
            raise WebhookVerificationError(f"KNET inquiry returned an unknown result {reply.result!r}")
        amount = claimed_amount
        if status is PaymentStatus.SUCCEEDED:
            confirmed_amount = self._reply_amount(reply)
            if claimed_amount is not None and claimed_amount != confirmed_amount:
                raise WebhookVerificationError("KNET inquiry amount differs from the response amount")
            amount = confirmed_amount
        data = {"paymentid": response.paymentid, **_pick(response.fields), **reply.provider_data()}
        logger.info("knet_response_verified", trackid=response.trackid, result=result, status=status.value)
        return WebhookEvent(
            provider=PROVIDER,
            event_id=f"{response.paymentid}:{result}",
            type=f"response.{result.lower().replace(' ', '_')}",
            kind=EventKind.PAYMENT,
            provider_ref=response.trackid,
            status=status,
            amount=amount,
            amount_captured=amount if status is PaymentStatus.SUCCEEDED else None,
            failure_code=result if status in (PaymentStatus.FAILED, PaymentStatus.CANCELED) else None,
            provider_data=data,
            reply_body=receipt_redirect_line(self._receipt_url, paymentid=response.paymentid, trackid=response.trackid),
            reply_content_type="text/plain",
        )

    def _error_event(self, fields: Mapping[str, str]) -> WebhookEvent:
        """An error POST: unauthenticated, so it is only a hint. Nothing in it is believed.

        The service looks the track id up among its own payments and, for an
        unsettled one it knows, asks KNET itself (an inquiry), at most once a
        minute per payment; anything else is answered and forgotten, with no
        record and no call to KNET.
        """
        error_code = (fields.get("Error") or "").strip() or None
        trackid = (fields.get("trackid") or "").strip()
        paymentid = (fields.get("paymentid") or "").strip() or None
        known_form = bool(_TRACK_ID.fullmatch(trackid))
        return WebhookEvent(
            provider=PROVIDER,
            event_id="error:" + hashlib.sha256(repr(sorted(fields.items())).encode()).hexdigest()[:32],
            type="error.unverified",
            kind=EventKind.UNVERIFIED,
            provider_ref=trackid if known_form else None,
            failure_code=error_code,
            reply_body=receipt_redirect_line(
                self._receipt_url,
                paymentid=paymentid if paymentid and _PAYMENT_ID.fullmatch(paymentid) else None,
                trackid=trackid if known_form else None,
            ),
            reply_content_type="text/plain",
        )

    # -- tranPipe ------------------------------------------------------------------

    async def _inquire(self, *, transid: str, id_kind: IdKind, trackid: str, amt: str | None) -> TranPipeReply:
        xml = build_inquiry_xml(
            tranportal_id=self._id,
            password=self._password,
            transid=transid,
            id_kind=id_kind,
            trackid=trackid,
            amt=amt,
        )
        return await self._post("inquiry", xml, idempotent=True)

    async def _post(self, operation: str, xml: str, *, idempotent: bool) -> TranPipeReply:
        with _httpx_errors(operation, idempotent=idempotent):
            response = await self._http.post(
                self._endpoints.tranpipe,
                content=xml.encode("utf-8"),
                headers={"Content-Type": "application/xml", "Cache-Control": "no-cache"},
            )
            text = response.text
        status = response.status_code
        if status >= 500 or status == 429:
            retry = _should_retry(status, idempotent=idempotent)
            logger.warning("knet_call_failed", operation=operation, http_status=status, should_retry=retry)
            raise ProviderUnavailableError(
                f"KNET {operation} failed with HTTP {status}",
                provider=PROVIDER,
                http_status=status,
                body=text[:2000],
                should_retry=retry,
            )
        if status >= 400:
            raise ProviderError(
                f"KNET {operation} failed with HTTP {status}",
                provider=PROVIDER,
                http_status=status,
                body=text[:2000],
            )
        return parse_tranpipe_reply(text, http_status=status)

    # -- helpers -----------------------------------------------------------------

    def _transaction_id(self, payment: Payment) -> tuple[str, IdKind]:
        if tranid := payment.provider_data.get("tranid"):
            return tranid, "TransID"
        if paymentid := payment.provider_data.get("paymentid"):
            return paymentid, "PaymentID"
        raise InvalidStateError(f"payment {payment.id} has no KNET transaction id to refund")

    @staticmethod
    def _response_amount(response: KnetResponse) -> Money | None:
        if response.amt is None:
            return None
        try:
            return parse_amount(response.amt)
        except InvalidRequestError:
            raise WebhookVerificationError("KNET response amount is not a KWD amount") from None

    @staticmethod
    def _reply_amount(reply: TranPipeReply) -> Money:
        try:
            return parse_amount(reply.amt or "")
        except InvalidRequestError as exc:
            raise ProviderError("KNET inquiry returned no valid KWD amount", provider=PROVIDER) from exc


def _pick(fields: Mapping[str, str]) -> dict[str, str]:
    """The response ids paykit keeps (no card data: KNET sends none here)."""
    return {name: fields[name] for name in ("tranid", "ref", "auth", "postdate") if fields.get(name)}
