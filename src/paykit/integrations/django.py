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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._errors import MissingExtraError
from . import _routes

# Django ships without type information (no py.typed), so its names are Any here.
try:
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern, path
    from django.views.decorators.csrf import csrf_exempt
    from django.views.decorators.http import require_GET, require_POST
except ImportError as exc:  # pragma: no cover - exercised by a test that hides django
    raise MissingExtraError("paykit.integrations.django", extra="django", package="Django") from exc

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


def paykit_urlpatterns(
    service: PaymentService,
    *,
    authorize: Callable[[Any], bool],
    max_body_bytes: int = _routes.DEFAULT_MAX_BODY_BYTES,
) -> list[Any]:
    """URL patterns serving paykit's routes for ``service``; ``include()`` them under a prefix.

    Routes: ``POST webhook/<provider>``, ``GET health``, ``GET audit/<payment_id>``
    and ``GET metrics`` (no trailing slashes, as providers are configured with
    exact URLs; ``APPEND_SLASH`` never redirects a POST usefully). The last two
    answer 401 unless ``authorize(request)`` returns ``True``.

    Args:
        service: The service the views use.
        authorize: Receives the ``HttpRequest``; decides whether it may read audit trails and metrics.
        max_body_bytes: Larger webhook bodies get 413 without being read whole.

    Returns:
        A list of ``django.urls.URLPattern``.
    """

    def webhook(request: HttpRequest, provider: str) -> Any:
        if _routes.declared_too_large(request.META.get("CONTENT_LENGTH") or None, max_body_bytes):
            return _to_django(_routes.too_large())
        # One byte over the limit is enough for handle_webhook to answer 413.
        if not _chunked(request):
            body = request.read(max_body_bytes + 1)
        elif request.META.get("wsgi.input_terminated"):
            body = _read_terminated(request.META["wsgi.input"], max_body_bytes + 1)
        else:
            return _length_required()
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

    patterns: list[URLPattern] = [
        path("webhook/<str:provider>", csrf_exempt(require_POST(webhook)), name="paykit-webhook"),
        path("health", require_GET(health), name="paykit-health"),
        path("audit/<str:payment_id>", require_GET(audit), name="paykit-audit"),
        path("metrics", require_GET(metrics), name="paykit-metrics"),
    ]
    return patterns
