"""Pure rules of refund approvals: hold, approve once, reject or expire (releasing the hold) once.

A refund awaiting approval is reserved exactly like a refund in flight (its
amount is in the payment's ``pending_refunds``, so nothing else can refund it),
and listed in ``approval_refunds`` until someone decides. Every decision reads
the payment's own records, in the payment's compare-and-set, so two concurrent
approvals send it once and an approval racing a rejection loses or wins whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from .._models import AuditAction, Payment, Refund, RefundStatus
from .change import Change, skip

__all__ = ["approve", "await_approval", "close", "expired"]


def await_approval(
    current: Payment,
    change: Change,
    refund_id: str,
    *,
    requested_by: str,
    approver_role: str,
    expires_at: datetime,
    reason: str,
) -> Change:
    """Turn a refund reservation (``change``, from ``refunds.reserve``) into a hold for approval.

    The same reservation, with the refund AWAITING_APPROVAL and never sent.
    """
    if not change.write:
        return change
    effects = tuple(
        e.model_copy(
            update={
                "status": RefundStatus.AWAITING_APPROVAL,
                "attempts": 0,
                "requested_by": requested_by,
                "approver_role": approver_role,
                "approval_expires_at": expires_at,
            }
        )
        if isinstance(e, Refund) and e.id == refund_id
        else e
        for e in change.effects
    )
    record = next(e for e in effects if isinstance(e, Refund) and e.id == refund_id)
    updates = {**change.updates, "approval_refunds": {**current.approval_refunds, refund_id: requested_by}}
    payload = {
        "refund_id": refund_id,
        "refund_amount": str(record.amount),
        "outcome": "awaiting_approval",
        "approver_role": approver_role,
        "expires_at": expires_at.isoformat(),
        "reason": reason,
    }
    return Change(updates, AuditAction.REFUND_APPROVAL_REQUESTED, payload, effects, "awaiting_approval")


def expired(refund: Refund, now: datetime) -> bool:
    """A refund awaiting approval past its expiry."""
    return (
        refund.status == RefundStatus.AWAITING_APPROVAL
        and refund.approval_expires_at is not None
        and refund.approval_expires_at <= now
    )


def approve(current: Payment, refund: Refund, *, approver: str, now: datetime) -> Change:
    """Release the hold for sending: the refund becomes PENDING with its first attempt, once."""
    if refund.id not in current.approval_refunds or refund.id not in current.pending_refunds:
        return skip("decided")
    if expired(refund, now):
        return skip("expired")
    record = refund.model_copy(
        update={
            "status": RefundStatus.PENDING,
            "attempts": 1,
            "decided_by": approver,
            "version": current.version + 1,
            "updated_at": now,
        }
    )
    updates = {"approval_refunds": {k: v for k, v in current.approval_refunds.items() if k != refund.id}}
    payload = {
        "refund_id": refund.id,
        "refund_amount": str(record.amount),
        "outcome": "approved",
        "requested_by": refund.requested_by,
    }
    return Change(updates, AuditAction.REFUND_APPROVED, payload, (record,), "approved")


def close(
    current: Payment,
    refund: Refund,
    *,
    outcome: Literal["rejected", "expired"],
    decided_by: str | None,
    now: datetime,
    reason: str | None = None,
) -> Change:
    """Reject or expire a refund awaiting approval: its amount is released, once."""
    if refund.id not in current.approval_refunds:
        return skip("decided")
    if outcome == "expired" and not expired(refund, now):
        return skip("not_expired")
    message = f"rejected by {decided_by}" if outcome == "rejected" else "approval expired"
    if reason:
        message = f"{message}: {reason}"
    record = refund.model_copy(
        update={
            "status": RefundStatus.CANCELED,
            "failure_message": message,
            "decided_by": decided_by,
            "version": current.version + 1,
            "updated_at": now,
        }
    )
    updates: dict[str, Any] = {
        "approval_refunds": {k: v for k, v in current.approval_refunds.items() if k != refund.id},
        "pending_refunds": {k: v for k, v in current.pending_refunds.items() if k != refund.id},
        "closed_refunds": {**current.closed_refunds, refund.id: outcome},
    }
    action = AuditAction.REFUND_REJECTED if outcome == "rejected" else AuditAction.REFUND_APPROVAL_EXPIRED
    payload = {"refund_id": refund.id, "refund_amount": str(record.amount), "outcome": outcome}
    if reason:
        payload["reason"] = reason
    return Change(updates, action, payload, (record,), outcome)
