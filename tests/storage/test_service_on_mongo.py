"""The service's crash safety and concurrency, on MongoStorage."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from paykit import Money, PaymentService, PaymentStatus
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider

WRITES = {
    "insert_payment",
    "update_payment",
    "insert_refund",
    "update_refund",
    "insert_invoice",
    "update_invoice",
    "insert_payment_method",
    "update_payment_method",
    "set_customer_ref",
    "append_audit",
    "record_webhook_event",
    "insert_notifications",
    "save_notification_delivery",
    "mark_notification_read",
    "next_invoice_sequence",
    "claim_key",
    "complete_reaction",
}


class SimulatedCrash(Exception):
    """The process died right after a write succeeded."""


class CrashAfterWrite:
    """Delegates to a storage and raises after its ``crash_at``-th successful write."""

    def __init__(self, inner: MongoStorage, crash_at: int) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self.writes += 1
            if self.writes == self.crash_at:
                raise SimulatedCrash(name)
            return result

        return write


def scenario(service: PaymentService) -> str:
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("12.500", "KWD"), provider="fake", idempotency_key="order-1"
    )
    service.confirm_payment(payment.id, idempotency_key="confirm-1")
    service.refund_payment(payment.id, amount=Money.of("2.000", "KWD"), idempotency_key="refund-1")
    return payment.id


def outcome(storage: MongoStorage, payment_id: str) -> tuple[Any, ...]:
    payment = storage.get_payment(payment_id)
    assert payment is not None
    audit = [(e.action.value, e.subject_type, e.status_after) for e in storage.list_audit(payment_id, limit=100)]
    notes = sorted((n.kind.value, n.subject_id) for n in storage.list_notifications("u1", unread_only=False, limit=100))
    return payment.status, payment.refunded_minor, audit, notes


def test_baseline_has_writes(mongomock_storage: MongoStorage) -> None:
    counting = CrashAfterWrite(mongomock_storage, crash_at=-1)
    service = PaymentService(storage=counting, providers=[FakeProvider()])  # type: ignore[arg-type]

    scenario(service)

    assert counting.writes >= 4


class TestCrashAfterEachWrite:
    """Stop after any write, retry with the same keys and reconcile: no effect lost or duplicated."""

    def test_every_crash_point(self, mongomock_client: Any) -> None:
        baseline_storage = MongoStorage(mongomock_client, "baseline")
        counting = CrashAfterWrite(baseline_storage, crash_at=-1)
        provider = FakeProvider()
        baseline_id = scenario(PaymentService(storage=counting, providers=[provider]))  # type: ignore[arg-type]
        expected = outcome(baseline_storage, baseline_id)

        for crash_at in range(1, counting.writes + 1):
            storage = MongoStorage(mongomock_client, f"crash_{crash_at}")
            provider = FakeProvider()
            crashing = CrashAfterWrite(storage, crash_at)
            with pytest.raises(SimulatedCrash):
                scenario(PaymentService(storage=crashing, providers=[provider]))  # type: ignore[arg-type]

            restarted = PaymentService(storage=storage, providers=[provider])
            restarted.reconcile(older_than=timedelta(0))
            payment_id = scenario(restarted)
            restarted.reconcile(older_than=timedelta(0))

            assert (crash_at, outcome(storage, payment_id)) == (crash_at, expected)


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
