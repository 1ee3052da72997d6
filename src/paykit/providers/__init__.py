"""Provider adapters (temporary façade while the core lands)."""

from ._base import (
    BaseProvider,
    CreatePaymentRequest,
    Provider,
    ProviderCapabilities,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderRefund,
)
