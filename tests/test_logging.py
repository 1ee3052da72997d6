"""paykit logs like a library: through stdlib logging under paykit.*, silent until the application configures it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import structlog

from paykit._log import get_logger

ROOT = Path(__file__).resolve().parent.parent

# A whole lifecycle, with events at every level paykit uses: info (initialize, webhook handled),
# warning (a forged webhook), and a notifier that logs each notification.
LIFECYCLE = textwrap.dedent(
    """
    from paykit import LoggingNotifier, Money, PaymentService, PaymentStatus
    from paykit.storage import MemoryStorage
    from paykit.testing import FakeProvider
    from paykit.webhooks import handle_webhook

    fake = FakeProvider()
    service = PaymentService(storage=MemoryStorage(), providers=[fake], notifiers=[LoggingNotifier()])
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("12.500", "KWD"), provider="fake", idempotency_key="order-42"
    )
    payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
    hook = fake.webhook(payment, PaymentStatus.SUCCEEDED)
    handle_webhook(service, "fake", body=hook.body, headers=hook.headers)
    handle_webhook(service, "fake", body=hook.body + b" ", headers=hook.headers)  # forged: a warning
    service.refund_payment(payment.id, amount=Money.of("2.000", "KWD"))
    service.dispatch_notifications()
    service.close()
    SECRETS = [payment.client_secret.get_secret_value(), hook.headers["paykit-fake-signature"]]
    """
)


# The same with StripeProvider on Stripe's wire format (respx): a payment created, then declined (a warning),
# its webhook forged (a warning) and genuine, with the API key, client secret and webhook secret to keep out.
STRIPE_LIFECYCLE = textwrap.dedent(
    """
    import respx
    from paykit import Money, PaymentDeclinedError, PaymentService
    from paykit.providers import StripeProvider
    from paykit.storage import MemoryStorage
    from paykit.testing import sign_stripe_webhook, stripe_event
    from paykit.webhooks import handle_webhook
    from tests.providers.test_stripe import NOW, NOW_TS, SECRET, payment_intent, stripe_error

    declined = payment_intent(
        status="requires_payment_method",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds", "message": "Declined."},
    )
    with respx.mock(base_url="https://api.stripe.com") as api:
        api.post("/v1/payment_intents").respond(200, json=payment_intent(payment_method="pm_card_visa"))
        api.post("/v1/payment_intents/pi_123/confirm").mock(
            return_value=stripe_error(
                402, type="card_error", code="card_declined", message="Declined.", payment_intent=declined
            )
        )
        stripe = StripeProvider("sk_test_logging_key", webhook_secrets=[SECRET], clock=lambda: NOW)
        service = PaymentService(storage=MemoryStorage(), providers=[stripe])
        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("12.50", "USD"), provider="stripe", payment_method="pm_card_visa"
        )
        try:
            service.confirm_payment(payment.id)
        except PaymentDeclinedError:
            pass
        body = stripe_event("payment_intent.payment_failed", declined, created=NOW_TS)
        headers = sign_stripe_webhook(body, SECRET, timestamp=NOW_TS)
        handle_webhook(service, "stripe", body=body, headers=headers)
        handle_webhook(service, "stripe", body=body + b" ", headers=headers)
    service.close()
    SECRETS = ["sk_test_logging_key", "pi_123_secret_abc", SECRET, headers["stripe-signature"]]
    """
)


def _run(setup: str, lifecycle: str = LIFECYCLE) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    code = setup + lifecycle + "\nimport sys; print('SECRETS=' + '|'.join(SECRETS), file=sys.__stdout__)\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60, cwd=ROOT
    )
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    secrets = lines[-1].removeprefix("SECRETS=").split("|")
    result.stdout = "\n".join(lines[:-1])
    return result, secrets


class TestUnconfigured:
    """An application that configures nothing hears nothing from paykit."""

    @pytest.mark.parametrize("lifecycle", [LIFECYCLE, STRIPE_LIFECYCLE], ids=["fake", "stripe"])
    def test_a_full_lifecycle_prints_nothing(self, lifecycle: str) -> None:
        result, _ = _run("", lifecycle)

        assert ("", "") == (result.stdout, result.stderr)


class TestPlainLogging:
    """logging.basicConfig is enough to see paykit's events, with their keys and without secrets."""

    def test_info_events_appear_under_paykit_loggers(self) -> None:
        result, secrets = _run("import logging; logging.basicConfig(level=logging.INFO)\n")
        err = result.stderr

        assert "" == result.stdout
        assert "INFO:paykit._sync.payments:payment initializing payment_id='pay_" in err
        assert "INFO:paykit.webhooks:webhook handled provider='fake'" in err
        assert "WARNING:paykit.webhooks:webhook rejected provider='fake'" in err
        assert "INFO:paykit.notify:paykit notification" in err
        for secret in secrets:
            assert secret
            assert secret not in err

    @pytest.mark.parametrize("lifecycle", [LIFECYCLE, STRIPE_LIFECYCLE], ids=["fake", "stripe"])
    def test_debug_shows_no_secret_either(self, lifecycle: str) -> None:
        """paykit's loggers at DEBUG (stripe-python's own DEBUG log prints whole bodies: see docs/logging.md)."""
        setup = "import logging; logging.basicConfig(level=logging.INFO); logging.getLogger('paykit').setLevel(10)\n"
        result, secrets = _run(setup, lifecycle)

        assert "paykit." in result.stderr
        for secret in secrets:
            assert secret
            assert secret not in result.stderr

    def test_stripe_events_appear(self) -> None:
        result, _ = _run("import logging; logging.basicConfig(level=logging.INFO)\n", STRIPE_LIFECYCLE)

        assert "INFO:paykit.providers.stripe:stripe payment created" in result.stderr
        assert "WARNING:paykit.providers.stripe:stripe call failed operation='confirm PaymentIntent'" in result.stderr
        assert "INFO:paykit.webhooks:webhook handled provider='stripe'" in result.stderr

    def test_the_application_chooses_the_level(self) -> None:
        """At WARNING (an application's usual production level) only the forged webhook is logged."""
        result, _ = _run("import logging; logging.basicConfig(level=logging.WARNING)\n")

        assert ["WARNING:paykit.webhooks:webhook rejected"] == [
            line.split(" provider=")[0] for line in result.stderr.splitlines()
        ]


class TestStructlogApplication:
    """An application that renders with structlog's ProcessorFormatter gets paykit's events as event dicts."""

    def test_events_arrive_structured(self) -> None:
        setup = textwrap.dedent(
            """
            import logging, structlog
            handler = logging.StreamHandler()
            handler.setFormatter(structlog.stdlib.ProcessorFormatter(
                processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                            structlog.processors.JSONRenderer()],
            ))
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
            """
        )
        result, _ = _run(setup)
        events = [json.loads(line) for line in result.stderr.splitlines()]
        first = events[0]

        assert {"event": "payment initializing", "level": "info", "logger": "paykit._sync.payments"} == {
            key: first[key] for key in ("event", "level", "logger")
        }
        assert first["payment_id"].startswith("pay_")
        assert "12.500 KWD" == first["amount"]
        assert {"payment initializing", "webhook handled", "webhook rejected", "paykit notification"} <= {
            e["event"] for e in events
        }


class TestLogger:
    """get_logger: a structlog BoundLogger over the stdlib logger of the same name."""

    def test_disabled_levels_build_nothing(self) -> None:
        """Below the stdlib logger's level, no processor runs at all."""
        seen: list[str] = []

        def record(_: Any, method: str, event_dict: Any) -> Any:
            seen.append(method)
            raise structlog.DropEvent

        log = get_logger("paykit.tests.quiet")
        log._processors = [record]  # type: ignore[attr-defined]
        logging.getLogger("paykit.tests.quiet").setLevel(logging.WARNING)

        log.debug("dropped")
        log.info("dropped")
        log.bind(key="value").info("dropped")
        log.warning("built")

        assert ["warning"] == seen

    def test_exception_carries_the_traceback(self, caplog: pytest.LogCaptureFixture) -> None:
        log = get_logger("paykit.tests.errors")
        with caplog.at_level(logging.ERROR, logger="paykit"):
            try:
                raise RuntimeError("boom")
            except RuntimeError:
                log.exception("hook failed", hook="h1")

        [record] = caplog.records
        assert "hook failed hook='h1'" == record.getMessage()
        assert record.exc_info is not None
        assert RuntimeError is record.exc_info[0]

    def test_bound_keys_reach_the_record(self, caplog: pytest.LogCaptureFixture) -> None:
        log = get_logger("paykit.tests.bound").bind(operation="capture")
        with caplog.at_level(logging.INFO, logger="paykit"):
            log.info("provider call", attempt=2)

        [record] = caplog.records
        assert ("paykit.tests.bound", logging.INFO) == (record.name, record.levelno)
        assert "provider call operation='capture' attempt=2" == record.getMessage()

    def test_structlog_stays_unconfigured(self) -> None:
        code = LIFECYCLE + "\nimport structlog; print(structlog.is_configured())"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)

        assert "False" == result.stdout.strip()
