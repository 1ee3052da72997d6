"""Webhook handling for any web framework: raw bytes and headers in, an HTTP answer out.

Pass the request body exactly as received (``request.get_data()`` in Flask,
``await request.body()`` in Starlette/FastAPI, ``request.body`` in Django).
Never parse and re-serialize JSON first: the signature covers the exact bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from ._errors import (
    InvalidRequestError,
    PaykitError,
    ProviderUnavailableError,
    StorageError,
    WebhookVerificationError,
)
from ._log import get_logger
from ._service import PaymentService, WebhookOutcome

__all__ = ["DEFAULT_MAX_BODY_BYTES", "WebhookOutcome", "WebhookResponse", "handle_webhook"]

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
        The response to send. Forgeries get a bare 400 that tells the sender nothing.

    Raises:
        InvalidRequestError: ``body`` is not bytes (a programming error: pass the raw body).
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidRequestError("handle_webhook needs the raw request body as bytes, not parsed or decoded data")
    raw = bytes(body)
    if len(raw) > max_body_bytes:
        return _json(413, "too_large")
    try:
        adapter = service.provider(provider)
    except InvalidRequestError:
        return _json(404, "unknown_provider")
    try:
        event = adapter.parse_webhook(raw, _lower(headers))
        outcome = service.apply_webhook_event(event)
    except WebhookVerificationError as exc:
        log.warning("webhook rejected", provider=provider, reason=exc.message)
        return _json(400, "rejected")
    except (StorageError, ProviderUnavailableError) as exc:
        log.error("webhook could not be processed now", provider=provider, error=type(exc).__name__)
        return _json(503, "unavailable")
    except PaykitError as exc:
        log.warning("webhook not applicable", provider=provider, error=type(exc).__name__, reason=exc.message)
        return _json(400, "rejected")
    except Exception:
        log.exception("webhook handling failed", provider=provider)
        return _json(500, "error")
    log.info("webhook handled", provider=provider, event_type=event.type, outcome=outcome.value)
    if event.reply_body is not None:
        content_type = event.reply_content_type or "text/plain; charset=utf-8"
        return WebhookResponse(200, event.reply_body.encode(), {"content-type": content_type}, outcome.value)
    return _json(200, outcome.value)
