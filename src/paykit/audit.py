"""Audit hooks and redaction.

Every state change paykit makes leaves an :class:`~paykit.AuditEntry` in
storage, written together with the change. Audit hooks let an application copy
those entries elsewhere (a SIEM, a log pipeline); like pymongo's monitoring
listeners, a hook runs off the payment path and its exceptions are logged,
never raised into the operation. :class:`AsyncAuditHook` is the asyncio form,
for the async service; it may be given plain hooks too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeGuard, runtime_checkable

from ._log import get_logger
from ._models import AuditEntry
from ._redact import REDACTED, redact

__all__ = ["REDACTED", "AsyncAuditHook", "AuditHook", "redact"]

log = get_logger(__name__)


@runtime_checkable
class AuditHook(Protocol):
    """Receives every audit entry after it was stored."""

    def __call__(self, entry: AuditEntry) -> None:
        """Handle one entry. Exceptions are logged and swallowed."""
        ...


@runtime_checkable
class AsyncAuditHook(Protocol):
    """Receives every audit entry after it was stored, awaited on the event loop.

    Like :class:`AuditHook`, it runs off the payment path, in a background
    task: the operation never waits for it, and its exceptions are logged and
    swallowed. It must not block the loop; a hook that does blocking I/O should
    be a plain :class:`AuditHook`, which runs on a thread.

    .. versionadded:: 0.1.0
    """

    async def __call__(self, entry: AuditEntry) -> None:
        """Handle one entry. Exceptions are logged and swallowed."""
        ...


def _hook_failed(hook: object, entry: AuditEntry) -> None:
    log.exception("audit hook failed", hook=repr(hook), audit_id=entry.id)


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
                    _hook_failed(hook, entry)

    def close(self, *, wait: bool = True) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait)


def _is_async_hook(hook: object) -> TypeGuard[AsyncAuditHook]:
    # An instance with ``async def __call__`` is not a coroutine function itself; its bound __call__ is.
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__)


class _AsyncHookRunner:
    """Runs audit hooks in one background task, in order, so a slow hook never delays a payment.

    The asyncio twin of :class:`_HookRunner`: async hooks are awaited, plain ones
    run in a thread (``asyncio.to_thread``) so they never block the loop.
    """

    def __init__(self, hooks: Sequence[AsyncAuditHook | Callable[[AuditEntry], None]]) -> None:
        self._hooks = tuple(hooks)
        self._queue: asyncio.Queue[tuple[AuditEntry, ...]] | None = None
        self._worker: asyncio.Task[None] | None = None

    def submit(self, entries: Sequence[AuditEntry]) -> None:
        """Queue entries for the hooks and return at once; call it on the running loop."""
        if not self._hooks or not entries:
            return
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._work(self._queue), name="paykit-audit")
        self._queue.put_nowait(tuple(entries))

    async def _work(self, queue: asyncio.Queue[tuple[AuditEntry, ...]]) -> None:
        while True:
            entries = await queue.get()
            try:
                await self._run(entries)
            finally:
                queue.task_done()

    async def _run(self, entries: tuple[AuditEntry, ...]) -> None:
        for entry in entries:
            for hook in self._hooks:
                try:
                    if _is_async_hook(hook):
                        await hook(entry)
                    else:
                        await asyncio.to_thread(hook, entry)
                except Exception:
                    _hook_failed(hook, entry)

    async def aclose(self) -> None:
        """Wait for every submitted entry to reach every hook, then stop the task."""
        queue, worker = self._queue, self._worker
        self._queue = self._worker = None
        if queue is None or worker is None:
            return
        if not worker.done():
            await queue.join()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
