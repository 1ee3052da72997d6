"""PayPalFake: the real PayPal adapters against a stateful PayPal, checked against PayPal's OpenAPI specs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import httpx
import jsonschema
import pytest
from jsonschema.validators import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from paykit import (
    AsyncPaymentService,
    Money,
    PaymentService,
    PaymentStatus,
    ProviderRequestError,
    ProviderUnavailableError,
    RefundStatus,
)
from paykit.storage import AsyncMemoryStorage, MemoryStorage
from paykit.testing import Fault, PayPalFake, assert_consistent
from paykit.webhooks import ahandle_webhook, handle_webhook

from .._shared import shared_path

USD = "USD"
_SPECS = {"orders": "checkout_orders_v2.json", "payments": "payments_payment_v2.json"}
_DOCS = {name: json.loads((shared_path("specs", "paypal") / file).read_text()) for name, file in _SPECS.items()}
_REGISTRY: Registry[Any] = Registry().with_resources(
    (f"urn:paypal:{name}", Resource.from_contents(doc, default_specification=DRAFT4)) for name, doc in _DOCS.items()
)


def _absolute(spec: str, schema: Any) -> Any:
    """``schema`` with its top-level ``#/...`` references pointing into ``spec``."""
    if isinstance(schema, dict):
        return {
            k: (f"urn:paypal:{spec}{v}" if k == "$ref" and v.startswith("#") else _absolute(spec, v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute(spec, item) for item in schema]
    return schema


def _operation(method: str, path: str) -> tuple[str, Mapping[str, Any]]:
    for spec, doc in _DOCS.items():
        for template, operations in doc["paths"].items():
            if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and method.lower() in operations:
                return spec, operations[method.lower()]
    raise AssertionError(f"{method} {path} is not in PayPal's specs")


def assert_wire_format(fake: PayPalFake) -> int:
    """Validate every request body the adapter sent and every answer the fake gave against PayPal's specs."""
    checked = 0
    for request, status, answer in fake.exchanges:
        if request.operation == "token":
            continue
        spec, operation = _operation(request.method, request.path)
        body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if request.method == "POST" and body_schema is not None and request.body:
            Draft4Validator(_absolute(spec, body_schema), registry=_REGISTRY).validate(request.body)
        response = operation["responses"].get(str(status)) or {}
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is not None and answer is not None:
            Draft4Validator(_absolute(spec, schema), registry=_REGISTRY).validate(answer)
            checked += 1
    return checked


def test_the_schema_check_rejects_what_paypal_would() -> None:
    """So the checks below mean something."""
    spec, operation = _operation("POST", "/v2/checkout/orders/ABC/capture")
    schema = operation["responses"]["201"]["content"]["application/json"]["schema"]
    with pytest.raises(jsonschema.ValidationError):
        Draft4Validator(_absolute(spec, schema), registry=_REGISTRY).validate({"id": "X", "status": "PAID"})


def make_service(fake: PayPalFake) -> PaymentService:
    return PaymentService(storage=MemoryStorage(), providers=[fake.provider()], clock=fake.clock)


def deliver(service: PaymentService, fake: PayPalFake) -> list[tuple[str, int]]:
    return [(d.type, handle_webhook(service, "paypal", *fake.signed(d)).status_code) for d in fake.take_deliveries()]


def pay(service: PaymentService, fake: PayPalFake, amount: str = "10.00", **options: Any) -> Any:
    payment = service.initialize_payment(
        user_id="u1",
        amount=Money.of(amount, USD),
        provider="paypal",
        idempotency_key=f"o-{len(fake.orders)}",
        **options,
    )
    fake.approve(payment.provider_ref)
    return service.confirm_payment(payment.id)


def api(fake: PayPalFake) -> httpx.Client:
    """A raw client with a token, to speak to the fake as any PayPal client would."""
    client = httpx.Client(transport=fake.transport, base_url="https://api-m.sandbox.paypal.com")
    token = client.post(
        "/v1/oauth2/token", data={"grant_type": "client_credentials"}, auth=(fake.client_id, fake.client_secret)
    ).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


ORDER = {"intent": "CAPTURE", "purchase_units": [{"amount": {"currency_code": "USD", "value": "5.00"}}]}


# -- a checkout through the real adapter -------------------------------------------------------


def test_a_checkout_capture_and_refunds_speak_paypals_wire_format() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("10.00", USD), provider="paypal", idempotency_key="o1"
    )
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.redirect_url == f"https://www.sandbox.paypal.com/checkoutnow?token={payment.provider_ref}"

    fake.approve(payment.provider_ref or "")
    payment = service.confirm_payment(payment.id)
    first = service.refund_payment(payment.id, amount=Money.of("3.00", USD))
    second = service.refund_payment(payment.id, amount=Money.of("7.00", USD))

    payment = service.get_payment(payment.id)
    assert (payment.status, payment.captured_minor, payment.refunded_minor) == (PaymentStatus.REFUNDED, 1000, 1000)
    assert (first.status, second.status) == (RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    capture = fake.capture_of(payment.provider_ref or "")
    assert capture is not None
    assert capture["status"] == "REFUNDED"
    assert [r["amount"]["value"] for r in fake.refunds_of(payment.provider_ref or "")] == ["3.00", "7.00"]
    assert [(r.operation, s) for r, s, _ in fake.exchanges if r.method == "POST"] == [
        ("token", 200),
        ("create", 201),
        ("confirm", 201),
        ("refund", 201),
        ("refund", 201),
    ]
    assert all(r.request_id for r in fake.requests if r.method == "POST" and r.operation != "token")
    assert assert_wire_format(fake) == 4
    assert deliver(service, fake) == [
        ("CHECKOUT.ORDER.APPROVED", 200),
        ("PAYMENT.CAPTURE.COMPLETED", 200),
        ("CHECKOUT.ORDER.COMPLETED", 200),
        ("PAYMENT.CAPTURE.REFUNDED", 200),
        ("PAYMENT.CAPTURE.REFUNDED", 200),
    ]
    # The adapter confirmed each money event with a GET; the fake answered consistently.
    gets = [(r.operation, s) for r, s, _ in fake.exchanges if r.method == "GET"]
    assert ("retrieve_capture", 200) in gets
    assert ("retrieve_refund", 200) in gets
    assert assert_wire_format(fake) > 4
    assert assert_consistent(service, fake) == 1


def test_manual_capture_authorizes_then_captures_part_or_voids() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    authorized = pay(service, fake, capture_method="manual")
    assert authorized.status is PaymentStatus.AUTHORIZED
    captured = service.capture_payment(authorized.id, amount=Money.of("9.00", USD))
    voided = service.cancel_payment(pay(service, fake, capture_method="manual").id)

    assert (captured.status, captured.captured_minor) == (PaymentStatus.SUCCEEDED, 900)
    assert voided.status is PaymentStatus.CANCELED
    statuses = sorted(a["status"] for a in fake.authorizations.values())
    assert statuses == ["PARTIALLY_CAPTURED", "VOIDED"]
    assert [t for t, s in deliver(service, fake) if s == 200].count("PAYMENT.AUTHORIZATION.CREATED") == 2
    assert assert_wire_format(fake) > 0
    assert assert_consistent(service, fake) == 2


# -- buyer and documented errors ----------------------------------------------------------------


def test_capturing_before_the_buyer_approves_is_order_not_approved() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("5.00", USD), provider="paypal", idempotency_key="o"
    )

    payment = service.confirm_payment(payment.id)

    assert payment.status is PaymentStatus.REQUIRES_ACTION
    (_, status, answer), *_ = [e for e in fake.exchanges if e[0].operation == "confirm"]
    assert (status, answer["name"], answer["details"][0]["issue"]) == (
        422,
        "UNPROCESSABLE_ENTITY",
        "ORDER_NOT_APPROVED",
    )
    assert_wire_format(fake)


def test_a_declined_instrument_lets_the_buyer_approve_again() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("5.00", USD), provider="paypal", idempotency_key="o"
    )
    fake.approve(payment.provider_ref or "", funding="declined")

    declined = service.confirm_payment(payment.id)
    fake.approve(payment.provider_ref or "")
    paid = service.confirm_payment(payment.id)

    assert declined.status is PaymentStatus.REQUIRES_ACTION
    refusals = [
        a["details"][0]["issue"] for r, status, a in fake.exchanges if r.operation == "confirm" and status == 422
    ]
    assert refusals == ["INSTRUMENT_DECLINED"]
    assert paid.status is PaymentStatus.SUCCEEDED
    assert_wire_format(fake)


def test_a_denied_capture_fails_the_payment_and_says_so_by_webhook() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("5.00", USD), provider="paypal", idempotency_key="o"
    )
    fake.approve(payment.provider_ref or "", funding="denied")

    payment = service.confirm_payment(payment.id)

    assert payment.status is PaymentStatus.FAILED
    assert ("PAYMENT.CAPTURE.DENIED", 200) in deliver(service, fake)
    assert assert_consistent(service, fake) == 1


def test_an_unknown_order_is_resource_not_found() -> None:
    fake = PayPalFake()
    answer = api(fake).get("/v2/checkout/orders/NOSUCHORDER12345")

    assert (answer.status_code, answer.json()["name"]) == (404, "RESOURCE_NOT_FOUND")
    with pytest.raises(ProviderRequestError):
        fake.provider().retrieve_payment(
            make_service(fake)
            .initialize_payment(user_id="u", amount=Money.of("1.00", USD), provider="paypal", idempotency_key="k")
            .model_copy(update={"provider_ref": "NOSUCHORDER12345"})
        )


def test_a_wrong_secret_is_refused() -> None:
    fake = PayPalFake()
    client = httpx.Client(transport=fake.transport)
    answer = client.post(
        "https://api-m.sandbox.paypal.com/v1/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(fake.client_id, "wrong"),
    )
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client")
    unauthenticated = client.get("https://api-m.sandbox.paypal.com/v2/checkout/orders/X")
    assert unauthenticated.status_code == 401


# -- money never above the capture ----------------------------------------------------------------


def test_refunds_never_exceed_the_capture() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = pay(service, fake)
    capture = fake.capture_of(payment.provider_ref)
    assert capture is not None
    client = api(fake)
    url = f"/v2/payments/captures/{capture['id']}/refund"

    partial = client.post(url, json={"amount": {"currency_code": USD, "value": "6.00"}})
    too_much = client.post(url, json={"amount": {"currency_code": USD, "value": "4.01"}})
    rest = client.post(url, json={})
    again = client.post(url, json={})

    assert (partial.status_code, partial.json()["status"]) == (201, "COMPLETED")
    assert (too_much.status_code, too_much.json()["details"][0]["issue"]) == (422, "REFUND_AMOUNT_EXCEEDED")
    assert (rest.status_code, rest.json()["amount"]["value"]) == (201, "4.00")
    assert (again.status_code, again.json()["details"][0]["issue"]) == (422, "CAPTURE_FULLY_REFUNDED")
    assert sum(int(r["amount"]["value"].replace(".", "")) for r in fake.refunds_of(payment.provider_ref)) == 1000
    assert_wire_format(fake)


# -- idempotency ----------------------------------------------------------------------------------


def test_a_request_id_replays_the_first_answer_for_six_hours() -> None:
    fake = PayPalFake()
    client = api(fake)
    headers = {"PayPal-Request-Id": "order-7"}

    first = client.post("/v2/checkout/orders", json=ORDER, headers=headers)
    replay = client.post("/v2/checkout/orders", json={**ORDER, "intent": "AUTHORIZE"}, headers=headers)
    fake.clock.advance(hours=6, seconds=1)
    later = client.post("/v2/checkout/orders", json=ORDER, headers=headers)

    assert (first.status_code, replay.status_code, later.status_code) == (201, 200, 201)
    assert replay.json() == first.json()
    assert later.json()["id"] != first.json()["id"]
    assert len(fake.orders) == 2


def test_a_capture_replayed_with_its_request_id_is_200_and_another_id_is_already_captured() -> None:
    fake = PayPalFake()
    client = api(fake)
    order = client.post("/v2/checkout/orders", json=ORDER).json()
    fake.approve(order["id"])
    url = f"/v2/checkout/orders/{order['id']}/capture"

    first = client.post(url, json={}, headers={"PayPal-Request-Id": "cap-1"})
    replay = client.post(url, json={}, headers={"PayPal-Request-Id": "cap-1"})
    other = client.post(url, json={}, headers={"PayPal-Request-Id": "cap-2"})

    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json() == first.json()
    assert (other.status_code, other.json()["details"][0]["issue"]) == (422, "ORDER_ALREADY_CAPTURED")
    assert len(fake.captures) == 1


def test_a_capture_whose_answer_is_lost_is_not_taken_twice() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    payment = service.initialize_payment(
        user_id="u1", amount=Money.of("5.00", USD), provider="paypal", idempotency_key="o"
    )
    fake.approve(payment.provider_ref or "")
    fake.inject(Fault.TIMEOUT_AFTER_SUCCESS, on="confirm")

    with pytest.raises(ProviderUnavailableError):
        service.confirm_payment(payment.id)
    payment = service.confirm_payment(payment.id)

    assert payment.status is PaymentStatus.SUCCEEDED
    assert len(fake.captures) == 1
    assert assert_consistent(service, fake) == 1


# -- webhooks ---------------------------------------------------------------------------------------


def test_forged_webhooks_are_refused_and_signed_ones_pass() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    pay(service, fake)

    deliveries = fake.take_deliveries()
    forged = [handle_webhook(service, "paypal", *fake.forged(d)).status_code for d in deliveries]
    signed = [handle_webhook(service, "paypal", *fake.signed(d)).status_code for d in deliveries]

    assert all(400 <= s < 500 for s in forged)
    assert signed == [200] * len(deliveries)


def test_a_late_webhook_outside_the_tolerance_is_refused() -> None:
    fake = PayPalFake()
    service = make_service(fake)
    pay(service, fake)
    body, headers = fake.signed(fake.take_deliveries()[0])
    fake.clock.advance(minutes=10)

    assert handle_webhook(service, "paypal", body, headers).status_code == 400


# -- async -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_async_adapter_runs_against_the_same_fake() -> None:
    fake = PayPalFake()
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[fake.async_provider()], clock=fake.clock)
    payment = await service.initialize_payment(
        user_id="u1", amount=Money.of("10.00", USD), provider="paypal", idempotency_key="o1", capture_method="manual"
    )
    fake.approve(payment.provider_ref or "")
    payment = await service.confirm_payment(payment.id)
    payment = await service.capture_payment(payment.id)
    refund = await service.refund_payment(payment.id, amount=Money.of("2.50", USD))

    answers = [
        (d.type, (await ahandle_webhook(service, "paypal", *fake.signed(d))).status_code)
        for d in fake.take_deliveries()
    ]

    assert (payment.status, refund.status) == (PaymentStatus.SUCCEEDED, RefundStatus.SUCCEEDED)
    assert answers == [
        ("CHECKOUT.ORDER.APPROVED", 200),
        ("PAYMENT.AUTHORIZATION.CREATED", 200),
        ("PAYMENT.CAPTURE.COMPLETED", 200),
        ("PAYMENT.CAPTURE.REFUNDED", 200),
    ]
    assert assert_wire_format(fake) > 0
    assert (await service.get_payment(payment.id)).refunded_minor == 250


@pytest.mark.anyio
async def test_the_async_adapter_refreshes_a_token_the_fake_forgot() -> None:
    fake = PayPalFake()
    provider = fake.async_provider()
    service = AsyncPaymentService(storage=AsyncMemoryStorage(), providers=[provider], clock=fake.clock)
    await service.initialize_payment(user_id="u", amount=Money.of("1.00", USD), provider="paypal", idempotency_key="a")
    fake._tokens.clear()  # PayPal revoked it

    await service.initialize_payment(user_id="u", amount=Money.of("1.00", USD), provider="paypal", idempotency_key="b")

    assert [r.operation for r in fake.requests].count("token") == 2
    assert len(fake.orders) == 2


def test_a_delivery_has_paypals_headers_and_event_shape() -> None:
    fake = PayPalFake()
    make_service(fake)
    client = api(fake)
    order = client.post("/v2/checkout/orders", json=ORDER).json()
    fake.approve(order["id"])
    (delivery,) = fake.take_deliveries()
    body, headers = fake.signed(delivery)

    assert set(headers) == {
        "PAYPAL-AUTH-ALGO",
        "PAYPAL-CERT-URL",
        "PAYPAL-TRANSMISSION-ID",
        "PAYPAL-TRANSMISSION-SIG",
        "PAYPAL-TRANSMISSION-TIME",
    }
    event = json.loads(body)
    assert (event["event_type"], event["resource"]["id"], event["resource"]["status"]) == (
        "CHECKOUT.ORDER.APPROVED",
        order["id"],
        "APPROVED",
    )
