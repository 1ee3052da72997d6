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
    paykit_paypal: A :class:`~paykit.testing.PayPalFake` on that clock (needs the
        ``paypal`` extra; the test is skipped without it).
    paykit_knet: A :class:`~paykit.testing.KnetFake` on that clock (needs the ``knet`` extra).
    paykit_service: A :class:`~paykit.PaymentService` on ``MemoryStorage`` whose
        ``"stripe"`` provider is the real ``StripeProvider`` talking to ``paykit_stripe``,
        and, when their extras are installed, whose ``"paypal"`` and ``"knet"``
        providers are the real adapters talking to ``paykit_paypal`` and ``paykit_knet``.
    paykit_async_service: The same, an :class:`~paykit.AsyncPaymentService` over
        ``AsyncMemoryStorage`` and ``AsyncStripeProvider`` (for anyio/asyncio tests).
    paykit_chaos: A factory: ``paykit_chaos(sink, seed=..., rates=...)`` returns a
        :class:`~paykit.testing.Chaos` over ``paykit_stripe``, or over the fake
        given as ``fake=`` (``paykit_paypal``, ``paykit_knet``) (seed ``paykit_seed``
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
WALLETS = _installed("cryptography")
"""Whether the PayPal and KNET fakes can run (their extras bring ``cryptography``)."""

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
    from ._wire_fake import WireFake

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
    def paykit_paypal(paykit_clock: ManualClock) -> Any:
        """A stateful fake PayPal account on ``paykit_clock``."""
        if not WALLETS:
            pytest.skip("PayPalFake needs the paypal extra (cryptography)")
        from ._paypal_fake import PayPalFake  # noqa: PLC0415  # the paypal extra, on use

        return PayPalFake(clock=paykit_clock)

    @pytest.fixture
    def paykit_knet(paykit_clock: ManualClock) -> Any:
        """A stateful fake KNET Tranportal on ``paykit_clock``."""
        if not WALLETS:
            pytest.skip("KnetFake needs the knet extra (cryptography)")
        from ._knet_fake import KnetFake  # noqa: PLC0415  # the knet extra, on use

        return KnetFake(clock=paykit_clock)

    def _wallets(request: pytest.FixtureRequest) -> list[Any]:
        """The PayPal and KNET fakes, when their extras are installed."""
        return [request.getfixturevalue(name) for name in ("paykit_paypal", "paykit_knet")] if WALLETS else []

    @pytest.fixture
    def paykit_service(
        paykit_stripe: StripeFake, paykit_clock: ManualClock, request: pytest.FixtureRequest
    ) -> Iterator[Any]:
        """A ``PaymentService`` on memory whose providers talk to the fakes (Stripe, PayPal, KNET)."""
        from .._sync.service import PaymentService  # noqa: PLC0415

        providers = [paykit_stripe.provider(), *(fake.provider() for fake in _wallets(request))]
        service = PaymentService(storage=MemoryStorage(), providers=providers, clock=paykit_clock)
        yield service
        service.close()

    @pytest.fixture
    def paykit_async_service(
        paykit_stripe: StripeFake, paykit_clock: ManualClock, request: pytest.FixtureRequest
    ) -> Any:
        """An ``AsyncPaymentService`` on memory whose providers talk to the same fakes."""
        from .._async.service import AsyncPaymentService  # noqa: PLC0415

        providers = [paykit_stripe.async_provider(), *(fake.async_provider() for fake in _wallets(request))]
        return AsyncPaymentService(storage=AsyncMemoryStorage(), providers=providers, clock=paykit_clock)

    @pytest.fixture
    def paykit_chaos(paykit_stripe: StripeFake, request: pytest.FixtureRequest) -> Callable[..., Chaos]:
        """``paykit_chaos(sink, seed=None, rates=None, fake=None)``: a seeded :class:`Chaos` over a fake.

        The fake is ``paykit_stripe`` unless another (``paykit_paypal``, ``paykit_knet``) is given.
        """
        callspec = getattr(request.node, "callspec", None)
        default_seed = int(callspec.params.get("paykit_seed", 0)) if callspec is not None else 0

        def make(
            sink: Sink, *, seed: int | None = None, rates: ChaosRates | None = None, fake: WireFake | None = None
        ) -> Chaos:
            return Chaos(fake or paykit_stripe, sink, seed=default_seed if seed is None else seed, rates=rates)

        return make
