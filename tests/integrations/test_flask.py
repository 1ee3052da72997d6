"""The Flask blueprint, driven through Flask's own test client."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import flask
import pytest
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, run_wsgi_app

from paykit import AuditAction, PaymentService, PaymentStatus
from paykit.integrations.flask import paykit_blueprint
from paykit.webhooks import handle_webhook

from . import ADMIN_HEADERS, MAX_BODY_BYTES, DownStorage, Shop, bearer_ok, forged, load_example, modules_after


def make_app(service: PaymentService) -> flask.Flask:
    app = flask.Flask("paykit_flask_test")
    blueprint = paykit_blueprint(
        service,
        authorize=lambda request: bearer_ok(request.headers.get("Authorization")),
        max_body_bytes=MAX_BODY_BYTES,
    )
    app.register_blueprint(blueprint, url_prefix="/paykit")
    return app


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    shop.close()


@pytest.fixture
def client(shop: Shop) -> FlaskClient:
    return make_app(shop.service).test_client()


class TestWebhookRoute:
    """POST /webhook/<provider> passes the raw request to handle_webhook and returns its answer."""

    def test_valid_signed_webhook_is_applied_once(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = client.post("/paykit/webhook/fake", data=hook.body, headers=hook.headers)

        assert (200, {"outcome": "applied"}) == (response.status_code, response.get_json())
        assert PaymentStatus.SUCCEEDED == shop.service.get_payment(payment.id).status
        assert [*trail, AuditAction.PAYMENT_STATUS_UPDATE] == shop.trail(payment.id)

    def test_second_delivery_is_a_duplicate_that_writes_nothing(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        client.post("/paykit/webhook/fake", data=hook.body, headers=hook.headers)
        trail, version = shop.trail(payment.id), shop.service.get_payment(payment.id).version

        response = client.post("/paykit/webhook/fake", data=hook.body, headers=hook.headers)

        assert (200, {"outcome": "duplicate"}) == (response.status_code, response.get_json())
        assert (trail, version) == (shop.trail(payment.id), shop.service.get_payment(payment.id).version)

    def test_forged_webhook_is_refused_and_writes_nothing(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()
        trail = shop.trail(payment.id)
        hook = shop.succeeded(payment)

        response = client.post("/paykit/webhook/fake", data=forged(hook), headers=hook.headers)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.get_json())
        assert PaymentStatus.PROCESSING == shop.service.get_payment(payment.id).status
        assert trail == shop.trail(payment.id)
        assert shop.storage.get_webhook_event("fake", "evt_1") is None

    def test_oversized_body_is_refused_like_handle_webhook_does(self, shop: Shop, client: FlaskClient) -> None:
        body = b"x" * (MAX_BODY_BYTES + 1)
        expected = handle_webhook(shop.service, "fake", body, {}, max_body_bytes=MAX_BODY_BYTES)

        response = client.post("/paykit/webhook/fake", data=body, content_type="application/json")

        assert (413, expected.body) == (response.status_code, response.data)

    def test_chunked_oversized_body_is_read_only_up_to_the_limit(self, shop: Shop) -> None:
        stream = io.BytesIO(b"x" * (MAX_BODY_BYTES * 3))
        environ = EnvironBuilder(path="/paykit/webhook/fake", method="POST", input_stream=stream).get_environ()
        del environ["CONTENT_LENGTH"]  # chunked transfer: the length is unknown up front
        environ["wsgi.input_terminated"] = True

        app_iter, status, _ = run_wsgi_app(make_app(shop.service), environ)

        assert ("413 REQUEST ENTITY TOO LARGE", b'{"outcome": "too_large"}') == (status, b"".join(app_iter))
        assert MAX_BODY_BYTES + 1 == stream.tell()

    def test_body_at_the_limit_is_read_and_verified(self, client: FlaskClient) -> None:
        response = client.post("/paykit/webhook/fake", data=b"x" * MAX_BODY_BYTES)

        assert (400, {"outcome": "rejected"}) == (response.status_code, response.get_json())

    def test_unknown_provider_is_not_found(self, shop: Shop, client: FlaskClient) -> None:
        hook = shop.succeeded(shop.processing_payment())

        response = client.post("/paykit/webhook/stripe", data=hook.body, headers=hook.headers)

        assert (404, {"outcome": "unknown_provider"}) == (response.status_code, response.get_json())

    def test_get_is_not_allowed(self, client: FlaskClient) -> None:
        assert 405 == client.get("/paykit/webhook/fake").status_code


class TestHealthRoute:
    """GET /health is public: 200 when storage answers, 503 otherwise."""

    def test_healthy(self, shop: Shop, client: FlaskClient) -> None:
        response = client.get("/paykit/health")

        assert 200 == response.status_code
        assert shop.service.health().as_dict() == response.get_json()

    def test_storage_down(self) -> None:
        shop = Shop(storage=DownStorage())
        response = make_app(shop.service).test_client().get("/paykit/health")
        shop.close()

        assert (503, "unavailable", "30") == (
            response.status_code,
            response.get_json()["status"],
            response.headers["Retry-After"],
        )


class TestAuditRoute:
    """GET /audit/<payment_id> returns the trail to authorized callers only."""

    def test_unauthorized(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()

        missing = client.get(f"/paykit/audit/{payment.id}")
        wrong = client.get(f"/paykit/audit/{payment.id}", headers={"Authorization": "Bearer guess"})

        assert [(401, {"error": "unauthorized"})] * 2 == [
            (missing.status_code, missing.get_json()),
            (wrong.status_code, wrong.get_json()),
        ]

    def test_authorized(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()

        response = client.get(f"/paykit/audit/{payment.id}", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert [e.model_dump(mode="json") for e in shop.service.audit_trail(payment.id)] == response.get_json()

    def test_unknown_payment(self, client: FlaskClient) -> None:
        response = client.get("/paykit/audit/pay_nope", headers=ADMIN_HEADERS)

        assert (404, {"error": "not_found"}) == (response.status_code, response.get_json())


class TestMetricsRoute:
    """GET /metrics returns the service metrics to authorized callers only."""

    def test_unauthorized(self, client: FlaskClient) -> None:
        response = client.get("/paykit/metrics")

        assert (401, {"error": "unauthorized"}) == (response.status_code, response.get_json())

    def test_authorized(self, shop: Shop, client: FlaskClient) -> None:
        payment = shop.processing_payment()
        hook = shop.succeeded(payment)
        client.post("/paykit/webhook/fake", data=hook.body, headers=hook.headers)

        response = client.get("/paykit/metrics", headers=ADMIN_HEADERS)

        assert 200 == response.status_code
        assert {"USD": "12.50"} == response.get_json()["revenue_by_currency"]
        assert shop.service.metrics().as_dict() == response.get_json()


class TestOptionalExtra:
    """Flask is an optional extra, imported only by paykit.integrations.flask."""

    def test_paykit_does_not_import_flask(self) -> None:
        assert [] == modules_after("import paykit, paykit.webhooks, paykit.integrations", ["flask", "werkzeug"])

    def test_missing_flask_names_the_extra(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "flask", None)
        monkeypatch.delitem(sys.modules, "paykit.integrations.flask")

        with pytest.raises(ImportError, match=r'pip install "paykit-payments\[flask\]"'):
            import paykit.integrations.flask  # noqa: F401


class TestExampleApp:
    """examples/flask_app.py serves the routes on a fake provider."""

    def test_demo_checkout_settled_by_its_webhook(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PAYKIT_ADMIN_TOKEN", "example-token")
        monkeypatch.delenv("STRIPE_API_KEY", raising=False)
        client = load_example("flask_app").create_app().test_client()
        admin = {"Authorization": "Bearer example-token"}

        checkout = client.post("/demo/checkout").get_json()
        hook = checkout["webhook"]
        settled = client.post(hook["url"], data=hook["body"].encode(), headers=hook["headers"])

        assert [200, 200, 401] == [
            settled.status_code,
            client.get("/paykit/health").status_code,
            client.get("/paykit/metrics").status_code,
        ]
        assert {"succeeded": 1} == client.get("/paykit/metrics", headers=admin).get_json()["count_by_status"]
        trail = client.get(f"/paykit/audit/{checkout['payment_id']}", headers=admin).get_json()
        assert "succeeded" == trail[-1]["status_after"]
