"""The async API's "done when": 1,000 concurrent ahandle_webhook deliveries on AsyncMongoStorage over the server.

500 payments, each one's event delivered twice, shuffled, all at once under
``asyncio.gather``, through the framework-free webhook entry point: each payment
moves once, with one status-update audit entry and one notification per change.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from paykit import AsyncPaymentService, AuditAction, Money, NotificationKind, PaymentStatus
from paykit.storage.mongo import AsyncMongoStorage
from paykit.testing import AsyncFakeProvider, ManualClock
from paykit.webhooks import ahandle_webhook

pytestmark = [pytest.mark.anyio, pytest.mark.mongo_server]


async def test_a_thousand_concurrent_deliveries_move_each_payment_once(
    async_real_mongo_storage: AsyncMongoStorage, clock: ManualClock
) -> None:
    fake = AsyncFakeProvider(clock=clock.unix)
    async with AsyncPaymentService(storage=async_real_mongo_storage, providers=[fake], clock=clock) as service:
        payments = await asyncio.gather(
            *(
                service.initialize_payment(user_id=f"u{i:03d}", amount=Money.of("5.000", "KWD"), provider="fake")
                for i in range(500)
            )
        )
        hooks = [fake.webhook(p, PaymentStatus.SUCCEEDED, event_id=f"evt_{p.id}") for p in payments]
        deliveries = hooks * 2
        random.Random(7).shuffle(deliveries)

        answers = await asyncio.gather(*(ahandle_webhook(service, "fake", h.body, h.headers) for h in deliveries))

        assert {200} == {a.status_code for a in answers}
        assert (500, 500) == (
            sum(a.outcome == "applied" for a in answers),
            sum(a.outcome == "duplicate" for a in answers),
        )
        for payment in payments:
            stored = await service.get_payment(payment.id)
            updates = [
                e for e in await service.audit_trail(payment.id) if e.action == AuditAction.PAYMENT_STATUS_UPDATE
            ]
            kinds = sorted(n.kind for n in await service.list_notifications(payment.user_id, limit=10))
            assert (PaymentStatus.SUCCEEDED, 1) == (stored.status, len(updates))
            assert sorted([NotificationKind.PAYMENT_SUCCEEDED, NotificationKind.STATUS_CHANGED]) == kinds
