"""Helpers for testing applications that use paykit.

``FakeProvider`` stands in for a real provider (and signs its own webhooks),
``ManualClock`` makes time explicit, and the provider signers build webhook
requests exactly as Stripe, PayPal and KNET send them, so your webhook routes
can be tested end to end without network access. ``capture_logs()`` collects
paykit's log events as dicts.

``StripeFake`` is a stateful Stripe account behind an httpx transport, so the
real adapter runs against it; ``Chaos`` delivers its webhooks duplicated, late,
early, reordered, lost or forged and injects provider faults, from a seed; and
``assert_consistent`` checks that paykit and the fake agree after all that.
``PayPalFake`` and ``KnetFake`` do the same for PayPal (Orders v2, Payments v2,
signed webhooks) and KNET (payment page, encrypted response, tranPipe); the
three implement ``WireFake``, the protocol ``Chaos`` and ``assert_consistent`` use.
The pytest plugin (``paykit.testing.pytest_plugin``) offers them as fixtures.
"""

from __future__ import annotations

from typing import Any

from ._async.consistency import assert_consistent as aassert_consistent
from ._async.incident import export_incident as aexport_incident
from ._async.incident import replay_incident as areplay_incident
from ._chaos import Chaos, ChaosRates, ForgeryAccepted
from ._clock import ManualClock
from ._fake import AsyncFakeProvider, FakeBehavior, FakeCall, FakeProvider, FakeWebhook, LookupFault
from ._logs import capture_logs
from ._stripe_fake import Fault, StripeDelivery, StripeFake, StripeRequest
from ._sync.consistency import assert_consistent
from ._sync.incident import export_incident, replay_incident
from ._wire_fake import Delivery, RemotePayment, RemoteRefund, WebhookDelivery, WireFake

__all__ = [
    "AsyncFakeProvider",
    "Chaos",
    "ChaosRates",
    "Delivery",
    "FakeBehavior",
    "FakeCall",
    "FakeKnet",
    "FakeProvider",
    "FakeWebhook",
    "Fault",
    "ForgeryAccepted",
    "KnetFake",
    "KnetRefund",
    "KnetTransaction",
    "LookupFault",
    "ManualClock",
    "PayPalFake",
    "PayPalRequest",
    "PayPalWebhookSigner",
    "RemotePayment",
    "RemoteRefund",
    "StripeDelivery",
    "StripeFake",
    "StripeRequest",
    "WebhookDelivery",
    "WireFake",
    "aassert_consistent",
    "aexport_incident",
    "areplay_incident",
    "assert_consistent",
    "capture_logs",
    "export_incident",
    "knet_error_body",
    "knet_payment_request",
    "knet_response_body",
    "replay_incident",
    "sign_stripe_webhook",
    "stripe_event",
]

# Provider-specific helpers need their provider's optional extra; load them on first use.
_LAZY = {
    "sign_stripe_webhook": "._stripe",
    "stripe_event": "._stripe",
    "PayPalWebhookSigner": "._paypal",
    "PayPalFake": "._paypal_fake",
    "PayPalRequest": "._paypal_fake",
    "KnetFake": "._knet_fake",
    "KnetRefund": "._knet_fake",
    "FakeKnet": "._knet",
    "KnetTransaction": "._knet",
    "knet_response_body": "._knet",
    "knet_error_body": "._knet",
    "knet_payment_request": "._knet",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415

    return getattr(importlib.import_module(module, __name__), name)
