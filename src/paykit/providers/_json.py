r"""Strict JSON for webhook bodies: one parser that refuses what other parsers read differently.

A webhook body is read here before anything acts on it, and in PayPal's API
verification mode it is sent back to PayPal: what paykit reads must be exactly
what the sender signed and what PayPal will check. So a body is refused, with
:class:`WebhookVerificationError`, when it is not UTF-8, not one JSON object,
nested deeper than :data:`MAX_DEPTH`, holds a number that does not fit
(``1e999999``, thousands of digits, ``NaN``), a string with a lone surrogate
(``"\ud800"``, which no UTF-8 encoder can write back), or a key twice (parsers
disagree on which one wins).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Final

from .._errors import WebhookVerificationError

__all__ = ["MAX_DEPTH", "load_object"]

MAX_DEPTH: Final = 64
"""How deeply arrays and objects may nest; provider events use fewer than 10 levels."""
_MAX_NUMBER_CHARS: Final = 64
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
# In UTF-8 text a surrogate can only arrive as a \u escape: without one, no string needs looking at.
_SURROGATE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]", re.ASCII)


class _Refused(ValueError):
    """A value the strict parser will not accept (becomes WebhookVerificationError)."""


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_CHARS:
        raise _Refused("number too long")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > _MAX_NUMBER_CHARS:
        raise _Refused("number too long")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("number out of range")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _Refused("duplicate key")
    return obj


def _check_tree(root: object) -> None:
    """Depth and lone surrogates, iteratively (the tree may be deep)."""
    stack: list[tuple[object, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise _Refused("lone surrogate")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise _Refused("nested too deeply")
        if isinstance(value, dict):
            for key, child in value.items():
                if _SURROGATE.search(key):
                    raise _Refused("lone surrogate")
                stack.append((child, depth + 1))
        else:
            stack.extend((child, depth + 1) for child in value)


_DECODER: Final = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant, object_pairs_hook=_unique_keys
)
"""One decoder, built once: ``json.loads`` with hooks builds a new one per call."""


def load_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse ``body`` as one strict JSON object.

    Args:
        body: The raw request body.
        what: Who sent it, for the error message (``"PayPal webhook"``).

    Raises:
        WebhookVerificationError: Anything the module docstring lists.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookVerificationError(f"{what} body is not UTF-8") from None
    try:
        value = _DECODER.decode(text)
        # The walk is the costly part: skip it when no surrogate escape is present and there are too
        # few arrays and objects to nest past MAX_DEPTH.
        if _SURROGATE_ESCAPE.search(text) or text.count("{") + text.count("[") > MAX_DEPTH:
            _check_tree(value)
    except (ValueError, RecursionError):
        # _Refused is a ValueError, as are json's own errors and int()'s digit limit.
        raise WebhookVerificationError(f"{what} body is not strict JSON") from None
    if not isinstance(value, dict):
        raise WebhookVerificationError(f"{what} body is not a JSON object")
    return value
