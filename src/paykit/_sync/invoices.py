# Generated from src/paykit/_async/invoices.py by scripts/unasync.py: do not edit.
"""Invoices: exact totals, unique numbers, sending, paying, and being paid by a reaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from functools import partial
from typing import Any

from pydantic import ValidationError

from .. import _telemetry as telemetry
from .._decisions import common as d
from .._decisions import effects as fx
from .._decisions import invoices as di
from .._decisions.change import Change
from .._decisions.policy import Actor, StepUpProof
from .._errors import DuplicateRecordError, InvalidRequestError, InvalidStateError, NotFoundError
from .._log import get_logger
from .._models import AuditAction, Invoice, InvoiceStatus, LineItem, Payment
from .._money import Money
from .._status import PaymentStatus
from ..storage._base import Reaction
from ._part import _Part
from .payments import _Payments

log = get_logger(__name__)

_INVOICE_IN_HAND: ContextVar[Invoice | None] = ContextVar("paykit_invoice_in_hand", default=None)
"""The invoice a payment is being made for, when the caller holds it: its reaction starts from it.

As ``_IN_HAND`` in billing: per thread or task, and a stale copy only costs the compare-and-set a reload."""


class _Invoices(_Payments, _Part):
    @telemetry.operation("create_invoice")
    def create_invoice(
        self,
        *,
        user_id: str,
        currency: str,
        line_items: Sequence[LineItem | Mapping[str, Any]],
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
    ) -> Invoice:
        """Create a draft invoice with exact totals and a unique number.

        Args:
            user_id: Who is invoiced.
            currency: Every line's currency.
            line_items: ``LineItem``s or mappings of their fields.
            description: Free text.
            metadata: Your own str -> str data.
            idempotency_key: Replays with the same parameters return the first invoice.
            actor: Who to attribute the operation to in the audit trail.

        Raises:
            InvalidRequestError: No lines, a line in another currency, or a zero total.
            IdempotencyConflictError: The key was used with other parameters.
        """
        d.check_id(user_id, "user_id")
        key = d.check_key(idempotency_key)
        code = Money.zero(currency).currency
        if not line_items:
            raise InvalidRequestError("an invoice needs at least one line item")
        try:
            lines = tuple(li if isinstance(li, LineItem) else LineItem.model_validate(li) for li in line_items)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid line item: {exc.errors()[0]['msg']}") from None
        if any(li.unit_amount.currency != code for li in lines):
            raise InvalidRequestError(f"every line item must be in {code}")
        for line in lines:
            d.check_text(line.description, "a line item description")
        d.check_text(description, "description", max_length=2000)
        meta = d.check_metadata(metadata)
        fp = d.fingerprint(user_id=user_id, currency=code, lines=lines, description=description, metadata=meta)
        invoice_id = d.keyed_id("inv", "invoice", key) if key else d.new_id("inv")
        storage = self._engine.storage
        if key is not None and (existing := storage.get_invoice(invoice_id)) is not None:
            d.check_replay(existing.request_fingerprint, fp, "invoice")
            return existing
        subtotal = sum((li.subtotal for li in lines), Money.zero(code))
        tax = sum((li.tax for li in lines), Money.zero(code))
        if (subtotal + tax).minor_units <= 0:
            raise InvalidRequestError("an invoice total must be positive")
        now = self._engine.now()
        series = f"{self._invoice_prefix}-{now.year}"
        invoice = Invoice(
            id=invoice_id,
            number=f"{series}-{storage.next_invoice_sequence(series):06d}",
            user_id=user_id,
            currency=code,
            line_items=lines,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            description=description,
            metadata=meta,
            idempotency_key=key,
            request_fingerprint=fp,
            created_at=now,
            updated_at=now,
        )
        audit = fx.invoice_audit(None, invoice, AuditAction.INVOICE_CREATE, actor=self._actor(actor), at=now)
        try:
            storage.insert_invoice(invoice, [audit])
        except DuplicateRecordError:
            existing = storage.get_invoice(invoice_id)
            if existing is None:
                raise
            d.check_replay(existing.request_fingerprint, fp, "invoice")
            return existing
        self._engine.emit([audit])
        return invoice

    def get_invoice(self, invoice_id: str) -> Invoice:
        """The invoice with this id.

        Raises:
            NotFoundError: No such invoice.
        """
        d.check_id(invoice_id, "invoice_id")
        return self._engine.load(Invoice, invoice_id)

    def _change_invoice(
        self, invoice_id: str, build: Callable[[Invoice], Change], *, actor: Actor | str | None
    ) -> Invoice:
        invoice = self.get_invoice(invoice_id)
        return self._engine.transact(invoice, build, actor=self._actor(actor))[0]

    @telemetry.operation("send_invoice")
    def send_invoice(self, invoice_id: str, *, actor: Actor | str | None = None) -> Invoice:
        """Send a draft invoice: it becomes OPEN and the user is notified. Sending again is a no-op.

        Raises:
            InvalidStateError: The invoice is paid or void.
        """
        now = self._engine.now()

        def build(current: Invoice) -> Change:
            change = di.send(current, now=now)
            if not change.write:
                return change
            sent = current.model_copy(update={**change.updates, "version": current.version + 1})
            return Change(change.updates, change.action, effects=(fx.invoice_sent(sent, at=now),))

        return self._change_invoice(invoice_id, build, actor=actor)

    @telemetry.operation("void_invoice")
    def void_invoice(self, invoice_id: str, *, actor: Actor | str | None = None) -> Invoice:
        """Void a draft or open invoice that has no successful payment, nor one under way.

        Raises:
            InvalidStateError: The invoice is paid, or its payment succeeded or is still under way
                (cancel it first: a payer finishing it would be charged for a void invoice).
        """
        invoice = self.get_invoice(invoice_id)
        payment = None
        if invoice.status in (InvoiceStatus.DRAFT, InvoiceStatus.OPEN) and invoice.payment_id is not None:
            payment = self._engine.storage.get_payment(invoice.payment_id)
        return self._engine.transact(invoice, partial(di.void, payment=payment), actor=self._actor(actor))[0]

    @telemetry.operation("pay_invoice")
    def pay_invoice(
        self,
        invoice_id: str,
        *,
        provider: str,
        payment_method: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> Payment:
        """Start paying an OPEN invoice: one payment for its total, created once.

        The invoice becomes PAID when that payment succeeds, by confirmation,
        webhook or reconcile: the payment's own write carries that change, so a
        crash in between cannot lose it. Calling again returns the same payment,
        unless it failed or was canceled: then a new payment starts, so a payer
        whose card was declined can try again.

        Raises:
            InvalidStateError: The invoice is not open.
            IdempotencyConflictError: A payment for the invoice is under way with other parameters.
            PolicyDeniedError: A policy refused (checked as ``pay_invoice``).
            StepUpRequiredError: A policy asks for a second factor (``step_up``).
        """
        invoice = self.get_invoice(invoice_id)
        if invoice.status != InvoiceStatus.OPEN:
            hint = "; send it first" if invoice.status == InvoiceStatus.DRAFT else ""
            raise InvalidStateError(f"cannot pay an invoice that is {invoice.status.value}{hint}")
        key = f"invoice:{invoice.id}"
        if invoice.payment_id is not None:
            previous = self._engine.storage.get_payment(invoice.payment_id)
            if previous is not None and previous.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
                key = f"invoice:{invoice.id}:after:{previous.id}"
            elif previous is not None and previous.idempotency_key is not None:
                key = previous.idempotency_key
        payment = self.initialize_payment(
            user_id=invoice.user_id,
            amount=invoice.total,
            provider=provider,
            idempotency_key=key,
            description=f"Invoice {invoice.number}",
            metadata={"invoice_id": invoice.id, "invoice_number": invoice.number},
            payment_method=payment_method,
            return_url=return_url,
            cancel_url=cancel_url,
            actor=actor,
            invoice_id=invoice.id,
            step_up=step_up,
        )
        if invoice.payment_id != payment.id:
            self._change_invoice(invoice.id, lambda c: di.attach_payment(c, payment.id), actor=actor)
        if payment.status == PaymentStatus.SUCCEEDED:
            reaction = fx.payment_reactions(
                payment.model_copy(update={"status": PaymentStatus.PENDING}), payment, at=self._engine.now()
            )
            self._engine.react(reaction)
        return payment

    def _react_invoice_paid(self, reaction: Reaction) -> None:
        """The reactor of ``invoice_paid``: an OPEN invoice becomes PAID by its payment, once."""
        held = _INVOICE_IN_HAND.get()
        try:
            invoice = (
                held if held is not None and held.id == reaction.target_id else self.get_invoice(reaction.target_id)
            )
        except NotFoundError:
            log.warning("paid payment names a missing invoice", payment_id=reaction.payment_id)
            return
        now = self._engine.now()
        _, change = self._engine.transact(invoice, lambda c: di.mark_paid(c, reaction.payment_id, now=now))
        if change.outcome == "not_open":
            log.warning("payment succeeded for an invoice that is not open", invoice_id=invoice.id)
