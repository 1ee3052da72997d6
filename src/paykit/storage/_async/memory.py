# Source of the generated sync twin (scripts/unasync.py): edit here.
"""In-memory storage: the whole storage protocol behind one lock, for tests and demos.

Nothing in it waits: the async twin's methods finish without suspending, so the
threading lock is never held across an await.
"""

from __future__ import annotations

import bisect
import secrets
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from ..._errors import DuplicateRecordError
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
from ..._status import SETTLED_STATUSES, DisputeStatus, PaymentStatus
from .._base import Effect, KeyClaim, PageCursor, PaymentStats, Reaction, WebhookEventRecord, Write

if TYPE_CHECKING:
    from .protocol import AsyncStorage

__all__ = ["AsyncMemoryStorage", "write_each"]

_Versioned = TypeVar("_Versioned", Payment, Refund, Invoice, PaymentMethod, Subscription | InstallmentPlan)
_SortKey = tuple[datetime, str]


async def write_each(storage: AsyncStorage, writes: Sequence[Write]) -> int:
    """``write_batch`` as one call per write, through each record's own insert or update method."""
    for made, write in enumerate(writes):
        record, effects, expected = write.record, write.effects, write.expected_version
        if expected is not None:
            if isinstance(record, Payment):
                written = await storage.update_payment(record, expected_version=expected, effects=effects)
            elif isinstance(record, Invoice):
                written = await storage.update_invoice(record, expected_version=expected, effects=effects)
            else:
                written = await storage.update_billing(record, expected_version=expected, effects=effects)
            if not written:
                return made
            continue
        try:
            if isinstance(record, Payment):
                await storage.insert_payment(record, effects)
            elif isinstance(record, Invoice):
                await storage.insert_invoice(record, effects)
            else:
                await storage.insert_billing(record, effects)
        except DuplicateRecordError:
            return made
    return len(writes)


class AsyncMemoryStorage:
    """Thread-safe storage in process memory.

    Every method holds one lock for its whole duration, which gives each call
    the atomicity a database gives a single-document operation. Nothing
    survives the process: use :class:`~paykit.storage.MongoStorage` for that.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._payments: dict[str, Payment] = {}
        self._by_provider_ref: dict[tuple[str, str], str] = {}
        self._by_capture_ref: dict[tuple[str, str], str] = {}
        # Newest-first listings come from these sorted (created_at, id) keys.
        self._all_keys: list[_SortKey] = []
        self._user_keys: defaultdict[str, list[_SortKey]] = defaultdict(list)
        self._refunds: dict[str, Refund] = {}
        self._refunds_by_payment: defaultdict[str, list[str]] = defaultdict(list)
        self._invoices: dict[str, Invoice] = {}
        self._invoice_numbers: set[str] = set()
        self._sequences: defaultdict[str, int] = defaultdict(int)
        self._methods: dict[str, PaymentMethod] = {}
        self._customers: dict[tuple[str, str], str] = {}
        self._audit_ids: set[str] = set()
        self._audit: defaultdict[str, list[AuditEntry]] = defaultdict(list)
        self._events: dict[tuple[str, str], WebhookEventRecord] = {}
        self._notifications: dict[str, Notification] = {}
        self._reactions: dict[str, Reaction] = {}
        self._key_claims: dict[tuple[str, str], KeyClaim] = {}
        self._usage: dict[str, tuple[int, int, datetime]] = {}
        self._preferences: dict[str, NotificationPreferences] = {}
        self._disputes: dict[str, Dispute] = {}
        self._dispute_refs: dict[tuple[str, str], str] = {}
        self._dispute_keys: list[_SortKey] = []
        self._billing: dict[str, Subscription | InstallmentPlan] = {}

    async def ping(self) -> None:
        """Memory is always reachable."""

    # -- effects ------------------------------------------------------------
    def _write_effects(self, effects: Sequence[Effect]) -> None:
        # One pass: each kind goes to its own table, so the order across kinds does not matter.
        for effect in effects:
            if isinstance(effect, AuditEntry):
                self._append_audit((effect,))
            elif isinstance(effect, Notification):
                self._notifications.setdefault(effect.id, effect)
            elif isinstance(effect, WebhookEventRecord):
                self._record_webhook_event(effect)
            elif isinstance(effect, Reaction):
                # A done marker (the write that applied it) wins over the pending copy, in either order.
                if effect.done or effect.id not in self._reactions:
                    self._reactions[effect.id] = effect
            elif isinstance(effect, Refund):
                stored = self._refunds.get(effect.id)
                if stored is None:
                    self._refunds_by_payment[effect.payment_id].append(effect.id)
                if stored is None or stored.version < effect.version:
                    self._refunds[effect.id] = effect

    async def flush_pending_effects(self, *, limit: int = 1000) -> int:
        """Effects are written with their change here, so nothing is ever pending."""
        return 0

    async def list_pending_reactions(self, *, limit: int) -> list[Reaction]:
        """Reactions not yet done, oldest first."""
        with self._lock:
            pending = sorted((r for r in self._reactions.values() if not r.done), key=lambda r: (r.created_at, r.id))
            return pending[:limit]

    async def complete_reaction(self, reaction_id: str) -> None:
        """Mark a reaction done."""
        with self._lock:
            stored = self._reactions.get(reaction_id)
            if stored is not None and not stored.done:
                self._reactions[reaction_id] = replace(stored, done=True)

    async def complete_reactions(self, reaction_ids: Sequence[str]) -> None:
        """Mark several reactions done."""
        for reaction_id in reaction_ids:
            await self.complete_reaction(reaction_id)

    async def claim_key(self, claim: KeyClaim) -> KeyClaim:
        """Store the claim unless its key is claimed; return the stored one."""
        with self._lock:
            return self._key_claims.setdefault((claim.scope, claim.key), claim)

    async def add_usage(
        self,
        key: str,
        *,
        count: int,
        amount_minor: int,
        max_count: int | None,
        max_amount_minor: int | None,
        expires_at: datetime,
    ) -> bool:
        """Add to a usage counter unless a maximum would pass; expired counters are dropped."""
        with self._lock:
            used_count, used_amount, until = self._usage.get(key, (0, 0, expires_at))
            new_count, new_amount = used_count + count, used_amount + amount_minor
            if (max_count is not None and count > 0 and new_count > max_count) or (
                max_amount_minor is not None and amount_minor > 0 and new_amount > max_amount_minor
            ):
                return False
            self._usage[key] = (new_count, new_amount, max(until, expires_at))
            return True

    @staticmethod
    def _cas(table: dict[str, _Versioned], new: _Versioned, expected_version: int) -> bool:
        current = table.get(new.id)
        if current is None or current.version != expected_version:
            return False
        if new.version != expected_version + 1:
            raise ValueError("the new version must be expected_version + 1")
        table[new.id] = new
        return True

    async def write_batch(self, writes: Sequence[Write]) -> int:
        """Each write in order; stops at the first new record that exists or version that moved."""
        return await write_each(self, writes)

    # -- payments -----------------------------------------------------------
    async def insert_payment(self, payment: Payment, effects: Sequence[Effect] = ()) -> None:
        """Insert a new payment."""
        with self._lock:
            if payment.id in self._payments:
                raise DuplicateRecordError(f"payment {payment.id} exists")
            ref_key = (payment.provider, payment.provider_ref) if payment.provider_ref else None
            if ref_key and ref_key in self._by_provider_ref:
                raise DuplicateRecordError(f"provider reference {payment.provider_ref} exists")
            self._payments[payment.id] = payment
            if ref_key:
                self._by_provider_ref[ref_key] = payment.id
            self._index_capture(payment)
            key = (payment.created_at, payment.id)
            bisect.insort(self._all_keys, key)
            bisect.insort(self._user_keys[payment.user_id], key)
            self._write_effects(effects)

    async def get_payment(self, payment_id: str) -> Payment | None:
        """The payment with this id, or ``None``."""
        with self._lock:
            return self._payments.get(payment_id)

    async def find_payment_by_provider_ref(self, provider: str, provider_ref: str) -> Payment | None:
        """The payment a provider knows by ``provider_ref``, or ``None``."""
        with self._lock:
            payment_id = self._by_provider_ref.get((provider, provider_ref))
            return self._payments.get(payment_id) if payment_id else None

    async def find_payment_by_capture_ref(self, provider: str, capture_ref: str) -> Payment | None:
        """The payment whose provider data names this capture, or ``None``."""
        with self._lock:
            payment_id = self._by_capture_ref.get((provider, capture_ref))
            return self._payments.get(payment_id) if payment_id else None

    def _index_capture(self, payment: Payment, before: Payment | None = None) -> None:
        capture = payment.provider_data.get("capture_id")
        previous = before.provider_data.get("capture_id") if before is not None else None
        if previous and previous != capture:
            self._by_capture_ref.pop((payment.provider, previous), None)
        if capture:
            self._by_capture_ref[(payment.provider, capture)] = payment.id

    async def update_payment(self, payment: Payment, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set replace."""
        with self._lock:
            ref_key = (payment.provider, payment.provider_ref) if payment.provider_ref else None
            if ref_key and self._by_provider_ref.get(ref_key, payment.id) != payment.id:
                raise DuplicateRecordError(f"provider reference {payment.provider_ref} exists")
            before = self._payments.get(payment.id)
            if not self._cas(self._payments, payment, expected_version):
                return False
            if ref_key:
                self._by_provider_ref[ref_key] = payment.id
            self._index_capture(payment, before)
            self._write_effects(effects)
            return True

    async def list_payments(
        self,
        *,
        user_id: str | None,
        status: PaymentStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Payment]:
        """Payments newest first, after the cursor."""
        with self._lock:
            keys = self._user_keys.get(user_id, []) if user_id is not None else self._all_keys
            end = bisect.bisect_left(keys, (after.created_at, after.id)) if after else len(keys)
            found: list[Payment] = []
            for index in range(end - 1, -1, -1):
                payment = self._payments[keys[index][1]]
                if status is None or payment.status == status:
                    found.append(payment)
                    if len(found) == limit:
                        break
            return found

    async def list_payments_in_status(
        self, statuses: Iterable[PaymentStatus], *, updated_before: datetime, limit: int
    ) -> list[Payment]:
        """Payments in any of ``statuses`` not updated since ``updated_before``."""
        wanted = set(statuses)
        with self._lock:
            found = [p for p in self._payments.values() if p.status in wanted and p.updated_at < updated_before]
        return sorted(found, key=lambda p: p.updated_at)[:limit]

    async def list_payments_refunding(self, *, updated_before: datetime, limit: int) -> list[Payment]:
        """Payments holding refund reservations, not updated since ``updated_before``."""
        with self._lock:
            found = [p for p in self._payments.values() if p.pending_refunds and p.updated_at < updated_before]
        return sorted(found, key=lambda p: p.updated_at)[:limit]

    # -- refunds ------------------------------------------------------------
    async def insert_refund(self, refund: Refund, effects: Sequence[Effect] = ()) -> None:
        """Insert a new refund."""
        with self._lock:
            if refund.id in self._refunds:
                raise DuplicateRecordError(f"refund {refund.id} exists")
            self._refunds[refund.id] = refund
            self._refunds_by_payment[refund.payment_id].append(refund.id)
            self._write_effects(effects)

    async def get_refund(self, refund_id: str) -> Refund | None:
        """The refund with this id, or ``None``."""
        with self._lock:
            return self._refunds.get(refund_id)

    async def update_refund(self, refund: Refund, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set replace."""
        with self._lock:
            if not self._cas(self._refunds, refund, expected_version):
                return False
            self._write_effects(effects)
            return True

    async def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first."""
        with self._lock:
            return [self._refunds[i] for i in self._refunds_by_payment.get(payment_id, [])]

    async def list_refunds_succeeded_since(self, *, since: datetime, limit: int) -> list[Refund]:
        """Refunds SUCCEEDED whose record changed at or after ``since``, oldest change first."""
        with self._lock:
            found = [r for r in self._refunds.values() if r.status == RefundStatus.SUCCEEDED and r.updated_at >= since]
        return sorted(found, key=lambda r: (r.updated_at, r.id))[: max(limit, 0)]

    async def list_refunds_in_status(self, status: RefundStatus, *, limit: int) -> list[Refund]:
        """Refunds in ``status``, least recently changed first."""
        with self._lock:
            found = [r for r in self._refunds.values() if r.status == status]
        return sorted(found, key=lambda r: (r.updated_at, r.id))[: max(limit, 0)]

    # -- invoices -----------------------------------------------------------
    async def insert_invoice(self, invoice: Invoice, effects: Sequence[Effect] = ()) -> None:
        """Insert a new invoice."""
        with self._lock:
            if invoice.id in self._invoices or invoice.number in self._invoice_numbers:
                raise DuplicateRecordError(f"invoice {invoice.id} ({invoice.number}) exists")
            self._invoices[invoice.id] = invoice
            self._invoice_numbers.add(invoice.number)
            self._write_effects(effects)

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        """The invoice with this id, or ``None``."""
        with self._lock:
            return self._invoices.get(invoice_id)

    async def update_invoice(self, invoice: Invoice, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set replace."""
        with self._lock:
            if not self._cas(self._invoices, invoice, expected_version):
                return False
            self._write_effects(effects)
            return True

    async def next_invoice_sequence(self, series: str) -> int:
        """Allocate the next number in ``series``."""
        with self._lock:
            self._sequences[series] += 1
            return self._sequences[series]

    # -- payment methods ----------------------------------------------------
    async def insert_payment_method(self, method: PaymentMethod, effects: Sequence[Effect] = ()) -> None:
        """Insert a new saved method."""
        with self._lock:
            if method.id in self._methods:
                raise DuplicateRecordError(f"payment method {method.id} exists")
            self._methods[method.id] = method
            self._write_effects(effects)

    async def get_payment_method(self, method_id: str) -> PaymentMethod | None:
        """The saved method with this id, or ``None``."""
        with self._lock:
            return self._methods.get(method_id)

    async def update_payment_method(
        self, method: PaymentMethod, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set replace."""
        with self._lock:
            if not self._cas(self._methods, method, expected_version):
                return False
            self._write_effects(effects)
            return True

    async def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """A user's methods that are not deleted, oldest first."""
        with self._lock:
            methods = [m for m in self._methods.values() if m.user_id == user_id and not m.deleted]
        return sorted(methods, key=lambda m: m.created_at)  # stable: ties keep insertion order

    async def get_customer_ref(self, provider: str, user_id: str) -> str | None:
        """The provider's customer id for this user."""
        with self._lock:
            return self._customers.get((provider, user_id))

    async def set_customer_ref(self, provider: str, user_id: str, customer_ref: str) -> str:
        """Store the customer id unless one exists; return the stored one."""
        with self._lock:
            return self._customers.setdefault((provider, user_id), customer_ref)

    # -- notification preferences ---------------------------------------------
    async def save_notification_preferences(self, preferences: NotificationPreferences) -> None:
        """Store a user's preferences, replacing earlier ones."""
        with self._lock:
            self._preferences[preferences.user_id] = preferences

    async def get_notification_preferences(self, user_id: str) -> NotificationPreferences | None:
        """A user's stored preferences, or ``None``."""
        with self._lock:
            return self._preferences.get(user_id)

    # -- audit --------------------------------------------------------------
    # -- subscriptions and installment plans ----------------------------------
    async def insert_billing(self, record: Subscription | InstallmentPlan, effects: Sequence[Effect] = ()) -> None:
        """Insert a new subscription or installment plan."""
        with self._lock:
            if record.id in self._billing:
                raise DuplicateRecordError(f"{record.kind} {record.id} exists")
            self._billing[record.id] = record
            self._write_effects(effects)

    async def get_billing(self, record_id: str) -> Subscription | InstallmentPlan | None:
        """The subscription or installment plan with this id, or ``None``."""
        with self._lock:
            return self._billing.get(record_id)

    async def update_billing(
        self, record: Subscription | InstallmentPlan, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set replace."""
        with self._lock:
            if not self._cas(self._billing, record, expected_version):
                return False
            self._write_effects(effects)
            return True

    async def list_billing(
        self, *, user_id: str | None, kind: str | None, limit: int
    ) -> list[Subscription | InstallmentPlan]:
        """Records newest first, by user and kind."""
        with self._lock:
            found = [
                r
                for r in self._billing.values()
                if (user_id is None or r.user_id == user_id) and (kind is None or r.kind == kind)
            ]
        found.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return found[: max(limit, 0)]

    async def list_billing_due(self, *, now: datetime, limit: int) -> list[Subscription | InstallmentPlan]:
        """Records due at ``now`` with a free lease, earliest due first."""
        with self._lock:
            due = [
                r
                for r in self._billing.values()
                if r.due_at is not None and r.due_at <= now and (r.lease_until is None or r.lease_until <= now)
            ]
        due.sort(key=lambda r: (r.due_at or now, r.id))
        return due[: max(limit, 0)]

    async def claim_billing_due(
        self, *, now: datetime, lease_until: datetime, token: str, exclude: Sequence[str] = ()
    ) -> tuple[Subscription | InstallmentPlan, datetime | None] | None:
        """Lease the earliest due record with a free lease, under the lock."""
        with self._lock:
            due = [
                r
                for r in self._billing.values()
                if r.due_at is not None
                and r.due_at <= now
                and (r.lease_until is None or r.lease_until <= now)
                and r.id not in exclude
            ]
            if not due:
                return None
            before = min(due, key=lambda r: (r.due_at or now, r.id))
            after = before.model_copy(
                update={
                    "lease_until": lease_until,
                    "lease_token": token,
                    "updated_at": now,
                    "version": before.version + 1,
                }
            )
            self._billing[after.id] = after
            return after, before.lease_until

    async def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries, skipping ids already stored."""
        with self._lock:
            self._append_audit(entries)

    def _append_audit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            if entry.id in self._audit_ids:
                continue
            self._audit_ids.add(entry.id)
            self._audit[entry.subject_id].append(entry)
            if entry.payment_id and entry.payment_id != entry.subject_id:
                self._audit[entry.payment_id].append(entry)

    async def list_audit(self, subject_id: str, *, limit: int) -> list[AuditEntry]:
        """Entries about ``subject_id``, oldest first."""
        with self._lock:
            return list(self._audit.get(subject_id, [])[:limit])

    # -- webhook events -----------------------------------------------------
    async def record_webhook_event(self, record: WebhookEventRecord) -> bool:
        """Record a processed event once."""
        with self._lock:
            return self._record_webhook_event(record)

    def _record_webhook_event(self, record: WebhookEventRecord) -> bool:
        key = (record.provider, record.event_id)
        if key in self._events:
            return False
        self._events[key] = record
        return True

    async def get_webhook_event(self, provider: str, event_id: str) -> WebhookEventRecord | None:
        """The recorded event, or ``None``."""
        with self._lock:
            return self._events.get((provider, event_id))

    # -- notifications ------------------------------------------------------
    async def insert_notifications(self, notifications: Sequence[Notification]) -> None:
        """Insert notifications, skipping ids already stored."""
        with self._lock:
            self._insert_notifications(notifications)

    def _insert_notifications(self, notifications: Sequence[Notification]) -> None:
        for notification in notifications:
            self._notifications.setdefault(notification.id, notification)

    async def claim_notifications(self, *, now: datetime, lease: timedelta, limit: int) -> list[Notification]:
        """Lease due pending notifications, each under a fresh claim token."""
        claimed: list[Notification] = []
        with self._lock:
            for notification in sorted(self._notifications.values(), key=lambda n: (n.next_attempt_at, n.id)):
                if len(claimed) == limit or notification.next_attempt_at > now:
                    break
                if notification.delivery != "pending":
                    continue
                if notification.lease_until is not None and notification.lease_until > now:
                    continue
                leased = notification.model_copy(
                    update={"lease_until": now + lease, "claim_token": secrets.token_urlsafe(16)}
                )
                self._notifications[notification.id] = leased
                claimed.append(leased)
        return claimed

    async def save_notification_delivery(self, notification: Notification, *, claim_token: str) -> bool:
        """Store the delivery fields if ``claim_token`` is still the stored one."""
        with self._lock:
            stored = self._notifications.get(notification.id)
            if stored is None or stored.claim_token != claim_token:
                return False
            delivery_fields = (
                "delivery",
                "attempts",
                "next_attempt_at",
                "lease_until",
                "claim_token",
                "delivered_to",
                "given_up_by",
                "last_error",
            )
            self._notifications[notification.id] = stored.model_copy(
                update={field: getattr(notification, field) for field in delivery_fields}
            )
            return True

    async def list_notifications(self, user_id: str, *, unread_only: bool, limit: int) -> list[Notification]:
        """A user's notifications, newest first."""
        with self._lock:
            found = [n for n in self._notifications.values() if n.user_id == user_id and not (unread_only and n.read)]
        return sorted(found, key=lambda n: (n.created_at, n.id), reverse=True)[:limit]

    async def mark_notification_read(self, notification_id: str) -> bool:
        """Mark as read."""
        with self._lock:
            stored = self._notifications.get(notification_id)
            if stored is None:
                return False
            self._notifications[notification_id] = stored.model_copy(update={"read": True})
            return True

    # -- aggregates ---------------------------------------------------------
    async def payment_stats(self, *, created_since: datetime) -> PaymentStats:
        """Counts and per-currency sums over every payment."""
        counts: dict[str, int] = {}
        captured: dict[str, int] = {}
        refunded: dict[str, int] = {}
        lost: dict[str, int] = {}
        recent = 0
        with self._lock:
            payments = list(self._payments.values())
        for p in payments:
            counts[p.status.value] = counts.get(p.status.value, 0) + 1
            if p.status in SETTLED_STATUSES or p.captured_minor:
                captured[p.currency] = captured.get(p.currency, 0) + p.captured_minor
                refunded[p.currency] = refunded.get(p.currency, 0) + p.refunded_minor
            if p.dispute_lost_minor:
                lost[p.currency] = lost.get(p.currency, 0) + p.dispute_lost_minor
            recent += p.created_at >= created_since
        return PaymentStats(
            count_by_status=counts,
            captured_by_currency=captured,
            refunded_by_currency=refunded,
            created_since=recent,
            dispute_lost_by_currency=lost,
        )

    # -- disputes -------------------------------------------------------------
    async def save_dispute(self, dispute: Dispute) -> bool:
        """Store the dispute unless the stored copy is as new."""
        with self._lock:
            stored = self._disputes.get(dispute.id)
            if stored is not None and stored.version >= dispute.version:
                return False
            if dispute.provider_dispute_id is not None:
                owner = self._dispute_refs.setdefault((dispute.provider, dispute.provider_dispute_id), dispute.id)
                if owner != dispute.id:
                    raise DuplicateRecordError("a dispute with the same provider dispute id exists")
            if stored is None:
                bisect.insort(self._dispute_keys, (dispute.created_at, dispute.id))
            self._disputes[dispute.id] = dispute
            return True

    async def get_dispute(self, dispute_id: str) -> Dispute | None:
        """The dispute with this id, or ``None``."""
        with self._lock:
            return self._disputes.get(dispute_id)

    async def find_dispute_by_provider_ref(self, provider: str, provider_dispute_id: str) -> Dispute | None:
        """The dispute a provider knows by this id, or ``None``."""
        with self._lock:
            dispute_id = self._dispute_refs.get((provider, provider_dispute_id))
            return self._disputes.get(dispute_id) if dispute_id else None

    async def list_disputes(
        self,
        *,
        status: DisputeStatus | None,
        payment_id: str | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Dispute]:
        """Disputes newest first, after the cursor."""
        with self._lock:
            keys = self._dispute_keys
            end = bisect.bisect_left(keys, (after.created_at, after.id)) if after else len(keys)
            found: list[Dispute] = []
            for index in range(end - 1, -1, -1):
                if len(found) >= limit:
                    break
                dispute = self._disputes[keys[index][1]]
                if (status is None or dispute.status == status) and (
                    payment_id is None or dispute.payment_id == payment_id
                ):
                    found.append(dispute)
            return found

    # -- explaining one payment -------------------------------------------------
    async def list_webhook_events(self, payment_id: str, *, limit: int) -> list[WebhookEventRecord]:
        """The provider events recorded about a payment, oldest first."""
        with self._lock:
            found = [r for r in self._events.values() if r.payment_id == payment_id]
        return sorted(found, key=lambda r: r.received_at)[: max(limit, 0)]  # stable: ties keep arrival order

    async def list_notifications_for(self, subject_ids: Sequence[str], *, limit: int) -> list[Notification]:
        """Notifications about any of ``subject_ids``, oldest first."""
        wanted = set(subject_ids)
        with self._lock:
            found = [n for n in self._notifications.values() if n.subject_id in wanted]
        return sorted(found, key=lambda n: (n.created_at, n.id))[: max(limit, 0)]
