"""Subscription renewals on Stripe: off-session PaymentIntents, against respx-mocked Stripe.

The request is Stripe's own (``confirm``, ``off_session``, ``payment_method``,
``customer`` on ``POST /v1/payment_intents``); the answers are Stripe's
PaymentIntent (fixtures3.json) and its 402 card errors: ``card_declined`` goes to
dunning, ``authentication_required`` needs the customer.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from paykit import Money, NotificationKind, PaymentService, PaymentStatus, Plan, SubscriptionStatus
from paykit.providers.stripe import StripeProvider
from paykit.storage import MemoryStorage
from paykit.testing import ManualClock

from .test_stripe import API, SECRET, payment_intent, stripe_error

START = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=API, assert_all_called=False) as router:
        yield router


@pytest.fixture
def service() -> Iterator[PaymentService]:
    clock = ManualClock(START)
    provider = StripeProvider("sk_test_unit", webhook_secrets=[SECRET], clock=clock)
    storage = MemoryStorage()
    storage.set_customer_ref("stripe", "u1", "cus_NffrFeUfNV2Hib")
    with PaymentService(storage=storage, providers=[provider], clock=clock) as svc:
        yield svc


def subscribe(service: PaymentService) -> str:
    plan = Plan(amount=Money.of("12.50", "USD"))
    return service.create_subscription(user_id="u1", plan=plan, provider="stripe", payment_method="pm_1MqLiJ").id


def decline(code: str, decline_code: str, message: str) -> httpx.Response:
    """Stripe's 402 for a failed off-session confirmation: the PaymentIntent needs a new method."""
    return stripe_error(
        402,
        type="card_error",
        code=code,
        decline_code=decline_code,
        message=message,
        doc_url=f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}",
        payment_intent=payment_intent(
            status="requires_payment_method",
            last_payment_error={"type": "card_error", "code": code, "decline_code": decline_code, "message": message},
        ),
    )


def form(request: httpx.Request) -> dict[str, Any]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def test_a_renewal_confirms_off_session_on_the_saved_method(api: respx.MockRouter, service: PaymentService) -> None:
    sub_id = subscribe(service)
    route = api.post("/v1/payment_intents").respond(
        200, json=payment_intent(status="succeeded", amount=1250, currency="usd", client_secret=None)
    )

    report = service.bill_due()

    sent = form(route.calls.last.request)
    assert {k: sent[k] for k in ("amount", "currency", "confirm", "off_session", "payment_method", "customer")} == {
        "amount": "1250",
        "currency": "usd",
        "confirm": "true",
        "off_session": "true",
        "payment_method": "pm_1MqLiJ",
        "customer": "cus_NffrFeUfNV2Hib",
    }
    sub = service.get_subscription(sub_id)
    payment = service.get_payment(sub.last_payment_id or "")
    assert route.calls.last.request.headers["Idempotency-Key"] == f"paykit-{payment.id}-create"
    assert (report.paid, sub.status, sub.period, payment.status) == (
        1,
        SubscriptionStatus.ACTIVE,
        1,
        PaymentStatus.SUCCEEDED,
    )


def test_card_declined_goes_to_dunning(api: respx.MockRouter, service: PaymentService) -> None:
    sub_id = subscribe(service)
    api.post("/v1/payment_intents").mock(
        return_value=decline("card_declined", "insufficient_funds", "Your card has insufficient funds.")
    )

    assert service.bill_due().failed == 1

    sub = service.get_subscription(sub_id)
    assert (sub.status, sub.attempt, sub.due_at) == (SubscriptionStatus.PAST_DUE, 1, START + timedelta(days=1))
    notes = {n.kind for n in service.list_notifications("u1", limit=50) if n.subject_id == sub_id}
    assert notes == {NotificationKind.PAYMENT_FAILED, NotificationKind.RETRY_SCHEDULED}


def test_authentication_required_asks_for_the_customer(api: respx.MockRouter, service: PaymentService) -> None:
    sub_id = subscribe(service)
    api.post("/v1/payment_intents").mock(
        return_value=decline(
            "authentication_required",
            "authentication_required",
            "Your card was declined. This transaction requires authentication.",
        )
    )

    service.bill_due()

    sub = service.get_subscription(sub_id)
    failed = service.get_payment(service.list_payments(user_id="u1").items[0].id)
    assert (sub.status, failed.status, failed.failure_code) == (
        SubscriptionStatus.PAST_DUE,
        PaymentStatus.FAILED,
        "authentication_required",
    )
    action = next(
        n
        for n in service.list_notifications("u1", limit=50)
        if n.subject_id == sub_id and n.kind == NotificationKind.PAYMENT_ACTION_REQUIRED
    )
    assert action.payload["action"] == "authenticate"

    # The customer comes back: an on-session PaymentIntent (no off_session) to confirm with 3-D Secure.
    on_session = api.post("/v1/payment_intents").respond(
        200, json=payment_intent(status="requires_payment_method", amount=1250, currency="usd")
    )
    payment = service.pay_subscription(sub_id)
    assert "off_session" not in form(on_session.calls.last.request)
    assert (payment.status, payment.client_secret is not None) == (PaymentStatus.PENDING, True)
