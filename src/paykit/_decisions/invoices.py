"""Pure rules of invoices: totals, sending, voiding, and being paid."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from .._errors import InvalidStateError
from .._models import AuditAction, Invoice, InvoiceStatus, Payment
from .._status import PaymentStatus
from .change import Change, skip

__all__ = ["attach_payment", "mark_paid", "send", "void"]


def send(current: Invoice, *, now: datetime) -> Change:
    """A draft becomes OPEN and its user is notified; sending again is a no-op."""
    if current.status == InvoiceStatus.OPEN:
        return skip("duplicate")
    if current.status != InvoiceStatus.DRAFT:
        raise InvalidStateError(f"cannot send an invoice that is {current.status.value}")
    return Change({"status": InvoiceStatus.OPEN, "sent_at": now}, action=AuditAction.INVOICE_SEND, outcome="sent")


_VOIDABLE_PAYMENT: Final = frozenset({PaymentStatus.FAILED, PaymentStatus.CANCELED})
"""What the invoice's payment may be when it is voided: anything else could still charge the payer."""


def void(current: Invoice, payment: Payment | None = None) -> Change:
    """A draft or open invoice becomes VOID, unless its payment succeeded or is still under way.

    ``payment`` is the invoice's payment as read (``None``: it has none, or none is stored):
    a payer finishing it would be charged for a void invoice, so it must be canceled first.
    """
    if current.status == InvoiceStatus.VOID:
        return skip("duplicate")
    if current.status == InvoiceStatus.PAID:
        raise InvalidStateError("cannot void a paid invoice; refund its payment instead")
    if payment is not None and payment.id == current.payment_id and payment.status not in _VOIDABLE_PAYMENT:
        error = InvalidStateError(
            f"cannot void invoice {current.number}: its payment {payment.id} is {payment.status.value};"
            " cancel or refund it first"
        )
        error.payment_id = payment.id
        raise error
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
