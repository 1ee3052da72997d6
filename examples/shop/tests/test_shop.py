"""The shop's tests: only paykit's plugin fixtures (paykit_service, paykit_stripe, paykit_chaos, paykit_seed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from flask.testing import FlaskClient
from shop import Shop, create_app

from paykit import Money, PaymentService, PaymentStatus
from paykit.testing import Chaos, StripeFake, assert_consistent

CARDS = ["pm_card_visa", "pm_card_mastercard", "pm_card_chargeDeclined", "pm_card_visa"]


def route(client: FlaskClient) -> Callable[[bytes, Mapping[str, str]], int]:
    """Stripe's deliveries go to the shop's real webhook route."""
    return lambda body, headers: client.post("/webhooks/stripe", data=body, headers=dict(headers)).status_code


def test_a_paid_order_ships_once(paykit_service: PaymentService, paykit_stripe: StripeFake) -> None:
    shop = Shop(paykit_service)
    client = create_app(shop).test_client()
    shop.place("o1", "u1", Money.of("25.00", "USD"))

    assert shop.checkout("o1", "pm_card_visa") == "succeeded"
    for delivery in paykit_stripe.take_deliveries():
        assert (
            client.post("/webhooks/stripe", data=delivery.body, headers=paykit_stripe.signed(delivery)[1]).status_code
            == 200
        )

    assert shop.orders["o1"].shipments == 1


def test_a_declined_card_ships_nothing(paykit_service: PaymentService) -> None:
    shop = Shop(paykit_service)
    shop.place("o1", "u1", Money.of("25.00", "USD"))

    assert shop.checkout("o1", "pm_card_chargeDeclined") == "not paid yet: PaymentDeclinedError"

    assert paykit_service.get_payment(shop.orders["o1"].payment_id or "").status is PaymentStatus.FAILED
    assert shop.orders["o1"].shipments == 0


def test_a_forged_webhook_is_refused(paykit_service: PaymentService, paykit_stripe: StripeFake) -> None:
    shop = Shop(paykit_service)
    client = create_app(shop).test_client()
    shop.place("o1", "u1", Money.of("25.00", "USD"))
    shop.checkout("o1", "pm_card_visa")

    body, headers = paykit_stripe.forged(paykit_stripe.take_deliveries()[-1])
    assert client.post("/webhooks/stripe", data=body, headers=headers).status_code == 400


def test_every_paid_order_ships_exactly_once_whatever_stripe_does(
    paykit_service: PaymentService, paykit_stripe: StripeFake, paykit_chaos: Callable[..., Chaos], paykit_seed: int
) -> None:
    shop = Shop(paykit_service)
    chaos = paykit_chaos(route(create_app(shop).test_client()))
    for number, card in enumerate(CARDS):
        order = shop.place(f"o{number}", f"u{number}", Money.of("25.00", "USD"))
        shop.checkout(order.id, card)
        chaos.flush()
    chaos.stop()
    chaos.drain()

    assert_consistent(paykit_service, paykit_stripe, chaos=chaos)  # reconciles first
    shop.sweep()

    for order in shop.orders.values():
        paid = (
            order.payment_id is not None
            and paykit_service.get_payment(order.payment_id).status is PaymentStatus.SUCCEEDED
        )
        assert order.shipments == (1 if paid else 0), (
            f"order {order.id} shipped {order.shipments} times\n{chaos.report()}"
        )
