"""paykit in a Flask app: webhook, health, audit and metrics routes under /paykit.

Run it:
    pip install "paykit-payments[flask]"
    PAYKIT_ADMIN_TOKEN=change-me python examples/flask_app.py

It uses MemoryStorage and paykit's FakeProvider, so it works offline. Set
STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET to add Stripe too, and point Stripe's
webhook endpoint at http://<host>:8000/paykit/webhook/stripe.

Try it:
    curl -X POST localhost:8000/demo/checkout          # a fake payment, and the webhook that settles it
    curl localhost:8000/paykit/health
    curl -H "Authorization: Bearer change-me" localhost:8000/paykit/metrics
"""

from __future__ import annotations

import hmac
import os

from flask import Flask, Request, jsonify
from flask.typing import ResponseReturnValue

from paykit import Money, PaymentService, PaymentStatus
from paykit.integrations.flask import paykit_blueprint
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


def is_admin(request: Request) -> bool:
    """Audit trails and metrics are for holders of PAYKIT_ADMIN_TOKEN (nobody, when it is unset)."""
    token = os.environ.get("PAYKIT_ADMIN_TOKEN", "")
    given = request.headers.get("Authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def create_app() -> Flask:
    """The application: paykit's blueprint plus one demo route."""
    app = Flask(__name__)
    service = PaymentService(storage=MemoryStorage(), providers=providers_from_env())
    app.register_blueprint(paykit_blueprint(service, authorize=is_admin), url_prefix="/paykit")

    @app.post("/demo/checkout")
    def checkout() -> ResponseReturnValue:
        # The fake provider settles asynchronously; its webhook (signed) finishes the payment.
        fake = service.provider("fake")
        assert isinstance(fake, FakeProvider)
        fake.behavior = "processing"
        payment = service.initialize_payment(user_id="demo", amount=Money.of("19.99", "USD"), provider="fake")
        payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        return jsonify(
            payment_id=payment.id,
            status=payment.status.value,
            webhook={"url": "/paykit/webhook/fake", "body": hook.body.decode(), "headers": hook.headers},
        )

    return app


if __name__ == "__main__":
    create_app().run(port=8000)
