"""Redaction: what may reach a log line or an audit entry. Pure: no I/O."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["REDACTED", "redact"]

REDACTED: Final = "[REDACTED]"
"""What a redacted value is replaced with."""

_SENSITIVE_KEY = re.compile(
    r"secret|passw|token|authorization|signature|api[_-]?key|cvc|cvv|card[_-]?number|^pan$|"
    r"^number$|trandata|resource[_-]?key|private|credential|^auth$",
    re.IGNORECASE,
)
# 12-19 digits, optionally grouped by spaces or dashes: anything that could be a card number.
_PAN_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")


_PLAIN: Final = frozenset({int, float, bool, type(None)})
"""Exact types that hold nothing to redact (subclasses, such as enums, take the general path)."""

_DROP_DIGITS: Final = str.maketrans("", "", "0123456789")
_DIGITS: Final = b"0123456789"
_DIGIT_MAP: Final = bytes(ord("0") if chr(b).isdigit() and b < 128 else ord("x") for b in range(256))
_TWELVE_DIGITS: Final = b"0" * 12


@functools.lru_cache(maxsize=4096)
def _is_sensitive(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _mask_pans(text: str) -> str:
    # Most strings hold fewer than 12 digits and cannot contain a card number: skip the regex.
    if len(text) < 12:
        return text
    if text.isascii():
        # Counting digits of ASCII text as bytes is several times cheaper than str.translate. A match
        # is 12+ digits apart from single spaces or dashes: without those, 12 digits in a row; mapped
        # as bytes (digits to "0", spaces and dashes dropped), that is one substring test.
        raw = text.encode("ascii")
        if len(raw) - len(raw.translate(None, _DIGITS)) < 12:
            return text
        if _TWELVE_DIGITS not in raw.translate(_DIGIT_MAP, b" -"):
            return text
    elif len(text) - len(text.translate(_DROP_DIGITS)) < 12:
        return text
    return _PAN_LIKE.sub(REDACTED, text)


_SENSITIVE_KEYS: dict[str, bool] = {}
"""``_is_sensitive`` by key, without the cache wrapper's call; payload keys are a small fixed set."""
_MAX_CACHED_KEYS: Final = 4096


def _redact_dict(value: Mapping[Any, Any]) -> dict[str, Any]:
    # The hot path of every audit entry and notification: flat dicts of short strings. Inlined
    # (no call per key or per short value) with the same rules as redact().
    out: dict[str, Any] = {}
    cache = _SENSITIVE_KEYS
    for k, v in value.items():
        key = k if type(k) is str else str(k)
        sensitive = cache.get(key)
        if sensitive is None:
            sensitive = _is_sensitive(key)
            if len(cache) < _MAX_CACHED_KEYS:
                cache[key] = sensitive
        if sensitive:
            out[key] = REDACTED
            continue
        kind = type(v)
        if kind is str:
            out[key] = v if len(v) < 12 else _mask_pans(v)
        elif kind in _PLAIN:
            out[key] = v
        else:
            out[key] = redact(v)
    return out


def redact(value: Any) -> Any:
    """Return a copy of ``value`` safe for logs and audit entries.

    Values under keys that name secrets (``client_secret``, ``api_key``,
    ``signature``, ``card_number``, ``cvc``...) become ``"[REDACTED]"``, and any
    run of 12-19 digits that could be a card number is masked in strings.
    """
    kind = type(value)
    # The exact types a payload is nearly all made of first: an ABC isinstance check costs far more.
    if kind is str:
        return _mask_pans(value)
    if kind in _PLAIN:
        return value
    if kind is dict or isinstance(value, Mapping):
        return _redact_dict(value)
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _mask_pans(value)
    return value
