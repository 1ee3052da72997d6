# Generated from src/paykit/_async/_part.py by scripts/unasync.py: do not edit.
"""What every part of the service shares: the engine, lookups, and idempotency key claims."""

from __future__ import annotations

from datetime import datetime

from .._decisions import common as d
from .._errors import IdempotencyConflictError
from .._models import Payment
from ..notify import NotificationDispatcher
from ..providers._sync.base import Provider
from ..storage._base import KeyClaim
from ..storage._sync.protocol import Storage
from .engine import Engine


class _Part:
    """The state every part reads; ``PaymentService.__init__`` sets it."""

    _engine: Engine
    _dispatcher: NotificationDispatcher
    _invoice_prefix: str

    @property
    def storage(self) -> Storage:
        """The storage this service writes to."""
        return self._engine.storage

    def provider(self, name: str) -> Provider:
        """The configured provider called ``name``.

        Raises:
            InvalidRequestError: No provider has that name.
        """
        return self._engine.provider(name)

    def now(self) -> datetime:
        """The service clock's current time (timezone-aware)."""
        return self._engine.now()

    def _actor(self, actor: str | None) -> str:
        return actor or self._engine.actor

    def _load(self, payment_id: str) -> Payment:
        d.check_id(payment_id, "payment_id")
        return self._engine.load(Payment, payment_id)

    def _claim_key(self, scope: str, key: str, *, owner_id: str, fingerprint: str) -> None:
        """Bind an idempotency key to the record it is first used for.

        Raises:
            IdempotencyConflictError: The key was used for another record or other parameters.
        """
        claim = KeyClaim(
            scope=scope, key=key, owner_id=owner_id, fingerprint=fingerprint, claimed_at=self._engine.now()
        )
        stored = self._engine.storage.claim_key(claim)
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
