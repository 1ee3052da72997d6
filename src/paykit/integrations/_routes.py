"""What every integration's routes answer, without any web framework.

Each framework module only reads the request (raw body bytes, headers, path
parameters), calls one of these functions, and copies the :class:`RouteResponse`
into its own response type, so the three integrations cannot drift apart.

Each route has an async twin (``awebhook``, ``ahealth``, ``aaudit``, ``ametrics``)
for an async service (see :func:`is_async_service`): it awaits the service and
builds its answer with the same helpers.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._async.service import AsyncPaymentService
from .._errors import InvalidRequestError, NotFoundError, StorageError
from .._models import AuditEntry
from .._results import HealthReport
from .._service import PaymentService
from .._webhook_answers import json_answer as _webhook_json
from ..webhooks import DEFAULT_MAX_BODY_BYTES, WebhookResponse, ahandle_webhook, handle_webhook

if TYPE_CHECKING:
    from typing_extensions import TypeIs

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "RouteResponse",
    "aaudit",
    "ahealth",
    "ametrics",
    "audit",
    "awebhook",
    "declared_too_large",
    "health",
    "is_async_service",
    "metrics",
    "too_large",
    "unauthorized",
    "webhook",
]


def is_async_service(service: PaymentService | AsyncPaymentService) -> TypeIs[AsyncPaymentService]:
    """Whether routes must await ``service``: its ``apply_webhook_event`` is a coroutine function.

    An ``AsyncPaymentService`` (or anything built like one, such as a subclass or
    a wrapper) is awaited directly; a sync one keeps running in a thread.
    """
    return inspect.iscoroutinefunction(getattr(service, "apply_webhook_event", None))


@dataclass(frozen=True, slots=True)
class RouteResponse:
    """A framework-free HTTP response: copy it into the framework's own.

    Attributes:
        status_code: The HTTP status.
        body: The exact body bytes.
        headers: Lower-case header names; always includes ``content-type``.
    """

    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The ``content-type`` header."""
        return self.headers["content-type"]


def _json(status_code: int, payload: Any, *, retry_after: bool = False) -> RouteResponse:
    headers = {"content-type": "application/json"}
    if retry_after:
        headers["retry-after"] = "30"
    return RouteResponse(status_code, json.dumps(payload).encode(), headers)


def _unavailable() -> RouteResponse:
    return _json(503, {"error": "unavailable"}, retry_after=True)


def webhook(
    service: PaymentService,
    provider: str,
    body: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> RouteResponse:
    """``POST /webhook/{provider}``: :func:`~paykit.webhooks.handle_webhook`'s answer, verbatim.

    Args:
        service: The service that applies the event.
        provider: The provider name from the path; an unconfigured one gets 404.
        body: The raw request body, exactly as received.
        headers: The request headers, any case.
        max_body_bytes: Larger bodies get 413.

    Returns:
        The status, body and headers ``handle_webhook`` chose.
    """
    return _verbatim(handle_webhook(service, provider, body, headers, max_body_bytes=max_body_bytes))


async def awebhook(
    service: AsyncPaymentService,
    provider: str,
    body: bytes,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> RouteResponse:
    """The async twin of :func:`webhook`: :func:`~paykit.webhooks.ahandle_webhook`'s answer, verbatim."""
    return _verbatim(await ahandle_webhook(service, provider, body, headers, max_body_bytes=max_body_bytes))


def _verbatim(response: WebhookResponse) -> RouteResponse:
    return RouteResponse(response.status_code, response.body, dict(response.headers))


def declared_too_large(content_length: str | int | None, max_body_bytes: int) -> bool:
    """Whether a request's ``Content-Length`` already exceeds the limit.

    Integrations check this before reading the body, then read at most
    ``max_body_bytes + 1`` bytes, so a huge or chunked upload never fills memory.

    Args:
        content_length: The header value (or the framework's parsed int), if any.
        max_body_bytes: The webhook body limit.

    Returns:
        ``True`` only for a well-formed length above the limit.
    """
    try:
        return content_length is not None and int(content_length) > max_body_bytes
    except ValueError:
        return False


def too_large() -> RouteResponse:
    """The 413 answer, the one :func:`~paykit.webhooks.handle_webhook` gives an oversized body."""
    return _verbatim(_webhook_json(413, "too_large"))


def unauthorized() -> RouteResponse:
    """The 401 answer of guarded routes when ``authorize(request)`` is false."""
    return _json(401, {"error": "unauthorized"})


def health(service: PaymentService) -> RouteResponse:
    """``GET /health``: 200 when storage answers, 503 otherwise; JSON ``HealthReport.as_dict()``.

    Args:
        service: The service to check.

    Returns:
        The health report as JSON.
    """
    return _health(service.health())


async def ahealth(service: AsyncPaymentService) -> RouteResponse:
    """The async twin of :func:`health`."""
    return _health(await service.health())


def _health(report: HealthReport) -> RouteResponse:
    return _json(200 if report.ok else 503, report.as_dict(), retry_after=not report.ok)


def audit(service: PaymentService, payment_id: str) -> RouteResponse:
    """``GET /audit/{payment_id}``: the payment's audit trail, oldest first.

    Args:
        service: The service whose storage holds the trail.
        payment_id: The paykit payment id from the path.

    Returns:
        200 with a JSON list of entries, 404 for an unknown payment, 503 when storage is down.
    """
    try:
        service.get_payment(payment_id)
        entries = service.audit_trail(payment_id)
    except (NotFoundError, InvalidRequestError):
        return _not_found()
    except StorageError:
        return _unavailable()
    return _trail(entries)


async def aaudit(service: AsyncPaymentService, payment_id: str) -> RouteResponse:
    """The async twin of :func:`audit`."""
    try:
        await service.get_payment(payment_id)
        entries = await service.audit_trail(payment_id)
    except (NotFoundError, InvalidRequestError):
        return _not_found()
    except StorageError:
        return _unavailable()
    return _trail(entries)


def _not_found() -> RouteResponse:
    return _json(404, {"error": "not_found"})


def _trail(entries: Iterable[AuditEntry]) -> RouteResponse:
    return _json(200, [entry.model_dump(mode="json") for entry in entries])


def metrics(service: PaymentService) -> RouteResponse:
    """``GET /metrics``: JSON ``MetricsReport.as_dict()`` (amounts as decimal strings).

    Args:
        service: The service to report on.

    Returns:
        200 with the metrics, 503 when storage is down.
    """
    try:
        report = service.metrics()
    except StorageError:
        return _unavailable()
    return _json(200, report.as_dict())


async def ametrics(service: AsyncPaymentService) -> RouteResponse:
    """The async twin of :func:`metrics`."""
    try:
        report = await service.metrics()
    except StorageError:
        return _unavailable()
    return _json(200, report.as_dict())
