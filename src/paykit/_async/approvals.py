# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Refund approvals: a second person approves (and so sends), rejects, or lets a held refund expire."""

from __future__ import annotations

from typing import Literal

from .. import _telemetry as telemetry
from .._decisions import approvals as da
from .._decisions import policy as pol
from .._errors import InvalidRequestError, InvalidStateError
from .._log import get_logger
from .._models import Refund, RefundStatus
from ._part import _Part
from .refunds import _refund_in, _Refunds

log = get_logger(__name__)


class _Approvals(_Refunds, _Part):
    async def get_refund(self, refund_id: str) -> Refund:
        """The refund with this id (one awaiting approval past its expiry is expired first).

        Raises:
            NotFoundError: No such refund.
        """
        refund = await super().get_refund(refund_id)
        if da.expired(refund, self._engine.now()):
            return await self._close_held(refund, "expired", decided_by=None)
        return refund

    async def list_refunds_awaiting_approval(self, *, limit: int = 100) -> list[Refund]:
        """Refunds held for approval, oldest first (expired ones are released, not listed).

        Raises:
            InvalidRequestError: A bad limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        return (await self._held_refunds(limit))[0]

    async def _held_refunds(self, limit: int) -> tuple[list[Refund], int]:
        """Refunds still awaiting approval, and how many were found expired and released."""
        now = self._engine.now()
        held = await self._engine.storage.list_refunds_in_status(RefundStatus.AWAITING_APPROVAL, limit=limit)
        waiting = [r for r in held if not da.expired(r, now)]
        for refund in held:
            if da.expired(refund, now):
                await self._close_held(refund, "expired", decided_by=None)
        return waiting, len(held) - len(waiting)

    @telemetry.operation("approve_refund")
    async def approve_refund(
        self, refund_id: str, *, actor: pol.Actor | str, step_up: pol.StepUpProof | None = None
    ) -> Refund:
        """Approve a refund awaiting approval: it is sent to the provider, once.

        The approver must hold the refund's ``approver_role`` and must not be the
        actor who asked for it. Concurrent approvals send it once; the others get
        the refund as it stands. Policies that name ``approve_refund`` are asked
        then (a ``StepUp`` for approvers, say: pass ``step_up``).

        Raises:
            PolicyDeniedError: Self-approval, or the approver lacks the role (audited).
            StepUpRequiredError: A policy asks the approver for a second factor.
            InvalidStateError: The refund was rejected, expired, or needs no approval.
            ProviderError: As :meth:`refund_payment`, once approved.
        """
        refund = await self.get_refund(refund_id)
        who = self._who(actor)
        if refund.status != RefundStatus.AWAITING_APPROVAL:
            if refund.decided_by is not None and refund.status != RefundStatus.CANCELED:
                return refund  # approved already (maybe by a concurrent call): sent once
            raise InvalidStateError(f"refund {refund.id} is {refund.status.value}, not awaiting approval")
        payment = await self._load(refund.payment_id)
        context = pol.PolicyContext(
            operation="approve_refund",
            actor=who,
            user_id=refund.user_id,
            amount=refund.amount,
            provider=refund.provider,
            payment_id=refund.payment_id,
            at=self._engine.now(),
        )
        if who.id == refund.requested_by:
            await self._engine.refuse(context, (("RefundApproval", "a refund cannot be approved by its requester"),))
        role = refund.approver_role or ""
        if not who.has_role(role):
            await self._engine.refuse(context, (("RefundApproval", f"approving needs the role {role!r}"),))
        await self._gate(
            "approve_refund",
            who,
            user_id=refund.user_id,
            amount=refund.amount,
            provider=refund.provider,
            payment_id=refund.payment_id,
            step_up=step_up,
        )
        now = self._engine.now()
        payment, change = await self._engine.transact(
            payment, lambda c: da.approve(c, refund, approver=who.id, now=now), actor=who.id
        )
        if change.outcome == "expired":
            await self._close_held(refund, "expired", decided_by=None)
            raise InvalidStateError(f"refund {refund.id} expired before it was approved")
        if not change.write:
            return await self._after_lost_approval(refund.id)
        approved = _refund_in(change.effects, refund.id)
        log.info("refund approved", refund_id=refund.id, payment_id=payment.id)
        return await self._send_refund(approved, payment, actor=who.id, provider_key=f"paykit-{refund.id}-refund")

    async def _after_lost_approval(self, refund_id: str) -> Refund:
        """The refund after a lost approval race: sent by the winner, or rejected meanwhile."""
        refund = await self.get_refund(refund_id)
        if refund.status == RefundStatus.CANCELED:
            raise InvalidStateError(f"refund {refund.id} was {refund.failure_message or 'canceled'}")
        return refund

    @telemetry.operation("reject_refund")
    async def reject_refund(self, refund_id: str, *, actor: pol.Actor | str, reason: str | None = None) -> Refund:
        """Reject a refund awaiting approval: its amount is released and it is never sent.

        Its requester may withdraw it; anyone else needs its ``approver_role``.

        Raises:
            PolicyDeniedError: The actor may not reject it (audited).
            InvalidStateError: The refund is not awaiting approval.
        """
        refund = await self.get_refund(refund_id)
        who = self._who(actor)
        if refund.status != RefundStatus.AWAITING_APPROVAL:
            raise InvalidStateError(f"refund {refund.id} is {refund.status.value}, not awaiting approval")
        if who.id != refund.requested_by and not who.has_role(refund.approver_role or ""):
            context = pol.PolicyContext(
                operation="reject_refund",
                actor=who,
                user_id=refund.user_id,
                amount=refund.amount,
                provider=refund.provider,
                payment_id=refund.payment_id,
                at=self._engine.now(),
            )
            await self._engine.refuse(
                context, (("RefundApproval", f"rejecting needs the role {refund.approver_role!r}"),)
            )
        closed = await self._close_held(refund, "rejected", decided_by=who.id, reason=reason)
        if closed.status != RefundStatus.CANCELED or closed.decided_by != who.id:
            raise InvalidStateError(f"refund {refund.id} was decided meanwhile: {closed.status.value}")
        return closed

    async def _close_held(
        self,
        refund: Refund,
        outcome: Literal["rejected", "expired"],
        *,
        decided_by: str | None,
        reason: str | None = None,
    ) -> Refund:
        """Release a held refund's amount (rejected or expired), once; return the refund as it ends up."""
        now = self._engine.now()
        payment = await self._load(refund.payment_id)
        _, change = await self._engine.transact(
            payment,
            lambda c: da.close(c, refund, outcome=outcome, decided_by=decided_by, now=now, reason=reason),
            actor=decided_by or self._engine.actor,
        )
        if change.write:
            return _refund_in(change.effects, refund.id)
        stored = await self._engine.storage.get_refund(refund.id)
        return stored or refund
