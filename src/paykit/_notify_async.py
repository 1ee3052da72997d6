"""The asyncio twin of the notification dispatcher, written by hand: tasks cannot be generated from threads.

Every decision comes from :mod:`paykit._decisions.delivery`, as in the threaded
:class:`~paykit.notify.NotificationDispatcher`; only how a call runs differs.
Re-exported from :mod:`paykit.notify`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeGuard

from ._decisions import delivery
from ._log import get_logger
from ._models import Notification
from ._results import DispatchReport

if TYPE_CHECKING:
    from .notify import AsyncNotifier, Notifier
    from .storage._async.protocol import AsyncStorage

log = get_logger("paykit.notify")


def _is_async_notifier(notifier: Notifier | AsyncNotifier) -> TypeGuard[AsyncNotifier]:
    return inspect.iscoroutinefunction(notifier.notify)


class AsyncNotificationDispatcher:
    """Delivers due notifications to notifiers from asyncio, with timeouts, retries and backoff.

    The asyncio twin of :class:`~paykit.notify.NotificationDispatcher`, with the
    same guarantees: fenced claims in small batches sized by the lease, each
    notifier's success saved as soon as it returns, a call past its timeout
    holding the notification one more lease and recording its own late result,
    a busy notifier skipped without counting an attempt, exponential backoff,
    and "dead" after ``max_attempts``. Several dispatchers (tasks, threads or
    processes) can share one storage.

    An :class:`~paykit.notify.AsyncNotifier` is awaited on the loop. A plain
    :class:`~paykit.notify.Notifier` runs on a daemon thread of its own, so a
    blocking or hung one never stalls the loop, and never holds up the loop's
    shutdown either (a hung call in ``asyncio.to_thread`` would: the default
    executor is joined when the loop closes). Either kind of call runs
    shielded from its timeout: the dispatcher stops waiting, the call goes on.

    Args:
        storage: Where the notifications are.
        notifiers: Who receives them: :class:`~paykit.notify.AsyncNotifier` or
            :class:`~paykit.notify.Notifier` objects, mixed freely.
        clock: Returns the current aware datetime.
        timeout: Seconds one notifier call may take before the dispatcher moves on.
        max_attempts: Attempts before a failing notification is given up ("dead"); a round that
            skipped a busy notifier is not counted.
        base_backoff: Delay before the first retry; doubled each attempt, capped at an hour.
        lease: How long a claim holds; by default twice ``timeout`` per notifier, plus 30 seconds.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        storage: AsyncStorage,
        notifiers: Sequence[AsyncNotifier | Notifier],
        *,
        clock: Callable[[], datetime],
        timeout: float = 5.0,
        max_attempts: int = 8,
        base_backoff: timedelta = timedelta(seconds=2),
        lease: timedelta | None = None,
    ) -> None:
        self._storage = storage
        self._notifiers = tuple(notifiers)
        delivery.check_notifiers(self._notifiers)
        self._clock = clock
        self._timeout = timeout
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff
        self._lease = lease or delivery.default_lease(timeout, len(self._notifiers))
        self._batch = delivery.batch_size(self._lease, timeout, len(self._notifiers))
        # A call that outlived its timeout, per notifier: its late result is honored, and the
        # notifier is not called again while it still runs. Only the loop's thread touches it.
        self._in_flight: dict[str, delivery.Call] = {}
        self._calls: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    async def dispatch(self, *, limit: int = 100) -> DispatchReport:
        """Deliver up to ``limit`` due notifications once each; return what happened."""
        states: list[delivery.State] = []
        while len(states) < limit:
            batch = await self._storage.claim_notifications(
                now=self._clock(), lease=self._lease, limit=min(limit - len(states), self._batch)
            )
            if not batch:
                break
            for claimed in batch:
                states.append(await self._dispatch_one(claimed))
        return delivery.report(states)

    async def _dispatch_one(self, claimed: Notification) -> delivery.State:
        """Deliver one claimed notification; return its state afterwards (or ``"lost"``)."""
        token = claimed.claim_token
        if token is None:
            raise TypeError("claim_notifications returned a notification without a claim_token")
        progress = delivery.Round(claimed, token)
        if not await self._hold(progress, claimed.lease_until):
            return "lost"
        remaining = [n for n in self._notifiers if not progress.finished(n.name)]
        running: list[delivery.Call] = []
        for index, notifier in enumerate(remaining):
            outcome = await self._deliver(notifier, claimed)
            if isinstance(outcome, delivery.Call):
                running.append(outcome)
                continue
            progress.record(notifier.name, outcome)
            if (
                outcome.kind == "delivered"
                and index + 1 < len(remaining)
                and not await self._save(progress, keep_claim=True)
            ):
                return "lost"
        if running:
            return await self._wait_for_late_results(progress, running)
        return await self._settle(progress)

    async def _hold(self, progress: delivery.Round, lease_until: datetime | None) -> bool:
        """Make sure the claim has at least half a lease left before a round starts; renew it if not."""
        for _ in range(3):
            if not delivery.needs_renewal(lease_until, self._clock(), self._lease):
                return True
            lease_until = self._clock() + self._lease
            if not await self._save(progress, keep_claim=True, lease_until=lease_until):
                return False
        log.warning("notification lease could not be held", notification_id=progress.notification.id)
        return False

    async def _wait_for_late_results(self, progress: delivery.Round, running: list[delivery.Call]) -> delivery.State:
        """Hold the claim for calls past their timeout; the last one to return settles it."""
        progress.hold_for(running, self._timeout)
        if not await self._save(progress, keep_claim=True):
            return "lost"
        # No await from here on: a call cannot finish between its check and its registration.
        for call in running:
            if call.done:
                progress.take(call)
            else:
                call.progress = progress
                progress.waiting.add(call.notifier_name)
        return await self._settle(progress) if not progress.waiting else "running"

    async def _on_call_done(self, call: delivery.Call) -> None:
        """Runs in the call's own task when a notifier call returns, late or not."""
        call.done = True
        progress = call.progress
        if progress is None:
            return
        progress.take(call)
        progress.waiting.discard(call.notifier_name)
        if progress.waiting:
            return
        try:
            await self._settle(progress)
        except Exception:
            log.exception("saving a late notifier result failed", notification_id=progress.notification.id)

    async def _settle(self, progress: delivery.Round) -> delivery.State:
        """Save the final state of one delivery round and release the claim."""
        state = progress.settle(
            notifier_names=[n.name for n in self._notifiers],
            max_attempts=self._max_attempts,
            base_backoff=self._base_backoff,
            now=self._clock(),
        )
        if state == "dead":
            log.error(
                "notification given up",
                notification_id=progress.notification.id,
                error=progress.notification.last_error,
            )
        return state if await self._save(progress, keep_claim=False) else "lost"

    async def _save(self, progress: delivery.Round, *, keep_claim: bool, lease_until: datetime | None = None) -> bool:
        """Write the delivery state under the claim's token; ``False`` when the claim was lost."""
        changed = progress.saved(keep_claim=keep_claim, lease_until=lease_until or self._clock() + self._lease)
        saved = await self._storage.save_notification_delivery(changed, claim_token=progress.token)
        if not saved:
            log.warning("notification claim lost to another dispatcher", notification_id=progress.notification.id)
        return saved

    async def _deliver(
        self, notifier: AsyncNotifier | Notifier, notification: Notification
    ) -> delivery.Outcome | delivery.Call:
        earlier = self._in_flight.get(notifier.name)
        if earlier is not None and delivery.still_running_for(earlier, notification.id):
            return earlier
        verdict = delivery.verdict_on_earlier_call(earlier, notification.id)
        if earlier is not None and earlier.done:
            del self._in_flight[notifier.name]
        if verdict is not None:
            return verdict
        call = delivery.Call(notifier.name, notification.id)
        task = asyncio.get_running_loop().create_task(
            self._run(call, notifier, notification), name=f"paykit-notify-{notifier.name}"
        )
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
        try:
            # asyncio.wait never cancels what it waits for: past the timeout, the call goes on.
            await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            if not call.done:  # the pass was cancelled: still honor the call's late result here
                self._in_flight[notifier.name] = call
            raise
        if not call.done:
            self._in_flight[notifier.name] = call
            log.warning("notifier timed out", notifier=notifier.name, notification_id=notification.id)
            return call
        if call.error is not None:
            log.warning(
                "notifier failed",
                notifier=notifier.name,
                notification_id=notification.id,
                error=type(call.error).__name__,
            )
        return call.outcome()

    async def _run(self, call: delivery.Call, notifier: AsyncNotifier | Notifier, notification: Notification) -> None:
        try:
            if _is_async_notifier(notifier):
                await notifier.notify(notification)
            else:
                call.error = await _on_daemon_thread(
                    notifier.notify, notification, name=f"paykit-notify-{call.notifier_name}"
                )
        except Exception as exc:
            call.error = exc
        await self._on_call_done(call)

    def start(self, *, interval: float = 1.0) -> None:
        """Dispatch in a background task every ``interval`` seconds until :meth:`stop`.

        Call it from a coroutine: the task runs on the running event loop.
        """
        if self._task is not None and not self._task.done():
            return
        # A new event per start: an asyncio.Event belongs to the loop that first waits on it.
        self._stopping = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._loop(interval, self._stopping), name="paykit-dispatcher"
        )

    async def _loop(self, interval: float, stopping: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await stopping.wait()
            if stopping.is_set():
                return
            try:
                await self.dispatch()
            except Exception:
                log.exception("notification dispatch failed")

    async def stop(self) -> None:
        """Stop the background task, if running, once its current pass is done."""
        task, self._task = self._task, None
        if task is None or self._stopping is None:
            return
        self._stopping.set()
        await task

    async def aclose(self) -> None:
        """Stop the background task; calls still running past their timeout are left to finish on their own."""
        await self.stop()


def _on_daemon_thread(
    function: Callable[[Notification], object], notification: Notification, *, name: str
) -> asyncio.Future[BaseException | None]:
    """Run a blocking call on a new daemon thread; the future resolves to its exception, or ``None``."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[BaseException | None] = loop.create_future()
    context = contextvars.copy_context()  # as asyncio.to_thread does: structlog's bound context goes along

    def resolve(error: BaseException | None) -> None:
        if not future.done():
            future.set_result(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            context.run(function, notification)
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits for this result
            loop.call_soon_threadsafe(resolve, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
