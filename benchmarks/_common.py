"""Shared pieces of the benchmarks: timing, the result table, payloads and fixtures."""

from __future__ import annotations

import gc
import logging
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from paykit import AuditAction, AuditEntry, Money, Payment, PaymentStatus
from paykit.testing import sign_stripe_webhook, stripe_event

WEBHOOK_SECRET = "whsec_benchmark_secret"
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


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


# -- the table --------------------------------------------------------------------
@dataclass
class Row:
    """One line of the result table; ``passed`` is ``None`` for figures without a target."""

    section: str
    name: str
    measured: str
    target: str = ""
    passed: bool | None = None

    @property
    def result(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"


@dataclass
class Report:
    """Rows and free-form details collected by the benchmarks."""

    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def add(self, section: str, name: str, measured: str, target: str = "", passed: bool | None = None) -> None:
        self.rows.append(Row(section, name, measured, target, passed))
        mark = "" if passed is None else (" PASS" if passed else " MISS")
        print(f"  {name}: {measured}{'  (target ' + target + ')' if target else ''}{mark}", flush=True)

    def note(self, text: str) -> None:
        self.details.append(text)

    def table(self) -> str:
        header = ("#", "Benchmark", "Measured", "Target", "Result")
        lines = [(r.section, r.name, r.measured, r.target or "-", r.result) for r in self.rows]
        widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=False)]

        def fmt(cells: Iterable[str]) -> str:
            return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

        out = [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out.extend(fmt(line) for line in lines)
        return "\n".join(out)


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


def succeeded_delivery(
    event_id: str, pi_id: str, payment_id: str, *, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed ``payment_intent.succeeded`` delivery: body and request headers."""
    body = stripe_event(
        "payment_intent.succeeded",
        payment_intent(pi_id, payment_id),
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
