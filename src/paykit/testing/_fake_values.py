"""FakeProvider: an in-process payment provider for tests and the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .._models import RefundStatus
from .._money import Money
from .._status import PaymentStatus
from ..providers._base import (
    ProviderRefund,
)

__all__ = ["FakeBehavior", "FakeCall", "FakeWebhook", "LookupFault"]

FakeBehavior = Literal[
    "succeed",
    "decline",
    "require_action",
    "processing",
    "accept_then_fail",
    "timeout",
    "server_error",
    "refund_timeout_after_success",
    "refund_replayed_server_error",
    "refund_pending",
    "refund_fails_later",
]
"""How the fake answers the next call that moves money.

- ``succeed``: confirm succeeds (or authorizes, for manual capture).
- ``decline``: confirm raises :class:`~paykit.PaymentDeclinedError`.
- ``require_action``: confirm asks for 3-D Secure (REQUIRES_ACTION + next_action).
- ``processing``: confirm is accepted asynchronously (PROCESSING); settle it with :meth:`FakeProvider.webhook`.
- ``accept_then_fail``: like ``processing``, and the payment fails at the provider a moment later
  (its :meth:`FakeProvider.retrieve_payment` says FAILED; :meth:`FakeProvider.webhook` can tell it too).
- ``timeout`` / ``server_error``: the call raises :class:`~paykit.ProviderUnavailableError` and nothing
  happens at the provider.

Refund faults (queue them with :meth:`FakeProvider.fail_next` right before the refund: a queued
behavior is taken by the next money-moving call, whichever it is; they act on ``refund_payment``):

- ``refund_timeout_after_success``: the refund is made at the provider (SUCCEEDED, its idempotency key
  remembered) but the answer is lost: the call raises ``ProviderUnavailableError`` (code ``timeout``).
  A resend with the same key answers the refund; :meth:`FakeProvider.find_refund` finds it.
- ``refund_replayed_server_error``: the provider answers 500 (``ProviderUnavailableError``, http_status
  500, code ``api_error``) and, like Stripe, replays that same error for every resend with the same
  idempotency key until the key is forgotten (:meth:`FakeProvider.forget_idempotency_keys`). Nothing is
  refunded.
- ``refund_pending``: the refund is accepted as PENDING; settle it later with
  :meth:`FakeProvider.settle_refund` (silently, as when its webhook is lost) or
  :meth:`FakeProvider.refund_webhook`.
- ``refund_fails_later``: the refund is answered SUCCEEDED, then fails at the provider at once:
  :meth:`FakeProvider.retrieve_refund` and :meth:`FakeProvider.find_refund` say FAILED, and
  :meth:`FakeProvider.refund_webhook` tells it.
"""

LookupFault = Literal["timeout", "server_error"]
"""How the fake fails the next refund lookup (:meth:`FakeProvider.fail_next_lookup`)."""

SIGNATURE_HEADER = "paykit-fake-signature"
_CARDS = {
    "pm_card_visa": ("visa", "4242"),
    "tok_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "tok_mastercard": ("mastercard", "4444"),
}


@dataclass(frozen=True, slots=True)
class FakeCall:
    """One call the service made to the fake."""

    method: str
    idempotency_key: str | None = None
    provider_ref: str | None = None
    amount: Money | None = None
    refund_id: str | None = None
    """paykit's refund id, for refund calls (``refund_payment``, ``retrieve_refund``, ``find_refund``)."""


@dataclass(frozen=True, slots=True)
class FakeWebhook:
    """A signed webhook request the fake would send: pass both to ``handle_webhook``."""

    body: bytes
    headers: dict[str, str]


@dataclass(slots=True)
class _FakePayment:
    ref: str
    payment_id: str
    amount: Money
    capture_method: str
    status: PaymentStatus
    captured: int = 0
    by_key: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _FakeRefund:
    ref: str
    refund_id: str
    payment_ref: str
    payment_id: str
    amount: Money
    status: RefundStatus
    failure_message: str | None = None

    def view(self) -> ProviderRefund:
        return ProviderRefund(provider_ref=self.ref, status=self.status, failure_message=self.failure_message)
