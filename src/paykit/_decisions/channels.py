"""Notification channels' pure rules: preferences, who gets what, and what a message says.

Used by :mod:`paykit.channels` (both APIs) and the service's preference methods;
no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final

from .._errors import InvalidRequestError
from .._models import AuditAction, AuditEntry, Notification, NotificationKind, NotificationPreferences
from .._money import Money
from .common import check_id, new_id

CHANNEL_NAME: Final = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOCALE: Final = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
RTL_LOCALES: Final = frozenset({"ar", "fa", "he", "ur"})

STATUS_LABELS: Final[dict[str, dict[str, str]]] = {
    "en": {
        "pending": "pending",
        "requires_action": "waiting for you",
        "processing": "processing",
        "authorized": "authorized",
        "succeeded": "paid",
        "partially_refunded": "partially refunded",
        "refunded": "refunded",
        "failed": "failed",
        "canceled": "canceled",
    },
    "ar": {
        "pending": "قيد الانتظار",
        "requires_action": "بانتظار إجراء منك",
        "processing": "قيد المعالجة",
        "authorized": "مصرّح بها",
        "succeeded": "مدفوعة",
        "partially_refunded": "مستردة جزئيًا",
        "refunded": "مستردة",
        "failed": "فاشلة",
        "canceled": "ملغاة",
    },
}
"""A payment status in words, per language; a language not here reads the English words."""


def check_channel_name(name: object) -> str:
    """A channel name: lower-case letters, digits, ``_`` or ``-``, starting with a letter."""
    if not isinstance(name, str) or not CHANNEL_NAME.match(name):
        raise InvalidRequestError("a channel name is lower-case letters, digits, '_' or '-', at most 32 characters")
    return name


def check_locale(locale: object) -> str:
    """A locale tag such as ``en``, ``ar`` or ``ar-KW``."""
    if not isinstance(locale, str) or not LOCALE.match(locale):
        raise InvalidRequestError("locale must be a language tag such as 'en', 'ar' or 'ar-KW'")
    return locale


def preferences(
    user_id: str,
    *,
    channels: Mapping[NotificationKind | str, Iterable[str]] | None,
    opted_out: bool,
    locale: str | None,
    at: datetime,
) -> NotificationPreferences:
    """Validated preferences to store.

    Raises:
        InvalidRequestError: An unknown notification kind, a bad channel name or locale.
    """
    check_id(user_id, "user_id")
    if not isinstance(opted_out, bool):
        raise InvalidRequestError("opted_out must be True or False")
    by_kind: dict[NotificationKind, tuple[str, ...]] = {}
    for kind, names in (channels or {}).items():
        try:
            known = NotificationKind(kind)
        except ValueError:
            raise InvalidRequestError(f"unknown notification kind {kind!r}") from None
        if isinstance(names, str):
            raise InvalidRequestError("give each kind's channels as a list of names, not one string")
        by_kind[known] = tuple(dict.fromkeys(check_channel_name(name) for name in names))
    return NotificationPreferences(
        user_id=user_id,
        channels=by_kind,
        opted_out=opted_out,
        locale=None if locale is None else check_locale(locale),
        updated_at=at,
    )


def preferences_audit(prefs: NotificationPreferences, *, actor: str) -> AuditEntry:
    """The audit entry of a preference change: which channels, opt-out and locale; never a contact detail."""
    return AuditEntry(
        id=new_id("prefs"),
        action=AuditAction.NOTIFICATION_PREFERENCES_SET,
        subject_type="user",
        subject_id=prefs.user_id,
        user_id=prefs.user_id,
        actor=actor,
        at=prefs.updated_at,
        payload={
            "channels": {kind.value: list(names) for kind, names in prefs.channels.items()},
            "opted_out": prefs.opted_out,
            "locale": prefs.locale,
        },
    )


def wants(prefs: NotificationPreferences | None, kind: NotificationKind, channel: str) -> bool:
    """Whether the user wants this kind of notification on this channel (no preferences: yes)."""
    if prefs is None:
        return True
    if prefs.opted_out:
        return False
    chosen = prefs.channels.get(kind)
    return chosen is None or channel in chosen


def locale_for(prefs: NotificationPreferences | None, *, default: str, available: Iterable[str]) -> str:
    """The user's locale if the channel has templates for it (or for its language), else the default."""
    known = set(available)
    wanted = prefs.locale if prefs is not None else None
    if wanted is not None:
        if wanted in known:
            return wanted
        language = wanted.split("-", 1)[0]
        if language in known:
            return language
    return default


def direction(locale: str) -> str:
    """``"rtl"`` for right-to-left languages (Arabic...), else ``"ltr"``."""
    return "rtl" if locale.split("-", 1)[0] in RTL_LOCALES else "ltr"


def status_label(status: str, locale: str) -> str:
    """A payment status in the locale's words (English words for a language without its own)."""
    labels = STATUS_LABELS.get(locale.split("-", 1)[0], STATUS_LABELS["en"])
    return labels.get(status, STATUS_LABELS["en"].get(status, status.replace("_", " ")))


def _money(value: object) -> Money | None:
    """The ``"12.500 KWD"`` a notification payload carries, as :class:`Money`; ``None`` if absent or unreadable."""
    if not isinstance(value, str):
        return None
    amount, _, currency = value.partition(" ")
    try:
        return Money.of(amount, currency)
    except (InvalidRequestError, ValueError, ArithmeticError):
        return None


def message_context(notification: Notification, *, locale: str) -> dict[str, Any]:
    """What a template sees: the notification's safe facts, the amount in its currency's own decimals."""
    payload = notification.payload
    amount = _money(payload.get("amount")) or _money(payload.get("total"))
    return {
        "kind": notification.kind.value,
        "notification_id": notification.id,
        "user_id": notification.user_id,
        "subject_id": notification.subject_id,
        "created_at": notification.created_at,
        "locale": locale,
        "dir": direction(locale),
        "amount": "" if amount is None else amount.to_decimal_string(),
        "currency": "" if amount is None else amount.currency,
        "payment_id": str(payload.get("payment_id", notification.subject_id)),
        "refund_id": str(payload.get("refund_id", "")),
        "invoice_id": str(payload.get("invoice_id", "")),
        "invoice_number": str(payload.get("number", "")),
        "status": str(payload.get("status", "")),
        "status_label": status_label(str(payload.get("status", "")), locale),
        "status_before": str(payload.get("status_before", "")),
        "failure_code": str(payload.get("failure_code") or ""),
        "provider": str(payload.get("provider", "")),
        "payload": dict(payload),
    }


def sample_notification(kind: NotificationKind, *, at: datetime) -> Notification:
    """A notification of ``kind`` with every field a template may use: templates are checked against it."""
    payload: dict[str, Any] = {
        "payment_id": "pay_sample",
        "refund_id": "re_sample",
        "invoice_id": "inv_sample",
        "number": "INV-2026-000001",
        "amount": "12.500 KWD",
        "total": "12.500 KWD",
        "status": "succeeded",
        "status_before": "processing",
        "failure_code": "card_declined",
        "provider": "knet",
    }
    return Notification(
        id="sample:v1:n",
        user_id="user_sample",
        kind=kind,
        subject_id="pay_sample",
        payload=payload,
        created_at=at,
        next_attempt_at=at,
    )
