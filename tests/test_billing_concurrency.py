"""bill_due from 4 threads and from 2 processes over 200 subscriptions on the MongoDB-wire server.

Every period must be charged exactly once: one succeeded payment per (subscription,
period) in storage, and one charge per payment at the provider, across every
thread and process that ticked. The round trips of one period's charge are counted
here too (a command listener, as benchmarks/_mongo.py counts them).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo import monitoring

from paykit import Money, PaymentService, PaymentStatus, Plan
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider, ManualClock

pytestmark = pytest.mark.mongo_server

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
COUNT = 200


def subscribe_all(service: PaymentService, count: int = COUNT) -> list[str]:
    plan = Plan(amount=Money.of("4.990", "KWD"))
    return [
        service.create_subscription(user_id=f"u{k}", plan=plan, provider="fake", payment_method="pm_card_visa").id
        for k in range(count)
    ]


def tick_until_done(service: PaymentService) -> int:
    """Tick until nothing due is left; return how many records this worker claimed."""
    claimed = 0
    while True:
        report = service.bill_due(limit=50)
        assert not report.errors, report.errors
        claimed += report.claimed
        if not service.storage.list_billing_due(now=service.now(), limit=1):
            return claimed


def provider_charges(fake: FakeProvider) -> Counter[str]:
    return Counter(s.payment_id for s in fake._payments.values() if s.status == PaymentStatus.SUCCEEDED)


def paid_periods(storage: MongoStorage) -> Counter[tuple[str, str]]:
    """Succeeded payments in storage per (subscription, period)."""
    found: Counter[tuple[str, str]] = Counter()
    for payment in storage.list_payments(user_id=None, status=PaymentStatus.SUCCEEDED, limit=10_000, after=None):
        found[(payment.billing_id or "", payment.metadata["billing_period"])] += 1
    return found


class TestFourThreads:
    def test_each_period_is_charged_exactly_once(self, real_mongo_storage: MongoStorage) -> None:
        clock = ManualClock(START)
        fake = FakeProvider(clock=clock.unix)
        services = [PaymentService(storage=real_mongo_storage, providers=[fake], clock=clock) for _ in range(4)]
        subs = subscribe_all(services[0])
        claimed: list[int] = []
        threads = [threading.Thread(target=lambda s=s: claimed.append(tick_until_done(s))) for s in services]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        periods = paid_periods(real_mongo_storage)
        assert (len(periods), set(periods.values())) == (COUNT, {1})
        charged = provider_charges(fake)
        assert (len(charged), set(charged.values())) == (COUNT, {1})
        assert sum(claimed) == COUNT
        assert {real_mongo_storage.get_billing(s).period for s in subs} == {1}  # type: ignore[union-attr]


CHILD = """
import json, sys
from datetime import datetime
from collections import Counter
sys.path.insert(0, {root!r})
from paykit import PaymentService, PaymentStatus
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider
from tests.test_billing_concurrency import provider_charges, tick_until_done

storage = MongoStorage.from_uri({uri!r}, {database!r})
now = datetime.fromisoformat({now!r})
fake = FakeProvider()
fake._counter = {index} * 1_000_000  # one provider: its references never repeat across clients
service = PaymentService(storage=storage, providers=[fake], clock=lambda: now)
print("ready", flush=True)
sys.stdin.readline()  # start together
claimed = tick_until_done(service)
print(json.dumps({{"claimed": claimed, "charges": provider_charges(fake)}}), flush=True)
storage.close()
"""


class TestTwoProcesses:
    def test_each_period_is_charged_exactly_once(
        self, mongo_uri: str, mongo_database: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
    ) -> None:
        """Two OS processes tick the same 200 subscriptions, each with its own provider client."""
        storage = MongoStorage(mongo_client, mongo_database)
        setup = PaymentService(storage=storage, providers=[FakeProvider()], clock=lambda: START)
        subscribe_all(setup)
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    CHILD.format(
                        root=str(ROOT), uri=mongo_uri, database=mongo_database, now=START.isoformat(), index=index
                    ),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for index in range(2)
        ]
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, _ = child.communicate(timeout=300)
            assert child.returncode == 0
            results.append(json.loads(out.strip().splitlines()[-1]))

        charged: Counter[str] = Counter()
        for result in results:
            charged.update(result["charges"])
        assert (len(charged), set(charged.values())) == (COUNT, {1})  # no payment charged by both processes
        periods = paid_periods(storage)
        assert (len(periods), set(periods.values())) == (COUNT, {1})
        assert sum(r["claimed"] for r in results) == COUNT


_NOT_ROUND_TRIPS = frozenset({"hello", "ismaster", "isMaster", "endSessions"})


class _Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.active = False
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.active and event.command_name not in _NOT_ROUND_TRIPS:
            target = event.command.get(event.command_name)
            self.names.append(f"{event.command_name} {target if isinstance(target, str) else ''}".strip())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Only starts count."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Only starts count."""


def test_round_trips_of_one_period_charge(mongo_uri: str, mongo_database: str) -> None:
    """Counts (and pins) the MongoDB round trips of one off-session period charge, reported in docs/billing.md."""
    listener = _Commands()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        storage = MongoStorage(client, mongo_database)
        storage.ensure_indexes()
        clock = ManualClock(START)
        service = PaymentService(storage=storage, providers=[FakeProvider()], clock=clock)
        subscribe_all(service, 3)
        service.bill_due(limit=1)  # warm up: the invoice counter exists from here on
        clock.advance(timedelta(days=28))
        service.bill_due(limit=5)  # the renewal reminders
        listener.active = True
        report = service.bill_due(limit=1)
        listener.active = False
        assert report.paid == 1
        print("round trips of one period charge:", len(listener.names), listener.names)
        assert len(listener.names) <= 10, "\n".join(listener.names)
    finally:
        client.close()


def test_round_trips_of_one_period_charge_on_a_saved_method(mongo_uri: str, mongo_database: str) -> None:
    """With a saved method the subscription knows the provider customer: no customer lookup per charge."""
    listener = _Commands()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_uri, tz_aware=True, event_listeners=[listener]
    )
    try:
        storage = MongoStorage(client, mongo_database)
        storage.ensure_indexes()
        service = PaymentService(storage=storage, providers=[FakeProvider()], clock=ManualClock(START))
        subscribe_all(service, 1)
        service.bill_due(limit=1)  # warm up: the invoice counter exists from here on
        card = service.save_payment_method(user_id="saver", provider="fake", token="pm_card_visa")
        plan = Plan(amount=Money.of("4.990", "KWD"))
        sub = service.create_subscription(user_id="saver", plan=plan, provider="fake", payment_method=card.id)
        assert sub.customer_ref is not None
        listener.active = True
        report = service.bill_due(limit=1)
        listener.active = False
        assert report.paid == 1
        print("round trips of one period charge on a saved method:", len(listener.names), listener.names)
        assert "find customers" not in listener.names
        assert len(listener.names) <= 9, "\n".join(listener.names)
    finally:
        client.close()
