"""Incident replay: a payment's history exported from a running system, replayed against the fakes."""

from __future__ import annotations

import json

import pytest

from paykit import Money, PaymentService
from paykit.storage import MemoryStorage
from paykit.testing import StripeFake, assert_consistent, export_incident, replay_incident
from paykit.webhooks import handle_webhook
from tests.toolkit.test_chaos import PLAN, run_shop_day


def replay(incident: dict) -> tuple[PaymentService, StripeFake, str]:
    fake = StripeFake()
    service = PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)
    payment = replay_incident(
        incident, service, fake, lambda body, headers: handle_webhook(service, "stripe", body, headers)
    )
    return service, fake, payment.id


@pytest.mark.parametrize("seed", range(10))
def test_every_payment_of_a_chaotic_day_replays_to_the_same_outcome(seed: int) -> None:
    service, fake, chaos = run_shop_day(seed)
    assert_consistent(service, fake, chaos=chaos)  # the running system, settled

    for original in service.list_payments(limit=len(PLAN)).items:
        incident = json.loads(json.dumps(export_incident(service, original.id)))  # through a file, as JSON
        replayed_service, replayed_fake, replayed_id = replay(incident)
        assert_consistent(replayed_service, replayed_fake)

        replayed = replayed_service.get_payment(replayed_id)
        outcome = (replayed.status.value, replayed.captured_minor, replayed.refunded_minor)
        terms = incident["payment"]
        assert outcome == (terms["status"], terms["captured_minor"], terms["refunded_minor"]), (
            json.dumps(incident, indent=1) + "\n" + chaos.report()
        )


def test_an_export_keeps_no_secret_and_no_user() -> None:
    service, fake, _ = run_shop_day(0)
    assert_consistent(service, fake)
    for payment in service.list_payments(limit=len(PLAN)).items:
        text = json.dumps(export_incident(service, payment.id))
        assert "secret" not in text
        assert f'"{payment.user_id}"' not in text
        assert payment.id not in text


def test_a_lost_webhook_stays_lost_in_the_replay() -> None:
    fake = StripeFake()
    service = PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)

    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("5.00", "USD"), provider="stripe", idempotency_key="k"
    )
    service.confirm_payment(payment.id, payment_method="pm_card_visa")
    fake.take_deliveries()  # all lost
    incident = export_incident(service, payment.id)
    assert incident["events"] == []

    _, replayed_fake, _ = replay(incident)

    assert [r for r in replayed_fake.requests if r.operation == "confirm"]
    assert replayed_fake.take_deliveries() == []  # taken and, like the incident's, never delivered


def test_anything_else_is_refused() -> None:
    with pytest.raises(ValueError, match="paykit-incident/1"):
        replay({"format": "something else", "payment": {"provider": "stripe"}})


@pytest.mark.anyio
async def test_the_async_twins_export_and_replay() -> None:
    from collections.abc import Mapping

    from paykit import AsyncPaymentService
    from paykit.storage import AsyncMemoryStorage
    from paykit.testing import aassert_consistent, aexport_incident, areplay_incident
    from paykit.webhooks import ahandle_webhook

    def build() -> tuple[AsyncPaymentService, StripeFake]:
        fake = StripeFake()
        return AsyncPaymentService(
            storage=AsyncMemoryStorage(), providers=[fake.async_provider()], clock=fake.clock
        ), fake

    service, _ = build()
    payment = await service.initialize_payment(
        user_id="u1", amount=Money.of("9.00", "USD"), provider="stripe", idempotency_key="k", capture_method="manual"
    )
    await service.confirm_payment(payment.id, payment_method="pm_card_visa")
    await service.capture_payment(payment.id, amount=Money.of("7.00", "USD"))
    await service.refund_payment(payment.id, amount=Money.of("2.00", "USD"))
    incident = await aexport_incident(service, payment.id)

    replayed_service, replayed_fake = build()

    async def route(body: bytes, headers: Mapping[str, str]) -> object:
        return await ahandle_webhook(replayed_service, "stripe", body, headers)

    replayed = await areplay_incident(incident, replayed_service, replayed_fake, route)
    await aassert_consistent(replayed_service, replayed_fake)

    replayed = await replayed_service.get_payment(replayed.id)
    assert (replayed.status.value, replayed.captured_minor, replayed.refunded_minor) == ("partially_refunded", 700, 200)
