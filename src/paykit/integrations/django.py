"""Django integration: URL patterns for paykit's webhook, health, audit and metrics routes.

Usage, in your ``urls.py``::

    from django.urls import include, path
    from paykit.integrations.django import paykit_urlpatterns

    urlpatterns = [path("paykit/", include(paykit_urlpatterns(service, authorize=is_staff)))]

The webhook view is CSRF-exempt (providers cannot send your CSRF token; their
signature authenticates them) and reads the raw body with ``request.read()``,
never ``request.POST`` or a re-encoded ``json.loads(request.body)``.
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
        body = request.read(max_body_bytes + 1)
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
