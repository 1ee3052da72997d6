"""The Starlette router, driven through Starlette's TestClient, also mounted in FastAPI."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import anyio
import fastapi
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount
from starlette.testclient import TestClient
from starlette.types import Message

from paykit import AuditAction, PaymentService, PaymentStatus
from paykit.integrations.starlette import paykit_router, paykit_routes
from paykit.webhooks import handle_webhook

from . import ADMIN_HEADERS, MAX_BODY_BYTES, DownStorage, Shop, bearer_ok, forged, load_example, modules_after


def authorize(request: Request) -> bool:
    return bearer_ok(request.headers.get("authorization"))


def make_app(service: PaymentService) -> Starlette:
    routes = paykit_routes(service, authorize=authorize, max_body_bytes=MAX_BODY_BYTES)
    return Starlette(routes=[Mount("/paykit", routes=routes)])


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.close()


@pytest.fixture
def client(shop: Shop) -> Iterator[TestClient]:
    with TestClient(make_app(shop.service)) as client:
        yield client


class TestWebhookRoute:
    """POST /webhook/{provider} passes the raw request to handle_webhook and returns its answer."""

    def test_valid_signed_webhook_is_applied_once(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert (200, {"outcome": "applied"}) == (response.status_code, response.json())
        assert "application/json" == response.headers["content-type"]
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status
        assert [*trail, AuditAction.PAYMENT_STATUS_UPDATE] == shop.trail(payment.id)

    def test_second_delivery_is_a_duplicate_that_writes_nothing(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
        trail, version = shop.trail(payment.id), shop.service.get_payment(payment.id).version

        response = client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert (200, {"outcome": "duplicate"}) == (response.status_code, response.json())
        assert (trail, version) == (shop.trail(payment.id), shop.service.get_payment(payment.id).version)

    def test_forged_webhook_is_refused_and_writes_nothing(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = client.post("/paykit/webhook/fake", content=forged(hook), headers=hook.headers)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())
        assert PaymentStatus.PROCESSING == shop.service.get_payment(payment.id).status
        assert trail == shop.trail(payment.id)
        assert shop.storage.get_webhook_event("fake", "evt_1") is None

    def test_oversized_body_is_refused_like_handle_webhook_does(self, shop: Shop, client: TestClient) -> None:
        body = b"x" * (MAX_BODY_BYTES + 1)
        expected = handle_webhook(shop.service, "fake", body, {}, max_body_bytes=MAX_BODY_BYTES)

        response = client.post("/paykit/webhook/fake", content=body)

        assert (413, expected.body) == (response.status_code, response.content)

    def test_chunked_oversized_body_is_read_only_up_to_the_limit(self, shop: Shop) -> None:
        chunk = b"x" * (MAX_BODY_BYTES // 2)
        pending: list[Message] = [{"type": "http.request", "body": chunk, "more_body": True} for _ in range(10)]
        sent: list[Message] = []
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/paykit/webhook/fake",
            "raw_path": b"/paykit/webhook/fake",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"transfer-encoding", b"chunked")],
            "server": ("testserver", 80),
        }

        async def receive() -> Message:
            return pending.pop(0)

        async def send(message: Message) -> None:
            sent.append(message)

        anyio.run(make_app(shop.service), scope, receive, send)

        assert (413, b'{"outcome": "too_large"}') == (sent[0]["status"], sent[1]["body"])
        assert 10 - 3 == len(pending)  # three chunks passed the limit; the rest were never read

    def test_body_at_the_limit_is_read_and_verified(self, client: TestClient) -> None:
        response = client.post("/paykit/webhook/fake", content=b"x" * MAX_BODY_BYTES)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())

    def test_unknown_provider_is_not_found(self, shop: Shop, client: TestClient) -> None:
        hook = shop.succeeded(shop.processing_payment())

        response = client.post("/paykit/webhook/stripe", content=hook.body, headers=hook.headers)

        assert (404, {"outcome": "unknown_provider"}) == (response.status_code, response.json())

    def test_get_is_not_allowed(self, client: TestClient) -> None:
        assert 405 == client.get("/paykit/webhook/fake").status_code


class TestHealthRoute:
    """GET /health is public: 200 when storage answers, 503 otherwise."""

    def test_healthy(self, shop: Shop, client: TestClient) -> None:
        response = client.get("/paykit/health")

        assert 200 == response.status_code
        assert shop.service.health().as_dict() == response.json()

    def test_storage_down(self) -> None:
        shop = Shop(storage=DownStorage())
        with TestClient(make_app(shop.service)) as client:
            response = client.get("/paykit/health")
        shop.close()

        assert (503, "unavailable", "30") == (
            response.status_code,
            response.json()["status"],
            response.headers["retry-after"],
        )


class TestAuditRoute:
    """GET /audit/{payment_id} returns the trail to authorized callers only."""

    def test_unauthorized(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()

        missing = client.get(f"/paykit/audit/{payment.id}")
        wrong = client.get(f"/paykit/audit/{payment.id}", headers={"Authorization": "Bearer guess"})

        assert [(401, {"error": "unauthorized"})] * 2 == [
            (missing.status_code, missing.json()),
            (wrong.status_code, wrong.json()),
        ]

    def test_authorized(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()

        response = client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert [e.model_dump(mode="json") for e in shop.service.audit_trail(payment.id)] == response.json()

    def test_unknown_payment(self, client: TestClient) -> None:
        response = client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert (404, {"error": "not_found"}) == (response.status_code, response.json())


class TestMetricsRoute:
    """GET /metrics returns the service metrics to authorized callers only."""

    def test_unauthorized(self, client: TestClient) -> None:
        response = client.get("/paykit/metrics")

        assert (401, {"error": "unauthorized"}) == (response.status_code, response.json())

    def test_authorized(self, shop: Shop, client: TestClient) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        client.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        response = client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert {"USD": "12.50"} == response.json()["revenue_by_currency"]
        assert shop.service.metrics().as_dict() == response.json()


class TestFastAPI:
    """The router mounts in a FastAPI app, with a plain or an async authorize()."""

    @pytest.fixture
    def api(self, shop: Shop) -> Iterator[TestClient]:
        async def is_admin(request: Request) -> bool:
            return bearer_ok(request.headers.get("authorization"))

        app = fastapi.FastAPI()
        app.mount("/paykit", paykit_router(shop.service, authorize=is_admin))
        with TestClient(app) as client:
            yield client

    def test_webhook_applied_once(self, shop: Shop, api: TestClient) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)

        first = api.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)
        second = api.post("/paykit/webhook/fake", content=hook.body, headers=hook.headers)

        assert [(200, "applied"), (200, "duplicate")] == [(r.status_code, r.json()["outcome"]) for r in (first, second)]
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status

    def test_async_authorize_guards_metrics(self, api: TestClient) -> None:
        assert [401, 200] == [
            api.get("/paykit/metrics").status_code,
            api.get("/paykit/metrics", headers=ADMIN_HEADERS).status_code,
        ]


class TestOptionalExtra:
    """Starlette is an optional extra, imported only by paykit.integrations.starlette."""

    def test_paykit_does_not_import_starlette(self) -> None:
        assert [] == modules_after("import paykit, paykit.webhooks, paykit.integrations", ["starlette", "fastapi"])

    def test_missing_starlette_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "starlette.concurrency", None)
        monkeypatch.delitem(sys.modules, "paykit.integrations.starlette")

        with pytest.raises(ImportError, match=r'pip install "paykit-payments\[starlette\]"'):
            import paykit.integrations.starlette  # noqa: F401


class TestExampleApp:
    """examples/fastapi_app.py serves the routes on a fake provider."""

    def test_demo_checkout_settled_by_its_webhook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PAYKIT_ADMIN_TOKEN", "example-token")
        monkeypatch.delenv("STRIPE_API_KEY", raising=False)
        admin = {"Authorization": "Bearer example-token"}

        with TestClient(load_example("fastapi_app").create_app()) as client:
            checkout = client.post("/demo/checkout").json()
            hook = checkout["webhook"]
            settled = client.post(hook["url"], content=hook["body"].encode(), headers=hook["headers"])
            statuses = [settled.status_code, client.get("/paykit/health").status_code]
            statuses.append(client.get("/paykit/metrics").status_code)
            metrics = client.get("/paykit/metrics", headers=admin).json()
            trail = client.get(f"/paykit/audit/{checkout['payment_id']}", headers=admin).json()

        assert [200, 200, 401] == statuses
        assert {"succeeded": 1} == metrics["count_by_status"]
        assert "succeeded" == trail[-1]["status_after"]
