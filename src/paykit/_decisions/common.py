"""Pure rules every part shares: ids, argument checks, fingerprints, cursors."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .._cards import contains_card_number
from .._errors import IdempotencyConflictError, InvalidRequestError
from .._models import Payment
from .._money import Money
from ..storage._base import PageCursor

_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# paykit's own ids (new_id, keyed_id): 24 hex digits may hold a Luhn-valid run, but they are never card numbers.
_PAYKIT_ID = re.compile(r"\b[a-z]{2,4}_[0-9a-f]{24}\b")
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
        if _holds_card_number(value):
            raise InvalidRequestError(f"metadata[{key!r}] looks like a card number; paykit never stores card numbers")
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


def check_text(value: object, what: str, *, max_length: int = 500) -> str | None:
    """A free-form field: a string of at most ``max_length`` characters, never a card number."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidRequestError(f"{what} must be a string of at most {max_length} characters")
    if _holds_card_number(value):
        raise InvalidRequestError(f"{what} looks like a card number; paykit never stores card numbers")
    return value


def _holds_card_number(text: str) -> bool:
    return contains_card_number(_PAYKIT_ID.sub(" ", text))
