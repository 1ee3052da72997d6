"""The Starlette router on an async service: awaited on the event loop, never through the threadpool."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import fastapi
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient

import paykit.integrations.starlette as starlette_integration
from paykit import PaymentStatus, StorageError
from paykit.integrations import _routes
from paykit.integrations.starlette import paykit_router, paykit_routes
from paykit.storage import AsyncMemoryStorage
from paykit.testing import FakeProvider, ManualClock
from paykit.webhooks import ahandle_webhook
from tests import _async_standin as standin

from . import ADMIN_HEADERS, MAX_BODY_BYTES, Shop, bearer_ok, forged


def authorize(request: Request) -> bool:
    return bearer_ok(request.headers.get("authorization"))


class DownAsyncStorage(AsyncMemoryStorage):
    """An async storage whose server is gone."""

    async def ping(self) -> None:
        raise StorageError("storage unreachable")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeProvider:
    return FakeProvider(clock=clock.unix)


@pytest.fixture
def service(fake: FakeProvider, clock: ManualClock) -> standin.StandInAsyncService:
    return standin.StandInAsyncService(standin.AsyncFakeAdapter(fake), clock)


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
def client(service: standin.StandInAsyncService) -> Iterator[TestClient]:
    with TestClient(make_app(service)) as client:
        yield client


class TestStructuralCheck:
    """A service is async when its apply_webhook_event is a coroutine function."""

    def test_async_stand_in_and_sync_service(self, service: standin.StandInAsyncService) -> None:
        shop = Shop()
        try:
            assert (True, False) == (_routes.is_async_service(service), _routes.is_async_service(shop.service))
        finally:
            shop.close()


class TestWebhookRoute:
    """POST /webhook/{provider} awaits ahandle_webhook and returns its answer."""

    def test_applied_once_then_duplicate(
        self, fake: FakeProvider, service: standin.StandInAsyncService, client: TestClient
    ) -> None:
        hook = fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")

        first = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
        second = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert [(200, {"outcome": "applied"}), (200, {"outcome": "duplicate"})] == [
            (r.status_code, r.json()) for r in (first, second)
        ]
        assert ["evt_1"] == service.applied

    def test_same_bytes_as_ahandle_webhook(self, fake: FakeProvider, clock: ManualClock, client: TestClient) -> None:
        hook = fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")
        twin = standin.StandInAsyncService(standin.AsyncFakeAdapter(fake), clock)
        expected = asyncio.run(ahandle_webhook(twin, "fake", hook.body, hook.headers))

        response = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert (expected.status_code, expected.body, expected.headers["content-type"]) == (
            response.status_code,
            response.content,
            response.headers["content-type"],
        )

    def test_forged_webhook_is_refused(
        self, fake: FakeProvider, service: standin.StandInAsyncService, client: TestClient
    ) -> None:
        hook = fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")

        response = client.post("/paykit/webhook/fake", content=forged(hook), headers=hook.headers)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())
        assert [] == service.applied

    def test_oversized_and_unknown_provider(self, client: TestClient) -> None:
        too_large = client.post("/paykit/webhook/fake", content=b"x" * (MAX_BODY_BYTES + 1))
        unknown = client.post("/paykit/webhook/stripe", content=b"{}")

        assert [(413, "too_large"), (404, "unknown_provider")] == [
            (r.status_code, r.json()["outcome"]) for r in (too_large, unknown)
        ]

    def test_storage_down_is_503(self, fake: FakeProvider, clock: ManualClock) -> None:
        down = standin.StandInAsyncService(
            standin.AsyncFakeAdapter(fake), clock, fail_with=StorageError("storage unreachable")
        )
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

    def test_health_with_storage_down(self, fake: FakeProvider, clock: ManualClock) -> None:
        down = standin.StandInAsyncService(standin.AsyncFakeAdapter(fake), clock, storage=DownAsyncStorage())
        with TestClient(make_app(down)) as client:
            response = client.get("/paykit/health")

        assert (503, "unreachable: StorageError", "30") == (
            response.status_code,
            response.json()["storage"],
            response.headers["retry-after"],
        )

    def test_audit_trail(self, fake: FakeProvider, clock: ManualClock) -> None:
        shop = Shop()
        try:
            payment = shop.processing_payment()
            entries = shop.service.audit_trail(payment.id)
        finally:
            shop.close()
        storage = AsyncMemoryStorage()
        asyncio.run(storage.insert_payment(payment))
        asyncio.run(storage.append_audit(entries))
        service = standin.StandInAsyncService(standin.AsyncFakeAdapter(fake), clock, storage=storage)

        with TestClient(make_app(service)) as client:
            denied = client.get(f"/paykit/audit/{payment.id}")
            allowed = client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)
            unknown = client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert [401, 200, 404] == [r.status_code for r in (denied, allowed, unknown)]
        assert [e.model_dump(mode="json") for e in entries] == allowed.json()

    def test_metrics(self, client: TestClient) -> None:
        denied = client.get("/paykit/metrics")
        allowed = client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert [401, 200] == [denied.status_code, allowed.status_code]
        assert 0 == allowed.json()["total"]


class TestFastAPI:
    """The router mounts in FastAPI with an async service and an async authorize()."""

    def test_webhook_and_metrics(self, fake: FakeProvider, service: standin.StandInAsyncService) -> None:
        async def is_admin(request: Request) -> bool:
            return bearer_ok(request.headers.get("authorization"))

        app = fastapi.FastAPI()
        app.mount("/paykit", paykit_router(service, authorize=is_admin))
        hook = fake.webhook("ref_1", PaymentStatus.SUCCEEDED, event_id="evt_1")
        with TestClient(app) as api:
            webhook = api.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
            metrics = api.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert [(200, "applied"), (200, 1)] == [
            (webhook.status_code, webhook.json()["outcome"]),
            (metrics.status_code, metrics.json()["total"]),
        ]
