"""The invoice tests that only the sync API can run: threads numbering invoices at once, and ``handle_webhook``.

The rest of the invoice suite is written once in ``tests/_async/test_invoices.py`` and runs on
both APIs; the asyncio counterparts of these are in ``tests/test_service_asyncio.py``.
"""

from __future__ import annotations

import threading

from paykit import (
    AuditAction,
    InvoiceStatus,
    PaymentService,
    PaymentStatus,
)
from paykit.testing import FakeProvider
from paykit.webhooks import handle_webhook
from tests._sync.test_invoices import line, open_invoice


class TestNumbers:
    """Invoice numbers never repeat, whatever the threads."""

    def test_unique_under_concurrency(self, service: PaymentService) -> None:
        """Invoices created from many threads at once all get distinct, gapless numbers."""
        numbers: list[str] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def create() -> None:
            try:
                barrier.wait()
                for _ in range(10):
                    invoice = service.create_invoice(user_id="u1", currency="USD", line_items=[line("1", "USD")])
                    numbers.append(invoice.number)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [] == errors
        assert 80 == len(set(numbers))
        assert {f"INV-2026-{n:06d}" for n in range(1, 81)} == set(numbers)


class TestPayInvoice:
    """The invoice is paid when its payment's webhook arrives through handle_webhook."""

    def test_paid_by_webhook(self, service: PaymentService, fake: FakeProvider) -> None:
        """A payment that settles asynchronously pays the invoice when its webhook arrives."""
        invoice_id = open_invoice(service)
        payment = service.pay_invoice(invoice_id, provider="fake")
        fake.behavior = "processing"
        assert PaymentStatus.PROCESSING == service.confirm_payment(payment.id).status
        assert InvoiceStatus.OPEN == service.get_invoice(invoice_id).status
        hook = fake.webhook(service.get_payment(payment.id), PaymentStatus.SUCCEEDED)
        assert 200 == handle_webhook(service, "fake", hook.body, hook.headers).status_code
        assert 200 == handle_webhook(service, "fake", hook.body, hook.headers).status_code
        assert InvoiceStatus.PAID == service.get_invoice(invoice_id).status
        paid_entries = [e for e in service.audit_trail(invoice_id) if e.action == AuditAction.INVOICE_PAID]
        assert 1 == len(paid_entries)
