"""Scaffolding for docs/providers/stripe.md: test credentials and an offline Stripe.

The doc reads its keys from the environment, as an application would, and talks
to https://api.stripe.com; here respx answers in Stripe's wire format from a
small in-memory PaymentIntent store, so the doc runs without network access.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import respx

_ENVIRONMENT = {"STRIPE_API_KEY": "sk_test_docs", "STRIPE_WEBHOOK_SECRET": "whsec_docs"}


class _OfflineStripe:
    """Just enough of PaymentIntents and Refunds for the doc's calls."""

    def __init__(self) -> None:
        self.intents: dict[str, dict[str, Any]] = {}
        self.ids = itertools.count(1)

    @staticmethod
    def form(request: httpx.Request) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}

    def create_intent(self, request: httpx.Request) -> httpx.Response:
        data = self.form(request)
        ident = f"pi_docs{next(self.ids)}"
        self.intents[ident] = {
            "id": ident,
            "object": "payment_intent",
            "amount": int(data["amount"]),
            "amount_received": 0,
            "currency": data["currency"],
            "capture_method": data.get("capture_method", "automatic"),
            "client_secret": f"{ident}_secret_docs",
            "status": "requires_confirmation" if "payment_method" in data else "requires_payment_method",
            "payment_method": data.get("payment_method"),
            "last_payment_error": None,
            "next_action": None,
            "latest_charge": None,
            "metadata": {k[9:-1]: v for k, v in data.items() if k.startswith("metadata[")},
        }
        return httpx.Response(200, json=self.intents[ident])

    def confirm(self, request: httpx.Request, pi: str) -> httpx.Response:
        intent = self.intents[pi]
        intent["payment_method"] = self.form(request).get("payment_method", intent["payment_method"])
        intent["latest_charge"] = f"ch_{pi[3:]}"
        if intent["capture_method"] == "manual":
            intent["status"] = "requires_capture"
        else:
            intent["status"], intent["amount_received"] = "succeeded", intent["amount"]
        return httpx.Response(200, json=intent)

    def capture(self, request: httpx.Request, pi: str) -> httpx.Response:
        intent = self.intents[pi]
        amount = int(self.form(request).get("amount_to_capture", intent["amount"]))
        intent["status"], intent["amount_received"] = "succeeded", amount
        return httpx.Response(200, json=intent)

    def retrieve(self, request: httpx.Request, pi: str) -> httpx.Response:
        return httpx.Response(200, json=self.intents[pi])

    def refund(self, request: httpx.Request) -> httpx.Response:
        data = self.form(request)
        refund = {
            "id": f"re_docs{next(self.ids)}",
            "object": "refund",
            "amount": int(data["amount"]),
            "currency": self.intents[data["payment_intent"]]["currency"],
            "payment_intent": data["payment_intent"],
            "status": "succeeded",
            "metadata": {},
        }
        return httpx.Response(200, json=refund)


@contextlib.contextmanager
def context() -> Iterator[dict[str, Any]]:
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    os.environ.update(_ENVIRONMENT)
    fake = _OfflineStripe()
    intent = r"/v1/payment_intents/(?P<pi>pi_\w+)"
    try:
        with respx.mock(base_url="https://api.stripe.com", assert_all_called=False) as router:
            router.post("/v1/payment_intents").mock(side_effect=fake.create_intent)
            router.post(path__regex=intent + "/confirm$").mock(side_effect=fake.confirm)
            router.post(path__regex=intent + "/capture$").mock(side_effect=fake.capture)
            router.get(path__regex=intent + "$").mock(side_effect=fake.retrieve)
            router.post("/v1/refunds").mock(side_effect=fake.refund)
            yield {}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
