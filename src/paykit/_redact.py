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


@functools.lru_cache(maxsize=4096)
def _is_sensitive(key: str) -> bool:
    return _SENSITIVE_KEY.search(key) is not None


def _mask_pans(text: str) -> str:
    # Most strings hold fewer than 12 digits and cannot contain a card number: skip the regex.
    if len(text) - len(text.translate(_DROP_DIGITS)) < 12:
        return text
    return _PAN_LIKE.sub(REDACTED, text)


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
        return {str(k): REDACTED if _is_sensitive(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _mask_pans(value)
    return value
