"""paykit in a one-file Django project: webhook, health, audit and metrics routes under /paykit/.

Run it:
    pip install "paykit-payments[django]"
    PAYKIT_ADMIN_TOKEN=change-me python examples/django_app.py runserver 8000

It uses MemoryStorage and paykit's FakeProvider, so it works offline. Set
STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET to add Stripe too, and point Stripe's
webhook endpoint at http://<host>:8000/paykit/webhook/stripe.

Try it:
    curl -X POST localhost:8000/demo/checkout          # a fake payment, and the webhook that settles it
    curl localhost:8000/paykit/health
    curl -H "Authorization: Bearer change-me" localhost:8000/paykit/metrics

In a real project, ``build_urlconf``'s patterns go in your ``urls.py`` and the
service is created once at import time of a module of yours.
"""

from __future__ import annotations

import hmac
import os
import sys
from types import ModuleType
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from paykit import Money, PaymentService, PaymentStatus
from paykit.integrations.django import paykit_urlpatterns
from paykit.providers import Provider
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider


def providers_from_env() -> list[Provider]:
    """FakeProvider always; Stripe when its keys are in the environment."""
    providers: list[Provider] = [FakeProvider()]
    if api_key := os.environ.get("STRIPE_API_KEY"):
        from paykit.providers import StripeProvider  # noqa: PLC0415 - needs the stripe extra

        providers.append(StripeProvider(api_key=api_key, webhook_secrets=[os.environ["STRIPE_WEBHOOK_SECRET"]]))
    return providers


def is_admin(request: HttpRequest) -> bool:
    """Audit trails and metrics are for holders of PAYKIT_ADMIN_TOKEN (nobody, when it is unset)."""
    token = os.environ.get("PAYKIT_ADMIN_TOKEN", "")
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def build_urlconf() -> ModuleType:
    """The project's urls module: paykit under /paykit/ and one demo view."""
    service = PaymentService(storage=MemoryStorage(), providers=providers_from_env())

    def checkout(request: HttpRequest) -> Any:
        # The fake provider settles asynchronously; its webhook (signed) finishes the payment.
        fake = service.provider("fake")
        assert isinstance(fake, FakeProvider)
        fake.behavior = "processing"
        payment = service.initialize_payment(user_id="demo", amount=Money.of("19.99", "USD"), provider="fake")
        payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        return JsonResponse(
            {
                "payment_id": payment.id,
                "status": payment.status.value,
                "webhook": {"url": "/paykit/webhook/fake", "body": hook.body.decode(), "headers": hook.headers},
            }
        )

    urls = ModuleType("paykit_example_urls")
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("paykit/", include(paykit_urlpatterns(service, authorize=is_admin))),
        path("demo/checkout", csrf_exempt(require_POST(checkout))),
    ]
    return urls


if __name__ == "__main__":
    from django.conf import settings
    from django.core.management import execute_from_command_line

    settings.configure(
        DEBUG=True,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
        ALLOWED_HOSTS=["localhost", "127.0.0.1"],
        ROOT_URLCONF=build_urlconf(),
        MIDDLEWARE=["django.middleware.common.CommonMiddleware", "django.middleware.csrf.CsrfViewMiddleware"],
        USE_TZ=True,
    )
    execute_from_command_line(sys.argv)
