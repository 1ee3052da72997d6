"""I/O-free decisions the service makes: ids, fingerprints, effects, status rules.

Kept apart from ``_service.py`` so a future ``AsyncPaymentService`` shares every
decision and only swaps the I/O around them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ._cards import contains_card_number
from ._errors import IdempotencyConflictError, InvalidRequestError
from ._models import (
    AuditAction,
    AuditEntry,
    Invoice,
    Notification,
    NotificationKind,
    Payment,
    PaymentMethod,
)
from ._money import Money
from ._status import PaymentStatus
from .audit import redact
from .storage._base import PageCursor

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
_PAN_RE = re.compile(r"^\d[\d -]{10,22}\d$")


def new_id(prefix: str) -> str:
    """A random, URL-safe id such as ``pay_3f9c...``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def keyed_id(prefix: str, scope: str, key: str) -> str:
    """The id an idempotency key maps to: the same key always names the same record."""
    digest = hashlib.sha256(f"{scope}\x00{key}".encode()).hexdigest()[:24]
    return f"{prefix}_{digest}"


def check_key(key: str | None) -> str | None:
    """Validate an idempotency key (1-255 printable ASCII characters, no spaces)."""
    if key is None:
        return None
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise InvalidRequestError("idempotency_key must be 1-255 printable ASCII characters without spaces")
    return key


def fingerprint(**params: Any) -> str:
    """A stable hash of an operation's parameters, to tell a replay from a conflict."""

    def default(value: Any) -> Any:
        if isinstance(value, Money):
            return [value.minor_units, value.currency]
        if hasattr(value, "model_dump"):
            return value.model_dump(mode="json")
        return str(value)

    blob = json.dumps(params, sort_keys=True, default=default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def check_replay(stored_fingerprint: str, fp: str, what: str) -> None:
    """Raise unless a replayed idempotency key carries the same parameters."""
    if stored_fingerprint != fp:
        raise IdempotencyConflictError(f"idempotency key was already used for a {what} with different parameters")


def check_id(value: object, what: str) -> str:
    """Validate an id or name argument."""
    if not isinstance(value, str) or not value.strip() or len(value) > 255:
        raise InvalidRequestError(f"{what} must be a non-empty string of at most 255 characters")
    return value


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """Metadata is a flat str -> str mapping of at most 50 keys, without card numbers in its values."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidRequestError("metadata must be a mapping of str to str")
    if len(metadata) > 50:
        raise InvalidRequestError("metadata takes at most 50 keys")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str) or len(key) > 40 or len(value) > 500:
            raise InvalidRequestError("metadata keys (<= 40 chars) and values (<= 500 chars) must be str")
        check_free_text(value, f"metadata[{key!r}]")
    return dict(metadata)


def check_positive(amount: object, what: str = "amount") -> Money:
    """``amount`` must be a positive :class:`Money`."""
    if not isinstance(amount, Money):
        raise InvalidRequestError(f"{what} must be a paykit.Money, e.g. Money.of('12.50', 'USD')")
    if amount.minor_units <= 0:
        raise InvalidRequestError(f"{what} must be positive, got {amount}")
    return amount


def looks_like_card_number(token: str) -> bool:
    """Whether ``token`` looks like a raw card number rather than a provider token."""
    return bool(_PAN_RE.match(token.strip()))


def encode_cursor(payment: Payment) -> str:
    """An opaque cursor pointing after ``payment`` in a newest-first listing."""
    raw = json.dumps([payment.created_at.isoformat(), payment.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageCursor:
    """Reverse :func:`encode_cursor`; malformed cursors raise ``InvalidRequestError``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, payment_id = json.loads(raw)
        return PageCursor(created_at=datetime.fromisoformat(created), id=str(payment_id))
    except (ValueError, TypeError) as exc:
        raise InvalidRequestError("cursor is not one paykit returned") from exc


def effect_id(subject_id: str, version: int, name: str) -> str:
    """The id of an audit entry or notification: fixed by the record version that produced it.

    Writing the same version's effects again therefore finds them already stored.
    """
    return f"{subject_id}:v{version}:{name}"


def notification(
    *, user_id: str, subject_id: str, version: int, kind: NotificationKind, payload: Mapping[str, Any], at: datetime
) -> Notification:
    """A notification produced by writing ``version`` of ``subject_id``; its payload is redacted."""
    return Notification(
        id=effect_id(subject_id, version, kind.value),
        user_id=user_id,
        kind=kind,
        subject_id=subject_id,
        payload=redact(payload),
        created_at=at,
        next_attempt_at=at,
    )


def payment_audit(
    before: Payment | None,
    after: Payment,
    action: AuditAction,
    *,
    actor: str,
    at: datetime,
    payload: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """The audit entry for a payment write; its id is fixed by the version written."""
    body: dict[str, Any] = {
        "amount": str(after.amount),
        "provider": after.provider,
        "provider_ref": after.provider_ref,
    }
    body.update(payload or {})
    return AuditEntry(
        id=effect_id(after.id, after.version, action.value),
        action=action,
        subject_type="payment",
        subject_id=after.id,
        payment_id=after.id,
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status.value if before else None,
        status_after=after.status.value,
        payload=redact(body),
    )


def payment_notifications(before: Payment, after: Payment, *, at: datetime) -> list[Notification]:
    """Notifications a payment's status change produces (none when it did not change)."""
    if before.status == after.status:
        return []
    payload: dict[str, Any] = {
        "payment_id": after.id,
        "status_before": before.status.value,
        "status": after.status.value,
        "amount": str(after.amount),
        "provider": after.provider,
    }
    kinds = [NotificationKind.STATUS_CHANGED]
    if after.status == PaymentStatus.SUCCEEDED:
        kinds.append(NotificationKind.PAYMENT_SUCCEEDED)
    elif after.status == PaymentStatus.FAILED:
        kinds.append(NotificationKind.PAYMENT_FAILED)
        payload["failure_code"] = after.failure_code
    safe = redact(payload)
    return [
        notification(user_id=after.user_id, subject_id=after.id, version=after.version, kind=kind, payload=safe, at=at)
        for kind in kinds
    ]


def invoice_audit(
    before: Invoice | None, after: Invoice, action: AuditAction, *, actor: str, at: datetime
) -> AuditEntry:
    """The audit entry for an invoice write."""
    return AuditEntry(
        id=effect_id(after.id, after.version, action.value),
        action=action,
        subject_type="invoice",
        subject_id=after.id,
        payment_id=after.payment_id,
        user_id=after.user_id,
        actor=actor,
        at=at,
        status_before=before.status.value if before else None,
        status_after=after.status.value,
        payload={"number": after.number, "total": str(after.total), "lines": len(after.line_items)},
    )


def invoice_sent(invoice: Invoice, *, at: datetime) -> Notification:
    """The notification that an invoice was sent to its user."""
    return notification(
        user_id=invoice.user_id,
        subject_id=invoice.id,
        version=invoice.version,
        kind=NotificationKind.INVOICE_SENT,
        payload={"invoice_id": invoice.id, "number": invoice.number, "total": str(invoice.total)},
        at=at,
    )


def method_audit(method: PaymentMethod, action: AuditAction, *, actor: str) -> AuditEntry:
    """The audit entry for a saved payment method's write: brand and last 4 digits, never more."""
    return AuditEntry(
        id=effect_id(method.id, method.version, action.value),
        action=action,
        subject_type="payment_method",
        subject_id=method.id,
        user_id=method.user_id,
        actor=actor,
        at=method.updated_at,
        payload={
            "provider": method.provider,
            "brand": method.brand,
            "last4": method.last4,
            "is_default": method.is_default,
        },
    )


def refund_status_after(payment: Payment, refunded_minor: int) -> PaymentStatus:
    """The payment status once ``refunded_minor`` of its capture is refunded."""
    if refunded_minor <= 0:
        return payment.status
    if refunded_minor >= payment.captured_minor:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


def check_free_text(text: str | None, what: str) -> str | None:
    """Refuse free text (description, refund reason, metadata value) that holds a card number.

    Card numbers are redacted from logs and audit entries but would be stored
    verbatim in records: an application that puts one there by mistake gets an
    error instead. See :func:`paykit._cards.contains_card_number` for the rule.

    Raises:
        InvalidRequestError: ``text`` looks like it contains a card number.
    """
    if text is not None and contains_card_number(text):
        raise InvalidRequestError(f"{what} looks like a card number; paykit never stores card numbers")
    return text
