"""Async audit hooks: run in a background task, in order, off the payment path, never breaking anything."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from paykit import AuditAction, AuditEntry
from paykit.audit import AsyncAuditHook, AuditHook, _AsyncHookRunner
from paykit.testing import capture_logs


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def entry(audit_id: str) -> AuditEntry:
    return AuditEntry(
        id=audit_id,
        action=AuditAction.PAYMENT_STATUS_UPDATE,
        subject_type="payment",
        subject_id="pay_1",
        actor="test",
        at=datetime(2026, 11, 30, tzinfo=UTC),
    )


class AsyncCollector:
    """An async hook (a callable object) that records entry ids."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, entry: AuditEntry) -> None:
        await asyncio.sleep(0)
        self.seen.append(entry.id)


class TestProtocol:
    """Async callables satisfy AsyncAuditHook."""

    def test_runtime_checkable(self) -> None:
        assert isinstance(AsyncCollector(), AsyncAuditHook)
        assert isinstance(AsyncCollector(), AuditHook)  # structural: both only ask for __call__


class TestRunner:
    """Hooks get every entry once, in order, after submit returned."""

    async def test_async_and_sync_hooks_get_every_entry_in_order(self) -> None:
        """Async hooks (objects and functions) are awaited; sync hooks run on another thread."""
        collector = AsyncCollector()
        functions: list[str] = []
        sync_seen: list[tuple[str, int]] = []

        async def function_hook(entry: AuditEntry) -> None:
            functions.append(entry.id)

        def sync_hook(entry: AuditEntry) -> None:
            sync_seen.append((entry.id, threading.get_ident()))

        runner = _AsyncHookRunner([collector, function_hook, sync_hook])
        runner.submit([entry("a1"), entry("a2")])
        runner.submit([entry("a3")])
        await runner.aclose()

        assert ["a1", "a2", "a3"] == collector.seen == functions == [i for i, _ in sync_seen]
        assert threading.get_ident() not in {ident for _, ident in sync_seen}

    async def test_submit_returns_before_a_slow_hook_runs(self) -> None:
        """The caller (the payment path) never waits for a hook."""
        release = asyncio.Event()
        seen: list[str] = []

        async def slow(entry: AuditEntry) -> None:
            await release.wait()
            seen.append(entry.id)

        runner = _AsyncHookRunner([slow])
        runner.submit([entry("a1")])
        await asyncio.sleep(0.01)

        assert [] == seen
        release.set()
        await runner.aclose()
        assert ["a1"] == seen

    async def test_nothing_to_run_starts_no_task(self) -> None:
        """No hooks, or no entries: submit does nothing."""
        before = len(asyncio.all_tasks())
        _AsyncHookRunner([]).submit([entry("a1")])
        runner = _AsyncHookRunner([AsyncCollector()])
        runner.submit([])

        assert before == len(asyncio.all_tasks())
        await runner.aclose()

    async def test_runner_can_be_used_again_after_aclose(self) -> None:
        """aclose drains the queue; a later submit starts a new task."""
        collector = AsyncCollector()
        runner = _AsyncHookRunner([collector])
        runner.submit([entry("a1")])
        await runner.aclose()
        runner.submit([entry("a2")])
        await runner.aclose()

        assert ["a1", "a2"] == collector.seen


class TestFailingHooks:
    """A hook that raises is logged and never stops the others."""

    async def test_exceptions_are_logged_and_swallowed(self) -> None:
        """Failing async and sync hooks are logged per entry; a healthy hook still sees every entry."""
        collector = AsyncCollector()

        async def broken_async(entry: AuditEntry) -> None:
            raise RuntimeError("siem down")

        def broken_sync(entry: AuditEntry) -> None:
            raise ValueError("bad")

        runner = _AsyncHookRunner([broken_async, broken_sync, collector])
        with capture_logs() as logs:
            runner.submit([entry("a1"), entry("a2")])
            await runner.aclose()

        failures = [(e["audit_id"], e["level"]) for e in logs if e["event"] == "audit hook failed"]
        assert [("a1", "error"), ("a1", "error"), ("a2", "error"), ("a2", "error")] == failures
        assert ["a1", "a2"] == collector.seen
