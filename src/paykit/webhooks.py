"""Webhook handling for any web framework: raw bytes and headers in, an HTTP answer out.

Pass the request body exactly as received (``request.get_data()`` in Flask,
``await request.body()`` in Starlette/FastAPI, ``request.body`` in Django).
Never parse and re-serialize JSON first: the signature covers the exact bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from . import _telemetry as telemetry
from ._async.service import AsyncPaymentService
from ._errors import (
    InvalidRequestError,
    PaykitError,
    ProviderUnavailableError,
    StorageError,
    WebhookVerificationError,
)
from ._log import get_logger
from ._models import WebhookEvent
from ._service import PaymentService, WebhookOutcome
from .storage._base import WebhookEventRecord

__all__ = ["DEFAULT_MAX_BODY_BYTES", "WebhookOutcome", "WebhookResponse", "ahandle_webhook", "handle_webhook"]

log = get_logger(__name__)

DEFAULT_MAX_BODY_BYTES: Final = 256 * 1024
"""Bodies above this are refused with 413; provider events are a few KB."""


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    """What to answer the provider with.

    Attributes:
        status_code: 200 when handled (applied, duplicate, ignored), 4xx for bad
            requests, 503 when storage is down so the provider retries.
        body: The response body.
        headers: Response headers (``content-type``, ``retry-after``).
        outcome: What happened: a :class:`WebhookOutcome` value, or ``"rejected"``,
            ``"too_large"``, ``"unknown_provider"``, ``"unavailable"``, ``"error"``.
    """

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    outcome: str = ""

    @property
    def text(self) -> str:
        """The body as text."""
        return self.body.decode()


def _json(status: int, outcome: str, **extra: object) -> WebhookResponse:
    payload = {"outcome": outcome, **extra}
    headers = {"content-type": "application/json"}
    if status == 503:
        headers["retry-after"] = "30"
    return WebhookResponse(status, json.dumps(payload).encode(), headers, outcome)


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k).lower(): str(v) for k, v in items}


def _delivery_record(event: WebhookEvent, now: datetime) -> WebhookEventRecord:
    """The record that remembers a signed delivery id with its body's digest."""
    return WebhookEventRecord(
        provider=event.provider,
        event_id=f"delivery:{event.delivery_id}",
        type=event.delivery_digest or "",
        outcome="delivery",
        received_at=now,
    )


def _refuse_replayed_delivery(first: WebhookEventRecord | None, record: WebhookEventRecord) -> None:
    """Refuse a delivery id that came before with another body's digest."""
    if first is None or first.type != record.type:
        raise WebhookVerificationError("the delivery id was used before with another body")


def _check_delivery(service: PaymentService, event: WebhookEvent) -> None:
    """Remember a signed delivery id with its body's digest; refuse it with another body.

    PayPal signs only the CRC32 of a body, which a forger can match with another
    body: a captured delivery's headers then vouch for a body PayPal never sent.
    The first body seen under a transmission id wins; the same body again goes on
    (the event itself is deduplicated as usual).

    Raises:
        WebhookVerificationError: The delivery id came before with another body.
    """
    record = _delivery_record(event, service.now())
    if service.storage.record_webhook_event(record):
        return
    _refuse_replayed_delivery(service.storage.get_webhook_event(record.provider, record.event_id), record)


async def _acheck_delivery(service: AsyncPaymentService, event: WebhookEvent) -> None:
    """The async twin of :func:`_check_delivery`."""
    record = _delivery_record(event, service.now())
    if await service.storage.record_webhook_event(record):
        return
    _refuse_replayed_delivery(await service.storage.get_webhook_event(record.provider, record.event_id), record)


def handle_webhook(
    service: PaymentService,
    provider: str,
    body: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> WebhookResponse:
    """Verify, normalize and apply one provider webhook; never raises for bad input.

    Args:
        service: The service that applies the event.
        provider: The provider's name (``"stripe"``, ``"paypal"``, ``"knet"``...).
        body: The raw request body bytes.
        headers: The request headers, any case.
        max_body_bytes: Larger bodies are refused with 413 before any parsing.

    Returns:
        The response to send. Forgeries get a bare 400 that tells the sender nothing;
        so does a signed delivery id (PayPal's transmission id) seen before with
        another body, remembered in storage as ``delivery:<id>`` with the body's SHA-256.

    Raises:
        InvalidRequestError: ``body`` is not bytes (a programming error: pass the raw body).
    """
    raw = _raw_body(body, "handle_webhook")
    with telemetry.span("paykit.handle_webhook", {"paykit.provider": provider}):
        response = _handle(service, provider, raw, headers, max_body_bytes)
        telemetry.mark(outcome=response.outcome, http_status=response.status_code)
    telemetry.record("paykit.webhook.events", provider=provider, outcome=response.outcome)
    return response


async def ahandle_webhook(
    service: AsyncPaymentService,
    provider: str,
    body: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> WebhookResponse:
    """The async twin of :func:`handle_webhook`, with the same answers; never raises for bad input.

    Awaits the adapter's ``parse_webhook``, the delivery-id check in storage and
    ``service.apply_webhook_event``; every status code, body and header is
    decided by the same code as :func:`handle_webhook`'s.

    Args:
        service: The async service that applies the event.
        provider: The provider's name (``"stripe"``, ``"paypal"``, ``"knet"``...).
        body: The raw request body bytes (``await request.body()``).
        headers: The request headers, any case.
        max_body_bytes: Larger bodies are refused with 413 before any parsing.

    Returns:
        The response to send, as :func:`handle_webhook` returns it.

    Raises:
        InvalidRequestError: ``body`` is not bytes (a programming error: pass the raw body).

    .. versionadded:: 0.1.0
    """
    raw = _raw_body(body, "ahandle_webhook")
    with telemetry.span("paykit.handle_webhook", {"paykit.provider": provider}):
        response = await _ahandle(service, provider, raw, headers, max_body_bytes)
        telemetry.mark(outcome=response.outcome, http_status=response.status_code)
    telemetry.record("paykit.webhook.events", provider=provider, outcome=response.outcome)
    return response


def _raw_body(body: object, function: str) -> bytes:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidRequestError(f"{function} needs the raw request body as bytes, not parsed or decoded data")
    return bytes(body)


def _handle(
    service: PaymentService,
    provider: str,
    raw: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    max_body_bytes: int,
) -> WebhookResponse:
    if len(raw) > max_body_bytes:
        return _json(413, "too_large")
    try:
        adapter = service.provider(provider)
    except InvalidRequestError:
        return _json(404, "unknown_provider")
    try:
        event = adapter.parse_webhook(raw, _lower(headers))
        if event.delivery_id is not None:
            _check_delivery(service, event)
        outcome = service.apply_webhook_event(event)
    except Exception as exc:
        return _refused(provider, exc)
    return _handled(provider, event, outcome, service.now)


async def _ahandle(
    service: AsyncPaymentService,
    provider: str,
    raw: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    max_body_bytes: int,
) -> WebhookResponse:
    if len(raw) > max_body_bytes:
        return _json(413, "too_large")
    try:
        adapter = service.provider(provider)
    except InvalidRequestError:
        return _json(404, "unknown_provider")
    try:
        event = await adapter.parse_webhook(raw, _lower(headers))
        if event.delivery_id is not None:
            await _acheck_delivery(service, event)
        outcome = await service.apply_webhook_event(event)
    except Exception as exc:
        return _refused(provider, exc)
    return _handled(provider, event, outcome, service.now)


def _refused(provider: str, exc: Exception) -> WebhookResponse:
    """The answer to an event that could not be applied; call it inside the ``except`` block."""
    if isinstance(exc, WebhookVerificationError):
        log.warning("webhook rejected", provider=provider, reason=exc.message)
        return _json(400, "rejected")
    if isinstance(exc, StorageError | ProviderUnavailableError):
        log.error("webhook could not be processed now", provider=provider, error=type(exc).__name__)
        return _json(503, "unavailable")
    if isinstance(exc, PaykitError):
        log.warning("webhook not applicable", provider=provider, error=type(exc).__name__, reason=exc.message)
        return _json(400, "rejected")
    log.exception("webhook handling failed", provider=provider)
    return _json(500, "error")


def _handled(
    provider: str, event: WebhookEvent, outcome: WebhookOutcome, now: Callable[[], datetime]
) -> WebhookResponse:
    """The answer to an applied (or duplicate, stale, ignored) event: the provider's reply body, or JSON."""
    log.info("webhook handled", provider=provider, event_type=event.type, outcome=outcome.value)
    if event.occurred_at is not None:
        lag = (now() - event.occurred_at).total_seconds()
        telemetry.record("paykit.webhook.lag", max(lag, 0.0), provider=provider)
    if event.reply_body is not None:
        content_type = event.reply_content_type or "text/plain; charset=utf-8"
        return WebhookResponse(200, event.reply_body.encode(), {"content-type": content_type}, outcome.value)
    return _json(200, outcome.value)
