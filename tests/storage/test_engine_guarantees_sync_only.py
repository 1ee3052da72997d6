"""The engine guarantees that only the sync API can show for now: threads racing, and handle_webhook's 503.

The rest of the suite is written once in ``tests/_async/storage/test_engine_guarantees.py``
and runs on both APIs; the asyncio counterparts of these races are in
``tests/storage/test_engine_guarantees_asyncio.py``. On MemoryStorage and on the MongoDB-wire server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from paykit import (
    AuditAction,
    PaymentService,
    PaymentStatus,
)
from paykit.storage import MemoryStorage, Storage
from paykit.testing import FakeProvider, ManualClock
from paykit.webhooks import handle_webhook
from tests._sync.storage.test_engine_guarantees import kwd, paid


@pytest.fixture(params=["memory", pytest.param("mongo_server", marks=pytest.mark.mongo_server)])
def store(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return request.getfixturevalue("real_mongo_storage")  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeProvider:
    return FakeProvider(clock=clock.unix)


@pytest.fixture
def service(store: Storage, fake: FakeProvider, clock: ManualClock) -> Iterator[PaymentService]:
    with PaymentService(storage=store, providers=[fake], clock=clock) as svc:
        yield svc


class EchoesBeforeAnswering(FakeProvider):
    """A provider whose refund webhook reaches paykit before the refund call returns."""

    service: PaymentService

    def refund_payment(self, payment: Any, refund: Any, *, idempotency_key: str) -> Any:
        answer = super().refund_payment(payment, refund, idempotency_key=idempotency_key)
        hook = self.refund_webhook(answer.provider_ref)
        assert 200 == handle_webhook(self.service, self.name, hook.body, hook.headers).status_code
        return answer


class TestRefundCountedOnce:
    """A refund's webhook and its answer, in any order, count its amount once, whatever the threads."""

    def test_webhook_before_the_answer_from_eight_threads(self, store: Storage, clock: ManualClock) -> None:
        fake = EchoesBeforeAnswering(clock=clock.unix)
        with PaymentService(storage=store, providers=[fake], clock=clock) as service:
            fake.service = service
            ids = [paid(service) for _ in range(8)]
            start = threading.Barrier(8)

            def refund(payment_id: str) -> None:
                start.wait()
                service.refund_payment(payment_id, amount=kwd("2.000"))

            threads = [threading.Thread(target=refund, args=(i,)) for i in ids]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            payments = [service.get_payment(i) for i in ids]
            assert [2000] * 8 == [p.refunded_minor for p in payments]
            assert [kwd("2.000")] * 8 == [fake.refunded_amount(p.provider_ref or "") for p in payments]


class TestEventsOnce:
    """A stale or dispute event delivered many times, concurrently, is recorded once."""

    @pytest.mark.parametrize("kind", ["stale", "dispute"])
    def test_concurrent_redeliveries(self, service: PaymentService, fake: FakeProvider, kind: str) -> None:
        payment_id = paid(service)
        payment = service.get_payment(payment_id)
        if kind == "stale":
            hook = fake.webhook(payment, PaymentStatus.PROCESSING, event_id="evt_late")
            action = AuditAction.PAYMENT_EVENT_IGNORED
        else:
            hook = fake.dispute_webhook(payment, event_id="evt_dispute")
            action = AuditAction.PAYMENT_DISPUTE
        version = payment.version
        start = threading.Barrier(8)
        codes: list[int] = []

        def deliver() -> None:
            start.wait()
            for _ in range(5):
                codes.append(handle_webhook(service, "fake", hook.body, hook.headers).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        entries = [e for e in service.audit_trail(payment_id) if e.action == action]
        assert ({200}, 1) == (set(codes), len(entries))
        assert version + 1 == service.get_payment(payment_id).version

    def test_an_event_answered_503_records_nothing(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        class FailingWrites:
            def __getattr__(self, name: str) -> Any:
                return getattr(store, name)

            def update_payment(self, *args: Any, **kwargs: Any) -> bool:
                from paykit import StorageError

                raise StorageError("the database is down")

        with PaymentService(storage=store, providers=[fake], clock=clock) as healthy:
            payment_id = paid(healthy)
            before = healthy.audit_trail(payment_id)
            hook = fake.dispute_webhook(healthy.get_payment(payment_id), event_id="evt_d1")
            failing = PaymentService(storage=FailingWrites(), providers=[fake], clock=clock)  # type: ignore[arg-type]

            assert 503 == handle_webhook(failing, "fake", hook.body, hook.headers).status_code
            assert before == healthy.audit_trail(payment_id)
            assert "applied" == handle_webhook(healthy, "fake", hook.body, hook.headers).outcome


class SlowCreate(FakeProvider):
    """A provider that takes a moment to create a payment, so concurrent callers overlap."""

    def create_payment(self, request: Any) -> Any:
        time.sleep(0.05)
        return super().create_payment(request)


class TestConcurrentInitialize:
    """Concurrent initializations with one key make one provider call and return one payment."""

    def test_eight_callers_one_key(self, store: Storage, clock: ManualClock) -> None:
        fake = SlowCreate(clock=clock.unix)
        with PaymentService(storage=store, providers=[fake], clock=clock) as service:
            start = threading.Barrier(8)
            results: list[Any] = []

            def initialize() -> None:
                start.wait()
                try:
                    results.append(
                        service.initialize_payment(
                            user_id="u1", amount=kwd("5.000"), provider="fake", idempotency_key="o-1"
                        )
                    )
                except Exception as exc:  # any error is a failure of this guarantee
                    results.append(exc)

            threads = [threading.Thread(target=initialize) for _ in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            assert 1 == len(fake.calls_to("create_payment"))
            assert 1 == len({p.id for p in results})
            assert all(p.provider_ref is not None for p in results)
