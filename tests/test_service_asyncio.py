"""The async service under ``asyncio.gather``: the asyncio counterparts of the sync-only thread tests.

Webhook deliveries go through ``apply_webhook_event(await fake.parse_webhook(...))``,
which is what ``handle_webhook`` does for a valid event, until ``ahandle_webhook``
arrives. Each test runs on AsyncMemoryStorage as it is (a coroutine runs to its end
without yielding) and on one that yields to the loop before every storage call, as a
network round trip would, so that the tasks really interleave between a read and
its compare-and-set.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from paykit import (
    AsyncPaymentService,
    AuditAction,
    InvalidStateError,
    InvoiceStatus,
    LineItem,
    Money,
    NotificationKind,
    PaymentMethod,
    PaymentStatus,
    WebhookOutcome,
)
from paykit.storage import AsyncMemoryStorage, Effect
from paykit.testing import AsyncFakeProvider, ManualClock

pytestmark = pytest.mark.anyio

USD_50 = Money.of("50.00", "USD")


class _YieldingMemoryStorage(AsyncMemoryStorage):
    """AsyncMemoryStorage that gives the loop to another task before every call, as I/O would."""

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute

        async def after_a_round_trip(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await attribute(*args, **kwargs)

        return after_a_round_trip


@pytest.fixture(params=["memory", "memory_yielding"])
def storage(request: pytest.FixtureRequest) -> AsyncMemoryStorage:
    return AsyncMemoryStorage() if request.param == "memory" else _YieldingMemoryStorage()


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
async def service(
    storage: AsyncMemoryStorage, fake: AsyncFakeProvider, clock: ManualClock
) -> AsyncIterator[AsyncPaymentService]:
    async with AsyncPaymentService(storage=storage, providers=[fake], clock=clock) as svc:
        yield svc


async def _init(service: AsyncPaymentService, user_id: str = "u1") -> Any:
    return await service.initialize_payment(user_id=user_id, amount=USD_50, provider="fake")


async def _deliver(service: AsyncPaymentService, fake: AsyncFakeProvider, hook: Any) -> WebhookOutcome:
    """What handle_webhook does with a valid delivery: verify and normalize, then apply."""
    return await service.apply_webhook_event(await fake.parse_webhook(hook.body, hook.headers))


async def test_concurrent_refunds_never_exceed_the_capture(service: AsyncPaymentService) -> None:
    """20 tasks refunding 7.00 each from 50.00: exactly 7 succeed, 1.00 stays refundable."""
    payment = await service.confirm_payment((await _init(service)).id, payment_method="pm_card_visa")

    async def refund() -> str:
        try:
            await service.refund_payment(payment.id, amount=Money.of("7.00", "USD"))
        except InvalidStateError:
            return "refused"
        return "refunded"

    results = await asyncio.gather(*(refund() for _ in range(20)))

    payment = await service.get_payment(payment.id)
    assert (7, 13) == (results.count("refunded"), results.count("refused"))
    assert Money.of("49.00", "USD") == payment.amount_refunded
    assert Money.of("1.00", "USD") == payment.amount_refundable
    assert {} == payment.pending_refunds


async def test_concurrent_identical_webhooks_apply_once(
    service: AsyncPaymentService, fake: AsyncFakeProvider, storage: AsyncMemoryStorage
) -> None:
    """400 concurrent deliveries of one event: one transition, one audit entry, one notification each."""
    payment = await _init(service)
    hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

    outcomes = await asyncio.gather(*(_deliver(service, fake, hook) for _ in range(400)))

    updates = [e for e in await service.audit_trail(payment.id) if e.action == AuditAction.PAYMENT_STATUS_UPDATE]
    kinds = [n.kind for n in await storage.list_notifications("u1", unread_only=False, limit=100)]
    assert (1, 399) == (outcomes.count(WebhookOutcome.APPLIED), outcomes.count(WebhookOutcome.DUPLICATE))
    assert 1 == len(updates)
    assert 1 == kinds.count(NotificationKind.PAYMENT_SUCCEEDED)
    assert 1 == kinds.count(NotificationKind.STATUS_CHANGED)


async def test_out_of_order_events(service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
    """succeeded then a late processing: the late one is recorded and ignored."""
    payment = await _init(service)
    succeeded = fake.webhook(payment, PaymentStatus.SUCCEEDED)
    processing = fake.webhook(payment, PaymentStatus.PROCESSING)

    outcomes = [await _deliver(service, fake, hook) for hook in (succeeded, processing)]

    assert [WebhookOutcome.APPLIED, WebhookOutcome.STALE] == outcomes
    assert PaymentStatus.SUCCEEDED == (await service.get_payment(payment.id)).status
    assert AuditAction.PAYMENT_EVENT_IGNORED == [e.action for e in await service.audit_trail(payment.id)][-1]


async def test_a_thousand_shuffled_deliveries_move_each_payment_once(
    service: AsyncPaymentService, fake: AsyncFakeProvider, storage: AsyncMemoryStorage
) -> None:
    """The issue's "done when" on memory: 500 payments, each event delivered twice, shuffled, all at once.

    Each payment moves once: one status-update audit entry and one notification of
    each kind per change, and every second delivery is a duplicate.
    """
    payments = [await _init(service, user_id=f"u{i:03d}") for i in range(500)]
    hooks = [fake.webhook(p, PaymentStatus.SUCCEEDED, event_id=f"evt_{p.id}") for p in payments]
    deliveries = hooks * 2
    random.Random(12).shuffle(deliveries)

    outcomes = await asyncio.gather(*(_deliver(service, fake, hook) for hook in deliveries))

    assert (500, 500) == (outcomes.count(WebhookOutcome.APPLIED), outcomes.count(WebhookOutcome.DUPLICATE))
    for payment in payments:
        stored = await service.get_payment(payment.id)
        updates = [e for e in await service.audit_trail(payment.id) if e.action == AuditAction.PAYMENT_STATUS_UPDATE]
        kinds = sorted(n.kind for n in await storage.list_notifications(payment.user_id, unread_only=False, limit=10))
        assert (PaymentStatus.SUCCEEDED, payment.version + 1) == (stored.status, stored.version)
        assert 1 == len(updates)
        assert sorted([NotificationKind.PAYMENT_SUCCEEDED, NotificationKind.STATUS_CHANGED]) == kinds


async def test_invoice_numbers_unique_under_concurrency(service: AsyncPaymentService) -> None:
    """80 invoices created by concurrent tasks all get distinct, gapless numbers."""
    lines = [LineItem(description="item", quantity=1, unit_amount=Money.of("1", "USD"))]

    invoices = await asyncio.gather(
        *(service.create_invoice(user_id="u1", currency="USD", line_items=lines) for _ in range(80))
    )

    assert {f"INV-2026-{n:06d}" for n in range(1, 81)} == {invoice.number for invoice in invoices}


async def test_invoice_paid_by_duplicate_webhooks_once(service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
    """A payment settling later pays its invoice when the webhook arrives, once though it comes twice at once."""
    lines = [LineItem(description="item", quantity=1, unit_amount=Money.of("12.500", "KWD"))]
    invoice = await service.create_invoice(user_id="u1", currency="KWD", line_items=lines)
    await service.send_invoice(invoice.id)
    payment = await service.pay_invoice(invoice.id, provider="fake")
    fake.behavior = "processing"
    assert PaymentStatus.PROCESSING == (await service.confirm_payment(payment.id)).status
    hook = fake.webhook(await service.get_payment(payment.id), PaymentStatus.SUCCEEDED)

    outcomes = await asyncio.gather(_deliver(service, fake, hook), _deliver(service, fake, hook))

    paid_entries = [e for e in await service.audit_trail(invoice.id) if e.action == AuditAction.INVOICE_PAID]
    assert {WebhookOutcome.APPLIED, WebhookOutcome.DUPLICATE} == set(outcomes)
    assert InvoiceStatus.PAID == (await service.get_invoice(invoice.id)).status
    assert 1 == len(paid_entries)


class _RendezvousStorage(AsyncMemoryStorage):
    """Holds the first inserts of saved methods until ``parties`` tasks arrived, to make a race certain."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self._barrier = asyncio.Barrier(parties)

    async def insert_payment_method(self, method: PaymentMethod, effects: Sequence[Effect] = ()) -> None:
        with contextlib.suppress(TimeoutError, asyncio.BrokenBarrierError):
            async with asyncio.timeout(2):
                await self._barrier.wait()
        await super().insert_payment_method(method, effects)


async def test_concurrent_first_saves_make_one_default(fake: AsyncFakeProvider, clock: ManualClock) -> None:
    """Two first saves racing for the same user leave exactly one default."""
    storage = _RendezvousStorage(parties=2)
    async with AsyncPaymentService(storage=storage, providers=[fake], clock=clock) as service:
        await asyncio.gather(
            *(
                service.save_payment_method(user_id="u1", provider="fake", token=token)
                for token in ("pm_card_visa", "pm_card_mastercard")
            )
        )
        methods = await service.list_payment_methods("u1")
    assert 2 == len(methods)
    assert 1 == len([m for m in methods if m.is_default])
