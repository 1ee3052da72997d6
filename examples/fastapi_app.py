"""paykit in a FastAPI app: webhook, health, audit and metrics routes mounted at /paykit.

Run it:
    pip install "paykit-payments[starlette]" fastapi uvicorn
    PAYKIT_ADMIN_TOKEN=change-me uvicorn --factory examples.fastapi_app:create_app --port 8000
    (or: PAYKIT_ADMIN_TOKEN=change-me python examples/fastapi_app.py)

It uses the async service, awaited directly by the routes, on AsyncMemoryStorage and
paykit's AsyncFakeProvider, so it works offline. Set STRIPE_API_KEY and
STRIPE_WEBHOOK_SECRET to add Stripe too, and point Stripe's webhook endpoint at
http://<host>:8000/paykit/webhook/stripe.

Try it:
    curl -X POST localhost:8000/demo/checkout          # a fake payment, and the webhook that settles it
    curl localhost:8000/paykit/health
    curl -H "Authorization: Bearer change-me" localhost:8000/paykit/metrics
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request

from paykit import AsyncPaymentService, Money, PaymentStatus
from paykit.integrations.starlette import paykit_router
from paykit.providers import AsyncProvider
from paykit.storage import AsyncMemoryStorage
from paykit.testing import AsyncFakeProvider


def providers_from_env() -> list[AsyncProvider]:
    """AsyncFakeProvider always; Stripe when its keys are in the environment."""
    providers: list[AsyncProvider] = [AsyncFakeProvider()]
    if api_key := os.environ.get("STRIPE_API_KEY"):
        from paykit.providers import AsyncStripeProvider  # noqa: PLC0415 - needs the stripe extra

        providers.append(AsyncStripeProvider(api_key=api_key, webhook_secrets=[os.environ["STRIPE_WEBHOOK_SECRET"]]))
    return providers


async def is_admin(request: Request) -> bool:
    """Audit trails and metrics are for holders of PAYKIT_ADMIN_TOKEN (nobody, when it is unset)."""
    token = os.environ.get("PAYKIT_ADMIN_TOKEN", "")
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def create_app() -> FastAPI:
    """The application: paykit's router plus one demo route."""
    app = FastAPI(title="paykit example")
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=providers_from_env())
    app.mount("/paykit", paykit_router(service, authorize=is_admin))

    @app.post("/demo/checkout")
    async def checkout() -> dict[str, Any]:
        # The fake provider settles asynchronously; its webhook (signed) finishes the payment.
        fake = service.provider("fake")
        assert isinstance(fake, AsyncFakeProvider)
        fake.behavior = "processing"
        payment = await service.initialize_payment(user_id="demo", amount=Money.of("19.99", "USD"), provider="fake")
        payment = await service.confirm_payment(payment.id, payment_method="pm_card_visa")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        return {
            "payment_id": payment.id,
            "status": payment.status.value,
            "webhook": {"url": "/paykit/webhook/fake", "body": hook.body.decode(), "headers": hook.headers},
        }

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), port=8000)
