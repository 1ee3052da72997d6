"""Flask integration: a blueprint with paykit's webhook, health, audit and metrics routes.

Usage::

    from paykit.integrations.flask import paykit_blueprint

    app.register_blueprint(paykit_blueprint(service, authorize=is_admin), url_prefix="/paykit")

Webhook bodies are read from ``request.stream`` as raw bytes, never through
``request.get_json()``: the provider signed the exact bytes it sent.
"""

from __future__ import annotations

from collections.abc import Callable

from .._errors import MissingExtraError
from . import _routes

try:
    from flask import Blueprint, Request, Response, request
except ImportError as exc:  # pragma: no cover - exercised by a test that hides flask
    raise MissingExtraError("paykit.integrations.flask", extra="flask", package="Flask") from exc

from .._service import PaymentService

__all__ = ["paykit_blueprint"]


def _to_flask(response: _routes.RouteResponse) -> Response:
    return Response(response.body, status=response.status_code, headers=response.headers)


def paykit_blueprint(
    service: PaymentService,
    *,
    authorize: Callable[[Request], bool],
    url_prefix: str = "",
    name: str = "paykit",
    max_body_bytes: int = _routes.DEFAULT_MAX_BODY_BYTES,
) -> Blueprint:
    """A blueprint serving paykit's routes for ``service``.

    Routes (under ``url_prefix``): ``POST /webhook/<provider>``, ``GET /health``,
    ``GET /audit/<payment_id>`` and ``GET /metrics``; the last two answer 401
    unless ``authorize(request)`` returns ``True``.

    Args:
        service: The service the routes use.
        authorize: Decides whether a request may read audit trails and metrics.
        url_prefix: Where the routes live, e.g. ``"/paykit"``.
        name: The blueprint name; change it to register paykit twice.
        max_body_bytes: Larger webhook bodies get 413 without being read.

    Returns:
        The blueprint, ready for ``app.register_blueprint``.
    """
    blueprint = Blueprint(name, __name__, url_prefix=url_prefix or None)

    @blueprint.post("/webhook/<provider>")
    def webhook(provider: str) -> Response:
        if _routes.declared_too_large(request.content_length, max_body_bytes):
            return _to_flask(_routes.too_large())
        # One byte over the limit is enough for handle_webhook to answer 413.
        body = request.stream.read(max_body_bytes + 1)
        return _to_flask(
            _routes.webhook(service, provider, body, request.headers.items(), max_body_bytes=max_body_bytes)
        )

    @blueprint.get("/health")
    def health() -> Response:
        return _to_flask(_routes.health(service))

    @blueprint.get("/audit/<payment_id>")
    def audit(payment_id: str) -> Response:
        if authorize(request) is not True:
            return _to_flask(_routes.unauthorized())
        return _to_flask(_routes.audit(service, payment_id))

    @blueprint.get("/metrics")
    def metrics() -> Response:
        if authorize(request) is not True:
            return _to_flask(_routes.unauthorized())
        return _to_flask(_routes.metrics(service))

    return blueprint
