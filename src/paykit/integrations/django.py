"""Django integration: URL patterns for paykit's webhook, health, audit and metrics routes.

Usage, in your ``urls.py``::

    from django.urls import include, path
    from paykit.integrations.django import paykit_urlpatterns

    urlpatterns = [path("paykit/", include(paykit_urlpatterns(service, authorize=is_staff)))]

The webhook view is CSRF-exempt (providers cannot send your CSRF token; their
signature authenticates them) and reads the raw body with ``request.read()``,
never ``request.POST`` or a re-encoded ``json.loads(request.body)``.

A chunked body (no ``Content-Length``) is read from ``wsgi.input`` when the
server de-chunks it and says so with ``wsgi.input_terminated`` (gunicorn, uWSGI,
mod_wsgi), up to one byte over the limit: an oversized one gets 413. Django
itself reads no body without ``Content-Length``, and servers that pass the raw
chunked stream (Django's runserver) leave it unreadable: such a request gets 411
Length Required rather than a misleading 400.

Under ASGI, pass an async service (``AsyncPaymentService``) and the views are
``async def`` views that await it; ``asynchronous=True`` gives async views for a
sync service too, which then runs in a worker thread (``asgiref``'s
``sync_to_async``). ``authorize`` may then be a coroutine function; a plain one
runs in Django's thread for sync code, so it may use the ORM (``request.user``).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from .._errors import ConfigurationError, MissingExtraError
from . import _routes

# Django ships without type information (no py.typed), so its names are Any here.
try:
    import django
    from asgiref.sync import sync_to_async
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern, path
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_GET, require_POST
except ImportError as exc:  # pragma: no cover - exercised by a test that hides django
    raise MissingExtraError("paykit.integrations.django", extra="django", package="Django") from exc

from .._async.service import AsyncPaymentService
from .._service import PaymentService

__all__ = ["paykit_urlpatterns"]


def _length_required() -> Any:
    return HttpResponse(b'{"outcome": "length_required"}', status=411, headers={"Content-Type": "application/json"})


def _chunked(request: HttpRequest) -> bool:
    return (
        not request.META.get("CONTENT_LENGTH") and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    )


def _read_terminated(stream: Any, limit: int) -> bytes:
    # read(n) may return fewer bytes than asked before the end; only b"" means the end.
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _to_django(response: _routes.RouteResponse) -> Any:
    return HttpResponse(response.body, status=response.status_code, headers=response.headers)


def _webhook_body(request: HttpRequest, max_body_bytes: int) -> bytes | Any:
    """The raw body, at most one byte over the limit (enough for a 413), or the response that refuses it."""
    if _routes.declared_too_large(request.META.get("CONTENT_LENGTH") or None, max_body_bytes):
        return _to_django(_routes.too_large())
    if not _chunked(request):
        return request.read(max_body_bytes + 1)
    if request.META.get("wsgi.input_terminated"):
        return _read_terminated(request.META["wsgi.input"], max_body_bytes + 1)
    return _length_required()


def paykit_urlpatterns(
    service: PaymentService | AsyncPaymentService,
    *,
    authorize: Callable[[Any], bool] | Callable[[Any], Awaitable[bool]],
    max_body_bytes: int = _routes.DEFAULT_MAX_BODY_BYTES,
    asynchronous: bool | None = None,
) -> list[Any]:
    """URL patterns serving paykit's routes for ``service``; ``include()`` them under a prefix.

    Routes: ``POST webhook/<provider>``, ``GET health``, ``GET audit/<payment_id>``
    and ``GET metrics`` (no trailing slashes, as providers are configured with
    exact URLs; ``APPEND_SLASH`` never redirects a POST usefully). The last two
    answer 401 unless ``authorize(request)`` returns ``True``.

    Args:
        service: The service the views use: a ``PaymentService`` or an ``AsyncPaymentService``.
        authorize: Receives the ``HttpRequest``; decides whether it may read audit trails and metrics.
            With async views it may also be a coroutine function.
        max_body_bytes: Larger webhook bodies get 413 without being read whole.
        asynchronous: Serve ``async def`` views (for ASGI). By default they are async exactly
            when the service is; ``True`` with a sync service runs it in a worker thread.

    Returns:
        A list of ``django.urls.URLPattern``.

    Raises:
        ConfigurationError: An async service with ``asynchronous=False``, or async views
            asked of a Django older than 5.0 (whose view decorators cannot wrap them).

    .. versionchanged:: 0.1.0
       Async views, for async services.
    """
    if _routes.is_async_service(service):
        if asynchronous is False:
            raise ConfigurationError("an async service needs async views: leave asynchronous unset or True")
        return _async_patterns(service, authorize, max_body_bytes)
    if asynchronous:
        return _async_patterns(service, authorize, max_body_bytes)
    if inspect.iscoroutinefunction(authorize):
        raise ConfigurationError("an async authorize() needs async views: pass asynchronous=True")
    return _sync_patterns(service, authorize, max_body_bytes)


def _sync_patterns(
    service: PaymentService, authorize: Callable[[Any], bool] | Callable[[Any], Awaitable[bool]], max_body_bytes: int
) -> list[Any]:
    def webhook(request: HttpRequest, provider: str) -> Any:
        body = _webhook_body(request, max_body_bytes)
        if not isinstance(body, bytes):
            return body
        return _to_django(_routes.webhook(service, provider, body, request.headers, max_body_bytes=max_body_bytes))

    def health(request: HttpRequest) -> Any:
        return _to_django(_routes.health(service))

    def audit(request: HttpRequest, payment_id: str) -> Any:
        if authorize(request) is not True:
            return _to_django(_routes.unauthorized())
        return _to_django(_routes.audit(service, payment_id))

    def metrics(request: HttpRequest) -> Any:
        if authorize(request) is not True:
            return _to_django(_routes.unauthorized())
        return _to_django(_routes.metrics(service))

    return _patterns(webhook, health, audit, metrics)


def _patterns(webhook: Any, health: Any, audit: Any, metrics: Any) -> list[Any]:
    # Django's decorators keep an async view async (since Django 5.0).
    patterns: list[URLPattern] = [
        path("webhook/<str:provider>", csrf_exempt(require_POST(webhook)), name="paykit-webhook"),
        path("health", require_GET(health), name="paykit-health"),
        path("audit/<str:payment_id>", require_GET(audit), name="paykit-audit"),
        path("metrics", require_GET(metrics), name="paykit-metrics"),
    ]
    return patterns


def _async_patterns(
    service: PaymentService | AsyncPaymentService,
    authorize: Callable[[Any], bool] | Callable[[Any], Awaitable[bool]],
    max_body_bytes: int,
) -> list[Any]:
    if django.VERSION < (5, 0):
        raise ConfigurationError("paykit's async Django views need Django 5.0 or later")

    async def allowed(request: HttpRequest) -> bool:
        if inspect.iscoroutinefunction(authorize):
            verdict = await authorize(request)
        else:
            verdict = await sync_to_async(authorize)(request)
        return verdict is True

    async def webhook(request: HttpRequest, provider: str) -> Any:
        body = _webhook_body(request, max_body_bytes)
        if not isinstance(body, bytes):
            return body
        headers = request.headers
        if _routes.is_async_service(service):
            response = await _routes.awebhook(service, provider, body, headers, max_body_bytes=max_body_bytes)
        else:
            # paykit is thread-safe and touches no Django state: no need to queue behind the ORM's thread.
            response = await sync_to_async(_routes.webhook, thread_sensitive=False)(
                service, provider, body, headers, max_body_bytes=max_body_bytes
            )
        return _to_django(response)

    async def health(request: HttpRequest) -> Any:
        if _routes.is_async_service(service):
            return _to_django(await _routes.ahealth(service))
        return _to_django(await sync_to_async(_routes.health, thread_sensitive=False)(service))

    async def audit(request: HttpRequest, payment_id: str) -> Any:
        if not await allowed(request):
            return _to_django(_routes.unauthorized())
        if _routes.is_async_service(service):
            return _to_django(await _routes.aaudit(service, payment_id))
        return _to_django(await sync_to_async(_routes.audit, thread_sensitive=False)(service, payment_id))

    async def metrics(request: HttpRequest) -> Any:
        if not await allowed(request):
            return _to_django(_routes.unauthorized())
        if _routes.is_async_service(service):
            return _to_django(await _routes.ametrics(service))
        return _to_django(await sync_to_async(_routes.metrics, thread_sensitive=False)(service))

    return _patterns(webhook, health, audit, metrics)
