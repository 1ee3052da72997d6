# Generated from src/paykit/_async/webhooks.py by scripts/unasync.py: do not edit.
"""The webhook entry point: raw bytes and headers in, an HTTP answer out (its answers: ``_webhook_answers``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .. import _telemetry as telemetry
from .._errors import InvalidRequestError
from .._models import WebhookEvent
from .._webhook_answers import (
    DEFAULT_MAX_BODY_BYTES,
    WebhookResponse,
    delivery_record,
    handled,
    json_answer,
    lower_headers,
    raw_body,
    refuse_replayed_delivery,
    refused,
)
from .service import PaymentService

__all__ = ["handle_webhook"]


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
    raw = raw_body(body, "handle_webhook")
    with telemetry.span("paykit.handle_webhook", {"paykit.provider": provider}):
        response = _handle(service, provider, raw, headers, max_body_bytes)
        telemetry.mark(outcome=response.outcome, http_status=response.status_code)
    telemetry.record("paykit.webhook.events", provider=provider, outcome=response.outcome)
    return response


def _handle(
    service: PaymentService,
    provider: str,
    raw: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    max_body_bytes: int,
) -> WebhookResponse:
    if len(raw) > max_body_bytes:
        return json_answer(413, "too_large")
    try:
        adapter = service.provider(provider)
    except InvalidRequestError:
        return json_answer(404, "unknown_provider")
    try:
        event = adapter.parse_webhook(raw, lower_headers(headers))
        if event.delivery_id is not None:
            _check_delivery(service, event)
        outcome = service.apply_webhook_event(event)
    except Exception as exc:
        return refused(provider, exc)
    return handled(provider, event, outcome, service.now)


def _check_delivery(service: PaymentService, event: WebhookEvent) -> None:
    """Remember a signed delivery id with its body's digest; refuse it with another body.

    PayPal signs only the CRC32 of a body, which a forger can match with another
    body: a captured delivery's headers then vouch for a body PayPal never sent.
    The first body seen under a transmission id wins; the same body again goes on
    (the event itself is deduplicated as usual).

    Raises:
        WebhookVerificationError: The delivery id came before with another body.
    """
    record = delivery_record(event, service.now())
    if service.storage.record_webhook_event(record):
        return
    refuse_replayed_delivery(service.storage.get_webhook_event(record.provider, record.event_id), record)
