"""Seeded chaos: webhooks delivered duplicated, reordered, late, early, lost or forged, and provider faults.

Written by hand, once for both APIs: :meth:`Chaos.flush` delivers to a plain
sink, :meth:`Chaos.aflush` awaits an async one. Every decision comes from one
``random.Random(seed)`` consumed in the order the app makes its calls, so the
same seed and the same app reproduce the same run, and :attr:`Chaos.log` says
what was done.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._stripe_fake import Fault
from ._wire_fake import Delivery, WireFake

__all__ = ["Chaos", "ChaosRates", "ForgeryAccepted"]

Sink = Callable[[bytes, Mapping[str, str]], Any]
"""Receives one delivery (raw body, headers); returns the HTTP status or a response with ``status_code``."""

_DEFAULT_FAULTS = (
    Fault.TIMEOUT_AFTER_SUCCESS,
    Fault.RESET_AFTER_SENDING,
    Fault.RESET_BEFORE_SENDING,
    Fault.UNAVAILABLE_503,
    Fault.SERVER_ERROR_500,
)


class ForgeryAccepted(AssertionError):  # an assertion, named for what it found
    """The endpoint answered a forged delivery with a 2xx."""


@dataclass(frozen=True)
class ChaosRates:
    """How often each misbehaviour happens (probabilities, 0 to 1).

    Attributes:
        duplicate: A delivery is sent two or three times.
        drop: A delivery is lost for good (``reconcile()`` must make up for it).
        forge: A forged copy (wrong signature) is sent too; it must be refused.
        delay: A delivery is held back to the next flush, behind later events.
        reorder: A flush's deliveries are shuffled.
        early: A request's events are delivered before its API answer returns.
        fault: A request fails with one of ``faults``.
        faults: The provider faults to pick from.
        fault_on: The operations faults are injected into.
    """

    duplicate: float = 0.3
    drop: float = 0.15
    forge: float = 0.1
    delay: float = 0.2
    reorder: float = 0.5
    early: float = 0.2
    fault: float = 0.1
    faults: tuple[Fault, ...] = _DEFAULT_FAULTS
    fault_on: frozenset[str] = frozenset({"create", "confirm", "capture", "cancel", "refund"})

    @classmethod
    def calm(cls) -> ChaosRates:
        """Every delivery once, in order, on time; no faults."""
        return cls(duplicate=0, drop=0, forge=0, delay=0, reorder=0, early=0, fault=0)


class Chaos:
    """Delivers a fake provider's webhooks to ``sink`` the way a bad day at the provider would.

    The fake is a :class:`~paykit.testing.StripeFake`, a
    :class:`~paykit.testing.PayPalFake` or a :class:`~paykit.testing.KnetFake`
    (any :class:`~paykit.testing.WireFake`).

    Installing it steers the fake: each API request may get a provider fault
    (:attr:`ChaosRates.fault`) or have its events delivered before its answer
    (:attr:`ChaosRates.early`). :meth:`flush` (or :meth:`aflush`) delivers what
    the fake queued since, duplicated, dropped, forged, delayed and shuffled;
    a delivery answered with anything but 2xx is retried at the next flush, as
    Stripe retries, up to ``max_attempts``. A forgery answered with a 2xx raises
    :class:`ForgeryAccepted` at once.

    >>> from paykit.testing import StripeFake
    >>> fake = StripeFake()
    >>> chaos = Chaos(fake, lambda body, headers: 200, seed=7)
    >>> chaos.flush()
    >>> chaos.log
    []

    Args:
        fake: The fake whose requests and events are disturbed.
        sink: The app's webhook endpoint: a callable taking the raw body and
            the headers and returning the status (or a response with
            ``status_code``); async for :meth:`aflush`.
        seed: Seeds every decision.
        rates: How often each misbehaviour happens.
        max_attempts: Deliveries of one event answered non-2xx before it is given up.
    """

    def __init__(
        self,
        fake: WireFake,
        sink: Sink,
        *,
        seed: int,
        rates: ChaosRates | None = None,
        max_attempts: int = 3,
    ) -> None:
        self.fake = fake
        self.sink = sink
        self.seed = seed
        self.rates = rates or ChaosRates()
        self.max_attempts = max_attempts
        self.log: list[str] = []
        """Every decision taken, in order: the same seed gives the same log."""
        self.answers: list[tuple[str, str, int]] = []
        """(event id, ``"delivery"`` or ``"forgery"``, status answered) per delivery made."""
        self._rng = random.Random(seed)  # noqa: S311  # reproducible, not secret
        self._held: list[Delivery] = []
        self._attempts: dict[str, int] = {}
        self._active = True
        fake.on_request = self._on_request
        fake.early_sink = self._early
        fake.async_early_sink = self._aearly

    # -- steering -------------------------------------------------------------------------

    def stop(self) -> None:
        """No more faults or early deliveries (what is held is still delivered by :meth:`drain`)."""
        self._active = False

    def report(self) -> str:
        """The seed and every decision, one per line, for a failure message."""
        return "\n".join([f"chaos seed {self.seed}:", *(f"  {line}" for line in self.log)])

    def _on_request(self, operation: str) -> Fault | None:
        if not self._active or operation not in self.rates.fault_on:
            return None
        if self._rng.random() < self.rates.fault:
            fault = self._rng.choice(self.rates.faults)
            self.log.append(f"{operation}: {fault.value}")
            return fault
        if self._rng.random() < self.rates.early:
            self.log.append(f"{operation}: webhooks before the answer")
            return Fault.WEBHOOKS_FIRST
        return None

    # -- planning ---------------------------------------------------------------------------

    def _plan(self, batch: list[Delivery], *, final: bool) -> list[tuple[Delivery, bool]]:
        """(delivery, forged) in the order they will be sent; delayed ones are held."""
        sends: list[tuple[Delivery, bool]] = []
        rates = self.rates
        for delivery in batch:
            name = f"{delivery.type} {delivery.event_id}"
            if self._attempts.get(delivery.event_id, 0) == 0:  # first time seen: lose or hold it?
                if self._rng.random() < rates.drop:
                    self.log.append(f"drop {name}")
                    self._attempts[delivery.event_id] = self.max_attempts
                    continue
                if not final and self._rng.random() < rates.delay:
                    self.log.append(f"delay {name}")
                    self._attempts[delivery.event_id] = 0
                    self._held.append(delivery)
                    continue
            copies = 1
            if self._rng.random() < rates.duplicate:
                copies = self._rng.choice((2, 3))
                self.log.append(f"duplicate x{copies} {name}")
            sends.extend([(delivery, False)] * copies)
            if self._rng.random() < rates.forge:
                self.log.append(f"forge {name}")
                sends.append((delivery, True))
        if len(sends) > 1 and self._rng.random() < rates.reorder:
            self._rng.shuffle(sends)
            self.log.append("reorder: " + ", ".join(("forged " if f else "") + d.event_id for d, f in sends))
        return sends

    def _batch(self, *, final: bool) -> list[tuple[Delivery, bool]]:
        batch = [*self._held, *self.fake.take_deliveries()]
        self._held = []
        self._attempts = {k: v for k, v in self._attempts.items() if v < self.max_attempts}
        for delivery in batch:
            self._attempts.setdefault(delivery.event_id, 0)
        return self._plan(batch, final=final)

    def _record(self, delivery: Delivery, forged: bool, answer: object) -> bool:
        status = int(getattr(answer, "status_code", answer))  # type: ignore[call-overload]
        self.answers.append((delivery.event_id, "forgery" if forged else "delivery", status))
        if forged:
            if 200 <= status < 300:
                raise ForgeryAccepted(
                    f"a forged {delivery.type} ({delivery.event_id}) was answered {status}\n{self.report()}"
                )
            return True
        if 200 <= status < 300:
            self._attempts[delivery.event_id] = self.max_attempts
            return True
        self._attempts[delivery.event_id] = self._attempts.get(delivery.event_id, 0) + 1
        self.log.append(f"answered {status}: {delivery.type} {delivery.event_id}")
        if self._attempts[delivery.event_id] < self.max_attempts:
            self._held.append(delivery)
        return False

    def _request(self, delivery: Delivery, forged: bool) -> tuple[bytes, Mapping[str, str]]:
        return self.fake.forged(delivery) if forged else self.fake.signed(delivery)

    # -- delivering --------------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver what the fake queued (and what was held), through the plain ``sink``."""
        self._send(self._batch(final=False))

    def drain(self) -> None:
        """Deliver everything still queued or held (dropped deliveries stay lost), until nothing is left."""
        for _ in range(self.max_attempts + 1):
            self._send(self._batch(final=True))
            if not self._held and not self._pending():
                return

    async def aflush(self) -> None:
        """:meth:`flush` through a sink that may be async."""
        await self._asend(self._batch(final=False))

    async def adrain(self) -> None:
        """:meth:`drain` through a sink that may be async."""
        for _ in range(self.max_attempts + 1):
            await self._asend(self._batch(final=True))
            if not self._held and not self._pending():
                return

    def _pending(self) -> bool:
        return self.fake.has_queued()

    def _send(self, sends: Iterable[tuple[Delivery, bool]]) -> None:
        for delivery, forged in sends:
            answer = self.sink(*self._request(delivery, forged))
            if inspect.isawaitable(answer):
                raise TypeError("the sink is async: use aflush()/adrain()")
            self._record(delivery, forged, answer)

    async def _asend(self, sends: Iterable[tuple[Delivery, bool]]) -> None:
        for delivery, forged in sends:
            answer = self.sink(*self._request(delivery, forged))
            if inspect.isawaitable(answer):
                answer = await answer
            self._record(delivery, forged, answer)

    def _early(self, deliveries: list[Delivery]) -> None:
        self._send(self._plan_early(deliveries))

    async def _aearly(self, deliveries: list[Delivery]) -> None:
        await self._asend(self._plan_early(deliveries))

    def _plan_early(self, deliveries: list[Delivery]) -> list[tuple[Delivery, bool]]:
        for delivery in deliveries:
            self._attempts.setdefault(delivery.event_id, 0)
        return [(d, False) for d in deliveries]
