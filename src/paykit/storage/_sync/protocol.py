# Generated from src/paykit/storage/_async/protocol.py by scripts/unasync.py: do not edit.
"""The storage protocol: every persistent operation paykit needs, each atomic.

Implementations must make each method atomic on its own (a single-document
operation in MongoDB, a lock in memory). Writes that carry ``effects`` promise
that the audit entries, notifications, webhook event records, refund records and
reactions in it become durable if, and only if, the write itself succeeds: an
implementation may store them with the record (an outbox) and materialize them
later, but readers of effects must then materialize pending ones first. Effect
ids are deterministic, so writing one twice is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from ..._models import (
    AuditEntry,
    Dispute,
    InstallmentPlan,
    Invoice,
    Notification,
    NotificationPreferences,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    Subscription,
)
from ..._status import DisputeStatus, PaymentStatus
from .._base import Effect, KeyClaim, PageCursor, PaymentStats, Reaction, WebhookEventRecord, Write

__all__ = ["Storage"]


@runtime_checkable
class Storage(Protocol):
    """What paykit needs from a database. See the module docstring for atomicity."""

    def ping(self) -> None:
        """Raise ``StorageError`` when the backend is unreachable."""
        ...

    # -- payments -----------------------------------------------------------
    def insert_payment(self, payment: Payment, effects: Sequence[Effect] = ()) -> None:
        """Insert a new payment; ``DuplicateRecordError`` when its id exists."""
        ...

    def get_payment(self, payment_id: str) -> Payment | None:
        """The payment with this id, or ``None``."""
        ...

    def find_payment_by_provider_ref(self, provider: str, provider_ref: str) -> Payment | None:
        """The payment a provider knows by ``provider_ref``, or ``None``."""
        ...

    def find_payment_by_capture_ref(self, provider: str, capture_ref: str) -> Payment | None:
        """The payment whose ``provider_data["capture_id"]`` is ``capture_ref`` (PayPal captures), or ``None``."""
        ...

    def update_payment(self, payment: Payment, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Replace the stored payment if its version is still ``expected_version``.

        ``payment.version`` must be ``expected_version + 1``. Returns ``False``
        (writing nothing) when another writer got there first.
        """
        ...

    def list_payments(
        self,
        *,
        user_id: str | None,
        status: PaymentStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Payment]:
        """Payments newest first (``created_at`` then ``id``, descending), after ``after``."""
        ...

    def list_payments_in_status(
        self, statuses: Iterable[PaymentStatus], *, updated_before: datetime, limit: int
    ) -> list[Payment]:
        """Payments in any of ``statuses`` last updated before ``updated_before``."""
        ...

    def list_payments_refunding(self, *, updated_before: datetime, limit: int) -> list[Payment]:
        """Payments holding refund reservations (``pending_refunds``), last updated before a time."""
        ...

    # -- refunds ------------------------------------------------------------
    def insert_refund(self, refund: Refund, effects: Sequence[Effect] = ()) -> None:
        """Insert a new refund; ``DuplicateRecordError`` when its id exists."""
        ...

    def get_refund(self, refund_id: str) -> Refund | None:
        """The refund with this id, or ``None``."""
        ...

    def update_refund(self, refund: Refund, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set replace, as :meth:`update_payment`."""
        ...

    def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first."""
        ...

    def list_refunds_succeeded_since(self, *, since: datetime, limit: int) -> list[Refund]:
        """Refunds SUCCEEDED whose record changed at or after ``since``, oldest change first."""
        ...

    def list_refunds_in_status(self, status: RefundStatus, *, limit: int) -> list[Refund]:
        """Refunds in ``status``, least recently changed first (an index on status, no scan).

        Includes refunds still held in outboxes: materialize pending effects first.

        .. versionadded:: 0.2.0
        """
        ...

    # -- invoices -----------------------------------------------------------
    def insert_invoice(self, invoice: Invoice, effects: Sequence[Effect] = ()) -> None:
        """Insert a new invoice; ``DuplicateRecordError`` when its id or number exists."""
        ...

    def get_invoice(self, invoice_id: str) -> Invoice | None:
        """The invoice with this id, or ``None``."""
        ...

    def update_invoice(self, invoice: Invoice, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set replace, as :meth:`update_payment`."""
        ...

    def next_invoice_sequence(self, series: str) -> int:
        """Atomically allocate the next number (1, 2, ...) in ``series``."""
        ...

    # -- payment methods ----------------------------------------------------
    def insert_payment_method(self, method: PaymentMethod, effects: Sequence[Effect] = ()) -> None:
        """Insert a new saved method; ``DuplicateRecordError`` when its id exists."""
        ...

    def get_payment_method(self, method_id: str) -> PaymentMethod | None:
        """The saved method with this id (deleted ones included), or ``None``."""
        ...

    def update_payment_method(
        self, method: PaymentMethod, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set replace, as :meth:`update_payment`."""
        ...

    def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """A user's methods that are not deleted, oldest first."""
        ...

    def get_customer_ref(self, provider: str, user_id: str) -> str | None:
        """The provider's customer id for this user, if one was stored."""
        ...

    def set_customer_ref(self, provider: str, user_id: str, customer_ref: str) -> str:
        """Store the customer id unless one exists; return the stored one."""
        ...

    # -- subscriptions and installment plans ----------------------------------
    def insert_billing(self, record: Subscription | InstallmentPlan, effects: Sequence[Effect] = ()) -> None:
        """Insert a new subscription or installment plan; ``DuplicateRecordError`` when its id exists."""
        ...

    def get_billing(self, record_id: str) -> Subscription | InstallmentPlan | None:
        """The subscription or installment plan with this id, or ``None``."""
        ...

    def update_billing(
        self, record: Subscription | InstallmentPlan, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set replace, as :meth:`update_payment`."""
        ...

    def list_billing(
        self, *, user_id: str | None, kind: str | None, limit: int
    ) -> list[Subscription | InstallmentPlan]:
        """Subscriptions (``kind="subscription"``) and installment plans (``"installment_plan"``), newest first.

        Sorted by ``created_at`` then ``id``, descending.
        """
        ...

    def list_billing_due(self, *, now: datetime, limit: int) -> list[Subscription | InstallmentPlan]:
        """Records whose ``due_at`` is at or before ``now`` and whose lease is free, earliest due first.

        MongoDB answers it from an index on ``due_at``; records with no due date are not in it.
        """
        ...

    def claim_billing_due(
        self, *, now: datetime, lease_until: datetime, token: str, exclude: Sequence[str] = ()
    ) -> tuple[Subscription | InstallmentPlan, datetime | None] | None:
        """Take the lease of the earliest record ``list_billing_due`` would list, in one atomic write.

        The record gets ``lease_until``, ``lease_token=token``, ``updated_at=now`` and its version
        plus one, as a compare-and-set would write them. Returns it as written with the lease it
        had before (an expired one tells a takeover), or ``None`` when nothing is due and free.
        Records whose ids are in ``exclude`` are skipped.
        """
        ...

    # -- several records --------------------------------------------------------
    def write_batch(self, writes: Sequence[Write]) -> int:
        """Do several writes in order, each atomic on its own, and stop at the first that fails.

        Each write is what its ``insert_*`` or ``update_*`` method would do. A new record
        whose id (or unique field) is taken, or a compare-and-set whose version moved (or
        whose record is missing), stops the batch: nothing after it is written. MongoDB
        sends the batch as one command where the server has one (8.0's ``bulkWrite``);
        the batch is not atomic as a whole.

        Returns:
            How many writes were made: all of them, or the index of the one that stopped.

        Raises:
            DuplicateRecordError: A compare-and-set's new provider reference belongs to another
                payment; the writes before it were made.
        """
        ...

    # -- audit --------------------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries; an entry whose id is already stored is skipped."""
        ...

    def list_audit(self, subject_id: str, *, limit: int) -> list[AuditEntry]:
        """Entries whose ``payment_id`` or ``subject_id`` is ``subject_id``, oldest first."""
        ...

    # -- webhook events -----------------------------------------------------
    def record_webhook_event(self, record: WebhookEventRecord) -> bool:
        """Record a processed event; ``False`` if (provider, event_id) was recorded before."""
        ...

    def get_webhook_event(self, provider: str, event_id: str) -> WebhookEventRecord | None:
        """The recorded event, or ``None``."""
        ...

    # -- notification preferences ---------------------------------------------
    def save_notification_preferences(self, preferences: NotificationPreferences) -> None:
        """Store a user's notification preferences, replacing any stored before (last write wins)."""
        ...

    def get_notification_preferences(self, user_id: str) -> NotificationPreferences | None:
        """A user's stored notification preferences, or ``None`` when none were set."""
        ...

    # -- notifications (outbox) ---------------------------------------------
    def insert_notifications(self, notifications: Sequence[Notification]) -> None:
        """Insert notifications; one whose id is already stored is skipped."""
        ...

    def claim_notifications(self, *, now: datetime, lease: timedelta, limit: int) -> list[Notification]:
        """Lease up to ``limit`` pending notifications due at ``now``, earliest due first.

        Each claim is atomic and stores ``lease_until = now + lease`` and a fresh,
        unguessable ``claim_token``, returned on the notification. A claimed
        notification is not returned again until its lease expires; a claim
        after that stores a new token, which fences the earlier claimant off
        (see :meth:`save_notification_delivery`).
        """
        ...

    def save_notification_delivery(self, notification: Notification, *, claim_token: str) -> bool:
        """Store the delivery fields if the notification is still held under ``claim_token``.

        The delivery fields are ``delivery``, ``attempts``, ``next_attempt_at``,
        ``lease_until``, ``claim_token``, ``delivered_to`` and ``last_error``,
        all taken from ``notification``; nothing else is written (``read`` is
        kept). Keep ``claim_token`` on ``notification`` to record progress and
        go on holding the claim (or extend ``lease_until``); set it and
        ``lease_until`` to ``None`` to release the claim.

        Returns:
            ``True`` if written; ``False`` (writing nothing) when the stored
            token is another one: the lease expired and another dispatcher
            claimed the notification, or the claim was released already.
        """
        ...

    def list_notifications(self, user_id: str, *, unread_only: bool, limit: int) -> list[Notification]:
        """A user's notifications, newest first."""
        ...

    def mark_notification_read(self, notification_id: str) -> bool:
        """Mark as read; ``False`` if no such notification."""
        ...

    def flush_pending_effects(self, *, limit: int = 1000) -> int:
        """Materialize effects still held in outboxes; return how many records were flushed."""
        ...

    # -- reactions and idempotency keys --------------------------------------
    def list_pending_reactions(self, *, limit: int) -> list[Reaction]:
        """Reactions not yet marked done, oldest first (outboxes materialized first)."""
        ...

    def complete_reaction(self, reaction_id: str) -> None:
        """Mark a reaction done; a reaction materialized later stays done."""
        ...

    def complete_reactions(self, reaction_ids: Sequence[str]) -> None:
        """Mark several reactions done in one write (as ``complete_reaction`` does each)."""
        ...

    def claim_key(self, claim: KeyClaim) -> KeyClaim:
        """Store ``claim`` unless ``(scope, key)`` is claimed; return the stored claim."""
        ...

    def add_usage(
        self,
        key: str,
        *,
        count: int,
        amount_minor: int,
        max_count: int | None,
        max_amount_minor: int | None,
        expires_at: datetime,
    ) -> bool:
        """Add to the usage counter ``key`` unless its count or amount would pass a maximum; atomic.

        A counter starts at zero; ``None`` maximums do not limit. Negative values
        give usage back (and always succeed). The counter may be dropped after
        ``expires_at``. Returns whether it was added: concurrent calls never
        take a counter past a maximum.

        .. versionadded:: 0.2.0
        """
        ...

    # -- disputes (copies of the disputes payments embed) -------------------
    def save_dispute(self, dispute: Dispute) -> bool:
        """Store ``dispute`` unless the stored copy's version is as new; return whether it wrote.

        ``DuplicateRecordError`` when another dispute has its ``(provider, provider_dispute_id)``.

        .. versionadded:: 0.3.0
        """
        ...

    def get_dispute(self, dispute_id: str) -> Dispute | None:
        """The dispute with this id, or ``None``.

        .. versionadded:: 0.3.0
        """
        ...

    def find_dispute_by_provider_ref(self, provider: str, provider_dispute_id: str) -> Dispute | None:
        """The dispute a provider knows as ``provider_dispute_id``, or ``None``.

        .. versionadded:: 0.3.0
        """
        ...

    def list_disputes(
        self,
        *,
        status: DisputeStatus | None,
        payment_id: str | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Dispute]:
        """Disputes newest first (``created_at`` then ``id``, descending), after ``after``.

        .. versionadded:: 0.3.0
        """
        ...

    # -- aggregates ---------------------------------------------------------
    def payment_stats(self, *, created_since: datetime) -> PaymentStats:
        """Counts per status, money per currency, and payments created since a time."""
        ...

    # -- explaining one payment -------------------------------------------------
    def list_webhook_events(self, payment_id: str, *, limit: int) -> list[WebhookEventRecord]:
        """The provider events recorded about a payment, oldest first (``received_at``).

        Includes records still held in outboxes: materialize pending effects first.

        .. versionadded:: 0.2.0
        """
        ...

    def list_notifications_for(self, subject_ids: Sequence[str], *, limit: int) -> list[Notification]:
        """Notifications whose ``subject_id`` is one of ``subject_ids``, oldest first (``created_at``, id).

        Includes notifications still held in outboxes: materialize pending effects first.

        .. versionadded:: 0.2.0
        """
        ...
