"""The paykit command line: demo, health, metrics, audit."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from importlib.metadata import version

import pytest

from paykit import AuditAction, InvoiceStatus, PaymentStatus, SubscriptionStatus
from paykit.cli import DEFAULT_CONNECT_TIMEOUT, main, run_demo


class TestDemo:
    """The demo walks the whole lifecycle on memory."""

    def test_demo_does_what_it_says(self) -> None:
        """The demo's payment ends partially refunded, its invoice paid, its notifications delivered."""
        out = io.StringIO()
        service = run_demo(out=out)
        text = out.getvalue()
        alice = service.list_payments(user_id="alice").items

        assert {PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.SUCCEEDED} == {p.status for p in alice}
        first = next(p for p in alice if p.status == PaymentStatus.PARTIALLY_REFUNDED)
        assert [
            AuditAction.PAYMENT_INIT,
            AuditAction.PAYMENT_CONFIRM,
            AuditAction.PAYMENT_STATUS_UPDATE,
            AuditAction.PAYMENT_EVENT_IGNORED,
            AuditAction.PAYMENT_REFUND,
        ] == [e.action for e in service.audit_trail(first.id)]
        invoice_payment = next(p for p in alice if p.invoice_id)
        assert InvoiceStatus.PAID == service.get_invoice(invoice_payment.invoice_id or "").status
        for line in ("HTTP 200, applied", "HTTP 200, duplicate", "HTTP 200, stale", "HTTP 400, rejected"):
            assert line in text
        assert "USD: captured 49.99 USD, refunded 10.00 USD, net 39.99 USD" in text

    def test_demo_renews_a_subscription(self) -> None:
        """Three monthly periods are charged once each; a declined renewal is retried the next day."""
        out = io.StringIO()
        service = run_demo(out=out)
        text = out.getvalue()
        (sub,) = service.list_subscriptions(user_id="carol")

        assert (sub.status, sub.period) == (SubscriptionStatus.ACTIVE, 3)
        assert "declined; past_due, retry on" in text
        assert text.count("charged 9.99 USD; active") == 3

    def test_python_dash_m_runs_the_demo(self) -> None:
        """`python -m paykit demo` exits 0 and keeps logs off stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "paykit", "demo"], capture_output=True, text=True, check=False, timeout=60
        )

        assert 0 == result.returncode, result.stderr
        assert "8. Health and metrics" in result.stdout
        assert "[info" not in result.stdout


class TestCommands:
    """health, metrics and audit read what an application stored, so they need --mongo-uri."""

    @pytest.mark.parametrize("command", [["health"], ["metrics"], ["audit", "pay_1"], ["explain", "pay_1"]])
    def test_refuse_to_run_without_a_database(self, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
        """A new in-memory store is always empty: exit 2 and say so, rather than report an empty "ok"."""
        with pytest.raises(SystemExit) as exit_info:
            main(command)

        assert 2 == exit_info.value.code
        assert f"{command[0]} needs --mongo-uri" in capsys.readouterr().err

    def test_explain_live_points_to_the_python_api(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The command line builds no providers, so --live says to call service.explain(..., live=True)."""
        with pytest.raises(SystemExit) as exit_info:
            main(["--mongo-uri", "mongodb://127.0.0.1:1", "explain", "pay_1", "--live"])

        assert 2 == exit_info.value.code
        err = capsys.readouterr().err
        assert "explain --live asks the payment's provider, and the command line has no providers to ask" in err
        assert "service.explain(payment_id, live=True)" in err

    def test_version(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--version names the distribution and its installed version."""
        with pytest.raises(SystemExit) as exit_info:
            main(["--version"])

        assert 0 == exit_info.value.code
        assert f"paykit-payments {version('paykit-payments')}" == capsys.readouterr().out.strip()

    def test_connect_timeout_must_be_positive(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main(["--mongo-uri", "mongodb://127.0.0.1:1", "--connect-timeout", "0", "health"])

        assert 2 == exit_info.value.code
        assert "--connect-timeout must be positive" in capsys.readouterr().err


class TestUnreachableServer:
    """A MongoDB URI with nothing listening fails fast, naming the host and the cause."""

    def test_fails_within_the_default_timeout_naming_the_host(self) -> None:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "paykit", "--mongo-uri", "mongodb://127.0.0.1:1", "health"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        elapsed = time.monotonic() - started

        assert 2 == result.returncode
        assert "cannot reach MongoDB at 127.0.0.1:1 within 5 s" in result.stderr
        assert "Connection refused" in result.stderr
        assert "Traceback" not in result.stderr
        assert elapsed < DEFAULT_CONNECT_TIMEOUT + 4  # the timeout, plus starting Python on a busy machine

    def test_the_uri_password_is_never_echoed(self, capsys: pytest.CaptureFixture[str]) -> None:
        uri = "mongodb://app:hunter2-secret@127.0.0.1:1/?authSource=admin"

        assert 2 == main(["--mongo-uri", uri, "--connect-timeout", "0.2", "metrics"])
        err = capsys.readouterr().err
        assert "127.0.0.1:1" in err
        assert "hunter2-secret" not in err
