"""ahandle_webhook gives handle_webhook's answers, on the real services.

Each scenario is asked of a ``PaymentService`` on ``MemoryStorage`` with a
``FakeProvider`` through ``handle_webhook``, and of an ``AsyncPaymentService`` on
``AsyncMemoryStorage`` with an ``AsyncFakeProvider`` through ``ahandle_webhook``;
the two must answer byte for byte the same. The fakes' ``webhook(...)`` sign each
delivery; a small subclass of each can rewrite the verified event (a delivery id,
a reply body) or fail, as a real adapter would.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from paykit import (
    AsyncPaymentService,
    AuditAction,
    InvalidRequestError,
    InvalidStateError,
    Money,
    Payment,
    PaymentService,
    PaymentStatus,
    ProviderUnavailableError,
    StorageError,
    WebhookEvent,
)
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import AsyncFakeProvider, FakeProvider, FakeWebhook, ManualClock, capture_logs
from paykit.webhooks import WebhookResponse, ahandle_webhook, handle_webhook

pytestmark = pytest.mark.anyio

LIMIT = 2048
USD_50 = Money.of("50.00", "USD")

Rewrite = Callable[[WebhookEvent], WebhookEvent]


class _Tweaks:
    """What a test asks of the adapter after it verified the signature: rewrite the event, or fail."""

    rewrite: Rewrite | None = None
    fail_with: Exception | None = None

    def tweak(self, event: WebhookEvent) -> WebhookEvent:
        if self.fail_with is not None:
            raise self.fail_with
        return self.rewrite(event) if self.rewrite is not None else event


class TweakedFake(_Tweaks, FakeProvider):
    def parse_webhook(self, body: bytes, headers: Any) -> WebhookEvent:
        return self.tweak(super().parse_webhook(body, headers))


class AsyncTweakedFake(_Tweaks, AsyncFakeProvider):
    async def parse_webhook(self, body: bytes, headers: Any) -> WebhookEvent:
        return self.tweak(await super().parse_webhook(body, headers))


class _Down:
    """Once ``down`` is set, every public storage call raises ``StorageError``, as an unreachable database does."""

    down = False

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name.startswith("_") or not callable(attribute) or not object.__getattribute__(self, "down"):
            return attribute
        if inspect.iscoroutinefunction(attribute):

            async def aunreachable(*args: Any, **kwargs: Any) -> Any:
                raise StorageError("storage unreachable")

            return aunreachable

        def unreachable(*args: Any, **kwargs: Any) -> Any:
            raise StorageError("storage unreachable")

        return unreachable


class DownableMemoryStorage(_Down, MemoryStorage):
    pass


class DownableAsyncMemoryStorage(_Down, AsyncMemoryStorage):
    pass


Deliveries = Callable[[FakeProvider | AsyncFakeProvider, Payment], list[FakeWebhook]]


def succeeded(fake: FakeProvider | AsyncFakeProvider, payment: Payment) -> list[FakeWebhook]:
    return [fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")]


def twice(fake: FakeProvider | AsyncFakeProvider, payment: Payment) -> list[FakeWebhook]:
    return succeeded(fake, payment) * 2


def succeeded_then_late_processing(fake: FakeProvider | AsyncFakeProvider, payment: Payment) -> list[FakeWebhook]:
    return [
        fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1"),
        fake.webhook(payment, PaymentStatus.PROCESSING, event_id="evt_0"),
    ]


def with_delivery(delivery_id: str, body: bytes) -> Rewrite:
    """A PayPal-style event: a signed delivery id and the digest of the body it came with."""
    digest = hashlib.sha256(body).hexdigest()
    return lambda event: event.model_copy(update={"delivery_id": delivery_id, "delivery_digest": digest})


def knet_reply(event: WebhookEvent) -> WebhookEvent:
    return event.model_copy(update={"reply_body": "REDIRECT=https://shop.example/done"})


@dataclass
class Scenario:
    """One question for both functions: what the adapter and storage do, and what arrives."""

    deliveries: Deliveries = succeeded
    rewrite: Rewrite | None = None
    parse_fails_with: Exception | None = None
    storage_down: bool = False
    provider: str = "fake"
    body: Callable[[FakeWebhook], bytes] = lambda hook: hook.body


SCENARIOS = {
    "applied": Scenario(),
    "duplicate": Scenario(deliveries=twice),
    "stale": Scenario(deliveries=succeeded_then_late_processing),
    "forged": Scenario(body=lambda hook: hook.body.replace(b"succeeded", b"failed")),
    "unknown_provider": Scenario(provider="stripe"),
    "too_large": Scenario(body=lambda hook: b"x" * (LIMIT + 1)),
    "storage_down": Scenario(storage_down=True),
    "provider_down": Scenario(parse_fails_with=ProviderUnavailableError("verification api down", provider="fake")),
    "not_applicable": Scenario(parse_fails_with=InvalidStateError("cannot apply")),
    "bug": Scenario(parse_fails_with=RuntimeError("boom")),
    "delivery_id_twice_same_body": Scenario(deliveries=twice, rewrite=with_delivery("tx-1", b"the body")),
    "knet_reply_body": Scenario(rewrite=knet_reply),
}


def sync_answers(scenario: Scenario) -> list[WebhookResponse]:
    clock = ManualClock()
    fake = TweakedFake(clock=clock.unix)
    storage = DownableMemoryStorage()
    with PaymentService(storage=storage, providers=[fake], clock=clock) as service:
        payment = service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
        hooks = scenario.deliveries(fake, payment)
        fake.rewrite, fake.fail_with, storage.down = scenario.rewrite, scenario.parse_fails_with, scenario.storage_down
        return [
            handle_webhook(service, scenario.provider, scenario.body(hook), hook.headers, max_body_bytes=LIMIT)
            for hook in hooks
        ]


async def async_answers(scenario: Scenario) -> list[WebhookResponse]:
    clock = ManualClock()
    fake = AsyncTweakedFake(clock=clock.unix)
    storage = DownableAsyncMemoryStorage()
    async with AsyncPaymentService(storage=storage, providers=[fake], clock=clock) as service:
        payment = await service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
        hooks = scenario.deliveries(fake, payment)
        fake.rewrite, fake.fail_with, storage.down = scenario.rewrite, scenario.parse_fails_with, scenario.storage_down
        return [
            await ahandle_webhook(service, scenario.provider, scenario.body(hook), hook.headers, max_body_bytes=LIMIT)
            for hook in hooks
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
            "stale": [(200, "applied"), (200, "stale")],
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


class TestAppliesThroughTheService:
    """An applied delivery moves the payment in async storage; a duplicate moves nothing."""

    async def test_payment_moves_once(self, clock: ManualClock) -> None:
        fake = AsyncFakeProvider(clock=clock.unix)
        async with AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake], clock=clock) as service:
            payment = await service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
            hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

            await ahandle_webhook(service, "fake", hook.body, hook.headers)
            await ahandle_webhook(service, "fake", hook.body, hook.headers)

            assert PaymentStatus.SUCCEEDED == (await service.get_payment(payment.id)).status
            trail = await service.audit_trail(payment.id)
            assert 1 == sum(1 for e in trail if e.action == AuditAction.PAYMENT_STATUS_UPDATE)


class TestDeliveryCheck:
    """A signed delivery id is remembered in async storage; another body under it is refused."""

    async def test_delivery_id_with_another_body_is_rejected_and_not_applied(self, clock: ManualClock) -> None:
        fake = AsyncTweakedFake(clock=clock.unix)
        storage = AsyncMemoryStorage()
        async with AsyncPaymentService(storage=storage, providers=[fake], clock=clock) as service:
            first = await service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
            second = await service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
            fake.rewrite = with_delivery("tx-1", b"the body")
            hook = fake.webhook(first, PaymentStatus.SUCCEEDED, event_id="evt_1")
            await ahandle_webhook(service, "fake", hook.body, hook.headers)
            fake.rewrite = with_delivery("tx-1", b"another body")
            other_event = fake.webhook(second, PaymentStatus.SUCCEEDED, event_id="evt_2")

            with capture_logs() as logs:
                response = await ahandle_webhook(service, "fake", other_event.body, other_event.headers)

            assert (400, b'{"outcome": "rejected"}') == (response.status_code, response.body)
            assert second.status == (await service.get_payment(second.id)).status
            record = await storage.get_webhook_event("fake", "delivery:tx-1")
            assert record is not None
            assert hashlib.sha256(b"the body").hexdigest() == record.type
            assert ["webhook rejected"] == [e["event"] for e in logs if e["level"] == "warning"]


class TestRawBody:
    """Like handle_webhook, ahandle_webhook takes the raw bytes only."""

    async def test_parsed_body_is_a_programming_error(self, clock: ManualClock) -> None:
        fake = AsyncFakeProvider(clock=clock.unix)
        async with AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake], clock=clock) as service:
            with pytest.raises(InvalidRequestError, match="ahandle_webhook needs the raw request body"):
                await ahandle_webhook(service, "fake", {"id": "evt_1"}, {})  # type: ignore[arg-type]

    async def test_bytearray_and_memoryview_are_raw_bytes(self, clock: ManualClock) -> None:
        fake = AsyncFakeProvider(clock=clock.unix)
        async with AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake], clock=clock) as service:
            payment = await service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
            hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

            first = await ahandle_webhook(service, "fake", bytearray(hook.body), hook.headers)
            second = await ahandle_webhook(service, "fake", memoryview(hook.body), list(hook.headers.items()))

        assert [(200, "applied"), (200, "duplicate")] == [(r.status_code, r.outcome) for r in (first, second)]


class TestHeaders:
    """Headers that are neither a mapping nor pairs are a request that cannot be verified: a 400, never a 500."""

    @pytest.mark.parametrize("headers", [None, 42, ["stripe-signature"], [("a", "b", "c")]])
    async def test_unusable_headers_are_refused_with_400(self, clock: ManualClock, headers: Any) -> None:
        fake, afake = FakeProvider(clock=clock.unix), AsyncFakeProvider(clock=clock.unix)
        service = PaymentService(storage=MemoryStorage(), providers=[fake], clock=clock)
        payment = service.initialize_payment(user_id="u1", amount=USD_50, provider="fake")
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")
        async with AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[afake], clock=clock) as aservice:
            answers = [
                handle_webhook(service, "fake", hook.body, headers),
                await ahandle_webhook(aservice, "fake", hook.body, headers),
            ]

        assert [(400, "rejected")] * 2 == [(a.status_code, a.outcome) for a in answers]
        assert PaymentStatus.PENDING == service.get_payment(payment.id).status
