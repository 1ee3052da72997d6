"""The ``paykit`` command: demo, health, metrics and audit.

paykit --version
paykit demo [--mongo-uri URI]        a walk through the payment lifecycle (database paykit_demo)
paykit health --mongo-uri URI        storage reachable? payments in the last 24 h
paykit metrics --mongo-uri URI       counts, revenue and refunds per currency
paykit audit PAYMENT_ID --mongo-uri URI
paykit explain PAYMENT_ID --mongo-uri URI [--json]   one timeline of a payment

Every command that takes ``--mongo-uri`` also takes ``--database`` and
``--connect-timeout`` (seconds, 5 by default).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TextIO

from ._errors import InvalidStateError, PaykitError, PaymentDeclinedError, StorageError
from ._models import AuditEntry, LineItem, Notification, Plan
from ._money import Money
from ._service import PaymentService
from ._status import PaymentStatus
from ._version import DISTRIBUTION
from .notify import CallbackNotifier
from .storage._sync.protocol import Storage
from .storage.memory import MemoryStorage
from .testing._clock import ManualClock
from .testing._fake import FakeProvider
from .webhooks import handle_webhook

__all__ = ["main", "run_demo"]

DEFAULT_DATABASE = "paykit"
DEMO_DATABASE = "paykit_demo"
DEFAULT_CONNECT_TIMEOUT = 5.0
_DEMO_MARKER = "paykit_demo_marker"
# An in-memory store is always empty in a new process: these commands need the database.
_NEED_STORAGE = ("health", "metrics", "audit", "explain")
_LIVE_NEEDS_PYTHON = (
    "explain --live asks the payment's provider, and the command line has no providers to ask "
    "(it builds none from credentials): call service.explain(payment_id, live=True) on your "
    "application's PaymentService instead"
)


class _CommandError(Exception):
    """A command-line mistake or an unreachable server: a message for stderr, no traceback."""


def _hosts(uri: str) -> str:
    # Only host:port pairs: never echo the URI itself, which may hold a password.
    try:
        from pymongo.uri_parser import parse_uri  # noqa: PLC0415 - pymongo is an optional extra

        nodes = parse_uri(uri, warn=True)["nodelist"]
    except Exception:  # any URI pymongo cannot parse is reported by MongoClient itself
        return "the server in --mongo-uri"
    return ", ".join(f"{host}:{port}" for host, port in nodes) or "the server in --mongo-uri"


def _storage(
    mongo_uri: str | None, database: str, connect_timeout: float, stack: contextlib.ExitStack, *, demo: bool = False
) -> Storage:
    if mongo_uri is None:
        return MemoryStorage()
    import pymongo  # noqa: PLC0415 - pymongo is an optional extra
    from pymongo.errors import ConfigurationError as MongoConfigurationError  # noqa: PLC0415
    from pymongo.errors import ConnectionFailure, PyMongoError  # noqa: PLC0415

    from .storage.mongo import MongoStorage  # noqa: PLC0415

    timeout_ms = max(1, round(connect_timeout * 1000))
    try:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            mongo_uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
        )
        stack.callback(client.close)
        if demo:
            _empty_demo_database(client, database)
        storage = MongoStorage(client, database)
        # Now, not on first use: an unreachable server is then reported before the command starts.
        storage.ensure_indexes()
        return storage
    except (TypeError, ValueError, MongoConfigurationError) as exc:
        raise _CommandError(f"invalid MongoDB URI or options for {_hosts(mongo_uri)}: {exc}") from exc
    except (PyMongoError, StorageError) as exc:
        cause = exc if isinstance(exc, PyMongoError) else exc.__cause__
        # "host:port: [Errno 111] Connection refused (...), Timeout: 5.0s, Topology Description: <...>"
        reason = str(cause).split(", Timeout:")[0]
        if isinstance(cause, ConnectionFailure):
            raise _CommandError(
                f"cannot reach MongoDB at {_hosts(mongo_uri)} within {connect_timeout:g} s "
                f"({type(cause).__name__}: {reason}); check --mongo-uri, or raise --connect-timeout"
            ) from exc
        raise _CommandError(f"MongoDB at {_hosts(mongo_uri)} refused: {type(cause).__name__}: {reason}") from exc


def _empty_demo_database(client: Any, database: str) -> None:
    # The demo's data is throwaway and its ids repeat, so each run starts from an empty database;
    # a database the demo did not write is never emptied.
    db = client[database]
    collections = db.list_collection_names()
    if collections and _DEMO_MARKER not in collections:
        raise _CommandError(
            f"database {database!r} holds data the demo did not write, and the demo empties its database "
            f"first: choose another --database (the demo's default is {DEMO_DATABASE})"
        )
    client.drop_database(database)
    db[_DEMO_MARKER].insert_one({"note": "written by `paykit demo`, which empties this database on each run"})


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

    say("9. A monthly subscription on a saved card, renewed by the billing tick (bill_due)")
    plan = Plan(amount=Money.of("9.99", "USD"), name="Pro")
    carol = service.save_payment_method(user_id="carol", provider="fake", token="pm_card_visa")
    sub = service.create_subscription(user_id="carol", plan=plan, provider="fake", payment_method=carol.id)
    for month in range(3):
        if month == 1:
            fake.fail_next("decline")
        tick = service.bill_due()
        sub = service.get_subscription(sub.id)
        if tick.failed:
            say(f"   {clock():%Y-%m-%d}: declined; {sub.status.value}, retry on {sub.due_at:%Y-%m-%d}")
            clock.advance((sub.due_at or clock()) - clock())
            service.bill_due()
            sub = service.get_subscription(sub.id)
        say(f"   {clock():%Y-%m-%d}: charged {plan.amount}; {sub.status.value}, paid through "
            f"{sub.current_period_end:%Y-%m-%d}")  # fmt: skip
        clock.advance((sub.renews_at or clock()) - clock())
    return service


def _configure_logging() -> None:
    # The command line is an application, so it may configure logging (the library never does):
    # warnings and errors to stderr, keeping the demo's stdout readable.
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _version() -> str:
    try:
        return f"{DISTRIBUTION} {version(DISTRIBUTION)}"
    except PackageNotFoundError:  # running from a source tree that was never installed
        return f"{DISTRIBUTION} (not installed)"


def _storage_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--mongo-uri",
        default=default,
        help="the MongoDB your application's MongoStorage uses (health, metrics, audit and explain need it; "
        "the demo runs in memory without it)",
    )
    parser.add_argument(
        "--database",
        default=default,
        help=f"MongoDB database name (default: {DEMO_DATABASE} for the demo, {DEFAULT_DATABASE} otherwise)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT if default is None else default,
        metavar="SECONDS",
        help=f"give up reaching MongoDB after this long (default: {DEFAULT_CONNECT_TIMEOUT:g})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``paykit`` command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="paykit", description="paykit: payments with exact money.")
    parser.add_argument("--version", action="version", version=_version())
    _storage_options(parser, None)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("demo", "walk through the payment lifecycle (in memory by default)"),
        ("health", "check storage and recent activity"),
        ("metrics", "counts and money per currency"),
        ("audit", "print a payment's audit trail"),
        ("explain", "one timeline of a payment: audit, webhooks, refunds, notifications"),
    ):
        cmd = sub.add_parser(name, help=text)
        # The same options after the command name; SUPPRESS keeps a value given before it.
        _storage_options(cmd, argparse.SUPPRESS)
        if name in ("audit", "explain"):
            cmd.add_argument("payment_id")
        if name == "explain":
            cmd.add_argument("--json", action="store_true", help="print the explanation as JSON")
            cmd.add_argument("--live", action="store_true", help="needs the Python API: see the message")
    args = parser.parse_args(argv)
    if args.command == "explain" and args.live:
        parser.error(_LIVE_NEEDS_PYTHON)
    if args.database is None:
        args.database = DEMO_DATABASE if args.command == "demo" else DEFAULT_DATABASE
    if args.command in _NEED_STORAGE and args.mongo_uri is None:
        parser.error(
            f"{args.command} needs --mongo-uri: it reads what your application stored "
            "(a new in-memory store would always be empty)"
        )
    if args.connect_timeout <= 0:
        parser.error("--connect-timeout must be positive")
    _configure_logging()
    with contextlib.ExitStack() as stack:
        return _run(args, stack)


def _run(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    try:
        storage = _storage(args.mongo_uri, args.database, args.connect_timeout, stack, demo=args.command == "demo")
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
        if args.command == "explain":
            explanation = service.explain(args.payment_id)
            print(json.dumps(explanation.as_dict(), indent=2) if args.json else explanation.render())
            return 0
        entries = service.audit_trail(args.payment_id)
        if not entries:
            print(f"no audit entries for {args.payment_id}", file=sys.stderr)
            return 1
        for entry in entries:
            print(entry.model_dump_json())
        return 0
    except _CommandError as exc:
        print(f"paykit: {exc}", file=sys.stderr)
        return 2
    except PaykitError as exc:
        print(f"paykit: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
