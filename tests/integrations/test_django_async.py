"""Django's async views: they await an async service, or run a sync one in a worker thread (AsyncClient)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import django
import pytest
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.http import HttpRequest
from django.test import AsyncClient, override_settings
from django.urls import include, path

from paykit import AsyncPaymentService, ConfigurationError, Money, Payment, PaymentStatus
from paykit.integrations.django import paykit_urlpatterns
from paykit.storage import AsyncMemoryStorage
from paykit.testing import AsyncFakeProvider, ManualClock

from . import ADMIN_HEADERS, MAX_BODY_BYTES, Shop, bearer_ok, forged

if not settings.configured:
    settings.configure(SECRET_KEY="paykit-tests", ALLOWED_HOSTS=["testserver"], USE_TZ=True)
    django.setup()

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


def authorize(request: HttpRequest) -> bool:
    return bearer_ok(request.headers.get("Authorization"))


async def authorize_async(request: HttpRequest) -> bool:
    return bearer_ok(request.headers.get("Authorization"))


def project(patterns: list[Any]) -> Any:
    urls = ModuleType("paykit_test_async_urls")
    urls.urlpatterns = [path("paykit/", include(patterns))]  # type: ignore[attr-defined]
    return override_settings(
        ROOT_URLCONF=urls, ALLOWED_HOSTS=["testserver"], MIDDLEWARE=MIDDLEWARE, SECRET_KEY="paykit-tests"
    )


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
def service(fake: AsyncFakeProvider, clock: ManualClock) -> AsyncPaymentService:
    # No notifiers or audit hooks: nothing runs in the background, so there is nothing to aclose().
    return AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake], clock=clock)


async def pending(service: AsyncPaymentService) -> Payment:
    return await service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="fake")


@pytest.fixture
def client(service: AsyncPaymentService) -> Iterator[AsyncClient]:
    # CSRF checks on, as in production: the webhook view must be exempt.
    with project(paykit_urlpatterns(service, authorize=authorize, max_body_bytes=MAX_BODY_BYTES)):
        yield AsyncClient(enforce_csrf_checks=True)


async def post(client: AsyncClient, url: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return await client.post(url, data=body, content_type="application/json", headers=headers or {})


class TestAsyncService:
    """An async service gets async views that await it."""

    def test_views_are_async(self, service: AsyncPaymentService) -> None:
        patterns = paykit_urlpatterns(service, authorize=authorize)

        assert [True] * 4 == [iscoroutinefunction(p.callback) for p in patterns]

    async def test_webhook_applied_once_then_duplicate(
        self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: AsyncClient
    ) -> None:
        payment = await pending(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

        first = await post(client, "/paykit/webhook/fake", hook.body, hook.headers)
        second = await post(client, "/paykit/webhook/fake", hook.body, hook.headers)

        assert [(200, b'{"outcome": "applied"}'), (200, b'{"outcome": "duplicate"}')] == [
            (r.status_code, r.content) for r in (first, second)
        ]
        assert PaymentStatus.SUCCEEDED == (await service.get_payment(payment.id)).status

    async def test_forged_oversized_and_unknown_provider(
        self, fake: AsyncFakeProvider, service: AsyncPaymentService, client: AsyncClient
    ) -> None:
        payment = await pending(service)
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")

        answers = [
            await post(client, "/paykit/webhook/fake", forged(hook), hook.headers),
            await post(client, "/paykit/webhook/fake", b"x" * (MAX_BODY_BYTES + 1)),
            await post(client, "/paykit/webhook/stripe", hook.body, hook.headers),
        ]

        assert [(400, "rejected"), (413, "too_large"), (404, "unknown_provider")] == [
            (r.status_code, r.json()["outcome"]) for r in answers
        ]
        assert payment.status == (await service.get_payment(payment.id)).status

    async def test_read_routes(self, service: AsyncPaymentService, client: AsyncClient) -> None:
        payment = await pending(service)
        health = await client.get("/paykit/health")
        denied = await client.get("/paykit/metrics")
        metrics = await client.get("/paykit/metrics", headers=ADMIN_HEADERS)
        trail = await client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)
        unknown = await client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert [200, 401, 200, 200, 404] == [r.status_code for r in (health, denied, metrics, trail, unknown)]
        assert ("ok", 1) == (health.json()["storage"], metrics.json()["total"])
        assert [e.model_dump(mode="json") for e in await service.audit_trail(payment.id)] == trail.json()

    async def test_async_authorize(self, service: AsyncPaymentService) -> None:
        with project(paykit_urlpatterns(service, authorize=authorize_async)):
            client = AsyncClient()
            denied = await client.get("/paykit/metrics")
            allowed = await client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert [401, 200] == [denied.status_code, allowed.status_code]

    def test_sync_views_are_refused(self, service: AsyncPaymentService) -> None:
        with pytest.raises(ConfigurationError, match="async views"):
            paykit_urlpatterns(service, authorize=authorize, asynchronous=False)


class TestSyncServiceInAsyncViews:
    """asynchronous=True serves a sync PaymentService from async views, through a worker thread."""

    @pytest.fixture
    def shop(self) -> Iterator[Shop]:
        shop = Shop()
        yield shop
        shop.close()

    async def test_webhook_and_audit(self, shop: Shop) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        patterns = paykit_urlpatterns(shop.service, authorize=authorize, asynchronous=True)
        with project(patterns):
            client = AsyncClient(enforce_csrf_checks=True)
            webhook = await post(client, "/paykit/webhook/fake", hook.body, hook.headers)
            trail = await client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)
            health = await client.get("/paykit/health")

        assert [True] * 4 == [iscoroutinefunction(p.callback) for p in patterns]
        assert [(200, "applied"), 200, 200] == [
            (webhook.status_code, webhook.json()["outcome"]),
            trail.status_code,
            health.status_code,
        ]
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status
        assert [e.model_dump(mode="json") for e in shop.service.audit_trail(payment.id)] == trail.json()

    def test_sync_views_stay_the_default(self, shop: Shop) -> None:
        patterns = paykit_urlpatterns(shop.service, authorize=authorize)

        assert [False] * 4 == [iscoroutinefunction(p.callback) for p in patterns]

    def test_async_authorize_needs_async_views(self, shop: Shop) -> None:
        with pytest.raises(ConfigurationError, match="asynchronous=True"):
            paykit_urlpatterns(shop.service, authorize=authorize_async)
