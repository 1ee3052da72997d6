"""Starlette and FastAPI integration: a router with paykit's webhook, health, audit and metrics routes.

Usage::

    from paykit.integrations.starlette import paykit_router

    app.mount("/paykit", paykit_router(service, authorize=is_admin))  # FastAPI or Starlette

The webhook body is read from ``request.stream()`` as raw bytes, never through
``request.json()`` or a pydantic body parameter: the provider signed the exact
bytes it sent. An async service (``AsyncPaymentService``) is awaited directly on
the event loop; a sync ``PaymentService`` does blocking storage and provider I/O,
so its calls run in Starlette's threadpool, off the event loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from .._errors import MissingExtraError
from . import _routes

try:
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute, Route, Router
except ImportError as exc:  # pragma: no cover - exercised by a test that hides starlette
    raise MissingExtraError("paykit.integrations.starlette", extra="starlette", package="Starlette") from exc

from .._async.service import AsyncPaymentService
from .._service import PaymentService

__all__ = ["Authorize", "paykit_router", "paykit_routes"]

Authorize = Callable[[Request], bool | Awaitable[bool]]
"""``authorize(request)``: plain or ``async``; true lets the request read audit trails and metrics."""


def _to_starlette(response: _routes.RouteResponse) -> Response:
    return Response(response.body, status_code=response.status_code, headers=response.headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the raw body: enough for handle_webhook to say 413."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            break
    return bytes(body)


def paykit_routes(
    service: PaymentService | AsyncPaymentService,
    *,
    authorize: Authorize,
    max_body_bytes: int = _routes.DEFAULT_MAX_BODY_BYTES,
) -> list[BaseRoute]:
    """The paykit routes for ``service``, to list in a ``Starlette(routes=...)`` or a ``Mount``.

    Routes: ``POST /webhook/{provider}``, ``GET /health``, ``GET /audit/{payment_id}``
    and ``GET /metrics``; the last two answer 401 unless ``authorize(request)``
    returns (or resolves to) ``True``.

    Args:
        service: The service the routes use: an ``AsyncPaymentService`` is awaited
            directly, a sync ``PaymentService`` runs in the threadpool.
        authorize: Decides whether a request may read audit trails and metrics.
        max_body_bytes: Larger webhook bodies get 413 without being read whole.

    Returns:
        The routes.
    """

    async def allowed(request: Request) -> bool:
        verdict = authorize(request)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True

    async def webhook(request: Request) -> Response:
        if _routes.declared_too_large(request.headers.get("content-length"), max_body_bytes):
            return _to_starlette(_routes.too_large())
        body = await _read_body(request, max_body_bytes)
        provider = str(request.path_params["provider"])
        headers = request.headers.items()
        if _routes.is_async_service(service):
            response = await _routes.awebhook(service, provider, body, headers, max_body_bytes=max_body_bytes)
        else:
            response = await run_in_threadpool(
                _routes.webhook, service, provider, body, headers, max_body_bytes=max_body_bytes
            )
        return _to_starlette(response)

    async def health(request: Request) -> Response:
        if _routes.is_async_service(service):
            return _to_starlette(await _routes.ahealth(service))
        return _to_starlette(await run_in_threadpool(_routes.health, service))

    async def audit(request: Request) -> Response:
        if not await allowed(request):
            return _to_starlette(_routes.unauthorized())
        payment_id = str(request.path_params["payment_id"])
        if _routes.is_async_service(service):
            return _to_starlette(await _routes.aaudit(service, payment_id))
        return _to_starlette(await run_in_threadpool(_routes.audit, service, payment_id))

    async def metrics(request: Request) -> Response:
        if not await allowed(request):
            return _to_starlette(_routes.unauthorized())
        if _routes.is_async_service(service):
            return _to_starlette(await _routes.ametrics(service))
        return _to_starlette(await run_in_threadpool(_routes.metrics, service))

    return [
        Route("/webhook/{provider}", webhook, methods=["POST"], name="paykit_webhook"),
        Route("/health", health, methods=["GET"], name="paykit_health"),
        Route("/audit/{payment_id}", audit, methods=["GET"], name="paykit_audit"),
        Route("/metrics", metrics, methods=["GET"], name="paykit_metrics"),
    ]


def paykit_router(
    service: PaymentService | AsyncPaymentService,
    *,
    authorize: Authorize,
    max_body_bytes: int = _routes.DEFAULT_MAX_BODY_BYTES,
) -> Router:
    """A router serving :func:`paykit_routes`; mount it with ``app.mount("/paykit", router)``.

    Args:
        service: The service the routes use, async or sync (see :func:`paykit_routes`).
        authorize: Decides whether a request may read audit trails and metrics.
        max_body_bytes: Larger webhook bodies get 413 without being read whole.

    Returns:
        An ASGI router, mountable in Starlette and FastAPI applications.
    """
    return Router(routes=paykit_routes(service, authorize=authorize, max_body_bytes=max_body_bytes))
