"""paykit's pytest plugin: fixtures for testing an app that takes payments through paykit.

Registered through the ``pytest11`` entry point of ``paykit-payments``, so pytest
loads it wherever paykit is installed; it defines its fixtures only when the
``testing`` extra is installed (``pip install "paykit-payments[testing]"``, which
brings stripe-python), and does nothing otherwise. ``-p no:paykit`` turns it off.
Every fixture name starts with ``paykit_``, so it never shadows an app's own
``service``, ``clock`` or ``fake`` fixtures.

Fixtures:
    paykit_clock: A :class:`~paykit.testing.ManualClock` shared by the fakes and the services.
    paykit_stripe: A :class:`~paykit.testing.StripeFake` on that clock.
    paykit_service: A :class:`~paykit.PaymentService` on ``MemoryStorage`` whose
        ``"stripe"`` provider is the real ``StripeProvider`` talking to ``paykit_stripe``.
    paykit_async_service: The same, an :class:`~paykit.AsyncPaymentService` over
        ``AsyncMemoryStorage`` and ``AsyncStripeProvider`` (for anyio/asyncio tests).
    paykit_chaos: A factory: ``paykit_chaos(sink, seed=..., rates=...)`` returns a
        :class:`~paykit.testing.Chaos` over ``paykit_stripe`` (seed ``paykit_seed``
        when the test uses it, else 0).
    paykit_seed: Parametrizes a test over chaos seeds: ``--paykit-seeds=N`` runs
        seeds ``0..N-1`` (20 by default), ``--paykit-seeds=7,42`` just those.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import Any

import pytest

__all__ = ["AVAILABLE"]


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


AVAILABLE = _installed("stripe")
"""Whether the ``testing`` extra is installed; without it the plugin defines nothing."""

_DEFAULT_SEEDS = 20


def _seeds(option: str) -> list[int]:
    option = option.strip()
    if "," in option or not option.isdigit():
        return [int(part) for part in option.split(",") if part.strip()]
    return list(range(int(option)))


if AVAILABLE:
    from ..storage._async.memory import AsyncMemoryStorage
    from ..storage._sync.memory import MemoryStorage
    from ._chaos import Chaos, ChaosRates, Sink
    from ._clock import ManualClock
    from ._stripe_fake import StripeFake

    def pytest_addoption(parser: pytest.Parser) -> None:
        """``--paykit-seeds``: the chaos seeds ``paykit_seed`` runs a test over."""
        group = parser.getgroup("paykit")
        group.addoption(
            "--paykit-seeds",
            default=str(_DEFAULT_SEEDS),
            help="chaos seeds for tests using paykit_seed: a count N (0..N-1) or a comma list (7,42)",
        )

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        """Parametrize ``paykit_seed`` over ``--paykit-seeds``."""
        if "paykit_seed" in metafunc.fixturenames:
            seeds = _seeds(str(metafunc.config.getoption("--paykit-seeds")))
            metafunc.parametrize("paykit_seed", seeds, ids=[f"seed{s}" for s in seeds])

    @pytest.fixture
    def paykit_clock() -> ManualClock:
        """A manual clock shared by the fakes and the services."""
        return ManualClock()

    @pytest.fixture
    def paykit_stripe(paykit_clock: ManualClock) -> StripeFake:
        """A stateful fake Stripe account on ``paykit_clock``."""
        return StripeFake(clock=paykit_clock)

    @pytest.fixture
    def paykit_service(paykit_stripe: StripeFake, paykit_clock: ManualClock) -> Iterator[Any]:
        """A ``PaymentService`` on memory whose ``"stripe"`` provider talks to ``paykit_stripe``."""
        from .._sync.service import PaymentService  # noqa: PLC0415

        service = PaymentService(storage=MemoryStorage(), providers=[paykit_stripe.provider()], clock=paykit_clock)
        yield service
        service.close()

    @pytest.fixture
    def paykit_async_service(paykit_stripe: StripeFake, paykit_clock: ManualClock) -> Any:
        """An ``AsyncPaymentService`` on memory whose ``"stripe"`` provider talks to ``paykit_stripe``."""
        from .._async.service import AsyncPaymentService  # noqa: PLC0415

        return AsyncPaymentService(
            storage=AsyncMemoryStorage(), providers=[paykit_stripe.async_provider()], clock=paykit_clock
        )

    @pytest.fixture
    def paykit_chaos(paykit_stripe: StripeFake, request: pytest.FixtureRequest) -> Callable[..., Chaos]:
        """``paykit_chaos(sink, seed=None, rates=None)``: a seeded :class:`Chaos` over ``paykit_stripe``."""
        callspec = getattr(request.node, "callspec", None)
        default_seed = int(callspec.params.get("paykit_seed", 0)) if callspec is not None else 0

        def make(sink: Sink, *, seed: int | None = None, rates: ChaosRates | None = None) -> Chaos:
            return Chaos(paykit_stripe, sink, seed=default_seed if seed is None else seed, rates=rates)

        return make
