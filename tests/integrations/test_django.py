"""The Django URL patterns, driven through Django's own test client (no pytest-django needed)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import django
import pytest
from django.conf import settings
from django.http import HttpRequest
from django.test import Client, override_settings
from django.urls import include, path

from paykit import AuditAction, PaymentService, PaymentStatus
from paykit.integrations.django import paykit_urlpatterns
from paykit.webhooks import handle_webhook

from . import ADMIN_HEADERS, MAX_BODY_BYTES, DownStorage, Shop, bearer_ok, forged, load_example, modules_after

if not settings.configured:
    # The smallest project Django runs: no apps, no database. Each test overrides what it relies on.
    settings.configure(SECRET_KEY="paykit-tests", ALLOWED_HOSTS=["testserver"], USE_TZ=True)
    django.setup()

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]


def authorize(request: HttpRequest) -> bool:
    return bearer_ok(request.headers.get("Authorization"))


def urlconf(service: PaymentService) -> ModuleType:
    """A project's urls.py, mounting paykit under /paykit/."""
    urls = ModuleType("paykit_test_urls")
    patterns = paykit_urlpatterns(service, authorize=authorize, max_body_bytes=MAX_BODY_BYTES)
    urls.urlpatterns = [path("paykit/", include(patterns))]  # type: ignore[attr-defined]
    return urls


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.close()


def project(service: PaymentService) -> Any:
    return override_settings(
        ROOT_URLCONF=urlconf(service),
        ALLOWED_HOSTS=["testserver"],
        MIDDLEWARE=MIDDLEWARE,
        SECRET_KEY="paykit-tests",
    )


@pytest.fixture
def client(shop: Shop) -> Iterator[Client]:
    # CSRF checks on, as in production: the webhook view must be exempt.
    with project(shop.service):
        yield Client(enforce_csrf_checks=True)


def post(client: Client, url: str, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post(url, data=body, content_type="application/json", headers=headers or {})


class TestWebhookRoute:
    """POST webhook/<provider> passes the raw request to handle_webhook and returns its answer."""

    def test_valid_signed_webhook_is_applied_once(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = post(client, "/paykit/webhook/fake", hook.body, hook.headers)

        assert (200, {"outcome": "applied"}) == (response.status_code, response.json())
        assert "application/json" == response.headers["Content-Type"]
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status
        assert [*trail, AuditAction.PAYMENT_STATUS_UPDATE] == shop.trail(payment.id)

    def test_second_delivery_is_a_duplicate_that_writes_nothing(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        post(client, "/paykit/webhook/fake", hook.body, hook.headers)
        trail, version = shop.trail(payment.id), shop.service.get_payment(payment.id).version

        response = post(client, "/paykit/webhook/fake", hook.body, hook.headers)

        assert (200, {"outcome": "duplicate"}) == (response.status_code, response.json())
        assert (trail, version) == (shop.trail(payment.id), shop.service.get_payment(payment.id).version)

    def test_forged_webhook_is_refused_and_writes_nothing(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = post(client, "/paykit/webhook/fake", forged(hook), hook.headers)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())
        assert PaymentStatus.PROCESSING == shop.service.get_payment(payment.id).status
        assert trail == shop.trail(payment.id)
        assert shop.storage.get_webhook_event("fake", "evt_1") is None

    def test_oversized_body_is_refused_like_handle_webhook_does(self, shop: Shop, client: Client) -> None:
        body = b"x" * (MAX_BODY_BYTES + 1)
        expected = handle_webhook(shop.service, "fake", body, {}, max_body_bytes=MAX_BODY_BYTES)

        response = post(client, "/paykit/webhook/fake", body)

        assert (413, expected.body) == (response.status_code, response.content)

    def test_body_at_the_limit_is_read_and_verified(self, client: Client) -> None:
        response = post(client, "/paykit/webhook/fake", b"x" * MAX_BODY_BYTES)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.json())

    def test_unknown_provider_is_not_found(self, shop: Shop, client: Client) -> None:
        hook = shop.succeeded(shop.processing_payment())

        response = post(client, "/paykit/webhook/stripe", hook.body, hook.headers)

        assert (404, {"outcome": "unknown_provider"}) == (response.status_code, response.json())

    def test_get_is_not_allowed(self, client: Client) -> None:
        assert 405 == client.get("/paykit/webhook/fake").status_code


def post_chunked(
    client: Client, url: str, body: bytes, *, terminated: bool, headers: dict[str, str] | None = None
) -> Any:
    """A chunked POST as a WSGI server hands it to Django: no CONTENT_LENGTH, the body only in wsgi.input."""
    environ = {
        "HTTP_TRANSFER_ENCODING": "chunked",
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
    }
    if terminated:  # gunicorn, uWSGI, mod_wsgi: de-chunked, and the stream ends where the body does
        environ["wsgi.input_terminated"] = True
    return client.generic("POST", url, b"", headers=headers or {}, **environ)


class TestChunkedWebhook:
    """A chunked body (no Content-Length) is read as far as the server lets it, never past the limit."""

    def test_oversized_chunked_body_gets_413(self, shop: Shop, client: Client) -> None:
        body = b"x" * (MAX_BODY_BYTES * 4)
        expected = handle_webhook(shop.service, "fake", body, {}, max_body_bytes=MAX_BODY_BYTES)

        response = post_chunked(client, "/paykit/webhook/fake", body, terminated=True)

        assert (413, expected.body) == (response.status_code, response.content)

    def test_chunked_webhook_within_the_limit_is_applied(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)

        response = post_chunked(client, "/paykit/webhook/fake", hook.body, terminated=True, headers=hook.headers)

        assert (200, {"outcome": "applied"}) == (response.status_code, response.json())
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status

    def test_unreadable_chunked_body_gets_411_not_400(self, shop: Shop, client: Client) -> None:
        """Django's runserver passes the chunked stream raw and Django reads none of it: say so, not "forged"."""
        response = post_chunked(client, "/paykit/webhook/fake", b"x" * (MAX_BODY_BYTES * 4), terminated=False)

        assert (411, {"outcome": "length_required"}) == (response.status_code, response.json())


class TestHealthRoute:
    """GET health is public: 200 when storage answers, 503 otherwise."""

    def test_healthy(self, shop: Shop, client: Client) -> None:
        response = client.get("/paykit/health")

        assert 200 == response.status_code
        assert shop.service.health().as_dict() == response.json()

    def test_storage_down(self) -> None:
        shop = Shop(storage=DownStorage())
        with project(shop.service):
            response = Client().get("/paykit/health")
        shop.close()

        assert (503, "unavailable", "30") == (
            response.status_code,
            response.json()["status"],
            response.headers["Retry-After"],
        )


class TestAuditRoute:
    """GET audit/<payment_id> returns the trail to authorized callers only."""

    def test_unauthorized(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()

        missing = client.get(f"/paykit/audit/{payment.id}")
        wrong = client.get(f"/paykit/audit/{payment.id}", headers={"Authorization": "Bearer guess"})

        assert [(401, {"error": "unauthorized"})] * 2 == [
            (missing.status_code, missing.json()),
            (wrong.status_code, wrong.json()),
        ]

    def test_authorized(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()

        response = client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert [e.model_dump(mode="json") for e in shop.service.audit_trail(payment.id)] == response.json()

    def test_unknown_payment(self, client: Client) -> None:
        response = client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert (404, {"error": "not_found"}) == (response.status_code, response.json())


class TestMetricsRoute:
    """GET metrics returns the service metrics to authorized callers only."""

    def test_unauthorized(self, client: Client) -> None:
        response = client.get("/paykit/metrics")

        assert (401, {"error": "unauthorized"}) == (response.status_code, response.json())

    def test_authorized(self, shop: Shop, client: Client) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        post(client, "/paykit/webhook/fake", hook.body, hook.headers)

        response = client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert {"USD": "12.50"} == response.json()["revenue_by_currency"]
        assert shop.service.metrics().as_dict() == response.json()


class TestOptionalExtra:
    """Django is an optional extra, imported only by paykit.integrations.django."""

    def test_paykit_does_not_import_django(self) -> None:
        assert [] == modules_after("import paykit, paykit.webhooks, paykit.integrations", ["django"])

    def test_missing_django_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "django.http", None)
        monkeypatch.delitem(sys.modules, "paykit.integrations.django")

        with pytest.raises(ImportError, match=r'pip install "paykit-payments\[django\]"'):
            import paykit.integrations.django  # noqa: F401


class TestExampleApp:
    """examples/django_app.py serves the routes on a fake provider."""

    def test_demo_checkout_settled_by_its_webhook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PAYKIT_ADMIN_TOKEN", "example-token")
        monkeypatch.delenv("STRIPE_API_KEY", raising=False)
        admin = {"Authorization": "Bearer example-token"}
        urls = load_example("django_app").build_urlconf()

        with override_settings(ROOT_URLCONF=urls, ALLOWED_HOSTS=["testserver"], MIDDLEWARE=MIDDLEWARE):
            client = Client(enforce_csrf_checks=True)
            checkout = client.post("/demo/checkout").json()
            hook = checkout["webhook"]
            settled = post(client, hook["url"], hook["body"].encode(), hook["headers"])
            statuses = [settled.status_code, client.get("/paykit/health").status_code]
            statuses.append(client.get("/paykit/metrics").status_code)
            metrics = client.get("/paykit/metrics", headers=admin).json()
            trail = client.get(f"/paykit/audit/{checkout['payment_id']}", headers=admin).json()

        assert [200, 200, 401] == statuses
        assert {"succeeded": 1} == metrics["count_by_status"]
        assert "succeeded" == trail[-1]["status_after"]
