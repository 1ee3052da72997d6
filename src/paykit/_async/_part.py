# Source of the generated sync twin (scripts/unasync.py): edit here.
"""What every part of the service shares: the engine, lookups, and idempotency key claims."""

from __future__ import annotations

import functools
from datetime import datetime

from .._decisions import common as d
from .._decisions import policy as pol
from .._errors import IdempotencyConflictError, InvalidRequestError
from .._models import Payment
from .._money import Money
from ..notify import AsyncNotificationDispatcher
from ..providers._async.base import AsyncProvider
from ..storage._async.protocol import AsyncStorage
from ..storage._base import KeyClaim
from .engine import Engine


@functools.lru_cache(maxsize=32)
def _default_actor(actor_id: str) -> pol.Actor:
    """The :class:`Actor` a service's default ``actor`` id stands for; frozen, so one serves every call."""
    return pol.as_actor(None, actor_id)


_PASSED = pol.Passed()
"""The gate's answer when the service has no policies: no usage counted, no approval to wait for."""


class _Part:
    """The state every part reads; ``PaymentService.__init__`` sets it."""

    _engine: Engine
    _dispatcher: AsyncNotificationDispatcher
    _invoice_prefix: str

    @property
    def storage(self) -> AsyncStorage:
        """The storage this service writes to."""
        return self._engine.storage

    def provider(self, name: str) -> AsyncProvider:
        """The configured provider called ``name``.

        Raises:
            InvalidRequestError: No provider has that name.
        """
        return self._engine.provider(name)

    def now(self) -> datetime:
        """The service clock's current time (timezone-aware)."""
        return self._engine.now()

    def _actor(self, actor: pol.Actor | str | None) -> str:
        if isinstance(actor, pol.Actor):
            return actor.id
        return actor or self._engine.actor

    def _who(self, actor: pol.Actor | str | None) -> pol.Actor:
        if not actor and type(self._engine.actor) is str:  # the service's default: one Actor per id, checked once
            return _default_actor(self._engine.actor)
        return pol.as_actor(actor or None, self._engine.actor)

    async def _gate(
        self,
        operation: str,
        actor: pol.Actor | str | None,
        *,
        user_id: str,
        amount: Money | None,
        provider: str,
        payment_id: str | None = None,
        step_up: pol.StepUpProof | None = None,
    ) -> pol.Passed:
        """Ask the service's policies about an operation, before anything is reserved or sent."""
        if step_up is not None and not isinstance(step_up, pol.StepUpProof):
            raise InvalidRequestError("step_up must be a StepUpProof")
        if not self._engine.policies:
            # Nothing to ask (the default): the actor is still checked, nothing else is built.
            self._who(actor)
            return _PASSED
        context = pol.PolicyContext(
            operation=operation,
            actor=self._who(actor),
            user_id=user_id,
            amount=amount,
            provider=provider,
            payment_id=payment_id,
            at=self._engine.now(),
            step_up=step_up.method if step_up is not None else None,
        )
        return await self._engine.check_policies(context, step_up)

    async def _load(self, payment_id: str) -> Payment:
        d.check_id(payment_id, "payment_id")
        return await self._engine.load(Payment, payment_id)

    async def _claim_key(self, scope: str, key: str, *, owner_id: str, fingerprint: str) -> None:
        """Bind an idempotency key to the record it is first used for.

        Raises:
            IdempotencyConflictError: The key was used for another record or other parameters.
        """
        claim = KeyClaim(
            scope=scope, key=key, owner_id=owner_id, fingerprint=fingerprint, claimed_at=self._engine.now()
        )
        stored = await self._engine.storage.claim_key(claim)
        if stored.owner_id != owner_id:
            error = IdempotencyConflictError(f"idempotency key was already used for a {scope} of another payment")
            error.payment_id = owner_id
            raise error
        if stored.fingerprint != fingerprint:
            error = IdempotencyConflictError(
                f"idempotency key was already used for a {scope} with different parameters"
            )
            error.payment_id = owner_id
            raise error
