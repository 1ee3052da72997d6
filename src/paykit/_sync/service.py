# Generated from src/paykit/_async/service.py by scripts/unasync.py: do not edit.
"""PaymentService: the parts of the service, composed over one engine."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .._decisions import effects as fx
from .._decisions import policy as pol
from .._errors import ConfigurationError
from ..audit import AuditHook, _HookRunner
from ..notify import NotificationDispatcher, Notifier
from ..providers._sync.base import Provider
from ..storage._base import Reaction
from ..storage._sync.protocol import Storage
from .disputes import _Disputes
from .engine import Engine
from .installments import _Installments
from .invoices import _Invoices
from .methods import _Methods
from .ops import _Ops
from .preferences import _Preferences
from .reconcile import _Reconcile
from .subscriptions import _Subscriptions

__all__ = ["PaymentService"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _held_weakly(reactor: Callable[[Reaction], None]) -> Callable[[Reaction], None]:
    """A reactor method of the service for its engine, which must not hold the service that owns it.

    A bound method there would close a cycle (service, engine, method) around the storage, so a dropped
    service and every record of its memory storage would wait for a full cyclic collection to be freed,
    and each collection before it would walk them all.
    """
    method = weakref.WeakMethod(reactor)

    def react(reaction: Reaction) -> None:
        bound = method()
        if bound is None:  # pragma: no cover - the engine lives only as long as its service
            raise ConfigurationError("the service this reaction belongs to is gone")
        return bound(reaction)

    return react


class PaymentService(_Subscriptions, _Installments, _Reconcile, _Invoices, _Methods, _Ops, _Preferences, _Disputes):
    """Drives payments, refunds, invoices, saved methods, subscriptions, installments and disputes.

    Args:
        storage: Where everything is kept (``MemoryStorage()``, ``MongoStorage(...)``).
        providers: The adapters payments may use, looked up by their ``name``.
        notifiers: Receive notifications through :meth:`dispatch_notifications` (async
            notifiers are awaited by the async service; plain ones run in a thread).
        audit_hooks: Callables that receive each stored audit entry, off the payment path.
        clock: Returns the current timezone-aware time; inject one in tests.
        actor: Who operations are attributed to when a call names no ``actor``.
        notifier_timeout: Seconds a notifier call may take before it counts as failed.
        invoice_prefix: Invoice numbers read ``{prefix}-{year}-{sequence:06d}``.
        policies: Asked, in order, before payments, captures, refunds, invoice payments and
            saved-method changes (see :class:`Policy` and docs/policies.md).
        step_up_verifiers: Check the step-up proofs policies ask for, one per ``method``.

    Raises:
        ConfigurationError: Two providers (or two verifiers) share a name, or a policy
            has no ``evaluate``.
    """

    def __init__(
        self,
        *,
        storage: Storage,
        providers: Sequence[Provider] = (),
        notifiers: Sequence[Notifier] = (),
        audit_hooks: Sequence[AuditHook] = (),
        clock: Callable[[], datetime] = _utcnow,
        actor: str = "system",
        notifier_timeout: float = 5.0,
        invoice_prefix: str = "INV",
        policies: Sequence[pol.Policy] = (),
        step_up_verifiers: Sequence[pol.StepUpVerifier] = (),
    ) -> None:
        by_name: dict[str, Provider] = {}
        for provider in providers:
            if provider.name in by_name:
                raise ConfigurationError(f"two providers are named {provider.name!r}")
            by_name[provider.name] = provider
        self._engine = Engine(
            storage=storage, providers=by_name, clock=clock, actor=actor, hooks=_HookRunner(audit_hooks)
        )
        self._engine.reactors[fx.INVOICE_PAID] = _held_weakly(self._react_invoice_paid)
        self._engine.policies, self._engine.verifiers = pol.check_config(policies, step_up_verifiers)
        self._engine.reactors[fx.DISPUTE_SYNC] = _held_weakly(self._react_dispute_sync)
        self._engine.reactors[fx.BILLING_PAID] = _held_weakly(self._react_billing)
        self._engine.reactors[fx.BILLING_FAILED] = _held_weakly(self._react_billing)
        self._invoice_prefix = invoice_prefix
        self._dispatcher = NotificationDispatcher(storage, notifiers, clock=clock, timeout=notifier_timeout)

    def __enter__(self) -> PaymentService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
