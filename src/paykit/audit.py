"""Audit hooks and redaction.

Every state change paykit makes leaves an :class:`~paykit.AuditEntry` in
storage, written together with the change. Audit hooks let an application copy
those entries elsewhere (a SIEM, a log pipeline); like pymongo's monitoring
listeners, a hook runs off the payment path and its exceptions are logged,
never raised into the operation.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol, runtime_checkable

from ._log import get_logger
from ._models import AuditEntry

__all__ = ["REDACTED", "AuditHook", "redact"]

log = get_logger(__name__)

REDACTED: Final = "[REDACTED]"
"""What a redacted value is replaced with."""

_SENSITIVE_KEY = re.compile(
    r"secret|passw|token|authorization|signature|api[_-]?key|cvc|cvv|card[_-]?number|^pan$|"
    r"^number$|trandata|resource[_-]?key|private|credential|^auth$",
    re.IGNORECASE,
)
# 12-19 digits, optionally grouped by spaces or dashes: anything that could be a card number.
_PAN_LIKE = re.compile(r"(?<!\d)(?:\d[ -]?){11,18}\d(?!\d)")


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
    if isinstance(value, Mapping):
        return {str(k): REDACTED if _is_sensitive(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _mask_pans(value)
    return value


@runtime_checkable
class AuditHook(Protocol):
    """Receives every audit entry after it was stored."""

    def __call__(self, entry: AuditEntry) -> None:
        """Handle one entry. Exceptions are logged and swallowed."""
        ...


class _HookRunner:
    """Runs audit hooks on one background thread, so a slow hook never delays a payment."""

    def __init__(self, hooks: Sequence[Callable[[AuditEntry], None]]) -> None:
        self._hooks = tuple(hooks)
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, entries: Sequence[AuditEntry]) -> None:
        if not self._hooks or not entries:
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paykit-audit")
            self._executor.submit(self._run, tuple(entries))

    def _run(self, entries: tuple[AuditEntry, ...]) -> None:
        for entry in entries:
            for hook in self._hooks:
                try:
                    hook(entry)
                except Exception:
                    log.exception("audit hook failed", hook=repr(hook), audit_id=entry.id)

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)
