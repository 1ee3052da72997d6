"""The Provider protocol every adapter implements, and the values it exchanges.

An adapter speaks one provider's wire format and nothing else: it never reads
or writes storage, and it translates every exception of its HTTP client or SDK
into a :class:`~paykit.PaykitError` at its edge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._models import CaptureMethod, RefundStatus
from .._money import Money
from .._status import PaymentStatus

__all__ = [
    "CreatePaymentRequest",
    "ProviderCapabilities",
    "ProviderPayment",
    "ProviderPaymentMethod",
    "ProviderRefund",
]


@dataclass(frozen=True, slots=True)
class ProviderCapabilities:
    """What a provider supports; the service checks these before calling it.

    ``currencies`` is ``None`` when the provider takes any ISO 4217 currency
    its own amount rules accept.
    """

    manual_capture: bool = False
    partial_capture: bool = False
    refunds: bool = True
    partial_refunds: bool = True
    saved_payment_methods: bool = False
    server_side_confirm: bool = True
    currencies: frozenset[str] | None = None
    refund_lookup: bool = False
    """The provider can find a refund by paykit's refund id and retrieve it by its own
    (``find_refund``, ``retrieve_refund``), so a refund whose outcome is unknown is looked
    up before it is ever sent again."""
    idempotent_refunds: bool = True
    """A refund sent again under the same idempotency key is made at most once. Without it (KNET),
    paykit never resends a refund whose answer was lost: it stays pending, its amount held, until
    :meth:`~paykit.PaymentService.resolve_refund` records what the provider's dashboard shows."""
    disputes: bool = False
    """The provider has a disputes API paykit drives (``accept_dispute``,
    ``submit_dispute_evidence``). Disputes are recorded from its events either way.

    .. versionadded:: 0.3.0"""

    off_session: bool = False
    """The provider charges a saved method without the customer (``CreatePaymentRequest.off_session``):
    subscriptions and installments renew by themselves. Without it, each period's payment waits
    for the customer, who is notified with the link to pay."""


@dataclass(frozen=True, slots=True)
class CreatePaymentRequest:
    """What the service asks a provider to create.

    ``idempotency_key`` is derived from the paykit payment id, so a retried
    initialization never creates a second charge at the provider.
    """

    payment_id: str
    user_id: str
    amount: Money
    capture_method: CaptureMethod
    idempotency_key: str
    description: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    payment_method_ref: str | None = None
    customer_ref: str | None = None
    return_url: str | None = None
    cancel_url: str | None = None
    off_session: bool = False
    """Charge ``payment_method_ref`` now, without the customer (a subscription renewal): the
    provider confirms at creation. Set only for providers whose capabilities declare it."""


@dataclass(frozen=True, slots=True)
class ProviderPayment:
    """A provider's view of a payment, normalized.

    ``client_secret`` is handed to the application's front end and stored, but
    never logged or audited. ``provider_data`` holds the provider's own ids the
    adapter needs later (a PayPal capture id, a KNET transaction id); the service
    merges it into :attr:`Payment.provider_data`.
    """

    provider_ref: str
    status: PaymentStatus
    amount_captured: Money | None = None
    client_secret: str | None = field(default=None, repr=False)
    redirect_url: str | None = None
    next_action: Mapping[str, Any] | None = None
    payment_method_ref: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    provider_data: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ProviderRefund:
    """A provider's view of a refund."""

    provider_ref: str
    status: RefundStatus
    failure_message: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderPaymentMethod:
    """A payment method as the provider stored it (no card number, ever)."""

    provider_ref: str
    type: str = "card"
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
