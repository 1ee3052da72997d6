"""A small shop on paykit: an order table, a checkout, a Stripe webhook route, and fulfilment.

Orders are paid through Stripe and shipped once paid. Payment success reaches the
shop three ways, and any of them may come first: the checkout's own API answer,
Stripe's webhook (which can arrive before that answer, twice, late, or never),
and ``reconcile()`` for what was lost, after which :meth:`Shop.sweep` ships what
is paid. Shipping must happen exactly once whatever the order.

``SHOP_PLANTED_BUG=1`` in the environment plants a bug for the test suite to
find: :meth:`Shop.fulfil` forgets to check whether the order already shipped.
It only shows when a webhook overtakes the checkout's API answer, which the
chaos tests in ``tests/`` provoke from a seed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from flask import Flask, request
from flask.typing import ResponseReturnValue

from paykit import Money, PaykitError, PaymentService, PaymentStatus
from paykit.webhooks import handle_webhook


@dataclass
class Order:
    id: str
    user_id: str
    total: Money
    payment_id: str | None = None
    shipments: int = 0


class Shop:
    """The order table and what happens to orders."""

    def __init__(self, service: PaymentService, *, planted_bug: bool | None = None) -> None:
        self.service = service
        self.orders: dict[str, Order] = {}
        self.planted_bug = os.environ.get("SHOP_PLANTED_BUG") == "1" if planted_bug is None else planted_bug

    def place(self, order_id: str, user_id: str, total: Money) -> Order:
        order = self.orders[order_id] = Order(order_id, user_id, total)
        return order

    def checkout(self, order_id: str, payment_method: str) -> str:
        """Pay an order; ship it when paid. Returns what the customer sees."""
        order = self.orders[order_id]
        try:
            payment = self.service.initialize_payment(
                user_id=order.user_id, amount=order.total, provider="stripe", idempotency_key=f"order-{order.id}"
            )
            order.payment_id = payment.id
            payment = self.service.confirm_payment(payment.id, payment_method=payment_method)
        except PaykitError as exc:
            return f"not paid yet: {type(exc).__name__}"
        if payment.status is PaymentStatus.SUCCEEDED:
            self.fulfil(order)
        return payment.status.value

    def on_webhook(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, int]:
        """The webhook route's work: let paykit apply the event, ship when it paid an order."""
        answer = handle_webhook(self.service, "stripe", body, headers)
        if answer.outcome == "applied":  # verified, and it changed something: which payment?
            metadata = json.loads(body)["data"]["object"].get("metadata") or {}
            for order in self.orders.values():
                if order.payment_id and order.payment_id == metadata.get("paykit_payment_id") and self._paid(order):
                    self.fulfil(order)
        return answer.body, answer.status_code

    def sweep(self) -> None:
        """After ``reconcile()``: ship paid orders nobody shipped (their webhook was lost)."""
        for order in self.orders.values():
            if order.shipments == 0 and self._paid(order):
                self.fulfil(order)

    def _paid(self, order: Order) -> bool:
        return order.payment_id is not None and (
            self.service.get_payment(order.payment_id).status is PaymentStatus.SUCCEEDED
        )

    def fulfil(self, order: Order) -> None:
        """Ship the order, once."""
        if order.shipments and not self.planted_bug:
            return
        order.shipments += 1


def create_app(shop: Shop) -> Flask:
    """The web app: Stripe posts its webhooks to /webhooks/stripe."""
    app = Flask(__name__)

    @app.post("/webhooks/stripe")
    def stripe_webhook() -> ResponseReturnValue:
        body, status = shop.on_webhook(request.get_data(), dict(request.headers))
        return body, status, {"content-type": "application/json"}

    return app
