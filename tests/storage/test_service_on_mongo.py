"""The service under contention and outages, on MongoStorage (crash injection: ``test_crash_safety``)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from paykit import Money, PaymentService, PaymentStatus
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider


@pytest.mark.mongo_server
class TestServiceConcurrency:
    """The service under contention on the real server."""

    def test_concurrent_refunds_never_exceed_the_capture(self, real_mongo_storage: MongoStorage) -> None:
        service = PaymentService(storage=real_mongo_storage, providers=[FakeProvider()])
        payment = service.initialize_payment(user_id="u1", amount=Money.of("10.000", "KWD"), provider="fake")
        service.confirm_payment(payment.id)
        results: list[str] = []
        start = threading.Barrier(20)

        def refund(i: int) -> None:
            start.wait()
            try:
                service.refund_payment(payment.id, amount=Money.of("0.700", "KWD"), idempotency_key=f"r{i}")
                results.append("ok")
            except Exception as exc:
                results.append(type(exc).__name__)

        threads = [threading.Thread(target=refund, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        final = service.get_payment(payment.id)
        assert (results.count("ok"), final.refunded_minor) == (14, 9800)
        assert set(results) == {"ok", "InvalidStateError"}
        assert final.status == PaymentStatus.PARTIALLY_REFUNDED
        service.close()

    def test_one_event_delivered_800_times_applies_once(self, real_mongo_storage: MongoStorage) -> None:
        """8 threads x 100 deliveries of one webhook: one transition, one audit entry, one notification."""
        from paykit import AuditAction, NotificationKind
        from paykit.webhooks import handle_webhook

        fake = FakeProvider()
        service = PaymentService(storage=real_mongo_storage, providers=[fake])
        payment = service.initialize_payment(user_id="u1", amount=Money.of("10.000", "KWD"), provider="fake")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_800")
        start = threading.Barrier(8)
        codes: list[int] = []

        def deliver() -> None:
            start.wait()
            for _ in range(100):
                codes.append(handle_webhook(service, "fake", hook.body, hook.headers).status_code)

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        updates = [e for e in service.audit_trail(payment.id) if e.action == AuditAction.PAYMENT_STATUS_UPDATE]
        kinds = [n.kind for n in service.list_notifications("u1", limit=100)]
        assert (800, {200}) == (len(codes), set(codes))
        assert 1 == len(updates)
        assert (1, 1) == (kinds.count(NotificationKind.PAYMENT_SUCCEEDED), kinds.count(NotificationKind.STATUS_CHANGED))
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status
        service.close()


@pytest.mark.mongo_server
def test_server_gone_mid_initialize_then_a_keyed_retry_completes(tmp_path: Any) -> None:
    """The server dies after the payment is stored: StorageError; after it returns, the retry finishes once."""
    from paykit import AuditAction, StorageError

    try:
        from tests._mongo_server import SecantusServer
    except ImportError:  # pragma: no cover - tests/ on sys.path instead
        from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]

    server = SecantusServer(tmp_path / "data").start()
    port = server.port
    assert port is not None
    storage = MongoStorage.from_uri(server.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500)
    fake = FakeProvider()

    class DiesAfterInsert:
        def __getattr__(self, name: str) -> Any:
            return getattr(storage, name)

        def insert_payment(self, *args: Any, **kwargs: Any) -> None:
            storage.insert_payment(*args, **kwargs)
            server.stop()

    amount = Money.of("12.500", "KWD")
    try:
        dying = PaymentService(storage=DiesAfterInsert(), providers=[fake])  # type: ignore[arg-type]
        with pytest.raises(StorageError):
            dying.initialize_payment(user_id="u1", amount=amount, provider="fake", idempotency_key="order-1")

        server.start(port=port)
        service = PaymentService(storage=storage, providers=[fake])
        payment = service.initialize_payment(user_id="u1", amount=amount, provider="fake", idempotency_key="order-1")

        create_keys = [call.idempotency_key for call in fake.calls_to("create_payment")]
        audit = [entry.action for entry in service.audit_trail(payment.id)]
        assert payment.provider_ref is not None
        assert [f"paykit-{payment.id}-create"] * 2 == create_keys
        assert [AuditAction.PAYMENT_INIT] == audit
        assert 1 == len(service.list_payments(user_id="u1").items)
    finally:
        storage.close()
        server.stop()
