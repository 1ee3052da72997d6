"""OpenTelemetry: the spans and metrics of a lifecycle and a webhook, through the SDK's in-memory exporters."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from paykit import Money, PaymentDeclinedError, PaymentService, PaymentStatus
from paykit.testing import FakeProvider
from paykit.webhooks import handle_webhook

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _sdk() -> None:
    """The SDK, configured once per process as an application would (the global providers are set-once)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture
def spans() -> InMemorySpanExporter:
    EXPORTER.clear()
    return EXPORTER


def named(exported: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in exported.get_finished_spans() if s.name == name]


def points(name: str) -> list[tuple[dict[str, Any], Any]]:
    data = READER.get_metrics_data()
    found: list[tuple[dict[str, Any], Any]] = []
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
    return found


class TestSpans:
    """A span per service operation and per provider call, with what an operator needs."""

    def test_lifecycle(self, service: PaymentService, spans: InMemorySpanExporter) -> None:
        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("5.000", "KWD"), provider="fake", idempotency_key="o-1"
        )
        service.initialize_payment(
            user_id="u1", amount=Money.of("5.000", "KWD"), provider="fake", idempotency_key="o-1"
        )
        service.confirm_payment(payment.id, payment_method="pm_card_visa")
        service.refund_payment(payment.id, amount=Money.of("1.000", "KWD"))

        [first, replay] = named(spans, "paykit.initialize_payment")
        [create] = named(spans, "paykit.provider.create_payment")
        [refund] = named(spans, "paykit.refund_payment")
        [provider_refund] = named(spans, "paykit.provider.refund_payment")
        assert (None, True) == (
            first.attributes.get("paykit.idempotent_replay"),
            replay.attributes.get("paykit.idempotent_replay"),
        )  # type: ignore[union-attr]
        assert {"paykit.provider": "fake", "paykit.operation": "create_payment", "paykit.attempt": 1}.items() <= dict(
            create.attributes or {}
        ).items()
        assert create.parent is not None
        assert create.parent.span_id == first.context.span_id  # type: ignore[union-attr]
        assert payment.id == refund.attributes.get("paykit.payment_id")  # type: ignore[union-attr]
        assert "ok" == provider_refund.attributes.get("paykit.outcome")  # type: ignore[union-attr]

    def test_a_decline(self, service: PaymentService, fake: FakeProvider, spans: InMemorySpanExporter) -> None:
        payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
        fake.fail_next("decline")
        with pytest.raises(PaymentDeclinedError):
            service.confirm_payment(payment.id, payment_method="pm_card_visa")

        [confirm] = named(spans, "paykit.provider.confirm_payment")
        [operation] = named(spans, "paykit.confirm_payment")
        assert ("error", "insufficient_funds") == (
            confirm.attributes.get("paykit.outcome"),  # type: ignore[union-attr]
            confirm.attributes.get("paykit.decline_code"),  # type: ignore[union-attr]
        )
        assert "PaymentDeclinedError" == operation.attributes.get("paykit.error")  # type: ignore[union-attr]

    def test_a_webhook(self, service: PaymentService, fake: FakeProvider, spans: InMemorySpanExporter) -> None:
        payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        handle_webhook(service, "fake", hook.body, hook.headers)
        handle_webhook(service, "fake", hook.body, hook.headers)
        handle_webhook(service, "fake", hook.body, {})

        outcomes = [s.attributes.get("paykit.outcome") for s in named(spans, "paykit.handle_webhook")]  # type: ignore[union-attr]
        applied = named(spans, "paykit.apply_webhook_event")
        assert ["applied", "duplicate", "rejected"] == outcomes
        assert payment.id == applied[0].attributes.get("paykit.payment_id")  # type: ignore[union-attr]


class TestMetrics:
    """Counters and histograms an operator can alert on."""

    def test_webhook_outcomes_provider_latency_and_transitions(
        self, service: PaymentService, fake: FakeProvider
    ) -> None:
        def count(name: str, **attrs: Any) -> float:
            wanted = {f"paykit.{k}": v for k, v in attrs.items()}
            return sum(p.value for a, p in points(name) if wanted.items() <= a.items())

        before_rejected = count("paykit.webhook.events", provider="fake", outcome="rejected")
        before_succeeded = count("paykit.payment.transitions", provider="fake", status="succeeded")
        payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
        handle_webhook(service, "fake", hook.body, hook.headers)
        handle_webhook(service, "fake", b"{}", {})

        latency = [p for a, p in points("paykit.provider.duration") if a.get("paykit.operation") == "create_payment"]
        assert latency
        assert latency[0].count >= 1
        assert 1 == count("paykit.webhook.events", provider="fake", outcome="rejected") - before_rejected
        assert 1 == count("paykit.payment.transitions", provider="fake", status="succeeded") - before_succeeded
