"""Shared pieces of the benchmarks: timing, the result table, payloads and fixtures."""

from __future__ import annotations

import copy
import gc
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

from paykit import AuditAction, AuditEntry, Money, Payment, PaymentStatus
from paykit.testing import sign_stripe_webhook, stripe_event

WEBHOOK_SECRET = "whsec_benchmark_secret"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "specs" / "stripe" / "fixtures3.json"
"""Stripe's own example objects, beside the repository (``../shared``); never copied into it."""


def logging_unconfigured() -> bool:
    """Whether the process has no logging configuration: no root handler, paykit's loggers at their defaults."""
    paykit = logging.getLogger("paykit")
    return not logging.getLogger().handlers and paykit.level == logging.NOTSET and paykit.propagate


def quiet_logging() -> None:
    """Drop paykit's info logs, as a production app logging at WARNING would.

    paykit logs through the standard library and is silent unless configured;
    this only makes the level explicit, whatever configured the root logger.
    """
    logging.getLogger("paykit").setLevel(logging.WARNING)


# -- timing ---------------------------------------------------------------------
def time_batch(run: Callable[[int], object], n: int) -> float:
    """Seconds per call of ``run(i)`` for ``i`` in ``range(n)``, one timed loop."""
    gc.collect()
    start = time.perf_counter()
    for i in range(n):
        run(i)
    return (time.perf_counter() - start) / n


def _shifted(run: Callable[[int], object], base: int) -> Callable[[int], object]:
    return lambda i: run(base + i)


def median_per_call(run: Callable[[int], object], *, n: int, repeats: int, offset_by: int = 0) -> float:
    """Median over ``repeats`` loops of ``n`` calls; repeat ``r`` calls ``run(offset_by * r + i)``."""
    samples = [time_batch(_shifted(run, offset_by * r), n) for r in range(repeats)]
    return statistics.median(samples)


def compare(
    subject: Callable[[int], object],
    reference: Callable[[int], object],
    *,
    n: int,
    repeats: int,
) -> tuple[float, float]:
    """Median seconds per call of ``subject`` and ``reference``, their repeats interleaved.

    Interleaving keeps slow drifts of the machine (frequency, other load) out
    of the ratio. ``subject`` gets fresh indexes every repeat (``r * n + i``),
    so callers can hand each call unused input.
    """
    ours: list[float] = []
    theirs: list[float] = []
    for r in range(repeats):
        ours.append(time_batch(_shifted(subject, r * n), n))
        theirs.append(time_batch(_shifted(reference, r * n), n))
    return statistics.median(ours), statistics.median(theirs)


def compare_many(
    runs: Sequence[Callable[[int], object]],
    *,
    n: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
) -> list[float]:
    """Median seconds per call of each of ``runs``, their repeats interleaved (see :func:`compare`).

    ``clock=time.thread_time`` counts this thread's CPU time only: for CPU-bound work on a
    shared machine, other processes then do not count.
    """
    samples: list[list[float]] = [[] for _ in runs]
    for r in range(repeats):
        for run, into in zip(runs, samples, strict=True):
            gc.collect()
            shifted = _shifted(run, r * n)
            start = clock()
            for i in range(n):
                shifted(i)
            into.append((clock() - start) / n)
    return [statistics.median(into) for into in samples]


# -- the table --------------------------------------------------------------------
Better = Literal["lower", "higher"]


@dataclass
class Row:
    """One line of the result table; ``passed`` is ``None`` for figures without a target.

    ``value`` is the figure ``--save`` keeps and ``--compare`` compares (a ratio, µs, a count,
    bytes, per second); ``better`` says which way is an improvement. ``pending`` marks a row
    whose subject is not built yet: it is printed as ``n/a``.
    """

    section: str
    name: str
    measured: str
    target: str = ""
    passed: bool | None = None
    value: float | None = None
    better: Better = "lower"
    pending: bool = False

    @property
    def result(self) -> str:
        if self.pending:
            return "n/a"
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


@dataclass
class Report:
    """Rows and free-form details collected by the benchmarks."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(
        self,
        section: str,
        name: str,
        measured: str,
        target: str = "",
        passed: bool | None = None,
        *,
        value: float | None = None,
        better: Better | None = None,
        pending: bool = False,
    ) -> None:
        if better is None:
            better = "higher" if target.startswith(">=") or measured.endswith("/s") else "lower"
        self.rows.append(Row(section, name, measured, target, passed, value, better, pending))
        mark = " n/a" if pending else "" if passed is None else (" PASS" if passed else " MISS")
        print(f"  {name}: {measured}{'  (target ' + target + ')' if target else ''}{mark}", flush=True)

    def note(self, text: str) -> None:
        self.details.append(text)

    def table(self) -> str:
        header = ("#", "Benchmark", "Measured", "Target", "Result")
        lines = [(r.section, r.name, r.measured, r.target or "-", r.result) for r in self.rows]
        return _format_table(header, lines)

    # -- saved figures and the comparison with a previous run ------------------------------
    def figures(self, header: dict[str, Any]) -> dict[str, Any]:
        """What ``--save`` writes: the run's header and every row with its figure."""
        return {
            **header,
            "figures": {
                f"{row.section} {row.name}": {
                    "value": row.value,
                    "better": row.better,
                    "measured": row.measured,
                    "target": row.target,
                    "result": row.result,
                }
                for row in self.rows
            },
        }

    def compare(self, previous: dict[str, Any], tolerance: float) -> tuple[str, int]:
        """Each figure against ``previous`` (a saved run): the table and how many regressed.

        A figure regressed when it moved the wrong way by more than ``tolerance`` (a fraction);
        rows without a figure on either side are listed as new, gone or n/a.
        """
        before: dict[str, Any] = previous.get("figures", {})
        header = ("#", "Benchmark", "Previous", "Now", "Delta", "")
        lines: list[tuple[str, ...]] = []
        regressions = 0
        for row in self.rows:
            key = f"{row.section} {row.name}"
            old = before.get(key)
            old_value = old.get("value") if isinstance(old, dict) else None
            if old is None:
                lines.append((row.section, row.name, "-", _figure(row.value), "new", ""))
                continue
            if row.value is None or old_value is None:
                lines.append((row.section, row.name, _figure(old_value), _figure(row.value), "n/a", ""))
                continue
            delta = _relative(row.value, old_value)
            worse = delta > tolerance if row.better == "lower" else delta < -tolerance
            better = delta < -tolerance if row.better == "lower" else delta > tolerance
            mark = "REGRESSION" if worse else ("improved" if better else "")
            regressions += worse
            lines.append((row.section, row.name, _figure(old_value), _figure(row.value), f"{delta:+.1%}", mark))
        names = {f"{row.section} {row.name}" for row in self.rows}
        for key in sorted(set(before) - names):
            section, _, name = key.partition(" ")
            lines.append((section, name, _figure(before[key].get("value")), "-", "gone", ""))
        return _format_table(header, lines), regressions


def _relative(now: float, old: float) -> float:
    if old == 0:
        return 0.0 if now == 0 else float("inf") if now > 0 else float("-inf")
    return (now - old) / abs(old)


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 or float(value).is_integer() else f"{value:,.3g}"


def _format_table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)]

    def fmt(cells: Iterable[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(fmt(line) for line in lines)
    return "\n".join(out)


def load_figures(path: Path) -> dict[str, Any]:
    """A run saved with ``--save``."""
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict) or not isinstance(loaded.get("figures"), dict):
        raise SystemExit(f"{path} is not a benchmarks/run.py --save file")
    return loaded


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def ratio(value: float) -> str:
    return f"{value:.2f}x"


# -- payloads -----------------------------------------------------------------------
def payment_intent(pi_id: str, payment_id: str, *, amount: int = 1250, currency: str = "usd") -> dict[str, Any]:
    """A succeeded PaymentIntent with the fields Stripe sends (API 2024+), about 1.4 KB of JSON."""
    return {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": amount,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{pi_id}_secret_Zq1x9uE0bFpVvYH2dqKcW1w7n",
        "confirmation_method": "automatic",
        "created": 1767225600,
        "currency": currency,
        "customer": "cus_RkT4m0WQz1nH8a",
        "description": "Order #100231",
        "invoice": None,
        "last_payment_error": None,
        "latest_charge": "ch_3QkT4mL2eZvKYlo20x7yA1bC",
        "livemode": False,
        "metadata": {"paykit_payment_id": payment_id, "order_id": "100231"},
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": "pm_1QkT4mL2eZvKYlo2x9Qe7TgH",
        "payment_method_configuration_details": None,
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        "payment_method_types": ["card"],
        "processing": None,
        "receipt_email": "buyer@example.com",
        "review": None,
        "setup_future_usage": None,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "succeeded",
        "transfer_data": None,
        "transfer_group": None,
    }


@cache
def fixture_payment_intent() -> dict[str, Any] | None:
    """The full PaymentIntent of Stripe's fixtures3.json, or ``None`` when ../shared is absent."""
    if not FIXTURES.exists():
        return None
    pi = json.loads(FIXTURES.read_text())["resources"]["payment_intent"]
    return pi if isinstance(pi, dict) else None


def realistic_intent(pi_id: str, payment_id: str, *, amount: int = 1250, currency: str = "usd") -> dict[str, Any]:
    """Stripe's full example PaymentIntent (fixtures3.json) as a succeeded intent of this payment.

    Every field Stripe's fixture has is kept; only what ties it to the payment and says it
    succeeded is set. Falls back to :func:`payment_intent` when the fixtures are absent.
    """
    base = fixture_payment_intent()
    if base is None:
        return payment_intent(pi_id, payment_id, amount=amount, currency=currency)
    pi = copy.deepcopy(base)
    pi.update(
        id=pi_id,
        status="succeeded",
        amount=amount,
        amount_capturable=0,
        amount_received=amount,
        currency=currency,
        last_payment_error=None,
        next_action=None,
        canceled_at=None,
        metadata={**pi.get("metadata", {}), "paykit_payment_id": payment_id},
    )
    return pi


def succeeded_delivery(
    event_id: str, pi_id: str, payment_id: str, *, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed ``payment_intent.succeeded`` delivery of Stripe's full example intent: body and headers."""
    body = stripe_event(
        "payment_intent.succeeded",
        realistic_intent(pi_id, payment_id),
        event_id=event_id,
        created=at if at is not None else int(time.time()),
    )
    headers = sign_stripe_webhook(body, WEBHOOK_SECRET, timestamp=at)
    return body, {"Stripe-Signature": headers["stripe-signature"], "Content-Type": headers["content-type"]}


def pending_stripe_payment(payment_id: str, pi_id: str, *, user_id: str = "u_bench") -> Payment:
    """A Stripe payment as paykit stores it after ``initialize_payment``: PENDING, with its PaymentIntent."""
    return Payment(
        id=payment_id,
        user_id=user_id,
        provider="stripe",
        amount=Money.of("12.50", "USD"),
        provider_ref=pi_id,
        provider_data={"stripe_customer_id": "cus_RkT4m0WQz1nH8a"},
        metadata={"order_id": "100231"},
        description="Order #100231",
        version=1,
        created_at=EPOCH,
        updated_at=EPOCH,
    )


def growth_payment(index: int, users: int) -> Payment:
    """The ``index``-th payment of a growth data set: ``users`` users, one second apart."""
    at = EPOCH + timedelta(seconds=index)
    return Payment(
        id=f"pay_g{index:07d}",
        user_id=f"user{index % users:04d}",
        provider="fake",
        amount=Money(1000 + index % 5000, "KWD"),
        status=PaymentStatus.SUCCEEDED,
        provider_ref=f"fake_pi_g{index:07d}",
        captured_minor=1000 + index % 5000,
        version=2,
        created_at=at,
        updated_at=at,
    )


def growth_audit(payment: Payment) -> list[AuditEntry]:
    """The audit entries a payment's initialize and confirm leave."""
    entries = []
    for step, (action, before, after) in enumerate(
        (
            (AuditAction.PAYMENT_INIT, None, "pending"),
            (AuditAction.PAYMENT_INIT, "pending", "pending"),
            (AuditAction.PAYMENT_CONFIRM, "pending", "succeeded"),
        )
    ):
        entries.append(
            AuditEntry(
                id=f"{payment.id}:v{step}:{action.value}",
                action=action,
                subject_type="payment",
                subject_id=payment.id,
                payment_id=payment.id,
                user_id=payment.user_id,
                actor="system",
                at=payment.created_at + timedelta(milliseconds=step),
                status_before=before,
                status_after=after,
                payload={"amount": str(payment.amount)},
            )
        )
    return entries


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
