"""The values storages exchange with the service; the protocols are in ``_async/protocol.py``.

The Storage protocol (and its async twin) lists every persistent operation paykit needs, each atomic.

Implementations must make each method atomic on its own (a single-document
operation in MongoDB, a lock in memory). Writes that carry ``effects`` promise
that the audit entries, notifications and webhook event records in it become
durable if, and only if, the write itself succeeds: an implementation may store
them with the record (an outbox) and materialize them later, but readers of
effects (:meth:`Storage.list_audit`, :meth:`Storage.claim_notifications`,
:meth:`Storage.list_notifications`, :meth:`Storage.get_refund`,
:meth:`Storage.list_refunds`) must then materialize pending ones first.
Effect ids are deterministic (event records are unique by provider and event
id), so writing one twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .._models import AuditEntry, InstallmentPlan, Invoice, Notification, Payment, Refund, Subscription

__all__ = ["Effect", "KeyClaim", "PageCursor", "PaymentStats", "Reaction", "WebhookEventRecord", "Write"]


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Keyset position in a newest-first payment listing."""

    created_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class WebhookEventRecord:
    """A processed provider event, kept so a redelivery is a no-op.

    Unique by ``(provider, event_id)``: writing it a second time is a no-op.
    """

    provider: str
    event_id: str
    type: str
    outcome: str
    received_at: datetime
    payment_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reaction:
    """A change one record's write asks of another record ("invoice paid").

    It rides in the first record's atomic write, like an audit entry, so a crash
    between the two writes loses nothing: the service applies it right after the
    write and again from ``reconcile()`` until it is marked done. Applying one
    twice changes nothing the second time. The write that applies it carries a
    copy with ``done=True``: stored before or after the pending copy, it wins.
    """

    id: str
    kind: str
    target_id: str
    payment_id: str
    created_at: datetime
    done: bool = False


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """An idempotency key bound to the record it was first used for.

    Unique by ``(scope, key)``: the first claim wins, and a later use of the key
    for another record or other parameters is a conflict.
    """

    scope: str
    key: str
    owner_id: str
    fingerprint: str
    claimed_at: datetime


Effect = AuditEntry | Notification | WebhookEventRecord | Refund | Reaction
"""A side effect written together with a state change.

A :class:`Refund` effect is an upsert: it replaces the stored refund only if its
``version`` is newer, so a refund record always moves with its payment.
"""


@dataclass(frozen=True, slots=True)
class PaymentStats:
    """Aggregates for ``metrics()`` and ``health()``.

    Money figures are integer minor units per currency code, never summed
    across currencies.
    """

    count_by_status: dict[str, int] = field(default_factory=dict)
    captured_by_currency: dict[str, int] = field(default_factory=dict)
    refunded_by_currency: dict[str, int] = field(default_factory=dict)
    created_since: int = 0
    dispute_lost_by_currency: dict[str, int] = field(default_factory=dict)
    """What lost disputes took back, per currency (payments' ``dispute_lost_minor``)."""


@dataclass(frozen=True, slots=True)
class Write:
    """One write of :meth:`~paykit.storage.AsyncStorage.write_batch`.

    A new record when ``expected_version`` is ``None`` (as ``insert_*``), else a
    compare-and-set over that version (as ``update_*``), with its effects.
    """

    record: Payment | Invoice | Subscription | InstallmentPlan
    effects: Sequence[Effect] = ()
    expected_version: int | None = None
