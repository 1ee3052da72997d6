"""The benchmark script still runs and prints every row (speed targets live in its output, not here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EXPECTED_ROWS = [
    "Stripe parse_webhook vs HMAC-SHA256 + json.loads",
    "handle_webhook payment_intent.succeeded (memory, ",
    "handle_webhook payment_intent.succeeded (memory) vs stripe construct_event",
    "Lifecycle init+confirm+partial refund (memory, fake), 1 thread",
    "Lifecycles per second, 1 thread",
    "MongoDB round trips: webhook status change (handle_webhook)",
    "MongoDB round trips: initialize",
    "MongoDB round trips: refund (partial)",
    "MongoDB round trips: subscription period charge",
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

    def test_quick_run_prints_every_row_saves_and_compares(self, tmp_path: Path) -> None:
        """Every row appears once with a result; --save keeps each figure; --compare marks what got worse.

        One quick run does all three (the suite stays fast): the previous run it compares
        with is made up, with one figure far better than any machine reaches, one row that
        no longer exists and one that is pending.
        """
        previous = tmp_path / "previous.json"
        saved = tmp_path / "run.json"
        previous.write_text(
            json.dumps(
                {
                    "date": "2026-01-01 00:00 UTC",
                    "mode": "quick",
                    "figures": {
                        "3 Lifecycles per second, 1 thread": {"value": 1e12, "better": "higher"},
                        "4 MongoDB round trips: initialize": {"value": 2, "better": "lower"},
                        "4 MongoDB round trips: subscription period charge": {"value": None, "better": "lower"},
                        "9 a row this version no longer has": {"value": 1.0, "better": "lower"},
                    },
                }
            )
        )
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "run.py"),
                "--quick",
                "--save",
                str(saved),
                "--compare",
                str(previous),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

        assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
        results_part, _, compare_part = done.stdout.partition("compared with ")
        table = [line for line in results_part.splitlines() if line.startswith("| ") and "Benchmark" not in line]
        names = [line.split("|")[2].strip() for line in table]
        results = {line.split("|")[5].strip() for line in table}
        assert [1] * len(EXPECTED_ROWS) == [sum(n.startswith(row) for n in names) for row in EXPECTED_ROWS]
        assert len(EXPECTED_ROWS) == len(table)
        assert set() == results - {"PASS", "MISS", "info", "n/a"}
        assert "Python 3." in done.stdout
        assert "repeats 3 (medians)" in done.stdout
        assert "logging: none configured" in done.stdout

        figures = json.loads(saved.read_text())["figures"]
        assert len(EXPECTED_ROWS) == len(figures)
        charge = figures["4 MongoDB round trips: subscription period charge"]
        assert (charge["result"], type(charge["value"])) in {("PASS", int), ("MISS", int)}
        assert all(isinstance(figure["value"], int | float) for figure in figures.values())

        compared = {line.split("|")[2].strip(): line for line in compare_part.splitlines() if line.startswith("| ")}
        assert "REGRESSION" in compared["Lifecycles per second, 1 thread"]
        assert "REGRESSION" not in compared["MongoDB round trips: initialize"]
        assert "gone" in compared["a row this version no longer has"]
        assert "n/a" in compared["MongoDB round trips: subscription period charge"]
        assert "new" in compared["Async service per-call overhead (lifecycle on memory, fake) vs sync"]
        assert "1 REGRESSION" in compare_part


def test_profile_prints_the_stages_in_time_and_in_bytecodes() -> None:
    """--profile splits handle_webhook into stages twice: CPU time, and bytecodes that add up to the whole."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--no-mongo", "--profile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert 0 == done.returncode, done.stdout[-3000:] + done.stderr[-3000:]
    _, _, counted = done.stdout.partition("Python bytecodes and calls of one event")
    rows = [line.split() for line in counted.splitlines()[1:] if "bytecodes" in line]
    *stages, whole = rows
    assert "whole:" in whole
    ops = [int(row[0].replace(",", "")) for row in stages]
    assert sum(ops) == int(whole[0].replace(",", ""))
    assert all(n > 0 for n in ops)
    assert any("effects:" in row for row in stages)
    assert any("strict" in row for row in stages)
    assert "cProfile" in done.stdout
