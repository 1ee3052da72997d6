"""The ``paykit`` command: demo, health, metrics and audit.

paykit demo [--mongo-uri URI]        a walk through the payment lifecycle
paykit health --mongo-uri URI        storage reachable? payments in the last 24 h
paykit metrics --mongo-uri URI       counts, revenue and refunds per currency
paykit audit PAYMENT_ID --mongo-uri URI
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from typing import TextIO

from ._errors import InvalidStateError, PaykitError, PaymentDeclinedError
from ._models import AuditEntry, LineItem, Notification
from ._money import Money
from ._service import PaymentService
from ._status import PaymentStatus
from .notify import CallbackNotifier
from .storage._base import Storage
from .storage.memory import MemoryStorage
from .testing._clock import ManualClock
from .testing._fake import FakeProvider
from .webhooks import handle_webhook

__all__ = ["main", "run_demo"]


def _storage(mongo_uri: str | None, database: str) -> Storage:
    if mongo_uri is None:
        return MemoryStorage()
    from .storage.mongo import MongoStorage  # noqa: PLC0415 - pymongo is an optional extra

    return MongoStorage.from_uri(mongo_uri, database=database)


def _audit_line(entry: AuditEntry) -> str:
    move = f"{entry.status_before or '-'} -> {entry.status_after or '-'}"
    return f"  {entry.at:%H:%M:%S}  {entry.action.value:<22} {move:<34} by {entry.actor}"


def run_demo(storage: Storage | None = None, out: TextIO | None = None) -> PaymentService:
    """Walk through paykit's lifecycle on ``storage`` (in memory by default), printing each step.

    Returns the service, so tests can inspect what the demo did.
    """
    stream = out or sys.stdout

    def say(text: str = "") -> None:
        print(text, file=stream)

    clock = ManualClock()
    fake = FakeProvider("fake", clock=clock.unix)
    delivered: list[Notification] = []
    service = PaymentService(
        storage=storage or MemoryStorage(),
        providers=[fake],
        notifiers=[CallbackNotifier(delivered.append, name="app")],
        clock=clock,
        actor="demo",
    )
    say("paykit demo: provider 'fake' (paykit.testing.FakeProvider), storage " + type(service.storage).__name__)
    say()

    say("1. A saved card and a payment, initialized twice with one idempotency key")
    card = service.save_payment_method(user_id="alice", provider="fake", token="pm_card_visa")
    say(f"   saved {card.brand} ending {card.last4} as {card.id} (default: {card.is_default})")
    amount = Money.of("49.99", "USD")
    payment = service.initialize_payment(
        user_id="alice", amount=amount, provider="fake", idempotency_key="order-1001", metadata={"order": "1001"}
    )
    again = service.initialize_payment(
        user_id="alice", amount=amount, provider="fake", idempotency_key="order-1001", metadata={"order": "1001"}
    )
    say(f"   {payment.id}  {payment.amount}  {payment.status.value}  (same payment again: {again.id == payment.id};")
    say(f"   provider create calls: {len(fake.calls_to('create_payment'))})")

    say("2. Confirmed with the saved card; the provider settles asynchronously")
    fake.behavior = "processing"
    payment = service.confirm_payment(payment.id, payment_method=card.id)
    say(f"   status {payment.status.value}")
    clock.advance(seconds=3)
    hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_demo_1")
    for attempt in ("delivered", "delivered again"):
        response = handle_webhook(service, "fake", hook.body, hook.headers)
        say(f"   webhook payment.succeeded {attempt}: HTTP {response.status_code}, {response.outcome}")
    late = fake.webhook(payment, PaymentStatus.PROCESSING, event_id="evt_demo_0")
    response = handle_webhook(service, "fake", late.body, late.headers)
    say(f"   a late payment.processing arrives: HTTP {response.status_code}, {response.outcome} (never backwards)")
    forged = handle_webhook(service, "fake", hook.body.replace(b"succeeded", b"failed"), hook.headers)
    say(f"   a forged copy: HTTP {forged.status_code}, {forged.outcome}")
    payment = service.get_payment(payment.id)
    say(f"   status {payment.status.value}, captured {payment.amount_captured}")

    say("3. Refunds: a partial one, then one too many")
    clock.advance(minutes=10)
    refund = service.refund_payment(payment.id, amount=Money.of("10.00", "USD"), reason="damaged box")
    payment = service.get_payment(payment.id)
    say(f"   refunded {refund.amount} ({refund.status.value}); payment {payment.status.value},")
    say(f"   {payment.amount_refundable} still refundable")
    try:
        service.refund_payment(payment.id, amount=Money.of("40.00", "USD"))
    except InvalidStateError as exc:
        say(f"   refusing 40.00 USD: {exc}")

    say("4. A declined card")
    fake.behavior = "decline"
    declined = service.initialize_payment(user_id="bob", amount=Money.of("5000", "JPY"), provider="fake")
    try:
        service.confirm_payment(declined.id, payment_method="pm_card_mastercard")
    except PaymentDeclinedError as exc:
        say(f"   {declined.amount}: declined ({exc.decline_code}); stored as {service.get_payment(declined.id).status}")
    fake.behavior = "succeed"

    say("5. An invoice in Kuwaiti dinars (3 decimals), sent and paid")
    clock.advance(hours=1)
    invoice = service.create_invoice(
        user_id="alice",
        currency="KWD",
        line_items=[
            LineItem(description="Consulting hour", quantity=3, unit_amount=Money.of("12.500", "KWD")),
            LineItem(
                description="Support plan",
                quantity=1,
                unit_amount=Money.of("7.125", "KWD"),
                tax_rate=Decimal("0.05"),
            ),
        ],
    )
    say(f"   {invoice.number}: subtotal {invoice.subtotal}, tax {invoice.tax}, total {invoice.total}")
    invoice = service.send_invoice(invoice.id)
    invoice_payment = service.pay_invoice(invoice.id, provider="fake")
    service.confirm_payment(invoice_payment.id, payment_method=card.id)
    invoice = service.get_invoice(invoice.id)
    say(f"   sent, paid by {invoice_payment.id}: invoice is {invoice.status.value}")

    say("6. Notifications delivered to the app's notifier")
    report = service.dispatch_notifications()
    say(f"   {report.delivered} delivered: " + ", ".join(sorted({n.kind.value for n in delivered})))

    say(f"7. Audit trail of {payment.id}")
    for entry in service.audit_trail(payment.id):
        say(_audit_line(entry))

    say("8. Health and metrics")
    health = service.health()
    say(f"   health: {health.as_dict()['status']}, storage {health.storage}, "
        f"{health.payments_last_24h} payments in 24 h")  # fmt: skip
    metrics = service.metrics()
    say(f"   payments by status: {metrics.count_by_status}")
    for currency, revenue in metrics.revenue_by_currency.items():
        say(f"   {currency}: captured {revenue}, refunded {metrics.refunds_by_currency[currency]}, "
            f"net {metrics.net_by_currency[currency]}")  # fmt: skip
    say(f"   pending: {metrics.pending}")
    return service


def _configure_logging() -> None:
    # The command line is an application, so it may configure logging (the library never does):
    # warnings and errors to stderr, keeping the demo's stdout readable.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``paykit`` command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="paykit", description="paykit: payments with exact money.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "walk through the payment lifecycle (in memory by default)"),
        ("health", "check storage and recent activity"),
        ("metrics", "counts and money per currency"),
        ("audit", "print a payment's audit trail"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--mongo-uri", help="use MongoDB at this URI instead of memory")
        cmd.add_argument("--database", default="paykit", help="MongoDB database name (default: paykit)")
        if name == "audit":
            cmd.add_argument("payment_id")
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        storage = _storage(args.mongo_uri, args.database)
        if args.command == "demo":
            run_demo(storage)
            return 0
        service = PaymentService(storage=storage)
        if args.command == "health":
            health = service.health()
            print(json.dumps(health.as_dict(), indent=2))
            return 0 if health.ok else 1
        if args.command == "metrics":
            print(json.dumps(service.metrics().as_dict(), indent=2))
            return 0
        entries = service.audit_trail(args.payment_id)
        if not entries:
            print(f"no audit entries for {args.payment_id}", file=sys.stderr)
            return 1
        for entry in entries:
            print(entry.model_dump_json())
        return 0
    except PaykitError as exc:
        print(f"paykit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
