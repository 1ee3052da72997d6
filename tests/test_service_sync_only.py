"""The service tests that only the sync API can run: threads hammering it, ``handle_webhook``, audit hooks.

The rest of the service suite is written once in ``tests/_async/test_service.py`` and
runs on both APIs. Threads belong to the sync service; ``handle_webhook`` has no async
twin yet (``ahandle_webhook`` is to come), so its HTTP answers are tested here; the
asyncio equivalents are in ``tests/test_service_asyncio.py``. The async service's
audit-hook runner is a stopgap (the async-notify branch replaces it), so the hook
containment test waits here too.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from paykit import (
    AuditAction,
    InvalidRequestError,
    InvalidStateError,
    Money,
    NotificationKind,
    PaymentService,
    PaymentStatus,
)
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock, capture_logs
from paykit.webhooks import handle_webhook
from tests._sync.test_service import _actions, _BrokenStorage, _init, _paid


class TestRefunds:
    """Refunds never exceed what was captured, whatever the threads."""

    def test_concurrent_refunds_never_exceed_the_capture(self, service: PaymentService) -> None:
        """20 threads refunding 7.00 each from 50.00: exactly 7 succeed, 1.00 stays refundable."""
        payment = _paid(service)
        barrier = threading.Barrier(20)

        def refund(_: int) -> str:
            barrier.wait()
            try:
                service.refund_payment(payment.id, amount=Money.of("7.00", "USD"))
            except InvalidStateError:
                return "refused"
            return "refunded"

        with ThreadPoolExecutor(20) as pool:
            results = list(pool.map(refund, range(20)))

        payment = service.get_payment(payment.id)
        assert (7, 13) == (results.count("refunded"), results.count("refused"))
        assert Money.of("49.00", "USD") == payment.amount_refunded
        assert Money.of("1.00", "USD") == payment.amount_refundable
        assert {} == payment.pending_refunds


class TestStatusUpdates:
    """The same event delivered by many threads, or out of order, through handle_webhook."""

    def test_concurrent_identical_webhooks_apply_once(
        self, service: PaymentService, fake: FakeProvider, storage: MemoryStorage
    ) -> None:
        """8 threads x 50 deliveries of one event: one transition, one audit entry, one notification each."""
        payment = _init(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")
        barrier = threading.Barrier(8)

        def deliver(_: int) -> list[int]:
            barrier.wait()
            return [handle_webhook(service, "fake", hook.body, hook.headers).status_code for _ in range(50)]

        with ThreadPoolExecutor(8) as pool:
            codes = [c for batch in pool.map(deliver, range(8)) for c in batch]

        updates = [e for e in service.audit_trail(payment.id) if e.action == AuditAction.PAYMENT_STATUS_UPDATE]
        kinds = [n.kind for n in storage.list_notifications("u1", unread_only=False, limit=100)]
        assert {200} == set(codes)
        assert 1 == len(updates)
        assert 1 == kinds.count(NotificationKind.PAYMENT_SUCCEEDED)
        assert 1 == kinds.count(NotificationKind.STATUS_CHANGED)

    def test_out_of_order_events(self, service: PaymentService, fake: FakeProvider) -> None:
        """succeeded then a late processing: the late one is recorded and ignored."""
        payment = _init(service)
        succeeded = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        processing = fake.webhook(payment, PaymentStatus.PROCESSING)

        outcomes = [
            handle_webhook(service, "fake", hook.body, hook.headers).outcome for hook in (succeeded, processing)
        ]

        assert ["applied", "stale"] == outcomes
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status
        assert AuditAction.PAYMENT_EVENT_IGNORED == _actions(service, payment.id)[-1]


class TestWebhooks:
    """handle_webhook answers every request with a status code, never an exception."""

    @pytest.fixture
    def broken(self, fake: FakeProvider, clock: ManualClock) -> tuple[PaymentService, _BrokenStorage]:
        storage = _BrokenStorage()
        return PaymentService(storage=storage, providers=[fake], clock=clock), storage

    def test_forged_signature_is_400_and_changes_nothing(self, service: PaymentService, fake: FakeProvider) -> None:
        """A tampered body gets a bare 400."""
        payment = _init(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)

        response = handle_webhook(service, "fake", hook.body.replace(b"succeeded", b"failed"), hook.headers)

        assert (400, "rejected") == (response.status_code, response.outcome)
        assert PaymentStatus.PENDING == service.get_payment(payment.id).status

    def test_stale_timestamp_is_400(self, service: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        """A signature older than the tolerance is refused."""
        hook = fake.webhook(_init(service), PaymentStatus.SUCCEEDED)
        clock.advance(minutes=6)

        assert 400 == handle_webhook(service, "fake", hook.body, hook.headers).status_code

    def test_headers_any_case(self, service: PaymentService, fake: FakeProvider) -> None:
        """Header names are matched case-insensitively."""
        hook = fake.webhook(_init(service), PaymentStatus.SUCCEEDED)
        shouted = [(k.upper(), v) for k, v in hook.headers.items()]

        assert 200 == handle_webhook(service, "fake", hook.body, shouted).status_code

    def test_oversized_and_unknown_provider(self, service: PaymentService) -> None:
        """Over the size limit is 413; an unknown provider 404."""
        assert 413 == handle_webhook(service, "fake", b"x" * 2000, {}, max_body_bytes=1000).status_code
        assert 404 == handle_webhook(service, "nope", b"{}", {}).status_code

    def test_amount_mismatch_is_refused(self, service: PaymentService, fake: FakeProvider) -> None:
        """A success claiming another amount than the payment's is not applied."""
        payment = _init(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, amount=Money.of("0.50", "USD"))

        assert 400 == handle_webhook(service, "fake", hook.body, hook.headers).status_code
        assert PaymentStatus.PENDING == service.get_payment(payment.id).status

    def test_storage_outage_is_503_and_the_retry_applies(
        self, broken: tuple[PaymentService, _BrokenStorage], fake: FakeProvider
    ) -> None:
        """When storage is down the provider is told to retry, and the retry is applied."""
        service, storage = broken
        payment = _init(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        storage.broken = {"update_payment"}

        first = handle_webhook(service, "fake", hook.body, hook.headers)
        storage.broken = set()
        second = handle_webhook(service, "fake", hook.body, hook.headers)

        assert (503, "30") == (first.status_code, first.headers["retry-after"])
        assert (200, "applied") == (second.status_code, second.outcome)
        assert PaymentStatus.SUCCEEDED == service.get_payment(payment.id).status

    def test_unknown_payment_is_acknowledged(self, service: PaymentService, fake: FakeProvider) -> None:
        """An event for a payment paykit never made is acknowledged and recorded."""
        hook = fake.webhook("pi_elsewhere", PaymentStatus.SUCCEEDED, event_id="evt_x")

        response = handle_webhook(service, "fake", hook.body, hook.headers)

        assert (200, "unknown_payment") == (response.status_code, response.outcome)

    def test_text_body_is_a_programming_error(self, service: PaymentService) -> None:
        """Passing decoded text instead of the raw bytes raises at once."""
        with pytest.raises(InvalidRequestError, match="raw request body"):
            handle_webhook(service, "fake", "{}", {})  # type: ignore[arg-type]


class TestAuditAndSecrets:
    """No secret reaches logs or audit entries, webhooks included."""

    def test_no_secret_in_logs_or_audit(self, service: PaymentService, fake: FakeProvider) -> None:
        """Client secrets, card numbers and signatures appear in neither logs nor audit payloads."""
        with capture_logs() as logs:
            with pytest.raises(InvalidRequestError, match="looks like a card number") as refused:
                _init(service, metadata={"note": "card 4242 4242 4242 4242"})
            payment = _init(service, metadata={"note": "order 42"})
            hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
            handle_webhook(service, "fake", hook.body, hook.headers)
            handle_webhook(service, "fake", hook.body + b" ", hook.headers)
            service.refund_payment(payment.id, amount=Money.of("1.00", "USD"))
        secret = payment.client_secret.get_secret_value()
        signature = hook.headers["paykit-fake-signature"]
        dumped = repr(logs) + str(refused.value) + "".join(e.model_dump_json() for e in service.audit_trail(payment.id))

        events = {entry["event"] for entry in logs}
        assert {"payment initializing", "webhook handled", "webhook rejected"} <= events
        for needle in (secret, signature.split("v1=")[1], "4242 4242 4242 4242"):
            assert needle not in dumped

    def test_audit_hook_receives_entries_and_its_failure_is_contained(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """A raising hook never breaks the payment; a working one sees every entry.

        Sync only for now: the async service's hook runner is a stopgap that does not contain a hook's failure yet.
        """
        seen: list[str] = []

        def broken(entry: Any) -> None:
            raise RuntimeError("hook down")

        with PaymentService(
            storage=storage, providers=[fake], clock=clock, audit_hooks=[broken, lambda e: seen.append(e.action)]
        ) as service:
            payment = _paid(service)
        assert [AuditAction.PAYMENT_INIT, AuditAction.PAYMENT_CONFIRM] == seen
        assert PaymentStatus.SUCCEEDED == payment.status
