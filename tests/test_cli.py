"""The paykit command line: demo, health, metrics, audit."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from paykit import AuditAction, InvoiceStatus, PaymentStatus
from paykit.cli import main, run_demo


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

    def test_python_dash_m_runs_the_demo(self) -> None:
        """`python -m paykit demo` exits 0 and keeps logs off stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "paykit", "demo"], capture_output=True, text=True, check=False, timeout=60
        )

        assert 0 == result.returncode, result.stderr
        assert "8. Health and metrics" in result.stdout
        assert "[info" not in result.stdout


class TestCommands:
    """health, metrics and audit on the default (empty, in-memory) storage."""

    def test_health_and_metrics(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Both print JSON and succeed."""
        assert 0 == main(["health"])
        assert '"status": "ok"' in capsys.readouterr().out
        assert 0 == main(["metrics"])
        assert '"total": 0' in capsys.readouterr().out

    def test_audit_of_unknown_payment(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown payment's audit exits 1 with a message."""
        assert 1 == main(["audit", "pay_missing"])
        assert "no audit entries" in capsys.readouterr().err
