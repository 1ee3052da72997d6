"""The Starlette router on AsyncPaymentService: awaited on the event loop, never through the threadpool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import fastapi
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

import paykit.integrations.starlette as starlette_integration
from paykit import AsyncPaymentService, Money, Payment, PaymentStatus, StorageError
from paykit.integrations import _routes
from paykit.integrations.starlette import paykit_router, paykit_routes
from paykit.storage import AsyncMemoryStorage
from paykit.testing import AsyncFakeProvider, ManualClock
from paykit.webhooks import ahandle_webhook

from . import ADMIN_HEADERS, MAX_BODY_BYTES, Shop, bearer_ok, forged

USD = Money.of("12.50", "USD")


def authorize(request: Request) -> bool:
    return bearer_ok(request.headers.get("authorization"))


class DownAsyncStorage(AsyncMemoryStorage):
    """An async storage whose server is gone: every call fails like a lost MongoDB connection."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            raise StorageError("storage unreachable")
        return super().__getattribute__(name)


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


def async_service(fake: AsyncFakeProvider, clock: ManualClock, storage: AsyncMemoryStorage) -> AsyncPaymentService:
    # No notifiers or audit hooks: nothing runs in the background, so nothing is bound to
    # the TestClient's event loop and there is nothing to aclose().
    return AsyncPaymentService(storage=storage, providers=[fake], clock=clock)


@pytest.fixture
def service(fake: AsyncFakeProvider, clock: ManualClock) -> AsyncPaymentService:
    return async_service(fake, clock, AsyncMemoryStorage())


@pytest.fixture(autouse=True)
def no_threadpool(monkeypatch: pytest.MonkeyPatch) -> None:
    """An async service is awaited directly: any use of the threadpool fails the test."""

    async def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an async service must not go through the threadpool")

    monkeypatch.setattr(starlette_integration, "run_in_threadpool", refuse)


def make_app(service: Any) -> Starlette:
    routes = paykit_routes(service, authorize=authorize, max_body_bytes=MAX_BODY_BYTES)
    return Starlette(routes=[Mount("/paykit", routes=routes)])


@pytest.fixture
def client(service: AsyncPaymentService) -> Iterator[TestClient]:
    with TestClient(make_app(service)) as client:
        yield client


def on_loop(client: TestClient, call: Callable[[], Any]) -> Any:
    """Await ``call()`` on the app's event loop (the TestClient's portal)."""
    assert client.portal is not None

    async def run() -> Any:
        return await call()

    return client.portal.call(run)


def pending(client: TestClient, service: AsyncPaymentService) -> Payment:
    return on_loop(client, lambda: service.initialize_payment(user_id="u1", amount=USD, provider="fake"))


def status(client: TestClient, service: AsyncPaymentService, payment: Payment) -> PaymentStatus:
    return on_loop(client, lambda: service.get_payment(payment.id)).status  # type: ignore[no-any-return]


class TestStructuralCheck:
    """A service is async when its apply_webhook_event is a coroutine function."""

    def test_async_and_sync_service(self, service: AsyncPaymentService) -> None:
        shop = Shop()
        try:
            assert (True, False) == (_routes.is_async_service(service), _routes.is_async_service(shop.service))
        finally:
            shop.close()


class TestWebhookRoute:
    """POST /webhook/{provider} awaits ahandle_webhook and returns its answer."""

    def test_applied_once_then_duplicate(
        self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: TestClient
    ) -> None:
        payment = pending(client, service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

        first = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
        second = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert [(200, {"outcome": "applied"}), (200, {"outcome": "duplicate"})] == [
            (r.status_code, r.json()) for r in (first, second)
        ]
        assert PaymentStatus.SUCCEEDED == status(client, service, payment)

    def test_same_bytes_as_ahandle_webhook(
        self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: TestClient
    ) -> None:
        async def twin_answer() -> tuple[int, bytes, str]:
            twin_clock = ManualClock()
            twin_fake = AsyncFakeProvider(clock=twin_clock.unix)
            async with async_service(twin_fake, twin_clock, AsyncMemoryStorage()) as twin:
                payment = await twin.initialize_payment(user_id="u1", amount=USD, provider="fake")
                hook = twin_fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")
                answer = await ahandle_webhook(twin, "fake", hook.body, hook.headers)
            return answer.status_code, answer.body, answer.headers["content-type"]

        expected = asyncio.run(twin_answer())
        hook = fake.webhook(pending(client, service), PaymentStatus.SUCCEEDED, event_id="evt_1")

        response = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert expected == (response.status_code, response.content, response.headers["content-type"])

    def test_forged_webhook_is_refused(
        self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: TestClient
    ) -> None:
        payment = pending(client, service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

        response = client.post("/paykit/webhook/fake", content=forged(hook), headers=hook.headers)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())
        assert payment.status == status(client, service, payment)

    def test_oversized_and_unknown_provider(self, client: TestClient) -> None:
        too_large = client.post("/paykit/webhook/fake", content=b"x" * (MAX_BODY_BYTES + 1))
        unknown = client.post("/paykit/webhook/stripe", content=b"{}")

        assert [(413, "too_large"), (404, "unknown_provider")] == [
            (r.status_code, r.json()["outcome"]) for r in (too_large, unknown)
        ]

    def test_storage_down_is_503(self, fake: AsyncFakeProvider, clock: ManualClock) -> None:
        down = async_service(fake, clock, DownAsyncStorage())
        hook = fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")
        with TestClient(make_app(down)) as client:
            response = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert (503, "unavailable", "30") == (
            response.status_code,
            response.json()["outcome"],
            response.headers["retry-after"],
        )


class TestReadRoutes:
    """Health, audit and metrics await the async service too."""

    def test_health(self, client: TestClient) -> None:
        response = client.get("/paykit/health")

        assert (200, "ok") == (response.status_code, response.json()["storage"])

    def test_health_with_storage_down(self, fake: AsyncFakeProvider, clock: ManualClock) -> None:
        down = async_service(fake, clock, DownAsyncStorage())
        with TestClient(make_app(down)) as client:
            response = client.get("/paykit/health")

        assert (503, "unreachable: StorageError", "30") == (
            response.status_code,
            response.json()["storage"],
            response.headers["retry-after"],
        )

    def test_audit_trail(self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: TestClient) -> None:
        fake.behavior = "processing"
        payment = pending(client, service)
        payment = on_loop(client, lambda: service.confirm_payment(payment.id, payment_method="pm_card_visa"))
        entries = on_loop(client, lambda: service.audit_trail(payment.id))

        denied = client.get(f"/paykit/audit/{payment.id}")
        allowed = client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)
        unknown = client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert [401, 200, 404] == [r.status_code for r in (denied, allowed, unknown)]
        assert len(entries) > 1
        assert [e.model_dump(mode="json") for e in entries] == allowed.json()

    def test_metrics(self, client: TestClient) -> None:
        denied = client.get("/paykit/metrics")
        allowed = client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert [401, 200] == [denied.status_code, allowed.status_code]
        assert 0 == allowed.json()["total"]


class TestFastAPI:
    """The router mounts in FastAPI with an async service and an async authorize()."""

    def test_webhook_and_metrics(self, fake: AsyncFakeProvider, service: AsyncPaymentService) -> None:
        async def is_admin(request: Request) -> bool:
            return bearer_ok(request.headers.get("authorization"))

        app = fastapi.FastAPI()
        app.mount("/paykit", paykit_router(service, authorize=is_admin))
        with TestClient(app) as api:
            payment = pending(api, service)
            hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")
            webhook = api.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
            metrics = api.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert [(200, "applied"), (200, 1)] == [
            (webhook.status_code, webhook.json()["outcome"]),
            (metrics.status_code, metrics.json()["total"]),
        ]
        assert PaymentStatus.SUCCEEDED == asyncio.run(service.get_payment(payment.id)).status
