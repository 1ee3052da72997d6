"""Audit hooks and redaction.

Every state change paykit makes leaves an :class:`~paykit.AuditEntry` in
storage, written together with the change. Audit hooks let an application copy
those entries elsewhere (a SIEM, a log pipeline); like pymongo's monitoring
listeners, a hook runs off the payment path and its exceptions are logged,
never raised into the operation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, runtime_checkable

from ._log import get_logger
from ._models import AuditEntry
from ._redact import REDACTED, redact

__all__ = ["REDACTED", "AuditHook", "redact"]

log = get_logger(__name__)


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


class _AsyncHookRunner:  # STOPGAP: replaced by the async-notify branch
    def __init__(self, hooks: Sequence[Callable[[AuditEntry], None]]) -> None:
        self._hooks = tuple(hooks)

    def submit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            for hook in self._hooks:
                hook(entry)

    async def aclose(self) -> None:
        pass
