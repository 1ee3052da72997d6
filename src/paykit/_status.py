"""Payment statuses and the table of legal transitions. Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = [
    "DisputeStatus",
    "PaymentStatus",
    "SubscriptionStatus",
    "can_bill_transition",
    "can_transition",
    "can_transition_dispute",
    "is_dispute_step_back",
    "is_final",
    "predecessors",
]


class PaymentStatus(StrEnum):
    """Where a payment stands. Values are stable strings, safe to store."""

    PENDING = "pending"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    FAILED = "failed"
    CANCELED = "canceled"


_S = PaymentStatus

# The forward path is PENDING -> REQUIRES_ACTION -> PROCESSING -> AUTHORIZED ->
# SUCCEEDED -> PARTIALLY_REFUNDED -> REFUNDED; any step may be skipped, never
# taken backwards. FAILED and CANCELED are exits from every non-captured state.
_TRANSITIONS: Final[dict[PaymentStatus, frozenset[PaymentStatus]]] = {
    _S.PENDING: frozenset({_S.REQUIRES_ACTION, _S.PROCESSING, _S.AUTHORIZED, _S.SUCCEEDED, _S.FAILED, _S.CANCELED}),
    _S.REQUIRES_ACTION: frozenset({_S.PROCESSING, _S.AUTHORIZED, _S.SUCCEEDED, _S.FAILED, _S.CANCELED}),
    _S.PROCESSING: frozenset({_S.AUTHORIZED, _S.SUCCEEDED, _S.FAILED, _S.CANCELED}),
    _S.AUTHORIZED: frozenset({_S.SUCCEEDED, _S.FAILED, _S.CANCELED}),
    _S.SUCCEEDED: frozenset({_S.PARTIALLY_REFUNDED, _S.REFUNDED}),
    _S.PARTIALLY_REFUNDED: frozenset({_S.REFUNDED}),
    _S.REFUNDED: frozenset(),
    _S.FAILED: frozenset(),
    _S.CANCELED: frozenset(),
}

FINAL_STATUSES: Final = frozenset({_S.REFUNDED, _S.FAILED, _S.CANCELED})
"""Statuses a payment never leaves."""

SETTLED_STATUSES: Final = frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED})
"""Statuses in which money was captured."""


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    """Whether a payment in ``current`` may move to ``target``."""
    return target in _TRANSITIONS[current]


def is_final(status: PaymentStatus) -> bool:
    """Whether ``status`` is terminal."""
    return status in FINAL_STATUSES


def predecessors(target: PaymentStatus) -> frozenset[PaymentStatus]:
    """Every status from which ``target`` may be reached in one step."""
    return frozenset(s for s, nexts in _TRANSITIONS.items() if target in nexts)


class DisputeStatus(StrEnum):
    """Where a dispute (chargeback or inquiry) stands. Values are stable strings, safe to store.

    The ``warning_*`` statuses are inquiries (Stripe's early, non-chargeback stage): no money
    has moved yet. ``needs_response`` and ``under_review`` are open chargebacks: the disputed
    amount is held, not refundable. ``won``, ``lost`` and ``warning_closed`` are final.
    """

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"


_D = DisputeStatus

# Inquiries may escalate to chargebacks; nothing leaves a final status. needs_response and
# under_review alternate (PayPal asks the seller, then the buyer, then the seller again): the
# service applies such a step back only for a newer provider event, never for a late one.
_DISPUTE_TRANSITIONS: Final[dict[DisputeStatus, frozenset[DisputeStatus]]] = {
    _D.WARNING_NEEDS_RESPONSE: frozenset(
        {_D.WARNING_UNDER_REVIEW, _D.WARNING_CLOSED, _D.NEEDS_RESPONSE, _D.UNDER_REVIEW, _D.WON, _D.LOST}
    ),
    _D.WARNING_UNDER_REVIEW: frozenset(
        {_D.WARNING_NEEDS_RESPONSE, _D.WARNING_CLOSED, _D.NEEDS_RESPONSE, _D.UNDER_REVIEW, _D.WON, _D.LOST}
    ),
    _D.NEEDS_RESPONSE: frozenset({_D.UNDER_REVIEW, _D.WON, _D.LOST}),
    _D.UNDER_REVIEW: frozenset({_D.NEEDS_RESPONSE, _D.WON, _D.LOST}),
    _D.WARNING_CLOSED: frozenset(),
    _D.WON: frozenset(),
    _D.LOST: frozenset(),
}

DISPUTE_FINAL_STATUSES: Final = frozenset({_D.WARNING_CLOSED, _D.WON, _D.LOST})
"""Statuses a dispute never leaves."""

DISPUTE_HOLDING_STATUSES: Final = frozenset({_D.NEEDS_RESPONSE, _D.UNDER_REVIEW})
"""Open chargeback statuses: the disputed amount is held on the payment, not refundable."""

_DISPUTE_RANK: Final[dict[DisputeStatus, int]] = {
    _D.WARNING_NEEDS_RESPONSE: 0,
    _D.WARNING_UNDER_REVIEW: 1,
    _D.NEEDS_RESPONSE: 2,
    _D.UNDER_REVIEW: 3,
    _D.WARNING_CLOSED: 4,
    _D.WON: 4,
    _D.LOST: 4,
}


def can_transition_dispute(current: DisputeStatus, target: DisputeStatus) -> bool:
    """Whether a dispute in ``current`` may move to ``target``."""
    return target in _DISPUTE_TRANSITIONS[current]


def is_dispute_step_back(current: DisputeStatus, target: DisputeStatus) -> bool:
    """Whether ``current`` -> ``target`` is legal but goes back (applied only for a newer event)."""
    return _DISPUTE_RANK[target] < _DISPUTE_RANK[current]


class SubscriptionStatus(StrEnum):
    """Where a subscription or an installment plan stands. Values are stable strings."""

    TRIALING = "trialing"
    """In its free trial: nothing is charged before the trial ends."""
    ACTIVE = "active"
    """Paid up; the next period is charged when it starts."""
    PAST_DUE = "past_due"
    """A charge failed (or needs the customer): retries follow the dunning schedule."""
    PAUSED = "paused"
    """Not charged until resumed; periods that pass while paused are not charged."""
    CANCELED = "canceled"
    """Ended: by a request, or after the last retry when the schedule ends in cancellation."""
    UNPAID = "unpaid"
    """Every retry failed and the schedule ends in ``unpaid``: kept, no longer charged."""
    COMPLETED = "completed"
    """An installment plan whose installments are all paid (installment plans only)."""


_B = SubscriptionStatus

# Where subscriptions and installment plans may go. CANCELED, UNPAID and COMPLETED are final:
# a customer who comes back after ``unpaid`` starts a new subscription.
_BILLING_TRANSITIONS: Final[dict[SubscriptionStatus, frozenset[SubscriptionStatus]]] = {
    _B.TRIALING: frozenset({_B.ACTIVE, _B.PAST_DUE, _B.PAUSED, _B.CANCELED, _B.UNPAID}),
    _B.ACTIVE: frozenset({_B.PAST_DUE, _B.PAUSED, _B.CANCELED, _B.UNPAID, _B.COMPLETED}),
    _B.PAST_DUE: frozenset({_B.ACTIVE, _B.PAUSED, _B.CANCELED, _B.UNPAID, _B.COMPLETED}),
    _B.PAUSED: frozenset({_B.ACTIVE, _B.PAST_DUE, _B.CANCELED}),
    _B.CANCELED: frozenset(),
    _B.UNPAID: frozenset(),
    _B.COMPLETED: frozenset(),
}

BILLING_FINAL_STATUSES: Final = frozenset({_B.CANCELED, _B.UNPAID, _B.COMPLETED})
"""Subscription and installment plan statuses that are never left."""


def can_bill_transition(current: SubscriptionStatus, target: SubscriptionStatus) -> bool:
    """Whether a subscription or installment plan in ``current`` may move to ``target``."""
    return target in _BILLING_TRANSITIONS[current]
