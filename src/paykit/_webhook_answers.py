"""The answers of the webhook entry points, without I/O: both twins decide every status code here.

``paykit.webhooks.handle_webhook`` and ``ahandle_webhook`` (one source, in
``_async/webhooks.py``) call these to build each answer, so the two can never
answer differently.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

from . import _telemetry as telemetry
from ._errors import (
    InvalidRequestError,
    PaykitError,
    ProviderUnavailableError,
    StorageError,
    WebhookVerificationError,
)
from ._log import get_logger
from ._models import WebhookEvent
from ._results import WebhookOutcome
from .storage._base import WebhookEventRecord

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "WebhookResponse",
    "delivery_record",
    "handled",
    "json_answer",
    "lower_headers",
    "raw_body",
    "refuse_replayed_delivery",
    "refused",
]

log = get_logger("paykit.webhooks")

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


def json_answer(status: int, outcome: str, **extra: object) -> WebhookResponse:
    body = _OUTCOME_BODIES.get(outcome) if not extra else None
    if body is None:
        body = json.dumps({"outcome": outcome, **extra}).encode()
        if not extra and len(_OUTCOME_BODIES) < 64:
            _OUTCOME_BODIES[outcome] = body
    headers = {"content-type": "application/json"}
    if status == 503:
        headers["retry-after"] = "30"
    return WebhookResponse(status, body, headers, outcome)


_OUTCOME_BODIES: dict[str, bytes] = {}
"""``{"outcome": ...}`` bodies by outcome: a handful of constants, encoded once."""


def lower_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers with lower-cased names.

    Raises:
        InvalidRequestError: ``headers`` is neither a mapping nor (name, value) pairs (``None``...):
            the entry points answer it with a 400, as any request they cannot verify.
    """
    items = headers.items() if isinstance(headers, Mapping) else headers
    try:
        return {str(k).lower(): str(v) for k, v in items}
    except (TypeError, ValueError):
        raise InvalidRequestError("webhook headers must be a mapping or (name, value) pairs") from None


def delivery_record(event: WebhookEvent, now: datetime) -> WebhookEventRecord:
    """The record that remembers a signed delivery id with its body's digest."""
    return WebhookEventRecord(
        provider=event.provider,
        event_id=f"delivery:{event.delivery_id}",
        type=event.delivery_digest or "",
        outcome="delivery",
        received_at=now,
    )


def refuse_replayed_delivery(first: WebhookEventRecord | None, record: WebhookEventRecord) -> None:
    """Refuse a delivery id that came before with another body's digest."""
    if first is None or first.type != record.type:
        raise WebhookVerificationError("the delivery id was used before with another body")


def raw_body(body: object, function: str) -> bytes:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidRequestError(f"{function} needs the raw request body as bytes, not parsed or decoded data")
    return bytes(body)


def refused(provider: str, exc: Exception) -> WebhookResponse:
    """The answer to an event that could not be applied; call it inside the ``except`` block."""
    if isinstance(exc, WebhookVerificationError):
        log.warning("webhook rejected", provider=provider, reason=exc.message)
        return json_answer(400, "rejected")
    if isinstance(exc, StorageError | ProviderUnavailableError):
        log.error("webhook could not be processed now", provider=provider, error=type(exc).__name__)
        return json_answer(503, "unavailable")
    if isinstance(exc, PaykitError):
        log.warning("webhook not applicable", provider=provider, error=type(exc).__name__, reason=exc.message)
        return json_answer(400, "rejected")
    log.exception("webhook handling failed", provider=provider)
    return json_answer(500, "error")


def handled(
    provider: str, event: WebhookEvent, outcome: WebhookOutcome, now: Callable[[], datetime]
) -> WebhookResponse:
    """The answer to an applied (or duplicate, stale, ignored) event: the provider's reply body, or JSON."""
    if log.isEnabledFor(logging.INFO):
        log.info("webhook handled", provider=provider, event_type=event.type, outcome=outcome.value)
    if event.occurred_at is not None and telemetry.metering():
        lag = (now() - event.occurred_at).total_seconds()
        telemetry.record("paykit.webhook.lag", max(lag, 0.0), provider=provider)
    if event.reply_body is not None:
        content_type = event.reply_content_type or "text/plain; charset=utf-8"
        return WebhookResponse(200, event.reply_body.encode(), {"content-type": content_type}, outcome.value)
    return json_answer(200, outcome._value_)  # ._value_: .value without its property call
