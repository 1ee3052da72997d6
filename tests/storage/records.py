"""Records the storage suites build: pure values, shared by the sync and async contract and the Mongo tests.

Times are whole milliseconds: BSON dates keep no more, and a contract about
equality after a round trip must hold for every backend.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from paykit._models import AuditAction, AuditEntry, Notification, NotificationKind, Payment
from paykit._money import Money

T0 = datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_payment(pid: str = "pay_1", *, user: str = "u1", when: int = 0, **changes: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": pid,
        "user_id": user,
        "provider": "fake",
        "amount": Money.of("12.500", "KWD"),
        "created_at": at(when),
        "updated_at": at(when),
    }
    fields.update(changes)
    return Payment(**fields)


def make_audit(aid: str, subject: str = "pay_1", *, when: int = 0, payment_id: str | None = None) -> AuditEntry:
    return AuditEntry(
        id=aid,
        action=AuditAction.PAYMENT_STATUS_UPDATE,
        subject_type="payment",
        subject_id=subject,
        payment_id=payment_id,
        user_id="u1",
        actor="test",
        at=at(when),
        status_before="pending",
        status_after="succeeded",
        payload={"note": "x", "amount": {"minor_units": 100, "currency": "USD"}},
    )


def make_notification(nid: str, *, user: str = "u1", when: int = 0, due: int = 0) -> Notification:
    return Notification(
        id=nid,
        user_id=user,
        kind=NotificationKind.PAYMENT_SUCCEEDED,
        subject_id="pay_1",
        payload={"payment_id": "pay_1"},
        created_at=at(when),
        next_attempt_at=at(due),
    )


def bump(payment: Payment, **changes: Any) -> Payment:
    return payment.model_copy(update={"version": payment.version + 1, **changes})


def token(notification: Notification) -> str:
    assert notification.claim_token is not None
    return notification.claim_token


def released(notification: Notification, **delivery: Any) -> Notification:
    """The notification with new delivery fields and its claim given up."""
    return notification.model_copy(update={"lease_until": None, "claim_token": None, **delivery})
