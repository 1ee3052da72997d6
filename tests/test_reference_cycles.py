"""What paykit keeps alive is freed by reference counting, not left to the cyclic garbage collector.

Every collection walks every tracked object still alive, so a dropped service whose
storage sits in a reference cycle costs each collection until a full one frees it, and
every record that carries its own objects costs each full collection for as long as it
is kept. These tests run with the collector off: what they drop must be gone at once.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from paykit import (
    AsyncPaymentService,
    InvoiceStatus,
    LineItem,
    Money,
    Payment,
    PaymentService,
    PaymentStatus,
)
from paykit._models import copy_with, trusted
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import AsyncFakeProvider, FakeProvider


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.usefixtures("collector_off")
def test_a_dropped_sync_service_frees_its_storage_at_once() -> None:
    storage = MemoryStorage()
    service = PaymentService(storage=storage, providers=[FakeProvider()])
    payment = service.initialize_payment(user_id="u1", amount=Money.of("12.500", "KWD"), provider="fake")
    service.confirm_payment(payment.id)
    service.refund_payment(payment.id, amount=Money.of("5.000", "KWD"))
    service_gone, storage_gone = weakref.ref(service), weakref.ref(storage)

    del service, storage, payment

    assert service_gone() is None
    assert storage_gone() is None


@pytest.mark.usefixtures("collector_off")
def test_a_dropped_async_service_frees_its_storage_at_once() -> None:
    storage = AsyncMemoryStorage()
    service = AsyncPaymentService(storage=storage, providers=[AsyncFakeProvider()])

    async def lifecycle(service: AsyncPaymentService) -> None:
        payment = await service.initialize_payment(user_id="u1", amount=Money.of("12.500", "KWD"), provider="fake")
        await service.confirm_payment(payment.id)
        await service.refund_payment(payment.id, amount=Money.of("5.000", "KWD"))

    asyncio.run(lifecycle(service))
    service_gone, storage_gone = weakref.ref(service), weakref.ref(storage)

    del service, storage

    assert service_gone() is None
    assert storage_gone() is None


def test_reactions_still_reach_a_live_service() -> None:
    # The engine holds the service's reactors weakly: an invoice paid through its payment is still marked paid.
    service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])
    item = LineItem(description="Plan", quantity=1, unit_amount=Money.of("9.99", "USD"))
    invoice = service.send_invoice(service.create_invoice(user_id="u1", currency="USD", line_items=[item]).id)
    payment = service.pay_invoice(invoice.id, provider="fake")
    service.confirm_payment(payment.id)

    assert service.get_invoice(invoice.id).status == InvoiceStatus.PAID


def _record(**updates: object) -> Payment:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, object] = {
        "id": "pay_1",
        "user_id": "u1",
        "provider": "fake",
        "amount": Money.of("1.00", "USD"),
        "created_at": now,
        "updated_at": now,
    }
    values.update(updates)
    return trusted(Payment, **values)


def test_records_built_alike_share_one_fields_set_object() -> None:
    first, second = _record(), _record(id="pay_2")

    assert first.model_fields_set == {"id", "user_id", "provider", "amount", "created_at", "updated_at"}
    assert first.model_fields_set is second.model_fields_set
    assert copy_with(first, {"version": 1}).model_fields_set is copy_with(second, {"version": 1}).model_fields_set


def test_a_shared_fields_set_is_never_changed_by_copies() -> None:
    first, second = _record(), _record(id="pay_2")
    fields = set(second.model_fields_set)

    copied = first.model_copy(update={"status": PaymentStatus.SUCCEEDED})
    newer = copy_with(first, {"status": PaymentStatus.FAILED, "version": 2})

    assert second.model_fields_set == fields
    assert "status" in copied.model_fields_set
    assert "status" in newer.model_fields_set
    assert "status" not in first.model_fields_set
