"""A tiny async service stand-in, until ``AsyncPaymentService`` lands: enough for webhooks and routes.

It applies an event by remembering its id (applied once, duplicate after), on
``AsyncMemoryStorage``; its sync twin does the same on ``MemoryStorage``, so
``handle_webhook`` and ``ahandle_webhook`` can be asked the same questions. The
adapters verify with the real ``FakeProvider`` and can rewrite the event (a
delivery id, a reply body) or fail.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from paykit import (
    AuditEntry,
    HealthReport,
    InvalidRequestError,
    MetricsReport,
    NotFoundError,
    PaykitError,
    Payment,
    WebhookEvent,
    WebhookOutcome,
)
from paykit.storage import AsyncMemoryStorage, MemoryStorage, WebhookEventRecord
from paykit.testing import FakeProvider, ManualClock

Rewrite = Callable[[WebhookEvent], WebhookEvent]


class _Adapter:
    def __init__(self, fake: FakeProvider, rewrite: Rewrite | None = None, fail_with: Exception | None = None) -> None:
        self.name = fake.name
        self.fake = fake
        self.rewrite = rewrite
        self.fail_with = fail_with


class AsyncFakeAdapter(_Adapter):
    """An async adapter that verifies like ``FakeProvider`` and may rewrite or refuse the event."""

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return _parse(self, body, headers)


class SyncFakeAdapter(_Adapter):
    """The same adapter, sync, for ``handle_webhook``."""

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return _parse(self, body, headers)


def _parse(adapter: _Adapter, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    event = adapter.fake.parse_webhook(body, headers)
    if adapter.fail_with is not None:
        raise adapter.fail_with
    return adapter.rewrite(event) if adapter.rewrite is not None else event


class _Base:
    def __init__(self, adapter: _Adapter, clock: ManualClock, fail_with: Exception | None) -> None:
        self.adapter = adapter
        self.clock = clock
        self.fail_with = fail_with
        self.applied: list[str] = []

    def now(self) -> datetime:
        return self.clock()

    def provider(self, name: str) -> _Adapter:
        if name != self.adapter.name:
            raise InvalidRequestError(f"unknown provider {name!r}")
        return self.adapter

    def _record(self, event: WebhookEvent) -> WebhookEventRecord:
        if self.fail_with is not None:
            raise self.fail_with
        return WebhookEventRecord(
            provider=event.provider, event_id=event.event_id, type=event.type, outcome="applied", received_at=self.now()
        )


class StandInAsyncService(_Base):
    """The async stand-in: ``async def apply_webhook_event`` and the routes' reads, on AsyncMemoryStorage."""

    def __init__(
        self,
        adapter: _Adapter,
        clock: ManualClock,
        *,
        storage: AsyncMemoryStorage | None = None,
        fail_with: Exception | None = None,
    ) -> None:
        super().__init__(adapter, clock, fail_with)
        self.storage = storage if storage is not None else AsyncMemoryStorage()

    async def apply_webhook_event(self, event: WebhookEvent) -> WebhookOutcome:
        if not await self.storage.record_webhook_event(self._record(event)):
            return WebhookOutcome.DUPLICATE
        self.applied.append(event.event_id)
        return WebhookOutcome.APPLIED

    async def health(self) -> HealthReport:
        try:
            await self.storage.ping()
            state = "ok"
        except PaykitError as exc:
            state = f"unreachable: {type(exc).__name__}"
        return HealthReport(
            ok=state == "ok",
            storage=state,
            payments_last_24h=None,
            providers=[self.adapter.name],
            checked_at=self.now(),
        )

    async def get_payment(self, payment_id: str) -> Payment:
        payment = await self.storage.get_payment(payment_id)
        if payment is None:
            raise NotFoundError(f"no payment {payment_id!r}")
        return payment

    async def audit_trail(self, payment_id: str) -> list[AuditEntry]:
        return await self.storage.list_audit(payment_id, limit=1000)

    async def metrics(self) -> MetricsReport:
        await self.storage.ping()
        return MetricsReport(
            count_by_status={},
            revenue_by_currency={},
            refunds_by_currency={},
            net_by_currency={},
            pending=0,
            total=len(self.applied),
        )


class StandInSyncService(_Base):
    """The sync twin of the stand-in, for ``handle_webhook``."""

    def __init__(
        self,
        adapter: _Adapter,
        clock: ManualClock,
        *,
        storage: MemoryStorage | None = None,
        fail_with: Exception | None = None,
    ) -> None:
        super().__init__(adapter, clock, fail_with)
        self.storage = storage if storage is not None else MemoryStorage()

    def apply_webhook_event(self, event: WebhookEvent) -> WebhookOutcome:
        if not self.storage.record_webhook_event(self._record(event)):
            return WebhookOutcome.DUPLICATE
        self.applied.append(event.event_id)
        return WebhookOutcome.APPLIED
