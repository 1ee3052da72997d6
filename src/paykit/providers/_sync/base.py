# Generated from src/paykit/providers/_async/base.py by scripts/unasync.py: do not edit.
"""The provider protocol every adapter implements, and the defaults adapters inherit.

An adapter speaks one provider's wire format and nothing else: it never reads
or writes storage, and it translates every exception of its HTTP client or SDK
into a :class:`~paykit.PaykitError` at its edge. Its pure parts (``name``,
``capabilities``, ``check_amount``) are plain methods in both twins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from ..._errors import InvalidStateError
from ..._models import Dispute, Payment, PaymentMethod, Refund, WebhookEvent
from ..._money import Money
from .._base import (
    CreatePaymentRequest,
    ProviderCapabilities,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderRefund,
)

__all__ = ["BaseProvider", "DisputeProvider", "Provider"]


@runtime_checkable
class Provider(Protocol):
    """What the service needs from a payment provider adapter."""

    @property
    def name(self) -> str:
        """The name payments refer to (``"stripe"``, ``"paypal"``, ``"knet"``)."""
        ...

    @property
    def capabilities(self) -> ProviderCapabilities:
        """What this provider supports."""
        ...

    def create_payment(self, request: CreatePaymentRequest) -> ProviderPayment:
        """Create the payment at the provider."""
        ...

    def confirm_payment(
        self, payment: Payment, *, payment_method_ref: str | None, idempotency_key: str
    ) -> ProviderPayment:
        """Confirm (authorize, or capture for automatic capture) the payment."""
        ...

    def capture_payment(self, payment: Payment, *, amount: Money | None, idempotency_key: str) -> ProviderPayment:
        """Capture an authorized payment, in full (``amount=None``) or in part."""
        ...

    def cancel_payment(self, payment: Payment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel (void) a payment that was not captured."""
        ...

    def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """Fetch the payment's current state from the provider."""
        ...

    def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        """Refund ``refund.amount`` of a captured payment.

        The adapter passes ``refund.id`` to the provider where it keeps metadata
        (Stripe: ``metadata.paykit_refund_id``), so :meth:`find_refund` can find it.
        """
        ...

    def check_amount(self, amount: Money) -> None:
        """Raise ``InvalidRequestError`` when the provider cannot take ``amount``.

        Pure: no I/O. The service calls it before anything is stored or reserved,
        so a refused amount leaves no record behind.
        """
        ...

    def retrieve_refund(self, payment: Payment, refund: Refund) -> ProviderRefund:
        """Fetch a refund the provider knows (``refund.provider_ref`` is set).

        Needed only when ``capabilities.refund_lookup`` is true.
        """
        ...

    def find_refund(self, payment: Payment, refund: Refund) -> ProviderRefund | None:
        """Look a refund up by paykit's ``refund.id``; ``None`` when the provider has none.

        Needed only when ``capabilities.refund_lookup`` is true. The service asks
        this before it sends a refund whose earlier attempt had no clear answer.
        """
        ...

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify and normalize a webhook request.

        ``headers`` keys are lower-case. Raises ``WebhookVerificationError`` for
        anything forged, stale or malformed.
        """
        ...

    def save_payment_method(
        self, user_id: str, token: str, *, customer_ref: str | None, idempotency_key: str
    ) -> tuple[ProviderPaymentMethod, str | None]:
        """Attach a tokenized method to the user's provider customer.

        Returns the method and the customer reference the provider used (new or
        ``customer_ref``), so the service can remember it.
        """
        ...

    def delete_payment_method(self, method: PaymentMethod) -> None:
        """Detach the method at the provider."""
        ...

    def set_default_payment_method(self, method: PaymentMethod, *, customer_ref: str | None) -> None:
        """Make the method the customer's default at the provider, where the provider keeps one."""
        ...


@runtime_checkable
class DisputeProvider(Protocol):
    """What an adapter with ``capabilities.disputes`` adds: answering a dispute at the provider.

    .. versionadded:: 0.3.0
    """

    def accept_dispute(self, dispute: Dispute) -> None:
        """Concede the dispute at the provider (the payer keeps the money)."""
        ...

    def submit_dispute_evidence(self, dispute: Dispute, evidence: Mapping[str, str], *, submit: bool) -> None:
        """Send text evidence, by the provider's field names; ``submit`` sends it for review now."""
        ...


class BaseProvider:
    """Defaults for the optional parts of :class:`Provider`.

    Adapters subclass it and override what their provider supports; what is
    left raises :class:`InvalidStateError` naming the provider.
    """

    name: str = "base"
    capabilities: ProviderCapabilities = ProviderCapabilities()

    def _unsupported(self, what: str) -> InvalidStateError:
        return InvalidStateError(f"provider {self.name!r} does not support {what}")

    def confirm_payment(
        self, payment: Payment, *, payment_method_ref: str | None, idempotency_key: str
    ) -> ProviderPayment:
        raise self._unsupported("server-side confirmation")

    def capture_payment(self, payment: Payment, *, amount: Money | None, idempotency_key: str) -> ProviderPayment:
        raise self._unsupported("manual capture")

    def cancel_payment(self, payment: Payment, *, idempotency_key: str) -> ProviderPayment:
        raise self._unsupported("cancellation")

    def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        raise self._unsupported("refunds")

    def check_amount(self, amount: Money) -> None:
        """Any amount the provider's currencies allow; adapters with amount rules override this."""

    def retrieve_refund(self, payment: Payment, refund: Refund) -> ProviderRefund:
        raise self._unsupported("refund lookups")

    def find_refund(self, payment: Payment, refund: Refund) -> ProviderRefund | None:
        raise self._unsupported("refund lookups")

    def save_payment_method(
        self, user_id: str, token: str, *, customer_ref: str | None, idempotency_key: str
    ) -> tuple[ProviderPaymentMethod, str | None]:
        raise self._unsupported("saved payment methods")

    def delete_payment_method(self, method: PaymentMethod) -> None:
        raise self._unsupported("saved payment methods")

    def set_default_payment_method(self, method: PaymentMethod, *, customer_ref: str | None) -> None:
        """Nothing to do for providers that keep no default of their own."""

    def accept_dispute(self, dispute: Dispute) -> None:
        raise self._unsupported("disputes")

    def submit_dispute_evidence(self, dispute: Dispute, evidence: Mapping[str, str], *, submit: bool) -> None:
        raise self._unsupported("disputes")
