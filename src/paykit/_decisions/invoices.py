"""Pure rules of invoices: totals, sending, voiding, and being paid."""

from __future__ import annotations

from datetime import datetime

from .._errors import InvalidStateError
from .._models import AuditAction, Invoice, InvoiceStatus
from .change import Change, skip

__all__ = ["attach_payment", "mark_paid", "send", "void"]


def send(current: Invoice, *, now: datetime) -> Change:
    """A draft becomes OPEN and its user is notified; sending again is a no-op."""
    if current.status == InvoiceStatus.OPEN:
        return skip("duplicate")
    if current.status != InvoiceStatus.DRAFT:
        raise InvalidStateError(f"cannot send an invoice that is {current.status.value}")
    return Change({"status": InvoiceStatus.OPEN, "sent_at": now}, action=AuditAction.INVOICE_SEND, outcome="sent")


def void(current: Invoice) -> Change:
    """A draft or open invoice without a successful payment becomes VOID."""
    if current.status == InvoiceStatus.VOID:
        return skip("duplicate")
    if current.status == InvoiceStatus.PAID:
        raise InvalidStateError("cannot void a paid invoice; refund its payment instead")
    return Change({"status": InvoiceStatus.VOID}, action=AuditAction.INVOICE_VOID)


def attach_payment(current: Invoice, payment_id: str) -> Change:
    """Remember the payment now paying the invoice."""
    if current.payment_id == payment_id:
        return skip("duplicate")
    return Change({"payment_id": payment_id}, action=AuditAction.INVOICE_PAYMENT)


def mark_paid(current: Invoice, payment_id: str, *, now: datetime) -> Change:
    """The invoice's payment succeeded: an OPEN invoice becomes PAID (once)."""
    if current.status != InvoiceStatus.OPEN:
        return skip("duplicate" if current.status == InvoiceStatus.PAID else "not_open")
    return Change(
        {"status": InvoiceStatus.PAID, "paid_at": now, "payment_id": payment_id},
        action=AuditAction.INVOICE_PAID,
        outcome="paid",
    )
