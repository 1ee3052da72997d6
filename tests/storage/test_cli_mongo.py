"""The paykit command against a real MongoDB-wire server: demo, health, metrics, audit."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pymongo
import pytest

from paykit import AuditAction, PaymentStatus
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
        assert {"USD": "39.99", "KWD": "44.981"} == json.loads(metrics.stdout)["net_by_currency"]
        actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
        assert AuditAction.PAYMENT_REFUND.value == actions[-1]
        assert AuditAction.PAYMENT_INIT.value == actions[0]

    def test_unreachable_server_is_a_clear_error(self) -> None:
        """A server that is not there exits 2 with a StorageError, not a traceback."""
        result = _paykit("health", "--mongo-uri", "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300")

        assert 2 == result.returncode
        assert "StorageError" in result.stderr
        assert "Traceback" not in result.stderr
