"""Scaffolding for docs/providers/paypal.md: credentials in the environment and PayPal's API, offline.

The doc reads its credentials from the environment, as an application would, and
talks to ``api-m.sandbox.paypal.com`` through httpx; here the variables hold test
values and respx answers PayPal's endpoints the way the sandbox does (orders keep
the ``custom_id`` they were created with), all removed afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import respx

_API = "https://api-m.sandbox.paypal.com"
_ENVIRONMENT = {
    "PAYPAL_CLIENT_ID": "AeA1QIZXiflr1-docs-client",
    "PAYPAL_CLIENT_SECRET": "ECYYrrSHdKfk-docs-secret",
    "PAYPAL_WEBHOOK_ID": "8PT597110X687430LKGECATA",
}


class _Sandbox:
    """Just enough of PayPal's Orders and Payments APIs for the doc's flows."""

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):014d}"

    def create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        unit = body["purchase_units"][0]
        order_id = self._id("5O")
        self.orders[order_id] = {
            "id": order_id,
            "intent": body["intent"],
            "status": "PAYER_ACTION_REQUIRED",
            "purchase_units": [{"reference_id": "default", "amount": unit["amount"], "custom_id": unit["custom_id"]}],
            "links": [{"href": f"https://www.sandbox.paypal.com/checkoutnow?token={order_id}", "rel": "payer-action"}],
        }
        return httpx.Response(200, json=self.orders[order_id])

    def _payment(self, order: dict[str, Any], kind: str, amount: dict[str, str]) -> dict[str, Any]:
        status = "COMPLETED" if kind == "captures" else "CREATED"
        payment = {
            "id": self._id("3C" if kind == "captures" else "0V"),
            "status": status,
            "amount": amount,
            "custom_id": order["purchase_units"][0]["custom_id"],
            "supplementary_data": {"related_ids": {"order_id": order["id"]}},
        }
        order["purchase_units"][0].setdefault("payments", {}).setdefault(kind, []).append(payment)
        return payment

    def confirm(self, request: httpx.Request) -> httpx.Response:
        order_id, action = request.url.path.split("/")[4:6]
        order = self.orders[order_id]
        self._payment(
            order, "captures" if action == "capture" else "authorizations", order["purchase_units"][0]["amount"]
        )
        order["status"] = "COMPLETED"
        return httpx.Response(201, json=order)

    def get(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=self.orders[request.url.path.split("/")[4]])

    def capture_authorization(self, request: httpx.Request) -> httpx.Response:
        authorization_id = request.url.path.split("/")[4]
        order = next(
            o
            for o in self.orders.values()
            for a in o["purchase_units"][0].get("payments", {}).get("authorizations", [])
            if a["id"] == authorization_id
        )
        amount = json.loads(request.content).get("amount", order["purchase_units"][0]["amount"])
        return httpx.Response(201, json=self._payment(order, "captures", amount))

    def refund(self, request: httpx.Request) -> httpx.Response:
        amount = json.loads(request.content)["amount"]
        return httpx.Response(201, json={"id": self._id("1J"), "status": "COMPLETED", "amount": amount})


@contextlib.contextmanager
def context() -> Iterator[dict[str, Any]]:
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    os.environ.update(_ENVIRONMENT)
    sandbox = _Sandbox()
    try:
        with respx.mock(assert_all_called=False) as router:
            router.post(f"{_API}/v1/oauth2/token").respond(
                200, json={"access_token": "A21AA-docs-token", "token_type": "Bearer", "expires_in": 32400}
            )
            router.post(f"{_API}/v2/checkout/orders").mock(side_effect=sandbox.create)
            router.post(url__regex=rf"{_API}/v2/checkout/orders/\w+/(capture|authorize)$").mock(
                side_effect=sandbox.confirm
            )
            router.get(url__regex=rf"{_API}/v2/checkout/orders/\w+$").mock(side_effect=sandbox.get)
            router.post(url__regex=rf"{_API}/v2/payments/authorizations/\w+/capture$").mock(
                side_effect=sandbox.capture_authorization
            )
            router.post(url__regex=rf"{_API}/v2/payments/authorizations/\w+/void$").respond(204)
            router.post(url__regex=rf"{_API}/v2/payments/captures/\w+/refund$").mock(side_effect=sandbox.refund)
            yield {}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
