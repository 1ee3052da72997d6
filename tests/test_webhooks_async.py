"""ahandle_webhook gives handle_webhook's answers, awaiting the adapter, the delivery check and the service."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from paykit import (
    InvalidRequestError,
    InvalidStateError,
    PaymentStatus,
    ProviderUnavailableError,
    StorageError,
    WebhookEvent,
)
from paykit.testing import FakeProvider, FakeWebhook, ManualClock, capture_logs
from paykit.webhooks import WebhookResponse, ahandle_webhook, handle_webhook
from tests._async_standin import AsyncFakeAdapter, Rewrite, StandInAsyncService, StandInSyncService, SyncFakeAdapter


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio

LIMIT = 2048


@dataclass
class Scenario:
    """One question for both functions: what the adapter and the service do, and what arrives."""

    rewrite: Rewrite | None = None
    parse_fails_with: Exception | None = None
    apply_fails_with: Exception | None = None
    provider: str = "fake"
    body: Callable[[FakeWebhook], bytes] = lambda hook: hook.body
    deliveries: int = 1


def with_delivery(delivery_id: str, body: bytes) -> Rewrite:
    """A PayPal-style event: a signed delivery id and the digest of the body it came with."""
    digest = hashlib.sha256(body).hexdigest()
    return lambda event: event.model_copy(update={"delivery_id": delivery_id, "delivery_digest": digest})


def knet_reply(event: WebhookEvent) -> WebhookEvent:
    return event.model_copy(update={"reply_body": "REDIRECT=https://shop.example/done"})


SCENARIOS = {
    "applied": Scenario(),
    "duplicate": Scenario(deliveries=2),
    "forged": Scenario(body=lambda hook: hook.body.replace(b"succeeded", b"failed")),
    "unknown_provider": Scenario(provider="stripe"),
    "too_large": Scenario(body=lambda hook: b"x" * (LIMIT + 1)),
    "storage_down": Scenario(apply_fails_with=StorageError("storage unreachable")),
    "provider_down": Scenario(parse_fails_with=ProviderUnavailableError("verification api down", provider="fake")),
    "not_applicable": Scenario(apply_fails_with=InvalidStateError("cannot apply")),
    "bug": Scenario(apply_fails_with=RuntimeError("boom")),
    "delivery_id_twice_same_body": Scenario(rewrite=with_delivery("tx-1", b"the body"), deliveries=2),
    "knet_reply_body": Scenario(rewrite=knet_reply),
}


def signed(clock: ManualClock) -> tuple[FakeProvider, FakeWebhook]:
    fake = FakeProvider(clock=clock.unix)
    return fake, fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")


def sync_answers(scenario: Scenario) -> list[WebhookResponse]:
    clock = ManualClock()
    fake, hook = signed(clock)
    adapter = SyncFakeAdapter(fake, scenario.rewrite, scenario.parse_fails_with)
    service = StandInSyncService(adapter, clock, fail_with=scenario.apply_fails_with)
    return [
        handle_webhook(service, scenario.provider, scenario.body(hook), hook.headers, max_body_bytes=LIMIT)
        for _ in range(scenario.deliveries)
    ]


async def async_answers(scenario: Scenario) -> list[WebhookResponse]:
    clock = ManualClock()
    fake, hook = signed(clock)
    adapter = AsyncFakeAdapter(fake, scenario.rewrite, scenario.parse_fails_with)
    service = StandInAsyncService(adapter, clock, fail_with=scenario.apply_fails_with)
    return [
        await ahandle_webhook(service, scenario.provider, scenario.body(hook), hook.headers, max_body_bytes=LIMIT)
        for _ in range(scenario.deliveries)
    ]


class TestSameAnswers:
    """For every kind of delivery, ahandle_webhook answers exactly what handle_webhook answers."""

    @pytest.mark.parametrize("name", sorted(SCENARIOS))
    async def test_same_status_body_headers_and_outcome(self, name: str) -> None:
        scenario = SCENARIOS[name]

        assert sync_answers(scenario) == await async_answers(scenario)

    async def test_the_answers_are_the_documented_ones(self) -> None:
        """The scenarios cover every status handle_webhook gives."""
        answers = {name: await async_answers(s) for name, s in SCENARIOS.items()}
        summary = {name: [(a.status_code, a.outcome) for a in got] for name, got in answers.items()}

        assert {
            "applied": [(200, "applied")],
            "duplicate": [(200, "applied"), (200, "duplicate")],
            "forged": [(400, "rejected")],
            "unknown_provider": [(404, "unknown_provider")],
            "too_large": [(413, "too_large")],
            "storage_down": [(503, "unavailable")],
            "provider_down": [(503, "unavailable")],
            "not_applicable": [(400, "rejected")],
            "bug": [(500, "error")],
            "delivery_id_twice_same_body": [(200, "applied"), (200, "duplicate")],
            "knet_reply_body": [(200, "applied")],
        } == summary
        assert "30" == answers["storage_down"][0].headers["retry-after"]
        assert (b"REDIRECT=https://shop.example/done", "text/plain; charset=utf-8") == (
            answers["knet_reply_body"][0].body,
            answers["knet_reply_body"][0].headers["content-type"],
        )


class TestDeliveryCheck:
    """A signed delivery id is remembered in async storage; another body under it is refused."""

    async def test_delivery_id_with_another_body_is_rejected_and_not_applied(self) -> None:
        clock = ManualClock()
        fake, hook = signed(clock)
        first = StandInAsyncService(AsyncFakeAdapter(fake, with_delivery("tx-1", b"the body")), clock)
        await ahandle_webhook(first, "fake", hook.body, hook.headers)
        replay_adapter = AsyncFakeAdapter(fake, with_delivery("tx-1", b"another body"))
        replay = StandInAsyncService(replay_adapter, clock, storage=first.storage)
        other_event = fake.webhook("ref_2", PaymentStatus.SUCCEEDED, event_id="evt_2")

        with capture_logs() as logs:
            response = await ahandle_webhook(replay, "fake", other_event.body, other_event.headers)

        assert (400, b'{"outcome": "rejected"}') == (response.status_code, response.body)
        assert [] == replay.applied
        record = await first.storage.get_webhook_event("fake", "delivery:tx-1")
        assert record is not None
        assert hashlib.sha256(b"the body").hexdigest() == record.type
        assert ["webhook rejected"] == [e["event"] for e in logs if e["level"] == "warning"]


class TestRawBody:
    """Like handle_webhook, ahandle_webhook takes the raw bytes only."""

    async def test_parsed_body_is_a_programming_error(self) -> None:
        clock = ManualClock()
        fake, _ = signed(clock)
        service = StandInAsyncService(AsyncFakeAdapter(fake), clock)

        with pytest.raises(InvalidRequestError, match="ahandle_webhook needs the raw request body"):
            await ahandle_webhook(service, "fake", {"id": "evt_1"}, {})  # type: ignore[arg-type]

    async def test_bytearray_and_memoryview_are_raw_bytes(self) -> None:
        clock = ManualClock()
        fake, hook = signed(clock)
        service = StandInAsyncService(AsyncFakeAdapter(fake), clock)

        first = await ahandle_webhook(service, "fake", bytearray(hook.body), hook.headers)
        second = await ahandle_webhook(service, "fake", memoryview(hook.body), list(hook.headers.items()))

        assert [(200, "applied"), (200, "duplicate")] == [(r.status_code, r.outcome) for r in (first, second)]
