"""The benchmark script still runs and prints every row (speed targets live in its output, not here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_ROWS = [
    "Stripe parse_webhook vs HMAC-SHA256 + json.loads",
    "handle_webhook payment_intent.succeeded (memory) vs stripe construct_event",
    "Lifecycle init+confirm+partial refund (memory, fake), 1 thread",
    "Lifecycles per second, 1 thread",
    "MongoDB round trips: webhook status change (handle_webhook)",
    "MongoDB round trips: initialize",
    "MongoDB round trips: refund (partial)",
    "MongoDB round trips: refund (partial, with an idempotency key)",
    "MongoDB round trips: confirm",
    "MongoDB round trips: get_payment",
    "MongoDB round trips: list_payments(user_id, limit=50)",
    "MongoDB round trips: audit_trail",
    "MongoDB round trips: metrics",
    "MongoDB round trips: webhook redelivery (duplicate)",
    "MongoDB: list_payments(user_id, limit=50)",
    "MongoDB: audit_trail(payment_id)",
    "MongoDB: metrics(), ",
    "MongoDB: metrics() aggregations index-backed (explain)",
    "memory: list_payments(user_id, limit=50)",
    "memory: audit_trail(payment_id)",
    "MemoryStorage bytes per stored payment (payment only",
    "MemoryStorage bytes per stored payment (payment + its 3 audit entries",
    "Async service per-call overhead",
    "Sync service, provider 5 ms per call: 8 threads vs 1 thread",
    "Async service, provider 5 ms per call: ",
]


@pytest.mark.mongo_server
class TestBenchmarkScript:
    """benchmarks/run.py --quick runs to the end and prints the whole table."""

    def test_quick_run_prints_every_row(self) -> None:
        """Every benchmark row appears once in the table, with a result column."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

        assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
        table = [line for line in done.stdout.splitlines() if line.startswith("| ") and "Benchmark" not in line]
        names = [line.split("|")[2].strip() for line in table]
        results = {line.split("|")[5].strip() for line in table}
        assert [1] * len(EXPECTED_ROWS) == [sum(n.startswith(row) for n in names) for row in EXPECTED_ROWS]
        assert len(EXPECTED_ROWS) == len(table)
        assert set() == results - {"PASS", "MISS", "info"}
        assert "Python 3." in done.stdout
        assert "repeats 3 (medians)" in done.stdout
