# Generated from tests/_async/storage/test_crash_safety.py by scripts/unasync.py: do not edit.
"""Crash injection: the process dies after any write of any operation, then retries and reconciles.

The scenario runs an invoice's whole life: created, sent, paid by a payment that
is confirmed, settled by a webhook (and redelivered), refunded in part. It is
run once to count its writes; then, for every write N, a service whose storage
dies right after its N-th successful write runs it until it dies, a fresh
service on the same storage (and the same provider) runs ``reconcile()`` and
the scenario again with the same keys and the same events, and everything is
compared with the run that never crashed: payment, invoice, refunds, audit
trail, notifications, and what happened at the provider. On memory and on the
MongoDB-wire server, where the crash abandons every object in the process.

Written once for both APIs (tests/_sync/storage/test_crash_safety.py is generated
from here; the storages of each API are chosen in tests/_storages.py). Webhooks are
delivered verified then applied, as the webhook entry points do with a valid one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from paykit import InvoiceStatus, Money, PaymentService, PaymentStatus, WebhookOutcome
from paykit.storage import MemoryStorage, Storage
from paykit.storage._base import Write
from paykit.storage._sync.memory import write_each
from paykit.testing import FakeProvider, FakeWebhook, ManualClock
from tests._storages import mongo_server_fixture, storage_params

WRITES = frozenset(
    {
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
        "complete_reactions",
    }
)


class ProcessDied(BaseException):
    """The process died right after a write succeeded (nothing in paykit may catch it)."""


class DiesAfterWrite:
    """Delegates to a storage and dies after its ``die_at``-th successful write (never when 0)."""

    def __init__(self, inner: Storage, die_at: int = 0) -> None:
        self.inner = inner
        self.die_at = die_at
        self.writes: list[str] = []

    def write_batch(self, writes: Sequence[Write]) -> int:
        """One crash point per write of a batch, as a server may stop between any two of them."""
        return write_each(self, writes)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in WRITES:
            return attribute

        def write(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            self.writes.append(name)
            if len(self.writes) == self.die_at:
                raise ProcessDied(name)
            return result

        return write


def deliver(service: PaymentService, provider: FakeProvider, hook: FakeWebhook) -> WebhookOutcome:
    """What handle_webhook does with a valid delivery: verify and normalize, then apply."""
    return service.apply_webhook_event(provider.parse_webhook(hook.body, hook.headers))


def scenario(service: PaymentService, fake: FakeProvider) -> str:
    """An invoice's whole life; every step keyed or replayable, as a careful app writes it."""
    invoice = service.create_invoice(
        user_id="u1",
        currency="KWD",
        line_items=[{"description": "Dates, 1 kg", "quantity": 3, "unit_amount": Money.of("4.250", "KWD")}],
        idempotency_key="inv-1",
    )
    if invoice.status == InvoiceStatus.DRAFT:
        service.send_invoice(invoice.id)
    invoice = service.get_invoice(invoice.id)
    if invoice.status == InvoiceStatus.OPEN:
        payment = service.pay_invoice(invoice.id, provider="fake")
    else:  # paid before the process died
        payment = service.get_payment(invoice.payment_id or "")
    if service.get_payment(payment.id).status == PaymentStatus.PENDING:
        fake.behavior = "processing"
        service.confirm_payment(payment.id, payment_method="pm_card_visa", idempotency_key="confirm-1")
    payment = service.get_payment(payment.id)
    hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_paid")
    for _ in range(2):  # the provider delivers it twice
        assert deliver(service, fake, hook) in (WebhookOutcome.APPLIED, WebhookOutcome.DUPLICATE)
    service.refund_payment(payment.id, amount=Money.of("2.000", "KWD"), idempotency_key="refund-1")
    return payment.id


def outcome(service: PaymentService, fake: FakeProvider, payment_id: str) -> tuple[Any, ...]:
    payment = service.get_payment(payment_id)
    invoice = service.get_invoice(payment.invoice_id or "")
    refunds = [(r.status, r.amount) for r in service.list_refunds(payment_id)]
    audit = [(e.action.value, e.status_after) for e in service.audit_trail(payment_id)]
    invoice_audit = [e.action.value for e in service.audit_trail(invoice.id)]
    notes = Counter((n.kind.value, n.subject_id) for n in service.list_notifications("u1", limit=500))
    at_provider = (
        len({c.provider_ref for c in fake.calls_to("create_payment")}),
        [len(fake.refunds_for(r.id)) for r in service.list_refunds(payment_id)],
        fake.refunded_amount(payment.provider_ref or ""),
    )
    return (
        payment.status,
        payment.refunded_minor,
        payment.pending_refunds,
        invoice.status,
        refunds,
        audit,
        invoice_audit,
        sorted(notes.items()),
        at_provider,
    )


def run(make_storage: Any, die_at: int) -> tuple[tuple[Any, ...], list[str]]:
    """Run the scenario dying after write ``die_at`` (0: never), recover, and return the outcome."""
    storage = make_storage()
    clock = ManualClock()
    fake = FakeProvider(clock=clock.unix)
    dying = DiesAfterWrite(storage, die_at)
    first = PaymentService(storage=dying, providers=[fake], clock=clock)  # type: ignore[arg-type]
    try:
        payment_id = scenario(first, fake)
    except ProcessDied:
        clock.advance(minutes=2)  # the restart takes a while; leases of the dead process expire
        restarted = PaymentService(storage=storage, providers=[fake], clock=clock)
        restarted.reconcile(older_than=timedelta(0))
        payment_id = scenario(restarted, fake)
        restarted.reconcile(older_than=timedelta(0))
        return outcome(restarted, fake, payment_id), dying.writes
    first.reconcile(older_than=timedelta(0))
    return outcome(first, fake, payment_id), dying.writes


@pytest.fixture(params=storage_params(Storage))
def make_storage(request: pytest.FixtureRequest) -> Any:
    """Makes a fresh, empty storage at each call."""
    if request.param == "memory":
        return MemoryStorage
    return request.getfixturevalue(mongo_server_fixture(Storage, "mongo_storage_factory"))


def _paying_write(writes: list[str]) -> int:
    """The number of the payment's succeeded write: the one before the invoice's last (paying) write."""
    paid = max(i for i, name in enumerate(writes) if name == "update_invoice")
    assert writes[paid - 1] == "update_payment"
    return paid


class TestDeathAfterEveryWrite:
    """0 lost, 0 duplicated: payments, refunds, provider charges, audit entries, notifications."""

    def test_every_write_of_every_operation(self, make_storage: Any) -> None:
        expected, writes = run(make_storage, 0)
        assert {"insert_invoice", "insert_payment", "update_payment", "update_invoice"} <= set(writes)

        for die_at in range(1, len(writes) + 1):
            actual, _ = run(make_storage, die_at)
            assert (die_at, writes[die_at - 1], actual) == (die_at, writes[die_at - 1], expected)

    def test_the_invoice_is_paid_when_the_process_dies_before_its_write(self, make_storage: Any) -> None:
        """The payment's succeeded write carries the invoice's change: reconcile alone finishes it."""
        _, writes = run(make_storage, 0)
        paid_at = _paying_write(writes)
        storage = make_storage()
        clock = ManualClock()
        fake = FakeProvider(clock=clock.unix)
        with pytest.raises(ProcessDied):
            scenario(PaymentService(storage=DiesAfterWrite(storage, paid_at), providers=[fake], clock=clock), fake)  # type: ignore[arg-type]

        restarted = PaymentService(storage=storage, providers=[fake], clock=clock)
        report = restarted.reconcile(older_than=timedelta(0))

        invoice = restarted.get_invoice(restarted.list_payments().items[0].invoice_id or "")
        assert (1, "paid") == (report.reactions_applied, invoice.status.value)

    def test_the_write_that_pays_the_invoice_marks_its_reaction_done(self, make_storage: Any) -> None:
        """No separate done write, and no moment where the reaction is applied but still pending."""
        _, writes = run(make_storage, 0)
        paid_at = _paying_write(writes)
        storage = make_storage()
        clock = ManualClock()
        fake = FakeProvider(clock=clock.unix)
        dying = DiesAfterWrite(storage, paid_at + 1)  # right after the invoice's paying write
        with pytest.raises(ProcessDied):
            scenario(PaymentService(storage=dying, providers=[fake], clock=clock), fake)  # type: ignore[arg-type]

        assert "complete_reactions" not in writes
        assert storage.list_pending_reactions(limit=10) == []
        restarted = PaymentService(storage=storage, providers=[fake], clock=clock)
        assert restarted.reconcile(older_than=timedelta(0)).reactions_applied == 0
