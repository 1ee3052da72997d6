"""Payment statuses and the table of legal transitions. Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum
from typing import Final

__all__ = ["PaymentStatus", "can_transition", "is_final", "predecessors"]


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
