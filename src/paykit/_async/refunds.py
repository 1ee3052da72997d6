# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Refunds: reserve, send, settle; and when an answer is unclear, look it up before resending."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Final

from .. import _telemetry as telemetry
from .._decisions import approvals as da
from .._decisions import common as d
from .._decisions import payments as dp
from .._decisions import refunds as dr
from .._decisions.change import Change
from .._decisions.policy import Actor, RequireApproval, StepUpProof
from .._errors import (
    InvalidStateError,
    NotFoundError,
    PaykitError,
    ProviderError,
    ProviderUnavailableError,
)
from .._log import get_logger
from .._models import Payment, Refund, RefundStatus
from .._money import Money
from ..providers._async.base import AsyncProvider
from ._part import _Part
from .payments import _Payments

log = get_logger(__name__)

_UNKNOWN_OUTCOME: Final = "the provider gave no clear answer"


class _Refunds(_Payments, _Part):
    @telemetry.operation("refund_payment")
    async def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> Refund:
        """Refund a captured payment, in full (``amount=None``: all that remains) or in part.

        The amount is reserved on the payment with compare-and-set before the
        provider is called, together with the PENDING refund record, so
        concurrent refunds can never exceed the capture and a refund in flight
        is never lost. The provider's answer settles (or releases) it in one
        more write. A refund whose answer is unclear (timeout, 5xx) keeps its
        reservation; before it is ever sent again, paykit looks it up at the
        provider by its id (where the provider can), so it is made at most once.

        Raises:
            InvalidStateError: Nothing captured to refund, ``amount`` above what remains,
                or a provider without refunds.
            InvalidRequestError: A bad amount, currency or reason, or an amount the provider cannot take.
            IdempotencyConflictError: The key was used on another payment or with other parameters.
            ProviderError: The provider refused; the refund is FAILED and the amount released.
                A ``ProviderUnavailableError`` keeps the reservation: retry with the same key,
                or let ``reconcile()`` finish it.
            PolicyDeniedError: A policy refused; nothing was reserved.
            StepUpRequiredError: A policy asks for a second factor (``step_up``).

        A refund a :class:`~paykit.RefundApproval` policy holds is returned
        AWAITING_APPROVAL: reserved, not sent, until :meth:`approve_refund`.
        """
        key = d.check_key(idempotency_key)
        d.check_text(reason, "reason")
        payment = await self._load(payment_id)
        who = actor
        actor = self._actor(actor)
        try:
            adapter = self.provider(payment.provider)
            if not adapter.capabilities.refunds:
                raise InvalidStateError(f"provider {payment.provider!r} does not support refunds")
            if amount is not None:
                d.check_positive(amount)
                dp.same_currency(payment, amount)
                adapter.check_amount(amount)
            fp = d.fingerprint(payment_id=payment_id, amount=amount, reason=reason) if key else ""
            refund_id = d.keyed_id("re", "refund", key) if key else d.new_id("re")
            operation = f"refund:{key}" if key else None
            if key is not None:
                await self._claim_key("refund", key, owner_id=payment.id, fingerprint=fp)
                if operation in payment.operation_keys:
                    telemetry.mark(idempotent_replay=True)
                    return await self._resume_refund(await self.get_refund(refund_id), payment, actor=actor)
            passed = await self._gate(
                "refund_payment",
                who,
                user_id=payment.user_id,
                amount=amount or payment.amount_refundable,
                provider=payment.provider,
                payment_id=payment.id,
                step_up=step_up,
            )
            now = self._engine.now()
            draft = Refund(
                id=refund_id,
                payment_id=payment.id,
                user_id=payment.user_id,
                provider=payment.provider,
                amount=amount or payment.amount_refundable,
                reason=reason,
                idempotency_key=key,
                request_fingerprint=fp,
                created_at=now,
                updated_at=now,
            )
            build = _reservation(
                draft,
                amount=amount,
                operation=operation,
                fingerprint=fp,
                adapter=adapter,
                approval=passed.approval,
                actor=actor,
                now=now,
            )
            del draft  # the reservation holds it now
            try:
                reserved, change = await self._engine.transact(payment, build, actor=actor)
            except PaykitError:
                await self._engine.release_usage(passed.usage)
                raise
        except PaykitError as exc:
            exc.payment_id = exc.payment_id or payment.id
            raise
        if not change.write:
            telemetry.mark(idempotent_replay=True)
            return await self._resume_refund(await self.get_refund(refund_id), reserved, actor=actor)
        refund = _refund_in(change.effects, refund_id)
        # What this frame no longer needs is not kept (for the cyclic collector to walk) while the provider answers.
        del build, change, payment
        if refund.status == RefundStatus.AWAITING_APPROVAL:
            log.info("refund awaiting approval", refund_id=refund.id, payment_id=reserved.id)
            return refund
        return await self._send_refund(refund, reserved, actor=actor, provider_key=f"paykit-{refund.id}-refund")

    async def _send_refund(self, refund: Refund, payment: Payment, *, actor: str, provider_key: str) -> Refund:
        """Ask the provider to make a reserved refund, then settle, release, or keep it unknown."""
        adapter = self.provider(refund.provider)
        try:
            result = await self._engine.call_provider(
                adapter,
                "refund_payment",
                partial(adapter.refund_payment, payment, refund, idempotency_key=provider_key),
                payment_id=payment.id,
            )
        except ProviderError as exc:
            never_sent = exc.should_retry and not adapter.capabilities.idempotent_refunds
            if not never_sent and (exc.should_retry or isinstance(exc, ProviderUnavailableError)):
                # Outcome unknown (a timeout, a 5xx): the refund may be made, so the reservation stays,
                # and a lookup (or, without one, the operator: resolve_refund) comes before any resend.
                raise
            await self._settle(
                refund, payment, RefundStatus.FAILED, actor=actor, failure_message=exc.message, code=exc.code
            )
            raise
        except PaykitError as exc:
            await self._settle(refund, payment, RefundStatus.FAILED, actor=actor, failure_message=exc.message)
            raise
        return await self._settle(
            refund,
            payment,
            result.status,
            actor=actor,
            provider_ref=result.provider_ref,
            failure_message=result.failure_message,
        )

    async def _settle(
        self,
        refund: Refund,
        payment: Payment,
        status: RefundStatus,
        *,
        actor: str,
        provider_ref: str | None = None,
        failure_message: str | None = None,
        code: str | None = None,
        origin: str = "answer",
        abandoned: bool = False,
    ) -> Refund:
        """Write what the provider says of a refund, with its payment, in one compare-and-set."""
        now = self._engine.now()
        _, change = await self._engine.transact(
            payment,
            lambda c: dr.settle(
                c,
                refund,
                status,
                now=now,
                provider_ref=provider_ref,
                failure_message=failure_message,
                code=code,
                origin=origin,
                abandoned=abandoned,
            ),
            actor=actor,
        )
        if change.write:
            return _refund_in(change.effects, refund.id)
        return await self.get_refund(refund.id)

    async def _resume_refund(self, refund: Refund, payment: Payment, *, actor: str) -> Refund:
        """Finish a refund that a replayed key or a crash left behind."""
        if refund.status == RefundStatus.CANCELED and refund.failure_message:
            error = InvalidStateError(f"refund {refund.id} was rejected: {refund.failure_message}")
            error.payment_id = payment.id
            raise error
        if not dr.unanswered(payment, refund):
            return refund  # settled, or the provider has it: its webhook or reconcile() settles it
        return await self._resend_refund(refund, payment, actor=actor)

    async def _resend_refund(self, refund: Refund, payment: Payment, *, actor: str) -> Refund:
        """Send a reserved refund again, only after the provider says it has none under this id.

        The second attempt reuses the first one's provider key, which also covers a
        first request still in flight at the provider. From the third on, providers
        that can look refunds up get a fresh key per attempt, so an error the
        provider replays for a key, or a key it has forgotten, cannot block or
        double the refund; the others are sent the same key again, their own
        idempotency being the only guard.
        """
        adapter = self.provider(refund.provider)
        if refund.attempts > 0 and adapter.capabilities.refund_lookup:
            found = await self._engine.call_provider(
                adapter,
                "find_refund",
                lambda: adapter.find_refund(payment, refund),
                payment_id=payment.id,
                read_only=True,
            )
            if found is not None:
                return await self._settle(
                    refund,
                    payment,
                    found.status,
                    actor=actor,
                    provider_ref=found.provider_ref,
                    failure_message=found.failure_message,
                    origin="lookup",
                )
            if refund.attempts >= dr.MAX_REFUND_ATTEMPTS:
                message = f"not made after {refund.attempts} attempts without a clear answer"
                return await self._settle(
                    refund, payment, RefundStatus.FAILED, actor=actor, failure_message=message, abandoned=True
                )
            provider_key = _lookup_resend_key(refund)
        elif refund.attempts > 0 and not adapter.capabilities.idempotent_refunds:
            error = InvalidStateError(
                f"refund {refund.id}: {_UNKNOWN_OUTCOME}, and {refund.provider!r} can neither look refunds up nor "
                "take a resend safely; check the provider's dashboard, then record it with resolve_refund()"
            )
            error.payment_id = payment.id
            raise error
        elif refund.attempts >= dr.MAX_REFUND_ATTEMPTS:
            error = InvalidStateError(
                f"refund {refund.id}: {_UNKNOWN_OUTCOME} after {refund.attempts} attempts, and "
                f"{refund.provider!r} cannot look refunds up; check the provider's dashboard"
            )
            error.payment_id = payment.id
            raise error
        else:
            provider_key = f"paykit-{refund.id}-refund"
        payment, change = await self._engine.transact(payment, lambda c: dr.retry_attempt(c, refund), actor=actor)
        if not change.write:
            return await self.get_refund(refund.id)
        return await self._send_refund(
            _refund_in(change.effects, refund.id), payment, actor=actor, provider_key=provider_key
        )

    async def resolve_refund(
        self,
        refund_id: str,
        *,
        succeeded: bool,
        provider_ref: str | None = None,
        actor: Actor | str | None = None,
    ) -> Refund:
        """Record the outcome of a refund whose answer was lost, as the provider's dashboard shows it.

        For providers that can neither look refunds up nor take a resend safely
        (KNET), a refund whose answer never came stays pending with its amount
        held: paykit cannot tell whether the money went out. Once someone has
        checked, this settles it: ``succeeded=True`` counts it as refunded,
        ``False`` releases the amount. The decision is audited with its actor.

        Raises:
            NotFoundError: No such refund.
            InvalidStateError: The refund is not waiting for an unclear answer
                (settled, awaiting approval, or known to the provider).

        .. versionadded:: 0.3.0
        """
        refund = await self.get_refund(refund_id)
        payment = await self._load(refund.payment_id)
        if not (dr.unanswered(payment, refund) and refund.attempts > 0):
            error = InvalidStateError(f"refund {refund.id} is {refund.status.value}, not waiting for an unclear answer")
            error.payment_id = payment.id
            raise error
        if provider_ref is not None:
            d.check_id(provider_ref, "provider_ref")
        status = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
        message = None if succeeded else "recorded as not made after the provider gave no clear answer"
        return await self._settle(
            refund,
            payment,
            status,
            actor=self._actor(actor),
            provider_ref=provider_ref,
            failure_message=message,
            origin="resolved",
        )

    async def get_refund(self, refund_id: str) -> Refund:
        """The refund with this id.

        Raises:
            NotFoundError: No such refund.
        """
        d.check_id(refund_id, "refund_id")
        refund = await self._engine.storage.get_refund(refund_id)
        if refund is None:
            raise NotFoundError(f"no refund {refund_id!r}")
        return refund

    async def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first."""
        return await self._engine.storage.list_refunds((await self._load(payment_id)).id)


def _reservation(
    draft: Refund,
    *,
    amount: Money | None,
    operation: str | None,
    fingerprint: str,
    adapter: AsyncProvider,
    approval: RequireApproval | None,
    actor: str,
    now: datetime,
) -> Callable[[Payment], Change]:
    """The ``build`` that reserves ``draft`` on the payment (held for approval when a policy asks).

    Made here rather than in ``refund_payment`` so that method's frame holds no closure cells: they
    would stay alive, for the cyclic garbage collector to walk, while the provider answers.
    """

    def build(c: Payment) -> Change:
        change = dr.reserve(
            c,
            draft,
            amount=amount,
            operation=operation,
            fingerprint=fingerprint,
            partial_refunds=adapter.capabilities.partial_refunds,
            check_amount=adapter.check_amount,
        )
        if approval is None:
            return change
        return da.await_approval(
            c,
            change,
            draft.id,
            requested_by=actor,
            approver_role=approval.approver_role,
            expires_at=now + approval.expires_after,
            reason=approval.reason,
        )

    return build


def _lookup_resend_key(refund: Refund) -> str:
    attempt = refund.attempts + 1
    return f"paykit-{refund.id}-refund" if attempt <= 2 else f"paykit-{refund.id}-refund-{attempt}"


def _refund_in(effects: tuple[object, ...], refund_id: str) -> Refund:
    return next(e for e in effects if isinstance(e, Refund) and e.id == refund_id)
