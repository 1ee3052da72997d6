"""Chaos delivery and assert_consistent: against paykit itself, for 200 seeds, and on their own."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import pytest

from paykit import AsyncPaymentService, Money, PaykitError, PaymentService, PaymentStatus
from paykit.storage import AsyncMemoryStorage, MemoryStorage, Storage
from paykit.storage.mongo import MongoStorage
from paykit.testing import (
    Chaos,
    ChaosRates,
    Fault,
    ForgeryAccepted,
    StripeFake,
    aassert_consistent,
    assert_consistent,
)
from paykit.webhooks import ahandle_webhook, handle_webhook

USD = "USD"
PLAN = [  # (card, manual capture, refunds in cents)
    ("pm_card_visa", False, [300, 100]),
    ("pm_card_mastercard", True, [800]),
    ("pm_card_chargeDeclined", False, []),
    ("pm_card_authenticationRequired", False, [1000]),
    ("pm_card_visa", True, []),
]


def run_shop_day(
    seed: int, rates: ChaosRates | None = None, storage: Storage | None = None
) -> tuple[PaymentService, StripeFake, Chaos]:
    """Every kind of payment paykit makes, through chaos; returns once everything was delivered."""
    fake = StripeFake()
    service = PaymentService(storage=storage or MemoryStorage(), providers=[fake.provider()], clock=fake.clock)
    chaos = Chaos(fake, lambda body, headers: handle_webhook(service, "stripe", body, headers), seed=seed, rates=rates)

    def step(call: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except PaykitError as exc:
            chaos.log.append(f"app saw {type(exc).__name__}")
            return None
        finally:
            chaos.flush()

    for number, (card, manual, refunds) in enumerate(PLAN):
        payment = step(
            service.initialize_payment,
            user_id=f"u{number}",
            amount=Money.of("10.00", USD),
            provider="stripe",
            idempotency_key=f"order-{number}",
            capture_method="manual" if manual else "automatic",
        )
        if payment is None:
            continue
        step(service.confirm_payment, payment.id, payment_method=card)
        intent = fake.intents.get(service.get_payment(payment.id).provider_ref or "")
        if intent is not None and intent["status"] == "requires_action":
            fake.complete_action(intent["id"])
            chaos.flush()
        if manual and number % 2:
            step(service.capture_payment, payment.id, amount=Money.of("9.00", USD))
        elif manual:
            step(service.cancel_payment, payment.id)
        for cents in refunds:
            step(service.refund_payment, payment.id, amount=Money.from_minor(cents, USD))
    chaos.stop()
    chaos.drain()
    return service, fake, chaos


SEEDS = range(200)


@pytest.mark.parametrize("seed", SEEDS)
def test_paykit_stays_consistent_whatever_stripe_does(seed: int) -> None:
    service, fake, chaos = run_shop_day(seed)

    checked = assert_consistent(service, fake, chaos=chaos)

    assert checked == len(PLAN)


@pytest.mark.mongo_server
@pytest.mark.parametrize("seed", range(3))
def test_paykit_on_the_mongodb_wire_server_stays_consistent_too(
    seed: int, mongo_storage_factory: Callable[[], MongoStorage]
) -> None:
    service, fake, chaos = run_shop_day(seed, storage=mongo_storage_factory())

    assert assert_consistent(service, fake, chaos=chaos) == len(PLAN)


def test_the_seeds_exercise_every_misbehaviour() -> None:
    """So the 200 seeds above are not 200 quiet days."""
    logs = "\n".join("\n".join(run_shop_day(seed)[2].log) for seed in range(20))
    for marker in ["duplicate x", "drop ", "forge ", "delay ", "reorder: ", "webhooks before the answer", "app saw"]:
        assert marker in logs
    for fault in Fault:
        if fault is not Fault.WEBHOOKS_FIRST:
            assert fault.value in logs


def test_one_run_is_fast() -> None:
    """What the 200 seeds cost (measured, not a target: see benchmarks/ for those)."""
    started = time.perf_counter()
    run_shop_day(0)
    assert time.perf_counter() - started < 5  # a hang, not a speed target


def test_the_same_seed_replays_the_same_run() -> None:
    first, second = run_shop_day(11)[2], run_shop_day(11)[2]

    assert first.log == second.log
    assert first.answers == second.answers
    assert run_shop_day(12)[2].log != first.log


def test_calm_rates_deliver_each_event_once_in_order() -> None:
    service, fake, chaos = run_shop_day(3, ChaosRates.calm())

    ids = [event_id for event_id, _, _ in chaos.answers]
    assert ids == sorted(set(ids))
    assert [line for line in chaos.log if not line.startswith("app saw")] == []
    assert {kind for _, kind, _ in chaos.answers} == {"delivery"}
    assert all(status == 200 for _, _, status in chaos.answers)
    assert_consistent(service, fake)


def test_a_forgery_the_endpoint_accepts_fails_the_run() -> None:
    fake = StripeFake()
    service = PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)
    chaos = Chaos(fake, lambda body, headers: 200, seed=0, rates=ChaosRates(forge=1.0, drop=0, delay=0))
    service.initialize_payment(user_id="u1", amount=Money.of("1.00", USD), provider="stripe", idempotency_key="k")

    with pytest.raises(ForgeryAccepted, match=r"forged payment_intent\.created"):
        chaos.flush()


def test_deliveries_answered_5xx_are_retried_up_to_max_attempts() -> None:
    fake = StripeFake()
    service = PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)
    answers = iter([503, 503, 200])
    chaos = Chaos(fake, lambda body, headers: next(answers), seed=0, rates=ChaosRates.calm(), max_attempts=3)
    service.initialize_payment(user_id="u1", amount=Money.of("1.00", USD), provider="stripe", idempotency_key="k")

    chaos.drain()

    assert [status for _, _, status in chaos.answers] == [503, 503, 200]


def test_dropped_webhooks_are_made_up_for_by_reconcile() -> None:
    fake = StripeFake()
    service = PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)
    chaos = Chaos(fake, lambda body, headers: 200, seed=0, rates=ChaosRates(drop=1.0))
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("1.00", USD), provider="stripe", idempotency_key="k"
    )
    fake.inject(Fault.TIMEOUT_AFTER_SUCCESS, on="confirm")
    with pytest.raises(PaykitError):
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
    chaos.drain()
    assert service.get_payment(payment.id).status is PaymentStatus.PENDING

    assert_consistent(service, fake)

    assert service.get_payment(payment.id).status is PaymentStatus.SUCCEEDED


# -- assert_consistent finds what is wrong ------------------------------------------------------


def settled_service() -> tuple[PaymentService, StripeFake, str]:
    service, fake, _ = run_shop_day(0, ChaosRates.calm())
    (paid,) = [p for p in service.list_payments().items if p.metadata == {} and p.captured_minor == 1000][:1]
    return service, fake, paid.provider_ref or ""


def test_it_names_a_captured_amount_stripe_disagrees_with() -> None:
    service, fake, intent = settled_service()
    fake.intents[intent]["amount_received"] = 999

    with pytest.raises(AssertionError, match=r"captured 1000 here, 999 at Stripe"):
        assert_consistent(service, fake)


def test_it_names_a_refund_paykit_does_not_know() -> None:
    service, fake, intent = settled_service()
    refund = next(r for r in fake.refunds.values() if r["payment_intent"] == intent)
    refund["metadata"]["paykit_refund_id"] = "ref_unknown"

    with pytest.raises(AssertionError, match="names paykit refund ref_unknown, which storage does not have"):
        assert_consistent(service, fake)


def test_it_names_a_payment_charged_twice() -> None:
    service, fake, intent = settled_service()
    twin = dict(fake.intents[intent], id="pi_twin")
    fake.intents["pi_twin"] = twin

    with pytest.raises(AssertionError, match="was charged 2 times"):
        assert_consistent(service, fake)


def test_it_names_a_status_stripe_disagrees_with() -> None:
    service, fake, intent = settled_service()
    fake.intents[intent]["status"] = "canceled"

    with pytest.raises(AssertionError, match=f"Stripe's PaymentIntent {intent} is canceled"):
        assert_consistent(service, fake, reconcile=False)


def test_it_names_a_history_that_moves_backwards() -> None:
    from paykit.testing._sync.consistency import _check_history

    class Entry:
        subject_type = "payment"

        def __init__(self, before: str, after: str) -> None:
            self.status_before, self.status_after = before, after

    payment: Any = type("P", (), {"status": PaymentStatus.PENDING})()
    audit = [Entry("pending", "succeeded"), Entry("succeeded", "pending")]

    problems = _check_history("payment p", payment, audit, [])

    assert "payment p: its audit trail moves it backwards, succeeded -> pending" in problems
    assert "payment p: 2 status changes but 0 status_changed notifications" in problems


# -- async -------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("seed", range(20))
async def test_the_async_service_stays_consistent_too(seed: int) -> None:
    fake = StripeFake()
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake.async_provider()], clock=fake.clock)

    async def sink(body: bytes, headers: Mapping[str, str]) -> int:
        return (await ahandle_webhook(service, "stripe", body, headers)).status_code

    chaos = Chaos(fake, sink, seed=seed)
    for number, card in enumerate(["pm_card_visa", "pm_card_chargeDeclined", "pm_card_mastercard"]):
        try:
            payment = await service.initialize_payment(
                user_id="u1", amount=Money.of("10.00", USD), provider="stripe", idempotency_key=f"o{number}"
            )
            await service.confirm_payment(payment.id, payment_method=card)
            await chaos.aflush()
            await service.refund_payment(payment.id, amount=Money.of("4.00", USD))
        except PaykitError as exc:
            chaos.log.append(f"app saw {type(exc).__name__}")
        await chaos.aflush()
    chaos.stop()
    await chaos.adrain()

    assert await aassert_consistent(service, fake, chaos=chaos) == 3


def test_the_clock_moved_only_when_asked() -> None:
    service, fake, _ = run_shop_day(1, ChaosRates.calm())
    before = fake.clock()
    assert_consistent(service, fake, reconcile=False)
    assert fake.clock() == before
    assert_consistent(service, fake)
    assert fake.clock() - before == timedelta(hours=25, minutes=2)
