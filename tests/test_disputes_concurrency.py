"""Disputes under ``asyncio.gather``: concurrent deliveries, reordered racers and competing holds.

On AsyncMemoryStorage and AsyncMongoStorage over the suite's MongoDB-wire server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from paykit import AsyncPaymentService, DisputeStatus, InvalidStateError, Money
from paykit.providers import AsyncStripeProvider
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.testing import AsyncFakeProvider, ManualClock
from tests._async.storage.test_disputes import SECRET, USD_10, _settled, _stripe
from tests._storages import mongo_server_fixture, storage_params

pytestmark = pytest.mark.anyio


@pytest.fixture(params=storage_params(AsyncStorage))
def store(request: pytest.FixtureRequest) -> AsyncStorage:
    if request.param == "memory":
        return AsyncMemoryStorage()
    return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "real_mongo_storage"))  # type: ignore[no-any-return]


@pytest.fixture
async def service(store: AsyncStorage, clock: ManualClock) -> AsyncIterator[AsyncPaymentService]:
    stripe = AsyncStripeProvider("sk_test_disputes", webhook_secrets=[SECRET], clock=clock)
    fake = AsyncFakeProvider(clock=clock.unix)
    async with AsyncPaymentService(storage=store, providers=[stripe, fake], clock=clock) as svc:
        yield svc
    await stripe.aclose()


async def test_one_event_delivered_twenty_times_at_once_opens_one_dispute(
    service: AsyncPaymentService, store: AsyncStorage, clock: ManualClock
) -> None:
    await _settled(store, clock)

    answers = await asyncio.gather(
        *(
            _stripe(service, clock, "charge.dispute.created", event_id="evt_1", status="needs_response")
            for _ in range(20)
        )
    )

    payment = await service.get_payment("pay_disputed")
    assert ["applied"] + ["duplicate"] * 19 == sorted(a.outcome for a in answers)
    assert (1, 1000) == (len(payment.disputes), payment.disputed_minor)
    assert 1 == len((await service.list_disputes()).items)


async def test_created_updated_and_lost_racing_end_lost(
    service: AsyncPaymentService, store: AsyncStorage, clock: ManualClock
) -> None:
    await _settled(store, clock)
    t0 = int(clock().timestamp())

    await asyncio.gather(
        _stripe(service, clock, "charge.dispute.closed", event_id="evt_3", created=t0 + 2, status="lost"),
        _stripe(service, clock, "charge.dispute.updated", event_id="evt_2", created=t0 + 1, status="under_review"),
        _stripe(service, clock, "charge.dispute.created", event_id="evt_1", created=t0, status="needs_response"),
    )
    await service.reconcile()

    payment = await service.get_payment("pay_disputed")
    (dispute,) = (await service.list_disputes()).items
    assert DisputeStatus.LOST == dispute.status
    assert dispute == payment.disputes[dispute.id]
    assert (0, 1000) == (payment.disputed_minor, payment.dispute_lost_minor)


async def test_concurrent_holds_never_pass_what_was_captured(service: AsyncPaymentService) -> None:
    payment = await service.initialize_payment(user_id="u1", amount=USD_10, provider="fake")
    await service.confirm_payment(payment.id, payment_method="pm_card_visa")

    results = await asyncio.gather(
        *(service.record_dispute(payment.id, Money.of("4.00", "USD")) for _ in range(5)), return_exceptions=True
    )

    held = await service.get_payment(payment.id)
    assert 2 == sum(not isinstance(r, BaseException) for r in results)
    assert all(isinstance(r, InvalidStateError) for r in results if isinstance(r, BaseException))
    assert 800 == held.disputed_minor
