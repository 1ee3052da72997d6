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

import contextlib
import functools
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final, ParamSpec, TypeVar, cast

__all__ = ["ENABLED", "mark", "metering", "operation", "provider_span", "record", "span"]

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

_NO_SPAN: Final[AbstractContextManager[None]] = nullcontext()
"""What a span is when nothing records it; ``nullcontext`` holds no state, so one serves every block."""

if _otel_trace is not None:
    # The global providers until an application sets its own: every span and instrument they give is a no-op.
    _NOOP_TRACER_PROVIDERS: tuple[type, ...] = (_otel_trace.ProxyTracerProvider, _otel_trace.NoOpTracerProvider)
    _NOOP_METER_PROVIDERS: tuple[type, ...] = (_otel_metrics.NoOpMeterProvider,)
    try:  # the API's default meter provider is not public; without it, measurements are always made
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - depends on the installed API
        pass
    else:
        _NOOP_METER_PROVIDERS += (_ProxyMeterProvider,)


# The API's getters look the provider up in os.environ (a failed lookup costs ~0.7 µs) for as long as
# no provider is set, which is every call of an application without an SDK. The API keeps the provider
# it was given in a module global, set once: while that is None and the environment named no provider
# when paykit was imported, the getter can only answer its no-op proxy. Falls back to the getter
# whenever the global is not where this API version keeps it.
_ENV_TRACER_PROVIDER: Final = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
_ENV_METER_PROVIDER: Final = "OTEL_PYTHON_METER_PROVIDER" in os.environ
_UNKNOWN: Final = object()
_otel_metrics_state: Any = None
if _otel_metrics is not None:
    with contextlib.suppress(ImportError):  # the API's internal module; the getter is the fallback
        from opentelemetry.metrics import _internal as _otel_metrics_state


def _tracing() -> bool:
    """Whether a span would be recorded: the API is installed and an SDK's tracer provider is set.

    Asked on every call, so an SDK configured after paykit is imported is followed at once.
    """
    if _otel_trace is None:
        return False
    if not _ENV_TRACER_PROVIDER and getattr(_otel_trace, "_TRACER_PROVIDER", _UNKNOWN) is None:
        return False
    return not isinstance(_otel_trace.get_tracer_provider(), _NOOP_TRACER_PROVIDERS)


def _metering() -> bool:
    """Whether a measurement would be recorded: the API is installed and an SDK's meter provider is set."""
    if _otel_metrics is None:
        return False
    if not _ENV_METER_PROVIDER and getattr(_otel_metrics_state, "_METER_PROVIDER", _UNKNOWN) is None:
        return False
    return not isinstance(_otel_metrics.get_meter_provider(), _NOOP_METER_PROVIDERS)


def metering() -> bool:
    """Whether :func:`record` would record anything: skip computing a measurement when it would not."""
    return _metering()


def span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[None]:
    """A span around a block; an exception leaving it is recorded and re-raised.

    Without a configured SDK the span would be a no-op: neither it nor its attributes are built.
    """
    if not _tracing():
        return _NO_SPAN
    return _recorded_span(name, attributes)


@contextmanager
def _recorded_span(name: str, attributes: Mapping[str, Any] | None) -> Iterator[None]:
    assert _otel_trace is not None  # noqa: S101 - only called when tracing
    with _tracer().start_as_current_span(name, attributes=_clean(attributes)) as current:
        try:
            yield
        except BaseException as exc:
            current.set_attribute("paykit.outcome", "error")
            current.set_attribute("paykit.error", type(exc).__name__)
            raise


def mark(**attributes: Any) -> None:
    """Set attributes on the current span (``idempotent_replay=True``, ``outcome="stale"``...)."""
    if not _tracing():
        return
    assert _otel_trace is not None  # noqa: S101 - _tracing() says it is installed
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
                if not _tracing():
                    return await method(*args, **kwargs)
                with _recorded_span(f"paykit.{name}", {"paykit.payment_id": _payment_id(args, kwargs)}):
                    return await method(*args, **kwargs)

            return cast(Callable[_P, _R], traced_async)

        @functools.wraps(method)
        def traced(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            if not _tracing():
                return method(*args, **kwargs)
            with _recorded_span(f"paykit.{name}", {"paykit.payment_id": _payment_id(args, kwargs)}):
                return method(*args, **kwargs)

        return traced

    return decorate


def _payment_id(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    return kwargs.get("payment_id", args[1] if len(args) > 1 and isinstance(args[1], str) else None)


def provider_span(provider: str, operation: str, attempt: int) -> AbstractContextManager[None]:
    """A span around one provider call."""
    if not _tracing():
        return _NO_SPAN
    return _recorded_span(
        f"paykit.provider.{operation}",
        {"paykit.provider": provider, "paykit.operation": operation, "paykit.attempt": attempt},
    )


def record(instrument: str, value: float = 1, **attributes: Any) -> None:
    """Add to a counter or record into a histogram, by its name (see the module docstring)."""
    if not _metering():
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
