# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The Stripe adapter: PaymentIntents, refunds, saved cards and verified webhooks.

Built on stripe-python's :class:`stripe.StripeClient` (no module-level
settings) over an ``httpx.AsyncClient`` transport that callers may inject.
Wire-format decisions live in the I/O-free :mod:`paykit.providers._stripe_wire`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

import httpx

from ..._errors import (
    AuthenticationError,
    ConfigurationError,
    IdempotencyConflictError,
    InvalidRequestError,
    MissingExtraError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from ..._log import get_logger
from ..._models import Dispute, EventKind, Payment, PaymentMethod, Refund, WebhookEvent
from ..._money import Money
from .._base import (
    CreatePaymentRequest,
    ProviderCapabilities,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderRefund,
)
from .._stripe_wire import (
    METADATA_USER_ID,
    PROVIDER_NAME,
    capture_params,
    check_object_id,
    check_stripe_amount,
    create_payment_params,
    dispute_evidence_params,
    read_payment_intent,
    read_payment_method,
    read_refund,
    redact_secrets,
    refund_id_of,
    refund_list_params,
    refund_params,
    verify_and_parse_webhook,
)
from .base import AsyncBaseProvider

try:
    import stripe

    from .._stripe_http import AsyncHttpxTransport
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("AsyncStripeProvider", extra="stripe", package="stripe") from exc

if TYPE_CHECKING:
    from stripe.params import (
        CustomerPaymentMethodListParams,
        DisputeUpdateParams,
        PaymentIntentCaptureParams,
        PaymentIntentConfirmParams,
        PaymentIntentCreateParams,
        RefundCreateParams,
        RefundListParams,
    )

__all__ = ["AsyncStripeProvider"]

# One logger name for both twins: what users configure does not depend on the API they use.
logger = get_logger("paykit.providers.stripe")

_DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# A PaymentIntent with more refunds than this many pages of 100 is not one paykit made.
_MAX_REFUND_PAGES = 50


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.contextmanager
def _stripe_errors(operation: str) -> Iterator[None]:
    """Translate every stripe exception raised inside into a PaykitError."""
    try:
        yield
    except stripe.StripeError as exc:
        _raise_translated(exc, operation)
    except InvalidRequestError as exc:
        # A response that did not read as Stripe's format (unknown status, currency...).
        raise ProviderError(
            f"Stripe {operation} returned an unexpected object: {exc.message}", provider=PROVIDER_NAME
        ) from exc


def _should_retry(exc: stripe.StripeError) -> bool:
    """The one place deciding whether a failed Stripe call may be retried as is."""
    if isinstance(exc, stripe.APIConnectionError):
        return bool(getattr(exc, "should_retry", True))
    if isinstance(exc, stripe.RateLimitError):
        return True
    headers = exc.headers or {}
    hint = headers.get("stripe-should-retry") or headers.get("Stripe-Should-Retry")
    if hint is not None:
        return hint == "true"
    status = exc.http_status or 0
    return status == 409 or status >= 500


def _raise_translated(exc: stripe.StripeError, operation: str) -> NoReturn:
    body = redact_secrets(exc.json_body) if isinstance(exc.json_body, Mapping) else None
    error = body.get("error") if isinstance(body, Mapping) else None
    error = error if isinstance(error, Mapping) else {}
    details: dict[str, Any] = {
        "provider": PROVIDER_NAME,
        "http_status": exc.http_status,
        "code": exc.code or error.get("code"),
        "request_id": exc.request_id,
        "body": body,
    }
    retry = _should_retry(exc)
    stripe_message = error.get("message") if isinstance(error.get("message"), str) else None
    message = f"Stripe {operation} failed" + (f": {stripe_message}" if stripe_message else "")
    logger.warning(
        "stripe call failed",
        operation=operation,
        error=type(exc).__name__,
        http_status=exc.http_status,
        code=details["code"],
        request_id=exc.request_id,
        should_retry=retry,
    )
    translated: ProviderError
    if isinstance(exc, stripe.CardError):
        decline = error.get("decline_code")
        translated = PaymentDeclinedError(
            message, decline_code=decline if isinstance(decline, str) else exc.code, **details
        )
    elif isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        # Stripe's message may quote part of the key: keep it out of ours.
        translated = AuthenticationError(f"Stripe {operation} failed: the API key was rejected", **details)
    elif isinstance(exc, stripe.IdempotencyError):
        raise IdempotencyConflictError(
            f"Stripe {operation} failed: the idempotency key was reused with other parameters"
        ) from exc
    elif isinstance(exc, stripe.APIConnectionError):
        translated = ProviderUnavailableError(
            f"Stripe {operation} failed: Stripe could not be reached", should_retry=retry, **details
        )
    elif isinstance(exc, stripe.RateLimitError) or retry or (exc.http_status or 0) >= 500:
        # A 5xx leaves the outcome unknown even when Stripe says a retry will not help.
        translated = ProviderUnavailableError(message, should_retry=retry, **details)
    elif isinstance(exc, stripe.InvalidRequestError):
        translated = ProviderRequestError(message, **details)
    else:
        translated = ProviderError(message, should_retry=retry, **details)
    raise translated from exc


def _as_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain dicts and lists, so the I/O-free readers see JSON."""
    result: dict[str, Any] = obj.to_dict()
    return result


class AsyncStripeProvider(AsyncBaseProvider):
    """Payments through Stripe PaymentIntents.

    >>> provider = AsyncStripeProvider("sk_test_...", webhook_secrets=["whsec_..."])  # doctest: +SKIP
    >>> outbound_only = AsyncStripeProvider("sk_test_...", webhooks=False)  # doctest: +SKIP

    Args:
        api_key: A Stripe secret or restricted key.
        webhook_secrets: Endpoint signing secrets accepted by
            :meth:`parse_webhook`; list both while rotating. Required unless
            ``webhooks=False``.
        webhooks: ``False`` for an application that receives no Stripe
            webhooks (and relies on :meth:`PaymentService.reconcile`); then
            ``webhook_secrets`` must not be given and every webhook is refused.
        client: A ready :class:`stripe.StripeClient`; when given, ``api_key``,
            ``http_client``, ``api_base`` and ``max_network_retries`` are unused.
        http_client: The ``httpx.AsyncClient`` requests go through (inject one
            to mock or to share a connection pool). paykit closes only the
            client it created itself, in :meth:`aclose`.
        api_base: Another API address, e.g. a local fake server.
        webhook_tolerance: Largest accepted age, and lead, of a webhook's
            signed timestamp, in seconds.
        refetch_on_webhook: Re-fetch the PaymentIntent named by a
            ``payment_intent.*`` event and report its current state instead of
            the event's snapshot.
        max_network_retries: Retries stripe-python makes for connection
            errors, 409 and 5xx answers (idempotency keys make them safe).
            ``0`` by default: the service retries where it is safe, so
            retries inside stripe-python would multiply its own.
        payment_method_types: Payment method types of new PaymentIntents, or
            ``None`` for Stripe's automatic payment methods.
        clock: Returns the current aware datetime; used for webhook tolerance.

    Raises:
        ConfigurationError: An argument is invalid, or ``webhook_secrets`` is
            missing or holds an empty secret while webhooks are on.

    .. versionchanged:: 0.2.0
       ``webhook_secrets`` is required unless ``webhooks=False``.
    """

    name = PROVIDER_NAME
    capabilities = ProviderCapabilities(
        manual_capture=True,
        partial_capture=True,
        refunds=True,
        partial_refunds=True,
        saved_payment_methods=True,
        server_side_confirm=True,
        off_session=True,
        refund_lookup=True,
        disputes=True,
    )

    def __init__(
        self,
        api_key: str,
        *,
        webhook_secrets: Sequence[str] | None = None,
        webhooks: bool = True,
        client: stripe.StripeClient | None = None,
        http_client: httpx.AsyncClient | None = None,
        api_base: str | None = None,
        webhook_tolerance: int = 300,
        refetch_on_webhook: bool = False,
        max_network_retries: int = 0,
        payment_method_types: Sequence[str] | None = ("card",),
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        if client is None and not api_key:
            raise ConfigurationError("AsyncStripeProvider needs an api_key or a client")
        if isinstance(webhook_secrets, str):
            raise ConfigurationError("webhook_secrets must be a sequence of secrets, not one string")
        if webhooks and (not webhook_secrets or not all(webhook_secrets)):
            raise ConfigurationError(
                "AsyncStripeProvider needs webhook_secrets, your webhook endpoint's signing secrets (whsec_..., none "
                "empty), to verify webhooks; pass webhooks=False if this application receives no Stripe webhooks"
            )
        if not webhooks and webhook_secrets:
            raise ConfigurationError("webhook_secrets were given with webhooks=False; drop one or the other")
        if webhook_tolerance <= 0:
            raise ConfigurationError("webhook_tolerance must be a positive number of seconds")
        if max_network_retries < 0:
            raise ConfigurationError("max_network_retries must not be negative")
        self._webhooks = webhooks
        self._webhook_secrets = tuple(secret.encode() for secret in webhook_secrets or ())
        self._webhook_tolerance = webhook_tolerance
        self._refetch_on_webhook = refetch_on_webhook
        self._payment_method_types = tuple(payment_method_types) if payment_method_types is not None else None
        self._clock = clock
        self._owned_http: httpx.AsyncClient | None = None
        if client is None:
            if http_client is None:
                http_client = self._owned_http = httpx.AsyncClient(timeout=_DEFAULT_TIMEOUT)
            client = stripe.StripeClient(
                api_key,
                base_addresses={"api": api_base} if api_base else None,
                http_client=AsyncHttpxTransport(http_client),
                max_network_retries=max_network_retries,
            )
        self._stripe = client

    def __repr__(self) -> str:
        if not self._webhooks:
            return "AsyncStripeProvider(webhooks=False)"
        secrets = len(self._webhook_secrets)
        return f"AsyncStripeProvider(webhook_secrets={secrets}, webhook_tolerance={self._webhook_tolerance})"

    async def aclose(self) -> None:
        """Close the HTTP client paykit created (an injected one is left open)."""
        if self._owned_http is not None:
            await self._owned_http.aclose()

    # -- payments --------------------------------------------------------------

    async def create_payment(self, request: CreatePaymentRequest) -> ProviderPayment:
        """Create a PaymentIntent.

        Raises:
            InvalidRequestError: The amount breaks Stripe's amount rules.
            ProviderError: Stripe refused (see the subclasses).
        """
        params = create_payment_params(request, payment_method_types=self._payment_method_types)
        with _stripe_errors("create PaymentIntent"):
            pi = await self._stripe.v1.payment_intents.create_async(
                params=cast("PaymentIntentCreateParams", params),
                options={"idempotency_key": request.idempotency_key},
            )
            result = read_payment_intent(_as_dict(pi))
        logger.info("stripe payment created", payment_id=request.payment_id, provider_ref=result.provider_ref)
        if request.return_url is None:
            return result
        # Needed again at confirmation, which only sees the stored Payment.
        return _with_data(result, {"stripe_return_url": request.return_url})

    async def confirm_payment(
        self, payment: Payment, *, payment_method_ref: str | None, idempotency_key: str
    ) -> ProviderPayment:
        """Confirm the PaymentIntent server-side, with ``payment_method_ref`` if new.

        Raises:
            PaymentDeclinedError: The card was declined.
            ProviderError: Stripe refused (see the subclasses).
        """
        intent = self._ref(payment)
        params: dict[str, Any] = {}
        if payment_method_ref is not None and payment_method_ref != payment.payment_method_ref:
            params["payment_method"] = payment_method_ref
        return_url = payment.provider_data.get("stripe_return_url")
        if return_url:
            params["return_url"] = return_url
        with _stripe_errors("confirm PaymentIntent"):
            pi = await self._stripe.v1.payment_intents.confirm_async(
                intent,
                params=cast("PaymentIntentConfirmParams", params),
                options={"idempotency_key": idempotency_key},
            )
            return read_payment_intent(_as_dict(pi))

    async def capture_payment(self, payment: Payment, *, amount: Money | None, idempotency_key: str) -> ProviderPayment:
        """Capture an authorized PaymentIntent, in full or in part.

        Raises:
            InvalidRequestError: ``amount`` is of another currency or breaks Stripe's amount rules.
            ProviderError: Stripe refused (see the subclasses).
        """
        intent = self._ref(payment)
        params = capture_params(amount, payment.currency)
        with _stripe_errors("capture PaymentIntent"):
            pi = await self._stripe.v1.payment_intents.capture_async(
                intent,
                params=cast("PaymentIntentCaptureParams", params),
                options={"idempotency_key": idempotency_key},
            )
            return read_payment_intent(_as_dict(pi))

    async def cancel_payment(self, payment: Payment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel a PaymentIntent that was not captured.

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        intent = self._ref(payment)
        with _stripe_errors("cancel PaymentIntent"):
            pi = await self._stripe.v1.payment_intents.cancel_async(
                intent, options={"idempotency_key": idempotency_key}
            )
            return read_payment_intent(_as_dict(pi))

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """Fetch the PaymentIntent's current state.

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        return await self._retrieve(self._ref(payment))

    async def _retrieve(self, provider_ref: str) -> ProviderPayment:
        with _stripe_errors("retrieve PaymentIntent"):
            pi = await self._stripe.v1.payment_intents.retrieve_async(provider_ref)
            return read_payment_intent(_as_dict(pi))

    async def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        """Refund ``refund.amount`` of the PaymentIntent.

        Raises:
            InvalidRequestError: The amount is of another currency or breaks Stripe's amount rules.
            ProviderError: Stripe refused (see the subclasses).
        """
        params = refund_params(
            payment_intent=self._ref(payment),
            amount=refund.amount,
            payment_currency=payment.currency,
            payment_id=payment.id,
            refund_id=refund.id,
        )
        with _stripe_errors("create Refund"):
            created = await self._stripe.v1.refunds.create_async(
                params=cast("RefundCreateParams", params),
                options={"idempotency_key": idempotency_key},
            )
            return read_refund(_as_dict(created))

    def check_amount(self, amount: Money) -> None:
        """Raise unless Stripe can take ``amount``; the rule every request applies. No I/O.

        Three-decimal currencies (KWD, BHD...) need a minor amount ending in 0,
        zero-decimal currencies (JPY...) whole units, ISK whole krónur; amounts
        must be positive. Nothing is ever rounded.

        Raises:
            InvalidRequestError: Stripe cannot take the amount.
        """
        check_stripe_amount(amount)

    async def retrieve_refund(self, payment: Payment, refund: Refund) -> ProviderRefund:
        """Fetch the Refund ``refund.provider_ref`` (``GET /v1/refunds/{id}``).

        Raises:
            InvalidRequestError: The refund has no Stripe id, or one that is not a Stripe id.
            ProviderError: Stripe refused (see the subclasses), or the Refund
                belongs to another PaymentIntent or another paykit refund.
        """
        refund_ref = check_object_id(refund.provider_ref, "Refund")
        with _stripe_errors("retrieve Refund"):
            found = _as_dict(await self._stripe.v1.refunds.retrieve_async(refund_ref))
            result = read_refund(found)
        intent = found.get("payment_intent")
        intent = intent.get("id") if isinstance(intent, dict) else intent
        if payment.provider_ref and isinstance(intent, str) and intent != payment.provider_ref:
            raise ProviderError(
                f"Stripe Refund {refund_ref} belongs to {intent}, not to {payment.provider_ref}",
                provider=PROVIDER_NAME,
            )
        echoed = refund_id_of(found)
        if echoed is not None and echoed != refund.id:
            raise ProviderError(
                f"Stripe Refund {refund_ref} was made for paykit refund {echoed}, not {refund.id}",
                provider=PROVIDER_NAME,
            )
        return result

    async def find_refund(self, payment: Payment, refund: Refund) -> ProviderRefund | None:
        """The PaymentIntent's Refund whose ``metadata.paykit_refund_id`` is ``refund.id``, or ``None``.

        Lists ``GET /v1/refunds?payment_intent=...&limit=100`` page by page
        (``has_more``/``starting_after``) until it finds the refund.

        Raises:
            InvalidRequestError: The payment has no PaymentIntent, or its id is not a Stripe id.
            ProviderError: Stripe refused (see the subclasses).
        """
        intent = check_object_id(self._ref(payment), "PaymentIntent")
        starting_after: str | None = None
        with _stripe_errors("list Refunds"):
            for _ in range(_MAX_REFUND_PAGES):
                params = refund_list_params(intent, starting_after=starting_after)
                page = await self._stripe.v1.refunds.list_async(params=cast("RefundListParams", params))
                items = [_as_dict(item) for item in page.data]
                for item in items:
                    if refund_id_of(item) == refund.id:
                        return read_refund(item)
                if not page.has_more or not items:
                    return None
                starting_after = str(items[-1].get("id"))
        raise ProviderError(
            f"Stripe lists more than {_MAX_REFUND_PAGES * 100} refunds for {intent}", provider=PROVIDER_NAME
        )

    # -- saved payment methods -------------------------------------------------

    async def save_payment_method(
        self, user_id: str, token: str, *, customer_ref: str | None, idempotency_key: str
    ) -> tuple[ProviderPaymentMethod, str | None]:
        """Attach PaymentMethod ``token`` to the user's Customer, creating it once.

        Returns:
            The saved method and the Customer id (``customer_ref`` or the new one).

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        with _stripe_errors("save PaymentMethod"):
            if customer_ref is None:
                customer = await self._stripe.v1.customers.create_async(
                    params={"metadata": {METADATA_USER_ID: user_id}},
                    options={"idempotency_key": f"paykit-customer-{user_id}"},
                )
                customer_ref = str(customer.id)
                logger.info("stripe customer created", user_id=user_id, customer_ref=customer_ref)
            pm = await self._stripe.v1.payment_methods.attach_async(
                token, params={"customer": customer_ref}, options={"idempotency_key": idempotency_key}
            )
            return read_payment_method(_as_dict(pm)), customer_ref

    async def list_payment_methods(self, customer_ref: str, *, type: str = "card") -> list[ProviderPaymentMethod]:
        """The methods attached to a Customer (first page of up to 100).

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        with _stripe_errors("list PaymentMethods"):
            page = await self._stripe.v1.customers.payment_methods.list_async(
                customer_ref,
                params=cast("CustomerPaymentMethodListParams", {"type": type, "limit": 100}),
            )
            return [read_payment_method(_as_dict(pm)) for pm in page.data]

    async def set_default_payment_method(self, method: PaymentMethod, *, customer_ref: str | None) -> None:
        """Make a saved method its Customer's default for invoices and subscriptions.

        Raises:
            InvalidRequestError: No Customer is known for the method's user.
            ProviderError: Stripe refused (see the subclasses).
        """
        if customer_ref is None:
            raise InvalidRequestError(f"no Stripe Customer is known for user {method.user_id!r}")
        with _stripe_errors("set default PaymentMethod"):
            await self._stripe.v1.customers.update_async(
                customer_ref, params={"invoice_settings": {"default_payment_method": method.provider_ref}}
            )

    async def delete_payment_method(self, method: PaymentMethod) -> None:
        """Detach the method from its Customer.

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        with _stripe_errors("detach PaymentMethod"):
            await self._stripe.v1.payment_methods.detach_async(method.provider_ref)

    # -- disputes --------------------------------------------------------------

    async def accept_dispute(self, dispute: Dispute) -> None:
        """Close the dispute (``POST /v1/disputes/{id}/close``): Stripe marks it lost.

        Raises:
            ProviderError: Stripe refused (see the subclasses).
        """
        with _stripe_errors("close Dispute"):
            await self._stripe.v1.disputes.close_async(self._dispute_ref(dispute))

    async def submit_dispute_evidence(self, dispute: Dispute, evidence: Mapping[str, str], *, submit: bool) -> None:
        """Send text evidence (``POST /v1/disputes/{id}`` with ``evidence[...]`` and ``submit``).

        Raises:
            InvalidRequestError: A field Stripe has no text evidence field for.
            ProviderError: Stripe refused (see the subclasses).
        """
        params = dispute_evidence_params(evidence, submit=submit)
        with _stripe_errors("update Dispute"):
            await self._stripe.v1.disputes.update_async(
                self._dispute_ref(dispute), params=cast("DisputeUpdateParams", params)
            )

    @staticmethod
    def _dispute_ref(dispute: Dispute) -> str:
        if not dispute.provider_dispute_id:
            raise InvalidRequestError(f"dispute {dispute.id} has no Stripe dispute id")
        return dispute.provider_dispute_id

    # -- webhooks --------------------------------------------------------------

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify ``Stripe-Signature`` and normalize the event.

        Args:
            body: The raw request body.
            headers: The request headers, names lower-cased.

        Raises:
            WebhookVerificationError: Forged, stale, future-dated or malformed.
            ProviderError: ``refetch_on_webhook`` is set and the re-fetch failed.
        """
        if not self._webhooks:
            raise WebhookVerificationError("this AsyncStripeProvider was built with webhooks=False")
        header = headers.get("stripe-signature")
        event = verify_and_parse_webhook(
            body,
            header,
            self._webhook_secrets,
            now=self._clock().timestamp(),
            tolerance=self._webhook_tolerance,
        )
        if self._refetch_on_webhook and event.kind is EventKind.PAYMENT and event.provider_ref:
            current = await self._retrieve(event.provider_ref)
            event = event.model_copy(
                update={
                    "status": current.status,
                    "amount_captured": current.amount_captured,
                    "failure_code": current.failure_code,
                    "failure_message": current.failure_message,
                    "provider_data": {**event.provider_data, **current.provider_data},
                }
            )
        return event

    def _ref(self, payment: Payment) -> str:
        if not payment.provider_ref:
            raise InvalidRequestError(f"payment {payment.id} has no Stripe PaymentIntent yet")
        return payment.provider_ref


def _with_data(result: ProviderPayment, extra: Mapping[str, str]) -> ProviderPayment:
    return replace(result, provider_data={**result.provider_data, **extra})
