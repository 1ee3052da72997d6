"""OpenTelemetry spans and metrics, off and free unless ``opentelemetry-api`` is installed.

With the ``otel`` extra, paykit traces each service operation and each
provider call, and records metrics. It only uses the API: what is exported,
and where, is the application's SDK configuration (no SDK configured: the API's
own no-op objects). Without the extra every function here is a no-op.

Spans:
    ``paykit.<operation>`` (``paykit.refund_payment``...) with ``paykit.payment_id``,
    ``paykit.outcome`` and ``paykit.idempotent_replay``; ``paykit.provider.<operation>``
    with ``paykit.provider``, ``paykit.operation``, ``paykit.outcome``,
    ``paykit.decline_code`` and ``paykit.attempt``.
Metrics:
    ``paykit.webhook.events`` (counter; provider, outcome), ``paykit.webhook.lag``
    (histogram, s; provider), ``paykit.provider.duration`` (histogram, s; provider,
    operation, outcome), ``paykit.provider.errors`` (counter; provider, operation,
    error), ``paykit.payment.transitions`` (counter; provider, status). Attribute
    names are prefixed ``paykit.`` (``paykit.provider``...), as on spans.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final, ParamSpec, TypeVar, cast

__all__ = ["ENABLED", "mark", "operation", "provider_span", "record", "span"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

try:
    from opentelemetry import metrics as _otel_metrics
    from opentelemetry import trace as _otel_trace
except ImportError:  # the extra is not installed: every call below is a no-op
    _otel_trace = None  # type: ignore[assignment]
    _otel_metrics = None  # type: ignore[assignment]

ENABLED: Final = _otel_trace is not None
"""Whether ``opentelemetry-api`` is installed."""

_SCOPE: Final = "paykit"


@contextmanager
def span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A span around a block; an exception leaving it is recorded and re-raised."""
    if _otel_trace is None:
        yield
        return
    with _tracer().start_as_current_span(name, attributes=_clean(attributes)) as current:
        try:
            yield
        except BaseException as exc:
            current.set_attribute("paykit.outcome", "error")
            current.set_attribute("paykit.error", type(exc).__name__)
            raise


def mark(**attributes: Any) -> None:
    """Set attributes on the current span (``idempotent_replay=True``, ``outcome="stale"``...)."""
    if _otel_trace is None:
        return
    current = _otel_trace.get_current_span()
    for key, value in _clean({f"paykit.{k}": v for k, v in attributes.items()}).items():
        current.set_attribute(key, value)


def operation(name: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Trace a public service method as ``paykit.<name>``."""

    def decorate(method: Callable[_P, _R]) -> Callable[_P, _R]:
        if _otel_trace is None:
            return method

        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def traced_async(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with span(f"paykit.{name}", {"paykit.payment_id": _payment_id(args, kwargs)}):
                    return await method(*args, **kwargs)

            return cast(Callable[_P, _R], traced_async)

        @functools.wraps(method)
        def traced(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with span(f"paykit.{name}", {"paykit.payment_id": _payment_id(args, kwargs)}):
                return method(*args, **kwargs)

        return traced

    return decorate


def _payment_id(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    return kwargs.get("payment_id", args[1] if len(args) > 1 and isinstance(args[1], str) else None)


@contextmanager
def provider_span(provider: str, operation: str, attempt: int) -> Iterator[None]:
    """A span around one provider call."""
    with span(
        f"paykit.provider.{operation}",
        {"paykit.provider": provider, "paykit.operation": operation, "paykit.attempt": attempt},
    ):
        yield


def record(instrument: str, value: float = 1, **attributes: Any) -> None:
    """Add to a counter or record into a histogram, by its name (see the module docstring)."""
    if _otel_metrics is None:
        return
    _instruments()[instrument](value, _clean({f"paykit.{k}": v for k, v in attributes.items()}))


@functools.cache
def _tracer() -> Any:
    # A tracer taken before the application sets its provider is a proxy that follows it when it does.
    assert _otel_trace is not None  # noqa: S101 - only called when the API is installed
    return _otel_trace.get_tracer(_SCOPE)


@functools.cache
def _instruments() -> dict[str, Callable[[float, Mapping[str, Any]], None]]:
    assert _otel_metrics is not None  # noqa: S101 - only called when the API is installed
    meter = _otel_metrics.get_meter(_SCOPE)

    def counter(name: str, unit: str, description: str) -> Callable[[float, Mapping[str, Any]], None]:
        made = meter.create_counter(name, unit=unit, description=description)
        return lambda value, attrs: made.add(int(value), attrs)

    def histogram(name: str, unit: str, description: str) -> Callable[[float, Mapping[str, Any]], None]:
        made = meter.create_histogram(name, unit=unit, description=description)
        return made.record

    return {
        "paykit.webhook.events": counter("paykit.webhook.events", "{event}", "Webhook deliveries by outcome"),
        "paykit.webhook.lag": histogram("paykit.webhook.lag", "s", "From the provider's event time to handling"),
        "paykit.provider.duration": histogram("paykit.provider.duration", "s", "Provider call latency"),
        "paykit.provider.errors": counter("paykit.provider.errors", "{error}", "Provider calls that failed"),
        "paykit.payment.transitions": counter("paykit.payment.transitions", "{payment}", "Payments entering a status"),
    }


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """OpenTelemetry takes str, bool, int and float attribute values; ``None`` is left out."""
    if not attributes:
        return {}
    return {k: v if isinstance(v, str | bool | int | float) else str(v) for k, v in attributes.items() if v is not None}
