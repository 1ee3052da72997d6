"""Provider adapters behind one :class:`Provider` protocol, and its async twin :class:`AsyncProvider`.

``StripeProvider``, ``PayPalProvider`` and ``KnetProvider``, and their async
twins ``AsyncStripeProvider``, ``AsyncPayPalProvider`` and ``AsyncKnetProvider``,
are imported on first use, so a missing optional extra only matters for the
provider that needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._async.base import AsyncBaseProvider, AsyncDisputeProvider, AsyncProvider
from ._base import (
    CreatePaymentRequest,
    ProviderCapabilities,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderRefund,
)
from ._sync.base import BaseProvider, DisputeProvider, Provider

if TYPE_CHECKING:
    from ._async.knet import AsyncKnetProvider
    from ._async.paypal import AsyncPayPalProvider
    from ._async.stripe import AsyncStripeProvider
    from ._sync.knet import KnetProvider
    from ._sync.paypal import PayPalProvider
    from ._sync.stripe import StripeProvider

__all__ = [
    "AsyncBaseProvider",
    "AsyncDisputeProvider",
    "AsyncKnetProvider",
    "AsyncPayPalProvider",
    "AsyncProvider",
    "AsyncStripeProvider",
    "BaseProvider",
    "CreatePaymentRequest",
    "DisputeProvider",
    "KnetProvider",
    "PayPalProvider",
    "Provider",
    "ProviderCapabilities",
    "ProviderPayment",
    "ProviderPaymentMethod",
    "ProviderRefund",
    "StripeProvider",
]

_LAZY = {
    "StripeProvider": "._sync.stripe",
    "PayPalProvider": "._sync.paypal",
    "KnetProvider": "._sync.knet",
    "AsyncStripeProvider": "._async.stripe",
    "AsyncKnetProvider": "._async.knet",
    "AsyncPayPalProvider": "._async.paypal",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
