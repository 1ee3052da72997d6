"""What :class:`~paykit.testing.Chaos` and ``assert_consistent`` need from a stateful wire fake.

Written by hand, once for both APIs. :class:`~paykit.testing.StripeFake`,
:class:`~paykit.testing.PayPalFake` and :class:`~paykit.testing.KnetFake` all
implement :class:`WireFake`: they queue the webhooks they would send, sign (or
forge) them, take a fault per request from :attr:`WireFake.on_request`, and
describe what they hold of one paykit payment as a :class:`RemotePayment`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import httpx

from .._models import RefundStatus
from .._status import PaymentStatus

if TYPE_CHECKING:
    from .._models import Payment
    from ._clock import ManualClock
    from ._stripe_fake import Fault

__all__ = ["Delivery", "RemotePayment", "RemoteRefund", "WebhookDelivery", "WireFake"]


class Delivery(Protocol):
    """One webhook a fake would send: its event id and type (and whatever the fake needs to sign it)."""

    @property
    def event_id(self) -> str:
        """The event's id at the provider (a retried delivery keeps it)."""
        ...  # pragma: no cover

    @property
    def type(self) -> str:
        """The event type, in the provider's words."""
        ...  # pragma: no cover


@dataclass(frozen=True)
class WebhookDelivery:
    """One webhook ready to be delivered: its id, type, exact body and time (Unix seconds)."""

    event_id: str
    type: str
    body: bytes
    created: int


@dataclass(frozen=True)
class RemoteRefund:
    """One refund as the provider holds it.

    Attributes:
        ref: The provider's id for it (paykit's ``refund.provider_ref``).
        status: Its status in paykit's words.
        amount_minor: Its amount in paykit's minor units.
        paykit_refund_id: The paykit refund id it echoes, when the provider keeps one.
    """

    ref: str
    status: RefundStatus
    amount_minor: int
    paykit_refund_id: str | None = None


@dataclass(frozen=True)
class RemotePayment:
    """What a provider holds of one paykit payment, for ``assert_consistent``.

    Attributes:
        ref: The provider's id for it (paykit's ``payment.provider_ref``).
        status: The provider's own status words (for messages).
        allowed: The paykit statuses that agree with it.
        captured_minor: What the provider captured, in paykit's minor units.
        refunded_minor: What it refunded (succeeded refunds), in paykit's minor units.
        refunds: Every refund of the payment at the provider.
        what: How the provider names the object (``"Stripe's PaymentIntent"``...).
    """

    ref: str
    status: str
    allowed: frozenset[PaymentStatus]
    captured_minor: int
    refunded_minor: int
    refunds: Sequence[RemoteRefund] = field(default_factory=tuple)
    what: str = "the provider's payment"


EarlySink = Callable[[list[Any]], None]
AsyncEarlySink = Callable[[list[Any]], Awaitable[None]]


@runtime_checkable
class WireFake(Protocol):
    """A stateful fake provider :class:`~paykit.testing.Chaos` and ``assert_consistent`` can drive.

    Attributes:
        provider_name: The paykit provider name its adapter registers (``"stripe"``...).
        display_name: How messages name the provider (``"Stripe"``...).
        clock: The clock the fake, its adapter and the service share.
        idempotency_retention: How long the provider replays an answer for a key.
        on_request: Asked for a fault per request operation (chaos sets it).
        early_sink: Receives a request's webhooks before its answer (sync clients).
        async_early_sink: The same for async clients.
    """

    provider_name: str
    display_name: str
    clock: ManualClock
    idempotency_retention: timedelta
    on_request: Callable[[str], Fault | None] | None
    early_sink: EarlySink | None
    async_early_sink: AsyncEarlySink | None

    def take_deliveries(self) -> Sequence[Delivery]:
        """Every webhook queued since the last call, oldest first."""
        ...  # pragma: no cover

    def has_queued(self) -> bool:
        """Whether webhooks wait in the queue."""
        ...  # pragma: no cover

    def signed(self, delivery: Any) -> tuple[bytes, dict[str, str]]:
        """The body and headers of ``delivery`` as the provider sends it."""
        ...  # pragma: no cover

    def forged(self, delivery: Any) -> tuple[bytes, dict[str, str]]:
        """A forgery of ``delivery`` the endpoint must refuse."""
        ...  # pragma: no cover

    def remote_payment(self, payment: Payment) -> RemotePayment | None:
        """What the provider holds for ``payment`` (``None``: nothing under its ``provider_ref``)."""
        ...  # pragma: no cover

    def charges(self) -> Mapping[str, list[str]]:
        """Map each paykit payment id to the provider's ids of every object that took its money."""
        ...  # pragma: no cover

    def unknown_payment_ids(self) -> Mapping[str, str]:
        """The provider's id -> the paykit payment id it names, for every object naming one."""
        ...  # pragma: no cover


@dataclass
class Outcome:
    """What serving one request produced: an answer or a transport error, and early webhooks."""

    response: httpx.Response | None
    error: httpx.HTTPError | None
    early: list[Any] = field(default_factory=list)


class _Serving(Protocol):
    early_sink: EarlySink | None
    async_early_sink: AsyncEarlySink | None

    def _serve(self, request: httpx.Request) -> Outcome: ...

    def _requeue(self, early: list[Any]) -> None: ...


class FakeTransport(httpx.BaseTransport, httpx.AsyncBaseTransport):
    """Serves one fake to sync and async httpx clients alike."""

    def __init__(self, fake: _Serving) -> None:
        self._fake = fake

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Serve ``request`` for an ``httpx.Client``."""
        request.read()
        outcome = self._fake._serve(request)
        if outcome.early and self._fake.early_sink is not None:
            self._fake.early_sink(outcome.early)
        elif outcome.early:
            self._fake._requeue(outcome.early)
        return _finish(outcome, request)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Serve ``request`` for an ``httpx.AsyncClient``."""
        await request.aread()
        outcome = self._fake._serve(request)
        if outcome.early and self._fake.async_early_sink is not None:
            result = self._fake.async_early_sink(outcome.early)
            if inspect.isawaitable(result):
                await result
        elif outcome.early:
            self._fake._requeue(outcome.early)
        return _finish(outcome, request)


def _finish(outcome: Outcome, request: httpx.Request) -> httpx.Response:
    if outcome.error is not None:
        outcome.error.request = request
        raise outcome.error
    assert outcome.response is not None  # noqa: S101  # one of the two is always set
    return outcome.response
