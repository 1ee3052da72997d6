"""paykit's pytest plugin, run in fresh pytest sessions (pytester), and the example shop's suite both ways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "shop"


def test_the_fixtures_serve_a_sync_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from paykit import Money, PaymentStatus
        from paykit.testing import ManualClock, StripeFake

        def test_checkout(paykit_service, paykit_stripe, paykit_clock):
            assert isinstance(paykit_stripe, StripeFake) and isinstance(paykit_clock, ManualClock)
            payment = paykit_service.initialize_payment(
                user_id="u1", amount=Money.of("5.00", "EUR"), provider="stripe", idempotency_key="o1"
            )
            payment = paykit_service.confirm_payment(payment.id, payment_method="pm_card_visa")
            assert payment.status is PaymentStatus.SUCCEEDED
            assert paykit_stripe.intents[payment.provider_ref]["amount_received"] == 500
            assert paykit_stripe.clock is paykit_clock
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_fixtures_serve_an_async_app(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"
        """
    )
    pytester.makepyfile(
        """
        import pytest
        from paykit import AsyncPaymentService, Money, PaymentStatus
        from paykit.webhooks import ahandle_webhook

        @pytest.mark.anyio
        async def test_checkout(paykit_async_service, paykit_stripe, paykit_chaos):
            assert isinstance(paykit_async_service, AsyncPaymentService)

            async def route(body, headers):
                return await ahandle_webhook(paykit_async_service, "stripe", body, headers)

            chaos = paykit_chaos(route, seed=5)
            payment = await paykit_async_service.initialize_payment(
                user_id="u1", amount=Money.of("5.00", "EUR"), provider="stripe", idempotency_key="o1"
            )
            try:
                await paykit_async_service.confirm_payment(payment.id, payment_method="pm_card_visa")
            finally:
                await chaos.adrain()
            assert chaos.seed == 5
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_paypal_and_knet_fixtures_serve_an_app(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from paykit import Money, PaymentStatus
        from paykit.testing import ChaosRates, KnetFake, PayPalFake, assert_consistent
        from paykit.webhooks import handle_webhook

        def test_paypal_checkout(paykit_service, paykit_paypal, paykit_chaos, paykit_clock):
            assert isinstance(paykit_paypal, PayPalFake) and paykit_paypal.clock is paykit_clock
            route = lambda b, h: handle_webhook(paykit_service, "paypal", b, h)
            chaos = paykit_chaos(route, fake=paykit_paypal, rates=ChaosRates.calm())
            payment = paykit_service.initialize_payment(
                user_id="u1", amount=Money.of("5.00", "USD"), provider="paypal", idempotency_key="o1"
            )
            paykit_paypal.approve(payment.provider_ref)
            try:
                payment = paykit_service.confirm_payment(payment.id)
            finally:
                chaos.stop()
                chaos.drain()
            assert paykit_service.get_payment(payment.id).status is PaymentStatus.SUCCEEDED
            assert [status for _, _, status in chaos.answers] == [200, 200, 200]
            assert assert_consistent(paykit_service, paykit_paypal) == 1

        def test_knet_checkout(paykit_service, paykit_knet):
            assert isinstance(paykit_knet, KnetFake)
            payment = paykit_service.initialize_payment(
                user_id="u1", amount=Money.of("5.000", "KWD"), provider="knet", idempotency_key="o1"
            )
            paykit_knet.pay(paykit_knet.open(payment.redirect_url))
            for delivery in paykit_knet.take_deliveries():
                assert handle_webhook(paykit_service, "knet", *paykit_knet.signed(delivery)).status_code == 200
            assert paykit_service.get_payment(payment.id).status is PaymentStatus.SUCCEEDED
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--fixtures")
    for name in ["paykit_paypal", "paykit_knet"]:
        assert f"{name} -- " in result.stdout.str()
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_prefixed_names_leave_an_apps_own_fixtures_alone(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def service():
            return "the app's service"

        @pytest.fixture
        def clock():
            return "the app's clock"

        @pytest.fixture
        def fake():
            return "the app's fake"
        """
    )
    pytester.makepyfile(
        """
        def test_both(service, clock, fake, paykit_service, paykit_clock, paykit_stripe):
            assert (service, clock, fake) == ("the app's service", "the app's clock", "the app's fake")
            assert paykit_service.provider("stripe").name == "stripe"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--fixtures")
    listed = result.stdout.str()
    for name in ["paykit_service", "paykit_async_service", "paykit_clock", "paykit_stripe", "paykit_chaos"]:
        assert f"{name} -- " in listed
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_paykit_seed_runs_a_test_over_the_seeds_asked_for(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_seeded(paykit_seed, paykit_chaos):
            assert paykit_chaos(lambda body, headers: 200).seed == paykit_seed
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=20)
    result = pytester.runpytest("-p", "no:cacheprovider", "--paykit-seeds=7,42", "-v")
    result.stdout.fnmatch_lines(["*test_seeded?seed7? PASSED*", "*test_seeded?seed42? PASSED*"])


def test_the_plugin_is_inert_without_the_testing_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    hide = pytester.mkdir("hide_stripe")
    (hide / "sitecustomize.py").write_text(
        "import sys\n"
        "class HideStripe:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'stripe' or name.startswith('stripe.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "sys.meta_path.insert(0, HideStripe())\n"
    )
    pytester.makepyfile(
        """
        def test_plain():
            assert True

        def test_wants_paykit(paykit_service):
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hide), os.environ.get("PYTHONPATH", "")]))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*fixture 'paykit_service' not found*"])


def run_shop_suite(*args: str, planted_bug: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SHOP_PLANTED_BUG": "1" if planted_bug else "0"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_shops_suite_finds_the_planted_fulfilment_bug() -> None:
    result = run_shop_suite(planted_bug=True)

    assert result.returncode == 1, result.stdout
    assert "test_every_paid_order_ships_exactly_once_whatever_stripe_does[seed" in result.stdout
    assert "shipped 2 times" in result.stdout
    assert "webhooks before the answer" in result.stdout  # the chaos log says how it happened
    # The plain tests pass with the bug: only chaos finds it.
    for name in ["test_a_paid_order_ships_once", "test_a_declined_card_ships_nothing", "test_a_forged_webhook"]:
        assert f"FAILED tests/test_shop.py::{name}" not in result.stdout


def test_the_shops_suite_passes_once_fixed() -> None:
    """20 seeds (the default); test_chaos.py runs the same chaos against paykit alone for 200."""
    result = run_shop_suite(planted_bug=False)

    assert result.returncode == 0, result.stdout[-3000:]
    assert "23 passed" in result.stdout
