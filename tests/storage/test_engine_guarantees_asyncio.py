"""The engine guarantees under ``asyncio.gather``: the asyncio counterparts of the sync-only thread races.

On AsyncMemoryStorage; the async MongoDB-wire run plugs in with ``AsyncMongoStorage``
(see ``tests/_storages.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from paykit import AsyncPaymentService, AuditAction, PaymentStatus, WebhookOutcome
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.testing import AsyncFakeProvider, ManualClock
from tests._async.storage.test_engine_guarantees import EchoesBeforeAnswering, deliver, kwd, paid
from tests._storages import mongo_server_fixture, storage_params

pytestmark = pytest.mark.anyio


@pytest.fixture(params=storage_params(AsyncStorage))
def store(request: pytest.FixtureRequest) -> AsyncStorage:
    if request.param == "memory":
        return AsyncMemoryStorage()
    return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "real_mongo_storage"))  # type: ignore[no-any-return]


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
async def service(
    store: AsyncStorage, fake: AsyncFakeProvider, clock: ManualClock
) -> AsyncIterator[AsyncPaymentService]:
    async with AsyncPaymentService(storage=store, providers=[fake], clock=clock) as svc:
        yield svc


async def test_webhook_before_the_answer_from_eight_tasks(store: AsyncStorage, clock: ManualClock) -> None:
    """Eight refunds at once, each echoed by its webhook before its answer: each amount counted once."""
    fake = EchoesBeforeAnswering(clock=clock.unix)
    async with AsyncPaymentService(storage=store, providers=[fake], clock=clock) as service:
        fake.service = service
        ids = [await paid(service) for _ in range(8)]

        await asyncio.gather(*(service.refund_payment(i, amount=kwd("2.000")) for i in ids))

        payments = [await service.get_payment(i) for i in ids]
        assert [2000] * 8 == [p.refunded_minor for p in payments]
        assert [kwd("2.000")] * 8 == [fake.refunded_amount(p.provider_ref or "") for p in payments]


@pytest.mark.parametrize("kind", ["stale", "dispute"])
async def test_concurrent_redeliveries(service: AsyncPaymentService, fake: AsyncFakeProvider, kind: str) -> None:
    """A stale or dispute event delivered 40 times at once is recorded once."""
    payment_id = await paid(service)
    payment = await service.get_payment(payment_id)
    if kind == "stale":
        hook = fake.webhook(payment, PaymentStatus.PROCESSING, event_id="evt_late")
        action = AuditAction.PAYMENT_EVENT_IGNORED
    else:
        hook = fake.dispute_webhook(payment, event_id="evt_dispute")
        action = AuditAction.PAYMENT_DISPUTE

    outcomes = await asyncio.gather(*(deliver(service, fake, hook) for _ in range(40)))

    entries = [e for e in await service.audit_trail(payment_id) if e.action == action]
    assert 39 == outcomes.count(WebhookOutcome.DUPLICATE)
    assert 1 == len(entries)
    assert payment.version + 1 == (await service.get_payment(payment_id)).version


class SlowCreate(AsyncFakeProvider):
    """A provider that takes a moment to create a payment, so concurrent callers overlap."""

    async def create_payment(self, request: Any) -> Any:
        await asyncio.sleep(0.05)
        return await super().create_payment(request)


async def test_eight_callers_one_key(store: AsyncStorage, clock: ManualClock) -> None:
    """Eight concurrent initializations with one key make one provider call and return one payment."""
    fake = SlowCreate(clock=clock.unix)
    async with AsyncPaymentService(storage=store, providers=[fake], clock=clock) as service:
        results = await asyncio.gather(
            *(
                service.initialize_payment(user_id="u1", amount=kwd("5.000"), provider="fake", idempotency_key="o-1")
                for _ in range(8)
            ),
            return_exceptions=True,
        )

        assert 1 == len(fake.calls_to("create_payment"))
        assert 1 == len({p.id for p in results})  # an exception here fails the guarantee
        assert all(p.provider_ref is not None for p in results)
