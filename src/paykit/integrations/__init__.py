"""Thin, optional glue between paykit and web frameworks.

Each framework has its own module, imported only when you ask for it, so
installing paykit never pulls in a web framework:

- :mod:`paykit.integrations.flask`: ``paykit_blueprint(service, authorize=...)``
  (``pip install "paykit-payments[flask]"``);
- :mod:`paykit.integrations.starlette`: ``paykit_router(service, authorize=...)``,
  mountable in Starlette and FastAPI (``pip install "paykit-payments[starlette]"``);
- :mod:`paykit.integrations.django`: ``paykit_urlpatterns(service, authorize=...)``
  (``pip install "paykit-payments[django]"``).

All three serve the same routes, with the same JSON bodies and status codes:
``POST /webhook/{provider}``, ``GET /health`` (public), and ``GET /audit/{payment_id}``
and ``GET /metrics``, which answer 401 unless the application's
``authorize(request)`` callback returns ``True``.
"""

from __future__ import annotations

__all__: list[str] = []
