# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The payment lifecycle: initialize, confirm, capture, cancel, read, and status updates."""

from __future__ import annotations

import logging
import time
from asyncio import sleep
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from .. import _telemetry as telemetry
from .._decisions import common as d
from .._decisions import payments as dp
from .._decisions.change import Change, skip
from .._decisions.policy import Actor, StepUpProof
from .._errors import (
    DuplicateRecordError,
    InvalidRequestError,
    InvalidStateError,
    NotFoundError,
    PaykitError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
)
from .._log import get_logger
from .._models import AuditAction, CaptureMethod, Payment
from .._money import Money
from .._results import Page
from .._status import PaymentStatus, can_transition
from ..providers._async.base import AsyncProvider
from ..providers._base import CreatePaymentRequest, ProviderPayment
from ..storage._base import Write
from ._part import _Part

log = get_logger(__name__)

_REGISTRATION_WAIT: Final = dp.CALL_LEASE.total_seconds() + 1
"""Seconds a caller waits for another caller's provider registration of the same payment."""

_KNOWN_CUSTOMER: ContextVar[tuple[str, str, str] | None] = ContextVar("paykit_known_customer", default=None)
"""(provider, user id, customer ref) the caller already holds, as billing records do: a read saved.

Per thread or task; a customer ref is stored once per user and provider and never changed."""


@dataclass(slots=True)
class _First:
    """A new record to insert just before the payment, in the same write batch (the billing tick's invoice)."""

    draft: Write
    written: bool = False


_INSERT_FIRST: ContextVar[_First | None] = ContextVar("paykit_insert_first", default=None)
"""Set only where no policy can run (a gate that passed must not run twice when the record exists)."""


class _FirstTaken(Exception):
    """The record to insert before the payment exists already: nothing was written."""


_KNOWN_TOKEN: ContextVar[str | None] = ContextVar("paykit_known_token", default=None)
"""A payment method the caller knows is a provider token, not a saved method's id (billing records
keep it): it is passed on without a read. Saved method ids are generated, so a token never becomes one."""


class _Payments(_Part):
    @telemetry.operation("initialize_payment")
    async def initialize_payment(
        self,
        *,
        user_id: str,
        amount: Money,
        provider: str,
        idempotency_key: str | None = None,
        capture_method: CaptureMethod = "automatic",
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        payment_method: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        actor: Actor | str | None = None,
        invoice_id: str | None = None,
        step_up: StepUpProof | None = None,
        billing_id: str | None = None,
        off_session: bool = False,
    ) -> Payment:
        """Create a payment and register it with its provider.

        The payment is stored as PENDING before the provider is called, with a
        provider idempotency key derived from its id, so a retry with the same
        ``idempotency_key`` (or :meth:`reconcile`) completes it without a second
        charge. Concurrent calls with one key make one provider call: the others
        wait for it (up to its 10 s lease) and return the same payment.

        Args:
            user_id: Your id for the paying user.
            amount: What to charge.
            provider: The name of a configured provider.
            idempotency_key: Replays with the same parameters return the first payment.
            capture_method: ``"manual"`` authorizes now and captures with :meth:`capture_payment`.
            description: Shown by providers that display one.
            metadata: Your own str -> str data, passed to the provider.
            payment_method: A saved method's id or a provider token (``pm_...``).
            return_url: Where redirect-based providers send the payer back.
            cancel_url: Where they send a payer who cancels.
            actor: Who performs the operation (an :class:`Actor` with roles, or an id):
                policies read it, the audit trail keeps it.
            invoice_id: The invoice this payment settles (set by :meth:`pay_invoice`).
            step_up: A second factor, when a policy asks for one.
            billing_id: The subscription or installment plan whose period this payment pays
                (set by the billing tick).
            off_session: Charge the saved ``payment_method`` now, without the customer
                (providers whose capabilities declare ``off_session``).

        Returns:
            The payment, with ``client_secret`` or ``redirect_url`` when the payer must act.

        Raises:
            InvalidRequestError: A bad argument, or an amount or currency the provider does not take
                (checked before anything is stored).
            IdempotencyConflictError: The key was used with other parameters.
            PaymentDeclinedError: The provider declined at creation; the payment is FAILED.
            ProviderError: Any other provider failure; the payment stays PENDING.
            PolicyDeniedError: A policy refused; nothing was stored.
            StepUpRequiredError: A policy asks for a second factor (``step_up``).
        """
        d.check_id(user_id, "user_id")
        d.check_positive(amount)
        key = d.check_key(idempotency_key)
        adapter = self.provider(provider)
        if capture_method not in ("automatic", "manual"):
            raise InvalidRequestError("capture_method must be 'automatic' or 'manual'")
        if capture_method == "manual" and not adapter.capabilities.manual_capture:
            raise InvalidRequestError(f"provider {provider!r} does not support manual capture")
        currencies = adapter.capabilities.currencies
        if currencies is not None and amount.currency not in currencies:
            raise InvalidRequestError(f"provider {provider!r} does not take {amount.currency}")
        adapter.check_amount(amount)
        if off_session and (not adapter.capabilities.off_session or payment_method is None):
            raise InvalidRequestError(f"provider {provider!r} cannot charge without the customer here")
        d.check_text(description, "description")
        meta = d.check_metadata(metadata)
        method_ref = await self._resolve_method(user_id, provider, payment_method)
        params: dict[str, Any] = {
            "user_id": user_id,
            "amount": amount,
            "provider": provider,
            "capture_method": capture_method,
            "description": description,
            "metadata": meta,
            "payment_method": payment_method,
            "return_url": return_url,
            "cancel_url": cancel_url,
            "invoice_id": invoice_id,
        }
        if billing_id is not None:
            params.update(billing_id=billing_id, off_session=off_session)
        # A fingerprint only tells a keyed replay from a conflict: without a key none is needed.
        fp = d.fingerprint(**params) if key else ""
        payment_id = d.keyed_id("pay", "payment", key) if key else d.new_id("pay")
        now = self._engine.now()
        fresh = Payment(
            id=payment_id,
            user_id=user_id,
            provider=provider,
            amount=amount,
            capture_method=capture_method,
            description=description,
            metadata=meta,
            payment_method_ref=method_ref,
            invoice_id=invoice_id,
            billing_id=billing_id,
            off_session=off_session,
            idempotency_key=key,
            request_fingerprint=fp,
            call_lease_until=now + dp.CALL_LEASE,
            created_at=now,
            updated_at=now,
        )
        # A keyed replay is not asked again; the read that tells one is spent only when policies are set.
        replay = bool(key and self._engine.policies) and await self._engine.storage.get_payment(payment_id) is not None
        if not replay:
            operation = "pay_invoice" if invoice_id is not None else "initialize_payment"
            await self._gate(operation, actor, user_id=user_id, amount=amount, provider=provider, step_up=step_up)
        actor = self._actor(actor)
        try:
            await self._insert_payment(fresh)
        except DuplicateRecordError:
            payment = await self._load(payment_id)
            # Without a key this is an id collision, never a replay: the fingerprint made here cannot match.
            _check_replay(payment, fp or d.fingerprint(**params), "payment")
            telemetry.mark(idempotent_replay=True, payment_id=payment.id)
            return await self._ensure_registered(payment, actor=actor, return_url=return_url, cancel_url=cancel_url)
        telemetry.mark(payment_id=payment_id, provider=provider)
        if log.isEnabledFor(logging.INFO):
            log.info("payment initializing", payment_id=payment_id, provider=provider, amount=str(amount))
        return await self._register(fresh, actor=actor, return_url=return_url, cancel_url=cancel_url)

    async def _insert_payment(self, fresh: Payment) -> None:
        """Insert a new payment, after the record a caller asked to insert first in the same batch.

        Raises:
            DuplicateRecordError: The payment exists.
            _FirstTaken: The record to insert first exists: nothing was written.
        """
        first = _INSERT_FIRST.get()
        if first is None:
            await self._engine.storage.insert_payment(fresh)
            return
        made = await self._engine.storage.write_batch([first.draft, Write(fresh)])
        if made == 0:
            raise _FirstTaken
        first.written = True
        self._engine.emit(first.draft.effects)
        if made == 1:
            raise DuplicateRecordError(f"payment {fresh.id} exists")

    async def _ensure_registered(
        self, payment: Payment, *, actor: str, return_url: str | None = None, cancel_url: str | None = None
    ) -> Payment:
        """Register a PENDING payment with its provider once, whoever asks and however often."""
        payment = await self._await_registration(payment)
        if payment.provider_ref is not None or payment.status != PaymentStatus.PENDING:
            return payment
        if dp.lease_active(payment, self._engine.now()):
            return payment  # still in flight elsewhere after the wait: return it as it is
        payment, change = await self._engine.transact(payment, lambda c: dp.lease(c, self._engine.now()))
        if not change.write:
            return await self._await_registration(payment)
        return await self._register(payment, actor=actor, return_url=return_url, cancel_url=cancel_url)

    async def _await_registration(self, payment: Payment) -> Payment:
        """Wait while another caller holds the registration lease; return the payment then."""
        deadline = time.monotonic() + _REGISTRATION_WAIT
        delay = 0.005
        while (
            payment.provider_ref is None
            and payment.status == PaymentStatus.PENDING
            and dp.lease_active(payment, self._engine.now())
            and time.monotonic() < deadline
        ):
            await sleep(delay)
            delay = min(delay * 2, 0.1)
            payment = await self._load(payment.id)
        return payment

    async def _register(
        self, payment: Payment, *, actor: str, return_url: str | None = None, cancel_url: str | None = None
    ) -> Payment:
        """Create the payment at its provider; the caller holds the registration lease."""
        adapter = self.provider(payment.provider)
        request = CreatePaymentRequest(
            payment_id=payment.id,
            user_id=payment.user_id,
            amount=payment.amount,
            capture_method=payment.capture_method,
            idempotency_key=f"paykit-{payment.id}-create",
            description=payment.description,
            metadata=payment.metadata,
            payment_method_ref=payment.payment_method_ref,
            customer_ref=await self._customer_ref(adapter, payment),
            return_url=return_url,
            cancel_url=cancel_url,
            off_session=payment.off_session,
        )
        try:
            result = await self._engine.call_provider(
                adapter, "create_payment", partial(adapter.create_payment, request), payment_id=payment.id
            )
        except (PaymentDeclinedError, ProviderRequestError) as exc:
            # The provider refused this very request: the same request would be refused again.
            await self._fail(payment, exc, AuditAction.PAYMENT_INIT, actor=actor)
            raise
        except PaykitError:
            await self._release_lease(payment)
            raise
        return (await self._engine.transact(payment, partial(_registered, result), actor=actor))[0]

    async def _release_lease(self, payment: Payment) -> None:
        try:
            await self._engine.transact(payment, dp.release_lease)
        except PaykitError as exc:  # the lease then simply expires
            log.warning("could not release a registration lease", payment_id=payment.id, error=type(exc).__name__)

    async def _customer_ref(self, adapter: AsyncProvider, payment: Payment) -> str | None:
        """The user's provider customer, needed only to pay with a method saved on it."""
        if payment.payment_method_ref is None or not adapter.capabilities.saved_payment_methods:
            return None
        known = _KNOWN_CUSTOMER.get()
        if known is not None and known[:2] == (payment.provider, payment.user_id):
            return known[2]  # stored once per user and provider, never changed: no need to read it again
        return await self._engine.storage.get_customer_ref(payment.provider, payment.user_id)

    async def _stored_customer(self, provider: str, user_id: str, payment_method: str | None) -> str | None:
        """The user's stored provider customer, when paying with ``payment_method`` would need it."""
        if payment_method is None or not self.provider(provider).capabilities.saved_payment_methods:
            return None
        return await self._engine.storage.get_customer_ref(provider, user_id)

    async def _fail(self, payment: Payment, exc: ProviderError, action: AuditAction, *, actor: str) -> None:
        """Record a provider refusal as FAILED, attaching the payment id to the error."""
        exc.payment_id = payment.id

        def build(current: Payment) -> Change:
            if not can_transition(current.status, PaymentStatus.FAILED):
                return skip()
            changes = {
                "status": PaymentStatus.FAILED,
                "failure_code": getattr(exc, "decline_code", None) or exc.code,
                "failure_message": exc.message,
                "call_lease_until": None,
            }
            return Change(changes, action=action, payload={"error": exc.code})

        await self._engine.transact(payment, build, actor=actor)

    async def _resolve_method(self, user_id: str, provider: str, payment_method: str | None) -> str | None:
        """A saved method id becomes its provider token; anything else is passed through."""
        if payment_method is None:
            return None
        d.check_id(payment_method, "payment_method")
        if d.looks_like_card_number(payment_method):
            raise InvalidRequestError("pass a provider token or saved method id, never a card number")
        if payment_method == _KNOWN_TOKEN.get():
            return payment_method
        saved = await self._engine.storage.get_payment_method(payment_method)
        if saved is None:
            return payment_method
        if saved.user_id != user_id or saved.deleted or saved.provider != provider:
            raise InvalidRequestError("that saved payment method does not belong to this user and provider")
        return saved.provider_ref

    async def _operation(
        self, payment_id: str, op: str, key: str | None, fp: str, allowed: frozenset[PaymentStatus]
    ) -> tuple[Payment, str | None]:
        """Load a payment for an operation; return it and ``None`` when the key replays it.

        A key is bound to the payment it is first used on: on another payment it is a conflict.
        """
        payment = await self._load(payment_id)
        if key is not None:
            await self._claim_key(f"payment {op}", key, owner_id=payment.id, fingerprint=fp)
            stored = dp.operation_replay(payment, op, key)
            if stored is not None:
                _check_replay_fp(payment, stored, fp, op)
                telemetry.mark(idempotent_replay=True)
                return payment, None
        if payment.status not in allowed:
            error = InvalidStateError(f"cannot {op} a payment that is {payment.status.value}")
            error.payment_id = payment.id
            raise error
        return payment, f"paykit-{payment.id}-{op}-{key or payment.version}"

    async def _apply_result(
        self,
        payment: Payment,
        result: ProviderPayment,
        action: AuditAction,
        *,
        op: str,
        key: str | None,
        fp: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Payment:
        def build(current: Payment) -> Change:
            changes = {**dp.provider_changes(current, result), **(extra or {})}
            if key is not None:
                changes["operation_keys"] = {**current.operation_keys, f"{op}:{key}": fp}
            return Change(changes, action=action)

        return (await self._engine.transact(payment, build, actor=actor))[0]

    async def _call(
        self, payment: Payment, operation: str, call: Callable[[AsyncProvider], Awaitable[ProviderPayment]]
    ) -> ProviderPayment:
        adapter = self.provider(payment.provider)
        return await self._engine.call_provider(adapter, operation, lambda: call(adapter), payment_id=payment.id)

    @telemetry.operation("confirm_payment")
    async def confirm_payment(
        self,
        payment_id: str,
        *,
        payment_method: str | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> Payment:
        """Confirm a payment server-side (with a saved method id or provider token).

        Raises:
            NotFoundError: No such payment.
            InvalidStateError: The payment is past confirmation, or the provider confirms client-side only.
            IdempotencyConflictError: The key was used on another payment or with another method.
            PaymentDeclinedError: Declined; the payment is now FAILED.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint(payment_method=payment_method) if key else ""
        payment, provider_key = await self._operation(payment_id, "confirm", key, fp, dp.CONFIRMABLE)
        if provider_key is None:
            return payment
        who = actor
        actor = self._actor(actor)
        adapter = self.provider(payment.provider)
        if not adapter.capabilities.server_side_confirm:
            error = InvalidStateError(
                f"provider {payment.provider!r} payments are confirmed by the payer (redirect_url)"
            )
            error.payment_id = payment.id
            raise error
        method_ref = await self._resolve_method(payment.user_id, payment.provider, payment_method)
        await self._gate(
            "confirm_payment",
            who,
            user_id=payment.user_id,
            amount=payment.amount,
            provider=payment.provider,
            payment_id=payment.id,
            step_up=step_up,
        )
        payment = await self._ensure_registered(payment, actor=actor)
        if payment.provider_ref is None:
            error = InvalidStateError("the payment is still being registered with its provider; try again")
            error.payment_id = payment.id
            raise error
        try:
            result = await self._engine.call_provider(
                adapter,
                "confirm_payment",
                partial(
                    adapter.confirm_payment,
                    payment,
                    payment_method_ref=method_ref or payment.payment_method_ref,
                    idempotency_key=provider_key,
                ),
                payment_id=payment.id,
            )
        except PaymentDeclinedError as exc:
            await self._fail(payment, exc, AuditAction.PAYMENT_CONFIRM, actor=actor)
            raise
        return await self._apply_result(
            payment, result, AuditAction.PAYMENT_CONFIRM, op="confirm", key=key, fp=fp, actor=actor
        )

    @telemetry.operation("capture_payment")
    async def capture_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> Payment:
        """Capture an AUTHORIZED payment, in full or (``amount``) in part.

        Raises:
            InvalidStateError: The payment is not authorized.
            InvalidRequestError: ``amount`` is above the authorized amount, in another currency,
                or not an amount the provider takes.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint(amount=amount) if key else ""
        payment, provider_key = await self._operation(
            payment_id, "capture", key, fp, frozenset({PaymentStatus.AUTHORIZED})
        )
        if provider_key is None:
            return payment
        adapter = self.provider(payment.provider)
        if amount is not None:
            d.check_positive(amount)
            minor = dp.same_currency(payment, amount)
            if minor > payment.amount.minor_units:
                raise InvalidRequestError(f"cannot capture {amount}: only {payment.amount} was authorized")
            if minor < payment.amount.minor_units and not adapter.capabilities.partial_capture:
                raise InvalidRequestError(f"provider {payment.provider!r} does not support partial capture")
            adapter.check_amount(amount)
        await self._gate(
            "capture_payment",
            actor,
            user_id=payment.user_id,
            amount=amount or payment.amount,
            provider=payment.provider,
            payment_id=payment.id,
            step_up=step_up,
        )
        result = await self._call(
            payment,
            "capture_payment",
            lambda a: a.capture_payment(payment, amount=amount, idempotency_key=provider_key),
        )
        captured = result.amount_captured or amount or payment.amount
        return await self._apply_result(
            payment,
            result,
            AuditAction.PAYMENT_CAPTURE,
            op="capture",
            key=key,
            fp=fp,
            actor=self._actor(actor),
            extra={"captured_minor": dp.same_currency(payment, captured)},
        )

    @telemetry.operation("cancel_payment")
    async def cancel_payment(
        self, payment_id: str, *, idempotency_key: str | None = None, actor: Actor | str | None = None
    ) -> Payment:
        """Cancel a payment that was not captured.

        Raises:
            InvalidStateError: The payment was captured, failed or already canceled.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint() if key else ""
        payment, provider_key = await self._operation(payment_id, "cancel", key, fp, dp.CANCELABLE)
        if provider_key is None:
            return payment
        if payment.provider_ref is None:
            result = ProviderPayment(provider_ref="", status=PaymentStatus.CANCELED)
        else:
            result = await self._call(
                payment, "cancel_payment", lambda a: a.cancel_payment(payment, idempotency_key=provider_key)
            )

        def build(current: Payment) -> Change:
            changes: dict[str, Any] = dp.provider_changes(current, result) if result.provider_ref else {}
            if can_transition(current.status, PaymentStatus.CANCELED):
                changes["status"] = PaymentStatus.CANCELED
            if key is not None:
                changes["operation_keys"] = {**current.operation_keys, f"cancel:{key}": fp}
            return Change(changes, action=AuditAction.PAYMENT_CANCEL)

        return (await self._engine.transact(payment, build, actor=self._actor(actor)))[0]

    async def get_payment(self, payment_id: str) -> Payment:
        """The payment with this id.

        Raises:
            NotFoundError: No such payment.
        """
        return await self._load(payment_id)

    async def list_payments(
        self,
        *,
        user_id: str | None = None,
        status: PaymentStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Payments newest first, ``limit`` per page (1-500), by user and status.

        Raises:
            InvalidRequestError: A bad limit, status or cursor.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        if user_id is not None:
            d.check_id(user_id, "user_id")
        try:
            wanted = PaymentStatus(status) if status is not None else None
        except ValueError:
            raise InvalidRequestError(f"unknown status {status!r}") from None
        after = d.decode_cursor(cursor) if cursor is not None else None
        items = await self._engine.storage.list_payments(user_id=user_id, status=wanted, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=d.encode_cursor(items[-1]) if more else None)

    @telemetry.operation("update_payment_status")
    async def update_payment_status(
        self,
        provider: str,
        provider_ref: str,
        status: PaymentStatus | str,
        *,
        amount_captured: Money | None = None,
        metadata: Mapping[str, str] | None = None,
        actor: Actor | str | None = None,
    ) -> Payment:
        """Move the payment a provider knows as ``provider_ref`` to ``status``.

        The generic updater for applications that learn of changes their own way.
        Repeating the current status is a no-op. Refunds are not status updates: record
        them with :meth:`refund_payment`.

        Args:
            provider: The provider's name.
            provider_ref: The provider's reference of the payment.
            status: The new status (a :class:`PaymentStatus` or its value).
            amount_captured: With SUCCEEDED, what was captured (the whole amount when omitted).
            metadata: Your own str -> str data, merged into the payment's.
            actor: Who performs the operation.

        Raises:
            NotFoundError: No payment has that provider reference.
            InvalidStateError: The transition is not allowed (a payment never moves backwards).
            InvalidRequestError: An unknown status, REFUNDED or PARTIALLY_REFUNDED, or an
                ``amount_captured`` that is not a positive amount of the payment's currency up to
                its amount, or given with another status than SUCCEEDED.
        """
        d.check_id(provider, "provider")
        d.check_id(provider_ref, "provider_ref")
        try:
            target = PaymentStatus(status)
        except ValueError:
            raise InvalidRequestError(f"unknown status {status!r}") from None
        meta = d.check_metadata(metadata)
        payment = await self._engine.storage.find_payment_by_provider_ref(provider, provider_ref)
        if payment is None:
            raise NotFoundError(f"no {provider} payment with reference {provider_ref!r}")
        try:
            return (
                await self._engine.transact(
                    payment,
                    lambda c: dp.status_update(c, target, amount_captured=amount_captured, metadata=meta),
                    actor=self._actor(actor),
                )
            )[0]
        except PaykitError as exc:
            exc.payment_id = exc.payment_id or payment.id
            raise


def _registered(result: ProviderPayment, current: Payment) -> Change:
    """The provider's answer to the payment's creation, written once."""
    if current.provider_ref is not None:
        return skip("duplicate")
    changes = {**dp.provider_changes(current, result), "call_lease_until": None}
    return Change(changes, action=AuditAction.PAYMENT_INIT)


def _check_replay(payment: Payment, fp: str, what: str) -> None:
    _check_replay_fp(payment, payment.request_fingerprint, fp, what)


def _check_replay_fp(payment: Payment, stored: str, fp: str, what: str) -> None:
    try:
        d.check_replay(stored, fp, what)
    except PaykitError as exc:
        exc.payment_id = payment.id
        raise
