"""The paykit command against a real MongoDB-wire server: demo, health, metrics, audit."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pymongo
import pytest

from paykit import AuditAction, PaymentStatus
from paykit.cli import DEFAULT_DATABASE, DEMO_DATABASE
from paykit.storage import MongoStorage


def _paykit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paykit", *args], capture_output=True, text=True, check=False, timeout=120
    )


@pytest.mark.mongo_server
class TestCommandsOnMongo:
    """Every command takes --mongo-uri and works on what another process wrote."""

    def test_demo_then_health_metrics_and_audit(
        self, mongo_uri: str, mongo_database: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
    ) -> None:
        """The demo's payments persist; the other commands read them back."""
        where = ["--mongo-uri", mongo_uri, "--database", mongo_database]

        demo = _paykit("demo", *where)
        assert 0 == demo.returncode, demo.stderr
        assert "storage MongoStorage" in demo.stdout

        storage = MongoStorage(mongo_client, mongo_database)
        refunded = storage.list_payments(user_id="alice", status=PaymentStatus.PARTIALLY_REFUNDED, limit=5, after=None)
        assert 1 == len(refunded)

        health = _paykit("health", *where)
        metrics = _paykit("metrics", *where)
        audit = _paykit("audit", refunded[0].id, *where)

        assert (0, "ok") == (health.returncode, json.loads(health.stdout)["status"])
        # USD: 49.99 - 10.00 refunded, plus the demo subscription's three periods of 9.99.
        assert {"USD": "69.96", "KWD": "44.981"} == json.loads(metrics.stdout)["net_by_currency"]
        actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
        assert AuditAction.PAYMENT_REFUND.value == actions[-1]
        assert AuditAction.PAYMENT_INIT.value == actions[0]

    def test_demo_runs_again_and_again_in_its_own_database(
        self, mongo_uri: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
    ) -> None:
        """Without --database the demo writes to paykit_demo, never to MongoStorage's default, and reruns cleanly."""
        mongo_client.drop_database(DEMO_DATABASE)
        try:
            runs = [_paykit("--mongo-uri", mongo_uri, "demo") for _ in range(2)]

            for run in runs:
                assert 0 == run.returncode, run.stderr
                assert "HTTP 200, applied" in run.stdout
                assert "HTTP 200, duplicate" in run.stdout
            assert DEMO_DATABASE in mongo_client.list_database_names()
            assert DEFAULT_DATABASE not in mongo_client.list_database_names()
            storage = MongoStorage(mongo_client, DEMO_DATABASE)
            refunded = storage.list_payments(
                user_id="alice", status=PaymentStatus.PARTIALLY_REFUNDED, limit=5, after=None
            )
            assert 1 == len(refunded)  # each run starts from an empty database
        finally:
            mongo_client.drop_database(DEMO_DATABASE)

    def test_demo_never_empties_a_database_it_did_not_write(
        self, mongo_uri: str, mongo_database: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
    ) -> None:
        mongo_client[mongo_database]["payments"].insert_one({"_id": "pay_app"})

        result = _paykit("demo", "--mongo-uri", mongo_uri, "--database", mongo_database)

        assert 2 == result.returncode
        assert "holds data the demo did not write" in result.stderr
        assert 1 == mongo_client[mongo_database]["payments"].count_documents({})


@pytest.mark.mongo_server
class TestExplainOnMongo:
    """`paykit explain` reads one payment's whole story from the database another process wrote."""

    @staticmethod
    def _demo_payment(mongo_uri: str, database: str, client: pymongo.MongoClient[dict[str, Any]]) -> str:
        demo = _paykit("demo", "--mongo-uri", mongo_uri, "--database", database)
        assert 0 == demo.returncode, demo.stderr
        storage = MongoStorage(client, database)
        (refunded,) = storage.list_payments(
            user_id="alice", status=PaymentStatus.PARTIALLY_REFUNDED, limit=5, after=None
        )
        return refunded.id

    def test_the_demo_payment_as_text_and_json(
        self, mongo_uri: str, mongo_database: str, mongo_client: pymongo.MongoClient[dict[str, Any]]
    ) -> None:
        """Webhook outcomes, the refund, delivered notifications and provider ids; no client secret."""
        payment_id = self._demo_payment(mongo_uri, mongo_database, mongo_client)
        where = ["--mongo-uri", mongo_uri, "--database", mongo_database]

        text = _paykit("explain", payment_id, *where)
        as_json = _paykit("explain", payment_id, "--json", *where)

        assert (0, 0) == (text.returncode, as_json.returncode), text.stderr + as_json.stderr
        assert text.stdout.startswith(f"payment {payment_id}: 49.99 USD via fake, partially_refunded (user alice)")
        for line in (
            "payment.succeeded evt_demo_1 from fake: applied",
            "payment.processing evt_demo_0 from fake: stale",
            "PAYMENT_REFUND succeeded -> partially_refunded by demo",
            "10.00 USD: succeeded, provider ref re_fake_",
            "payment_succeeded for alice: delivered to app, 1 attempt",
            "  payment: pi_fake_",
        ):
            assert line in text.stdout
        data = json.loads(as_json.stdout)
        assert ("partially_refunded", "49.99", "10.00") == (
            data["payment"]["status"],
            data["payment"]["captured"],
            data["payment"]["refunded"],
        )
        kinds = [entry["kind"] for entry in data["timeline"]]
        assert {"audit", "webhook", "refund", "notification"} == set(kinds)
        assert "_secret_" not in text.stdout + as_json.stdout

    def test_an_unknown_payment(self, mongo_uri: str, mongo_database: str) -> None:
        result = _paykit("explain", "pay_missing", "--mongo-uri", mongo_uri, "--database", mongo_database)

        assert 2 == result.returncode
        assert "NotFoundError" in result.stderr
