"""MongoStorage specifics: indexes, document shape, error translation, crash safety, concurrency, persistence."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongomock
import pymongo
import pytest
from pydantic import SecretStr
from pymongo.errors import DuplicateKeyError, PyMongoError

from paykit._errors import ConfigurationError, DuplicateRecordError, StorageError
from paykit._models import Payment
from paykit._money import Money
from paykit._status import PaymentStatus
from paykit.notify import NotificationDispatcher
from paykit.storage.mongo import MongoStorage
from paykit.testing import ManualClock

from .conftest import random_database_name
from .records import T0, at, bump, make_audit, make_notification, make_payment
from .test_dispatch_on_storage import CountingNotifier, deliveries, dispatch_until_done, due_notifications

try:
    from tests._mongo_server import SecantusServer
except ImportError:
    from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]

EXPECTED_INDEXES = {
    "payments": {
        "_id_",
        "provider_ref_unique",
        "capture_ref",
        "refunding",
        "user_created",
        "created",
        "status_updated",
        "status_money",
        "outbox_pending",
        "dispute_lost",
    },
    "refunds": {"_id_", "payment_created", "status_updated", "outbox_pending"},
    "invoices": {"_id_", "number_unique", "user_created", "outbox_pending"},
    "payment_methods": {"_id_", "user_created", "outbox_pending"},
    "customers": {"_id_", "provider_user_unique"},
    "audit_log": {"_id_", "keys_at"},
    "webhook_events": {"_id_", "provider_event_unique", "payment_received"},
    "notifications": {"_id_", "delivery_due", "user_created", "subject_created"},
    "reactions": {"_id_", "pending"},
    "disputes": {"_id_", "payment_created", "provider_dispute_unique", "status_created", "created"},
}


@pytest.fixture(params=["mongomock", pytest.param("mongo_server", marks=pytest.mark.mongo_server)])
def mongo_storage(request: pytest.FixtureRequest) -> MongoStorage:
    """MongoStorage on mongomock and on the real server."""
    name = "mongomock_storage" if request.param == "mongomock" else "real_mongo_storage"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def raw(storage: MongoStorage, collection: str) -> Any:
    return storage._db.get_collection(collection)


class SimulatedCrash(Exception):
    """Stands for the process dying between two writes."""


class CrashingStorage(MongoStorage):
    """Dies at a chosen step of effect materialization."""

    crash_in: str = ""

    def _insert_effects(self, outbox: Sequence[dict[str, Any]]) -> None:
        if self.crash_in == "insert":
            raise SimulatedCrash
        super()._insert_effects(outbox)

    def _drop_outbox(self, collection: str, doc_id: Any, outbox: Sequence[dict[str, Any]], version: Any) -> None:
        if self.crash_in == "pull":
            raise SimulatedCrash
        super()._drop_outbox(collection, doc_id, outbox, version)


def indexes(storage: MongoStorage) -> dict[str, set[str]]:
    return {name: set(raw(storage, name).index_information()) for name in EXPECTED_INDEXES}


class TestIndexes:
    """The first operation, or ensure_indexes, creates every index; again is a no-op; construction creates none."""

    def test_indexes_are_created_idempotently(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.ensure_indexes()
        mongo_storage.ensure_indexes()

        assert indexes(mongo_storage) == EXPECTED_INDEXES

    def test_the_first_operation_creates_them_once(self, mongo_storage: MongoStorage) -> None:
        fresh = MongoStorage(mongo_storage._client, mongo_storage._db.name)
        before = raw(fresh, "payments").index_information()

        assert fresh.get_payment("pay_1") is None
        assert fresh.get_payment("pay_1") is None

        assert ({}, EXPECTED_INDEXES) == (before, indexes(fresh))

    def test_without_ensure_indexes_none_is_created(self, mongo_storage: MongoStorage) -> None:
        manual = MongoStorage(mongo_storage._client, mongo_storage._db.name, ensure_indexes=False)

        manual.insert_payment(make_payment())

        assert {"_id_"} == set(raw(manual, "payments").index_information())

    def test_provider_ref_index_is_sparse_and_unique(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.ensure_indexes()
        info = raw(mongo_storage, "payments").index_information()["provider_ref_unique"]

        assert (info.get("unique"), info.get("sparse")) == (True, True)

    @pytest.mark.mongo_server
    def test_lookups_use_indexes(self, real_mongo_storage: MongoStorage) -> None:
        for i in range(5):
            real_mongo_storage.insert_payment(make_payment(f"pay_{i}", provider_ref=f"pi_{i}", when=i))
        payments = raw(real_mongo_storage, "payments")

        plan = payments.find({"_provider_key": "4:fake:pi_3"}).explain()

        assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])

    @pytest.mark.mongo_server
    def test_audit_trail_and_metrics_use_indexes(self, real_mongo_storage: MongoStorage) -> None:
        """An audit trail is one index range; metrics' aggregation starts from an index."""
        for i in range(3):
            real_mongo_storage.insert_payment(
                make_payment(f"pay_{i}", when=i), [make_audit(f"a{i}", f"pay_{i}", when=i)]
            )
        assert ["a1"] == [e.id for e in real_mongo_storage.list_audit("pay_1", limit=10)]
        db = real_mongo_storage._db

        audit_plan = raw(real_mongo_storage, "audit_log").find({"_keys": "pay_1"}).explain()
        metrics_plan = db.command(
            "explain",
            {"aggregate": "payments", "pipeline": [{"$match": {"status": {"$in": ["pending"]}}}], "cursor": {}},
        )

        assert "IXSCAN" in str(audit_plan["queryPlanner"]["winningPlan"])
        assert "COLLSCAN" not in str(metrics_plan)


class TestDocumentShape:
    """What a payment looks like in MongoDB."""

    def test_money_is_integer_minor_units_and_currency(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.insert_payment(make_payment(captured_minor=12500, provider_ref="pi_1"))

        doc = raw(mongo_storage, "payments").find_one({"_id": "pay_1"})

        assert doc["amount"] == {"minor_units": 12500, "currency": "KWD"}
        assert (doc["captured_minor"], doc["status"], doc["_provider_key"]) == (12500, "pending", "4:fake:pi_1")

    def test_client_secret_is_stored_and_read_back(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.insert_payment(make_payment(client_secret=SecretStr("pi_secret")))

        doc = raw(mongo_storage, "payments").find_one({"_id": "pay_1"})
        stored = mongo_storage.get_payment("pay_1")

        assert doc["client_secret"] == "pi_secret"
        assert stored is not None
        assert stored.client_secret is not None
        assert stored.client_secret.get_secret_value() == "pi_secret"
        assert "pi_secret" not in repr(stored)

    def test_no_provider_key_without_provider_ref(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.insert_payment(make_payment())

        doc = raw(mongo_storage, "payments").find_one({"_id": "pay_1"})

        assert "_provider_key" not in doc

    def test_datetimes_are_utc_milliseconds(self, mongo_storage: MongoStorage) -> None:
        kuwait = timezone_plus3 = __import__("datetime").timezone(timedelta(hours=3))
        local = datetime(2024, 5, 1, 15, 0, 0, 123456, tzinfo=kuwait)
        mongo_storage.insert_payment(make_payment(created_at=local, updated_at=local))
        del timezone_plus3

        stored = mongo_storage.get_payment("pay_1")

        assert stored is not None
        assert stored.created_at == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
        assert stored.created_at.utcoffset() == timedelta(0)

    def test_keyset_cursor_with_microseconds_skips_its_own_payment(self, mongo_storage: MongoStorage) -> None:
        fine = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        mongo_storage.insert_payment(make_payment("pay_1", created_at=fine, updated_at=fine))
        from paykit.storage import PageCursor

        page = mongo_storage.list_payments(user_id=None, status=None, limit=5, after=PageCursor(fine, "pay_1"))

        assert page == []


class TestErrorTranslation:
    """pymongo errors become StorageError / DuplicateRecordError, with the cause kept."""

    def test_duplicate_key_keeps_its_cause(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.insert_payment(make_payment())

        with pytest.raises(DuplicateRecordError) as caught:
            mongo_storage.insert_payment(make_payment())

        assert isinstance(caught.value.__cause__, DuplicateKeyError)

    def test_unreachable_server_is_storage_error(self) -> None:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            "mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=100, connectTimeoutMS=100
        )
        storage = MongoStorage(client, ensure_indexes=False)

        with pytest.raises(StorageError) as caught:
            storage.ping()
        with pytest.raises(StorageError):
            storage.get_payment("pay_1")
        client.close()

        assert isinstance(caught.value.__cause__, PyMongoError)
        assert type(caught.value) is StorageError

    @pytest.mark.parametrize("uri", ["mongodb://a:b@c@host", "mongodb://127.0.0.1:99999", "http://x"])
    def test_invalid_uri_is_configuration_error(self, uri: str) -> None:
        with pytest.raises(ConfigurationError):
            MongoStorage.from_uri(uri)

    @pytest.mark.mongo_server
    def test_server_going_away_mid_use_is_storage_error(self) -> None:
        server = SecantusServer().start()
        storage = MongoStorage.from_uri(server.uri, serverSelectionTimeoutMS=300, connectTimeoutMS=300)
        storage.insert_payment(make_payment())

        server.stop()

        with pytest.raises(StorageError):
            storage.get_payment("pay_1")
        storage.close()


class TestCrashSafety:
    """A process dying while effects are materialized loses and duplicates nothing."""

    def test_a_write_costs_no_materialization(self, mongo_storage: MongoStorage) -> None:
        """Effects stay in the written document's outbox until a reader or flush needs them."""
        mongo_storage.insert_payment(make_payment(), [make_audit("a1"), make_notification("n1")])

        assert ["a1", "n1"] == [e["_id"] for e in raw(mongo_storage, "payments").find_one({"_id": "pay_1"})["_outbox"]]
        assert 0 == raw(mongo_storage, "audit_log").count_documents({})

    @pytest.mark.parametrize("crash_in", ["insert", "pull"])
    def test_effects_survive_a_crash_while_flushing(
        self, mongo_storage: MongoStorage, crash_in: str, request: pytest.FixtureRequest
    ) -> None:
        crashing = CrashingStorage(mongo_storage._client, mongo_storage._db.name, ensure_indexes=False)
        crashing.crash_in = crash_in
        payment = make_payment()
        crashing.insert_payment(payment, [make_audit("a1"), make_notification("n1")])
        crashing.update_payment(
            bump(payment, status=PaymentStatus.SUCCEEDED), expected_version=0, effects=[make_audit("a2", when=1)]
        )

        with pytest.raises(SimulatedCrash):
            crashing.flush_pending_effects()

        restarted = MongoStorage(mongo_storage._client, mongo_storage._db.name)
        assert [e.id for e in restarted.list_audit("pay_1", limit=10)] == ["a1", "a2"]
        assert [n.id for n in restarted.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=5)] == ["n1"]
        assert restarted.flush_pending_effects() == 0
        assert raw(restarted, "payments").find_one({"_id": "pay_1"}).get("_outbox") is None

    def test_a_write_during_the_flush_keeps_its_effects(self, mongo_storage: MongoStorage) -> None:
        """When another write pushes effects mid-flush, only what was flushed leaves the outbox."""
        payment = make_payment()
        mongo_storage.insert_payment(payment, [make_audit("a1")])

        class Racing(MongoStorage):
            raced = False

            def _insert_effects(self, outbox: Sequence[dict[str, Any]]) -> None:
                super()._insert_effects(outbox)
                if not self.raced:
                    self.raced = True
                    mongo_storage.update_payment(bump(payment), expected_version=0, effects=[make_audit("a2", when=1)])

        Racing(mongo_storage._client, mongo_storage._db.name, ensure_indexes=False).flush_pending_effects()

        outbox = raw(mongo_storage, "payments").find_one({"_id": "pay_1"}).get("_outbox")
        assert ["a2"] == [e["_id"] for e in outbox]
        assert ["a1", "a2"] == [e.id for e in mongo_storage.list_audit("pay_1", limit=10)]

    def test_flush_reports_what_it_moved(self, mongo_storage: MongoStorage) -> None:
        mongo_storage.insert_payment(make_payment(), [make_audit("a1"), make_notification("n1")])

        assert (mongo_storage.flush_pending_effects(), mongo_storage.flush_pending_effects()) == (2, 0)

    def test_a_later_write_keeps_pending_effects(self, mongo_storage: MongoStorage) -> None:
        payment = make_payment()
        mongo_storage.insert_payment(payment, [make_audit("a1")])

        assert mongo_storage.update_payment(bump(payment), expected_version=0, effects=[make_audit("a2", when=1)])

        assert [e.id for e in mongo_storage.list_audit("pay_1", limit=10)] == ["a1", "a2"]


@pytest.mark.mongo_server
class TestConcurrency:
    """Compare-and-set on the real server under contention."""

    def test_one_transition_wins_among_800_attempts(self, real_mongo_storage: MongoStorage) -> None:
        storage = real_mongo_storage
        payment = make_payment()
        storage.insert_payment(payment)
        succeeded = bump(payment, status=PaymentStatus.SUCCEEDED, captured_minor=12500)
        effects = [make_audit("a-succeeded"), make_notification("n-succeeded")]
        wins: list[bool] = []
        start = threading.Barrier(8)

        def deliver() -> None:
            start.wait()
            for _ in range(100):
                wins.append(storage.update_payment(succeeded, expected_version=0, effects=effects))

        threads = [threading.Thread(target=deliver) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert (len(wins), wins.count(True)) == (800, 1)
        assert [e.id for e in storage.list_audit("pay_1", limit=10)] == ["a-succeeded"]
        assert [n.id for n in storage.list_notifications("u1", unread_only=False, limit=10)] == ["n-succeeded"]
        assert storage.get_payment("pay_1") == succeeded

    def test_concurrent_refund_reservations_never_exceed_the_capture(self, real_mongo_storage: MongoStorage) -> None:
        storage = real_mongo_storage
        storage.insert_payment(make_payment(status=PaymentStatus.SUCCEEDED, captured_minor=10000))
        reserved: list[str] = []
        start = threading.Barrier(20)

        def reserve(refund_id: str) -> None:
            start.wait()
            while True:
                current = storage.get_payment("pay_1")
                assert current is not None
                if current.amount_refundable.minor_units < 700:
                    return
                after = bump(current, pending_refunds={**current.pending_refunds, refund_id: 700})
                if storage.update_payment(after, expected_version=current.version):
                    reserved.append(refund_id)
                    return

        threads = [threading.Thread(target=reserve, args=(f"re_{i}",)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        final = storage.get_payment("pay_1")
        assert final is not None
        assert (len(reserved), sum(final.pending_refunds.values())) == (14, 9800)
        assert (sorted(reserved), final.version) == (sorted(final.pending_refunds), 14)


WRITER = """
import sys
from paykit._money import Money
from paykit._models import Payment
from paykit.storage.mongo import MongoStorage
from datetime import datetime, UTC
storage = MongoStorage.from_uri(sys.argv[1], sys.argv[2])
now = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
storage.insert_payment(Payment(id="pay_disk", user_id="u1", provider="fake", amount=Money.of("12.500", "KWD"),
                               provider_ref="pi_disk", created_at=now, updated_at=now))
storage.close()
"""


@pytest.mark.mongo_server
class TestPersistence:
    """What one process wrote is read by another after the server restarted on disk."""

    def test_restart_on_disk_keeps_payments(self, tmp_path: Path) -> None:
        database = random_database_name()
        with SecantusServer(storage_path=tmp_path / "data") as server:
            subprocess.run([sys.executable, "-c", WRITER, server.uri, database], check=True, timeout=60)

        with SecantusServer(storage_path=tmp_path / "data") as server:
            storage = MongoStorage.from_uri(server.uri, database)
            found = storage.find_payment_by_provider_ref("fake", "pi_disk")
            storage.close()

        assert found is not None
        assert (found.id, found.amount) == ("pay_disk", Money.of("12.500", "KWD"))
        assert isinstance(found, Payment)


class TestMongomockGaps:
    """Where mongomock differs from a server, the design does not depend on it."""

    def test_partial_filter_is_not_needed(self) -> None:
        storage = MongoStorage(mongomock.MongoClient(), "paykit")

        for i in range(3):
            storage.insert_payment(make_payment(f"pay_{i}"))

        assert len(storage.list_payments(user_id=None, status=None, limit=10, after=None)) == 3


DISPATCHER = """
import sys, time
from datetime import UTC, datetime, timedelta
from paykit.notify import NotificationDispatcher
from paykit.storage.mongo import MongoStorage

uri, database, worker, start_at = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
storage = MongoStorage.from_uri(uri, database)
received = storage._db.get_collection("received")


class Recording:
    name = "app"

    def notify(self, notification):
        received.insert_one({"notification": notification.id, "worker": worker})
        time.sleep(0.02)


dispatcher = NotificationDispatcher(
    storage, [Recording()], clock=lambda: datetime.now(UTC), timeout=1.0, lease=timedelta(seconds=1)
)
time.sleep(max(0.0, start_at - time.time()))
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if any(n.delivery == "pending" for n in storage.list_notifications("u1", unread_only=False, limit=1000)):
        report = dispatcher.dispatch()
        if report.delivered + report.retrying + report.dead == 0:
            time.sleep(0.01)
    else:
        break
storage.close()
"""


@pytest.mark.mongo_server
class TestDispatchAcrossClients:
    """Dispatchers on separate clients, threads or processes, deliver each notification once."""

    def test_two_clients_racing_deliver_each_once(self, mongo_uri: str, mongo_database: str) -> None:
        """Two MongoStorage clients, one dispatcher thread each, clock moving 1 s a call: 0 duplicates."""
        storages = [MongoStorage.from_uri(mongo_uri, mongo_database) for _ in range(2)]
        clock = ManualClock(T0)
        notifier = CountingNotifier(before=lambda: (time.sleep(0.001), clock.advance(seconds=1)))
        ids = due_notifications(storages[0], 100)
        threads = [
            threading.Thread(
                target=dispatch_until_done,
                args=(NotificationDispatcher(s, [notifier], clock=clock, timeout=2.0), s),
            )
            for s in storages
        ]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert {"delivered": 100} == deliveries(storages[1])
        finally:
            for storage in storages:
                storage.close()

        assert (set(ids), 0) == (set(notifier.calls), notifier.duplicates())

    def test_two_processes_with_passes_longer_than_the_lease_deliver_each_once(
        self, mongo_uri: str, mongo_database: str, real_mongo_storage: MongoStorage
    ) -> None:
        """Two dispatcher processes, 1 s leases, passes of about 2 s: each of 100 notifications delivered once."""
        ids = due_notifications(real_mongo_storage, 100)
        start_at = time.time() + 3
        workers = [
            subprocess.Popen([sys.executable, "-c", DISPATCHER, mongo_uri, mongo_database, name, str(start_at)])
            for name in ("a", "b")
        ]
        for worker in workers:
            assert 0 == worker.wait(timeout=90)

        received = Counter(doc["notification"] for doc in raw(real_mongo_storage, "received").find())
        by_worker = Counter(doc["worker"] for doc in raw(real_mongo_storage, "received").find())
        assert (set(ids), 0) == (set(received), sum(count - 1 for count in received.values()))
        assert {"a", "b"} == set(by_worker)
        assert {"delivered": 100} == deliveries(real_mongo_storage)
