# Generated from src/paykit/_async/billing.py by scripts/unasync.py: do not edit.
"""The billing tick: charge due subscription periods and installments, safely from many processes.

One tick: list due records (an indexed query), take each one's lease with a
compare-and-set, then do one step: send a reminder, end at period end, charge
the period, or check on a payment that waits for the customer. A charge is
``initialize_payment`` under a key derived from (record, period, attempt), so
every tick that charges the same attempt gets the same payment and the provider
the same idempotency key: a period is never charged twice, even when a lease
expires and another process takes over. The payment's own write carries a
reaction that moves the record (paid: next period; failed: next dunning step),
applied right away and again by ``reconcile()``, so a crash between the two
writes loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Final, TypeVar

from .. import _telemetry as telemetry
from .._decisions import billing as db
from .._decisions import common as d
from .._decisions import effects as fx
from .._decisions import invoices as di
from .._decisions.change import Change
from .._decisions.policy import Actor
from .._errors import (
    DuplicateRecordError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    NotFoundError,
    PaykitError,
    PaymentDeclinedError,
)
from .._log import get_logger
from .._models import AuditAction, InstallmentPlan, Invoice, InvoiceStatus, LineItem, Payment, Subscription
from .._money import Money
from .._results import BillingReport
from .._status import FINAL_STATUSES, SETTLED_STATUSES, PaymentStatus
from ..storage._base import Reaction, Write
from ._part import _Part
from .engine import COMPANIONS, CompanionBuild, Companions
from .invoices import _INVOICE_IN_HAND, _Invoices
from .payments import _INSERT_FIRST, _KNOWN_CUSTOMER, _KNOWN_TOKEN, _First, _FirstTaken

log = get_logger(__name__)

_ACTOR = "billing"
Billed = Subscription | InstallmentPlan
_IN_HAND: ContextVar[Billed | None] = ContextVar("paykit_billing_in_hand", default=None)
"""The record a tick is charging: its payment's reaction starts from it instead of reading it again.

A context variable, so concurrent ticks (threads or tasks) never see each other's; a copy that
went stale only costs the compare-and-set a reload."""


_Billed = TypeVar("_Billed", Subscription, InstallmentPlan)


def _invoice_paid(held: Invoice, reaction: Reaction, payment: Payment, now: datetime) -> Change:
    """What the ``invoice_paid`` reactor writes, over the invoice the tick holds."""
    return di.mark_paid(held, reaction.payment_id, now=now)


def _billing_moved(held: Billed, reaction: Reaction, payment: Payment, now: datetime) -> Change:
    """What the billing reactor writes, over the record the tick holds and the payment as written."""
    if reaction.kind == fx.BILLING_PAID:
        return db.paid(held, reaction.payment_id, now=now)
    return db.failed(held, payment.id, code=payment.failure_code or payment.status.value, now=now)


_COMPANION_BUILDS: Final[dict[str, CompanionBuild]] = {
    fx.INVOICE_PAID: _invoice_paid,
    fx.BILLING_PAID: _billing_moved,
    fx.BILLING_FAILED: _billing_moved,
}
_COMPANION_ACTORS: Final = {fx.BILLING_PAID: _ACTOR, fx.BILLING_FAILED: _ACTOR}
"""The billing reactor writes as ``billing``; the invoice reactor as the service's actor."""


class _Billing(_Invoices, _Part):
    def _insert_billing(
        self,
        draft: _Billed,
        action: AuditAction,
        *,
        actor: Actor | str | None,
        fingerprint: str,
        params: dict[str, Any],
    ) -> _Billed:
        """Store a new subscription or installment plan with its audit entry; a keyed replay returns the first."""
        now = draft.created_at
        record = draft.model_copy(update={"due_at": db.next_due(draft, now)})
        audit = db.billing_audit(None, record, action, actor=self._actor(actor), at=now)
        try:
            self._engine.storage.insert_billing(record, [audit])
        except DuplicateRecordError:
            existing = self._engine.load(type(draft), record.id)
            what = "subscription" if isinstance(draft, Subscription) else "installment plan"
            d.check_replay(existing.request_fingerprint, fingerprint or d.fingerprint(**params), what)
            return existing
        self._engine.emit([audit])
        return record

    def _method_saved(self, user_id: str, provider: str, payment_method: str | None) -> bool | None:
        """Check a record's payment method as a charge does; whether it is a saved method's id (else a token)."""
        if payment_method is None:
            return None
        d.check_id(payment_method, "payment_method")
        # A saved method resolves to the provider's own id for it, never to paykit's generated id.
        return self._resolve_method(user_id, provider, payment_method) != payment_method

    @telemetry.operation("bill_due")
    def bill_due(self, *, limit: int = 100) -> BillingReport:
        """Charge what is due: run it every few minutes, from as many processes as you like.

        Each due subscription or installment plan is leased to one tick (for 5
        minutes), charged once per period and attempt whoever runs it, and moved
        on when its payment settles. A tick that dies midway leaves the record to
        the next tick after the lease expires, which finishes the same payment.

        Args:
            limit: At most this many records are looked at (1-1000).

        Returns:
            What this tick did.

        Raises:
            InvalidRequestError: A bad limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidRequestError("limit must be an int from 1 to 1000")
        now = self._engine.now()
        storage = self._engine.storage
        report = BillingReport()
        seen: list[str] = []
        # One atomic write finds the earliest due record and takes its lease (one round trip, and
        # concurrent ticks never take the same record); each record is stepped once per tick.
        while len(seen) < limit:
            token = d.new_id("lease")
            claimed = storage.claim_billing_due(now=now, lease_until=now + db.LEASE, token=token, exclude=seen)
            if claimed is None:
                break
            record, leased_until = claimed
            seen.append(record.id)
            if record.status not in db.CHARGEABLE:  # due dates are cleared when a record stops: not expected
                log.warning("a due record is not chargeable; its lease is left to expire", record_id=record.id)
                continue
            report.claimed += 1
            self._step(record, token, report, taken_over=leased_until is not None)
        return report

    def _bill_one(self, record: Billed, report: BillingReport | None = None) -> BillingReport:
        """Claim one record's lease and do its due step; errors go to the report, not up."""
        report = report if report is not None else BillingReport()
        now = self._engine.now()
        token = d.new_id("lease")
        leased_before: list[bool] = []

        def claim(current: Billed) -> Change:
            # A lease left behind means an earlier tick stopped midway: it may have made the invoice.
            leased_before.append(current.lease_until is not None)
            return db.claim(current, now, token)

        try:
            held, change = self._engine.transact(record, claim)
        except PaykitError as exc:
            report.errors[record.id] = f"{type(exc).__name__}: {exc.message}"
            log.warning("billing tick failed for a record", record_id=record.id, error=type(exc).__name__)
            return report
        if change.write:
            report.claimed += 1
            self._step(held, token, report, taken_over=leased_before[-1])
        return report

    def _step(self, record: Billed, token: str, report: BillingReport, *, taken_over: bool) -> None:
        """Do the due step of a record this tick holds the lease of; errors go to the report, not up."""
        try:
            self._tick(record, token, report, taken_over=taken_over)
        except PaykitError as exc:
            report.errors[record.id] = f"{type(exc).__name__}: {exc.message}"
            log.warning("billing tick failed for a record", record_id=record.id, error=type(exc).__name__)

    def _tick(self, record: Billed, token: str, report: BillingReport, *, taken_over: bool = True) -> None:
        now = self._engine.now()
        what = db.step(record, now)
        if what == "remind":
            self._engine.transact(record, lambda c: db.remind(c, now, token), actor=_ACTOR)
            report.reminded += 1
        elif what == "end":
            self._engine.transact(record, lambda c: db.end_at_period_end(c, now, token), actor=_ACTOR)
            report.ended += 1
        elif what == "check":
            self._check_waiting(record, report)
        else:
            self._charge(record, token, report, likely_new=not taken_over and record.attempt == 0)

    def _charge(self, record: Billed, token: str, report: BillingReport, *, likely_new: bool = False) -> None:
        """Charge the record's current period and attempt under its derived payment id.

        A period's first attempt inserts its new invoice in the payment's own insert batch,
        unless policies are set (their gate must not run again should the invoice exist).
        """
        first = _First(self._draft_invoice(record)) if likely_new and not self._engine.policies else None
        invoice = _drafted(first) if first is not None else self._period_invoice(record, likely_new=likely_new)
        started = self._engine.now()
        payment_id = db.current_payment_id(record)
        try:
            try:
                payment = self._pay_period(record, invoice, first)
            except _FirstTaken:  # the invoice exists after all: nothing was written, pay with the stored one
                first = None
                invoice = self._period_invoice(record)
                payment = self._pay_period(record, invoice, None)
        except PaymentDeclinedError:
            # FAILED by this tick's own write, which carried the dunning step (applied by now, or
            # by reconcile() or the next tick if applying it failed): nothing to read back.
            report.failed += 1
            return
        except IdempotencyConflictError:
            # The customer already started this attempt's payment (pay_subscription): follow it.
            payment = self._ensure_registered(self._load(payment_id), actor=_ACTOR)
        except InvalidRequestError as exc:
            # Nothing can be charged (the saved method was deleted, say): unless this attempt's payment
            # exists already, the attempt fails and dunning goes on, so the user hears of it.
            if first is not None and not first.written:
                self._insert_invoice(first.draft)  # the period keeps its invoice, and the number drawn
            existing = self._engine.storage.get_payment(payment_id)
            if existing is None:
                now = self._engine.now()
                code = "payment_method_unusable" if "payment method" in exc.message else "invalid_request"
                build = lambda c: db.failed(c, payment_id, code=code, now=now)  # noqa: E731
                self._engine.transact(record, build, actor=_ACTOR)
                report.failed += 1
                return
            payment = existing
        self._after_charge(record, payment, token, started, report)

    def _pay_period(self, record: Billed, invoice: Invoice, first: _First | None) -> Payment:
        """``initialize_payment`` of the current attempt, with what the tick holds handed down."""
        adapter = self.provider(record.provider)
        off_session = adapter.capabilities.off_session and record.payment_method is not None
        in_hand = _IN_HAND.set(record)
        invoice_in_hand = _INVOICE_IN_HAND.set(invoice)
        known = (record.provider, record.user_id, record.customer_ref) if record.customer_ref else None
        customer_in_hand = _KNOWN_CUSTOMER.set(known)
        # A provider token cannot be deleted here (a saved method can: its read stays).
        token_in_hand = _KNOWN_TOKEN.set(record.payment_method if record.payment_method_saved is False else None)
        insert_first = _INSERT_FIRST.set(first)
        # The invoice and the record move in the payment's own write batch when it settles.
        companions = COMPANIONS.set(
            Companions({invoice.id: invoice, record.id: record}, _COMPANION_BUILDS, _COMPANION_ACTORS)
        )
        try:
            return self.initialize_payment(
                user_id=record.user_id,
                amount=db.charge_amount(record),
                provider=record.provider,
                idempotency_key=db.payment_key(record.id, record.period, record.attempt),
                description=record.description or f"{invoice.number}",
                metadata={f"{record.kind}_id": record.id, "billing_period": str(record.period)},
                payment_method=record.payment_method if off_session else None,
                return_url=record.return_url,
                cancel_url=record.cancel_url,
                actor=_ACTOR,
                invoice_id=invoice.id,
                billing_id=record.id,
                off_session=off_session,
            )
        finally:
            COMPANIONS.reset(companions)
            _INSERT_FIRST.reset(insert_first)
            _KNOWN_TOKEN.reset(token_in_hand)
            _KNOWN_CUSTOMER.reset(customer_in_hand)
            _INVOICE_IN_HAND.reset(invoice_in_hand)
            _IN_HAND.reset(in_hand)

    def _after_charge(
        self, record: Billed, payment: Payment, token: str, started: datetime, report: BillingReport
    ) -> None:
        if payment.status in SETTLED_STATUSES or payment.status in FINAL_STATUSES:
            if payment.created_at < started:
                # Settled before this tick (a crash or another tick got this far): make sure the
                # record moved; a no-op when the payment's reaction already moved it.
                self._settle_billing(record.id, payment, record)
            if payment.status in SETTLED_STATUSES:
                report.paid += 1
            else:
                report.failed += 1
            return
        if payment.provider_ref is None:
            return  # still registering elsewhere: the lease expires and the next tick follows up
        needs_customer = payment.status == PaymentStatus.REQUIRES_ACTION
        link = payment.redirect_url
        now = self._engine.now()
        self._engine.transact(
            record,
            lambda c: db.awaiting(c, payment.id, needs_customer=needs_customer, link=link, now=now, token=token),
            actor=_ACTOR,
        )
        report.awaiting += 1

    def _check_waiting(self, record: Billed, report: BillingReport) -> None:
        """The customer's deadline passed: settle the payment if it moved, else cancel it (a failure)."""
        assert record.payment_id is not None  # noqa: S101 - step() said so
        payment = self._load(record.payment_id)
        if payment.status not in SETTLED_STATUSES and payment.status not in FINAL_STATUSES:
            try:
                payment = self.cancel_payment(payment.id, actor=_ACTOR)
            except InvalidStateError:
                payment = self._load(payment.id)  # it moved on meanwhile
        self._settle_billing(record.id, payment)
        if payment.status in SETTLED_STATUSES:
            report.paid += 1
        elif payment.status in FINAL_STATUSES:
            report.failed += 1

    def _settle_billing(self, record_id: str, payment: Payment, held: Billed | None = None) -> None:
        """Move the record by its payment's outcome; a no-op when already moved (or not its payment).

        ``held``: the record's copy in hand, when the caller has one (a stale one costs a reload).
        """
        record = held if held is not None and held.id == record_id else self._billing(record_id)
        now = self._engine.now()
        build: Callable[[Billed], Change]
        if payment.status in SETTLED_STATUSES:
            build = lambda c: db.paid(c, payment.id, now=now)  # noqa: E731
        elif payment.status in FINAL_STATUSES:
            code = payment.failure_code or payment.status.value
            build = lambda c: db.failed(c, payment.id, code=code, now=now)  # noqa: E731
        else:
            return
        _, change = self._engine.transact(record, build, actor=_ACTOR)
        if change.outcome == "ended" and payment.status in SETTLED_STATUSES:
            log.warning("a period was paid after its record ended", record_id=record_id, payment_id=payment.id)

    def _react_billing(self, reaction: Reaction) -> None:
        """The reactor of ``billing_paid`` and ``billing_failed``: the record follows its payment, once."""
        held = _IN_HAND.get()
        try:
            record = held if held is not None and held.id == reaction.target_id else self._billing(reaction.target_id)
        except NotFoundError:
            log.warning("a period payment names a missing record", payment_id=reaction.payment_id)
            return
        now = self._engine.now()
        if reaction.kind == fx.BILLING_PAID:
            self._engine.transact(record, lambda c: db.paid(c, reaction.payment_id, now=now), actor=_ACTOR)
            return
        if reaction.payment_id != db.current_payment_id(record):
            return  # not the current attempt: nothing to do, and no need to read the payment
        self._settle_billing(record.id, self._load(reaction.payment_id), record)

    def _pay_now(
        self,
        record: Billed,
        payment_method: str | None,
        return_url: str | None,
        cancel_url: str | None,
        actor: Actor | str | None,
    ) -> Payment:
        """The current attempt's payment made with the customer present (a client secret or a link)."""
        invoice = self._period_invoice(record)
        payment_id = db.current_payment_id(record)
        try:
            payment = self.initialize_payment(
                user_id=record.user_id,
                amount=db.charge_amount(record),
                provider=record.provider,
                idempotency_key=db.payment_key(record.id, record.period, record.attempt),
                description=record.description or invoice.number,
                metadata={f"{record.kind}_id": record.id, "billing_period": str(record.period)},
                payment_method=payment_method,
                return_url=return_url or record.return_url,
                cancel_url=cancel_url or record.cancel_url,
                actor=actor,
                invoice_id=invoice.id,
                billing_id=record.id,
            )
        except IdempotencyConflictError:
            payment = self._load(payment_id)  # the tick started this attempt already: follow it
        if payment.status in FINAL_STATUSES:
            raise InvalidStateError("this attempt's payment failed; the next attempt is being scheduled, try again")
        if payment.status not in SETTLED_STATUSES:
            now = self._engine.now()
            link = payment.redirect_url
            self._engine.transact(
                record,
                lambda c: db.awaiting(c, payment.id, needs_customer=False, link=link, now=now, token=None),
                actor=self._actor(actor),
            )
        return payment

    def _billing(self, record_id: str) -> Billed:
        d.check_id(record_id, "id")
        record = self._engine.storage.get_billing(record_id)
        if record is None:
            raise NotFoundError(f"no subscription or installment plan {record_id!r}")
        return record

    def _period_invoice(self, record: Billed, *, likely_new: bool = False) -> Invoice:
        """The OPEN invoice of the record's current period, created once (its id is derived).

        ``likely_new``: the first attempt of a period, on a lease no earlier tick left behind, so
        the invoice almost surely does not exist yet: it is inserted without a read first (the
        unique id still makes a second one a duplicate, then read). Otherwise it is read first,
        so retries and takeovers draw no invoice number they do not use.
        """
        if not likely_new:
            existing = self._engine.storage.get_invoice(_invoice_id(record))
            if existing is not None:
                return existing
        return self._insert_invoice(self._draft_invoice(record))

    def _draft_invoice(self, record: Billed) -> Write:
        """The period's new invoice with its number drawn and its audit entry, not yet stored."""
        amount = db.charge_amount(record)
        now = self._engine.now()
        series = f"{self._invoice_prefix}-{now.year}"
        line = LineItem(description=db.line_description(record), quantity=1, unit_amount=amount)
        invoice = Invoice(
            id=_invoice_id(record),
            number=f"{series}-{self._engine.storage.next_invoice_sequence(series):06d}",
            user_id=record.user_id,
            currency=amount.currency,
            line_items=(line,),
            subtotal=amount,
            tax=Money.zero(amount.currency),
            total=amount,
            status=InvoiceStatus.OPEN,
            metadata={f"{record.kind}_id": record.id, "billing_period": str(record.period)},
            created_at=now,
            updated_at=now,
            sent_at=now,
        )
        return Write(invoice, [fx.invoice_audit(None, invoice, AuditAction.INVOICE_CREATE, actor=_ACTOR, at=now)])

    def _insert_invoice(self, draft: Write) -> Invoice:
        """Store a drafted invoice; the stored one when its id exists already."""
        invoice = draft.record
        assert isinstance(invoice, Invoice)  # noqa: S101 - drafted by _draft_invoice
        try:
            self._engine.storage.insert_invoice(invoice, draft.effects)
        except DuplicateRecordError:
            stored = self._engine.storage.get_invoice(invoice.id)
            if stored is None:
                raise
            return stored
        self._engine.emit(draft.effects)
        return invoice


def _invoice_id(record: Billed) -> str:
    return d.keyed_id("inv", "invoice", db.invoice_key(record))


def _drafted(first: _First) -> Invoice:
    assert isinstance(first.draft.record, Invoice)  # noqa: S101 - drafted by _draft_invoice
    return first.draft.record
