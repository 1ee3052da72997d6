# Generated from src/paykit/_async/engine.py by scripts/unasync.py: do not edit.
"""The engine every part writes through: one compare-and-set loop, one way to call providers.

``transact`` is the only loop over record versions in paykit: it hands the
current record to a pure ``build``, writes the new version with its audit entry,
notifications and other effects in one atomic write, and on a lost race reloads
and builds again. Reactions a write carries (effects on other records) are
applied right after it, and again by ``reconcile()`` until they are done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime
from time import sleep
from typing import Any, Final, NoReturn, TypeVar

from .. import _telemetry as telemetry
from .._decisions import billing as db
from .._decisions import common as dc
from .._decisions import effects as fx
from .._decisions import policy as pol
from .._decisions.change import Change
from .._errors import (
    ConfigurationError,
    InvalidRequestError,
    NotFoundError,
    PaykitError,
    PolicyDeniedError,
    ProviderError,
    StepUpRequiredError,
    StorageError,
)
from .._log import get_logger
from .._models import AuditAction, AuditEntry, InstallmentPlan, Invoice, Payment, PaymentMethod, Subscription, copy_with
from ..audit import _HookRunner
from ..providers._sync.base import Provider
from ..storage._base import Effect, KeyClaim, Reaction, Write
from ..storage._sync.protocol import Storage

__all__ = ["Engine"]

log = get_logger(__name__)

_CAS_ATTEMPTS: Final = 200
_READ_RETRIES: Final = 2

_R = TypeVar("_R", Payment, Invoice, PaymentMethod, Subscription, InstallmentPlan, Subscription | InstallmentPlan)
_T = TypeVar("_T")


@dataclass(slots=True)
class _Applying:
    """The reaction a reactor is applying, and whether the write of its target carried its done marker."""

    reaction: Reaction
    marked: bool = False


_APPLYING: ContextVar[_Applying | None] = ContextVar("paykit_applying_reaction", default=None)
"""Per thread or task: a write of the reaction's target marks it done in the same atomic write."""

Held = Invoice | Subscription | InstallmentPlan
CompanionBuild = Callable[[Any, Reaction, Payment, datetime], Change]
"""The pure build of a reaction's change over the copy in hand of its target, given the payment as written."""


@dataclass(slots=True)
class Companions:
    """Records a caller holds that a payment write's reactions target: written in the payment's own batch.

    The payment's compare-and-set goes first and stops the batch when it loses its race;
    each target's write carries its reaction's done marker, so nothing is left to apply.
    A target whose copy went stale (or whose build skips) is left to its reactor, as always.
    """

    held: dict[str, Held]
    builds: Mapping[str, CompanionBuild]
    actors: Mapping[str, str] = field(default_factory=dict)
    """By reaction kind: who the target's write is by (its reactor's actor); the engine's by default."""
    written: dict[str, tuple[Any, Any, list[Effect]]] = field(default_factory=dict)
    """By reaction id: (before, after, effects) of each target written, for ``react`` to finish."""


COMPANIONS: ContextVar[Companions | None] = ContextVar("paykit_companions", default=None)
"""Per thread or task, set by a caller around the operation whose payment write it expects."""


class Engine:
    """Storage, providers, clock and hooks, and the two ways parts use them."""

    def __init__(
        self,
        *,
        storage: Storage,
        providers: Mapping[str, Provider],
        clock: Callable[[], datetime],
        actor: str,
        hooks: _HookRunner,
    ) -> None:
        self.storage = storage
        self.providers = dict(providers)
        self.actor = actor
        self.hooks = hooks
        self._clock = clock
        self.reactors: dict[str, Callable[[Reaction], None]] = {}
        self.policies: tuple[pol.Policy, ...] = ()
        self.verifiers: dict[str, pol.StepUpVerifier] = {}

    def now(self) -> datetime:
        """The service clock's time; it must be timezone-aware."""
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidRequestError("the clock must return timezone-aware datetimes")
        return now

    def provider(self, name: str) -> Provider:
        """The configured provider called ``name``."""
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(sorted(self.providers)) or "none"
            raise InvalidRequestError(f"unknown provider {name!r} (configured: {known})") from None

    # -- reads ----------------------------------------------------------------
    def load(self, kind: type[_R], record_id: str) -> _R:
        """The stored record, or ``NotFoundError``."""
        record = _GETTERS[kind](self.storage, record_id)
        if not isinstance(record, kind):
            raise NotFoundError(f"no {_NAMES[kind]} {record_id!r}")
        return record

    # -- the one compare-and-set loop ---------------------------------------
    def transact(
        self,
        record: _R,
        build: Callable[[_R], Change],
        *,
        actor: str | None = None,
    ) -> tuple[_R, Change]:
        """Write what ``build`` decides over the current record, reloading on a lost race.

        ``record`` is the copy in hand: it saves a read while it is current.
        Returns the record as written (or as found, when ``build`` skips) and the change.

        Raises:
            StorageError: Every attempt lost to another writer, or storage failed.
        """
        current = record
        for attempt in range(_CAS_ATTEMPTS):
            if attempt:
                sleep(min(0.001 * attempt, 0.02))
                current = self.load(type(record), record.id)
            change = build(current)
            if not change.write:
                return current, change
            now = self.now()
            # model_copy(update=...) without its three copy.copy calls: the same shallow copy, unvalidated as there.
            after = copy_with(current, {**change.updates, "version": current.version + 1, "updated_at": now})
            effects = self._effects(current, after, change, actor=actor or self.actor, at=now)
            if self._update(after, current.version, effects):
                self._written(current, after, effects)
                return after, change
        raise StorageError("the record kept changing under this write; try again")

    def _effects(self, before: _R, after: _R, change: Change, *, actor: str, at: datetime) -> list[Effect]:
        effects: list[Effect] = []
        if isinstance(before, Payment) and isinstance(after, Payment):
            # Audit entry and notifications from one redaction of the change's values.
            effects.extend(fx.payment_effects(before, after, change.action, actor=actor, at=at, payload=change.payload))
            effects.extend(fx.payment_reactions(before, after, at=at))
        elif isinstance(before, Invoice) and isinstance(after, Invoice):
            if change.action is not None:
                effects.append(fx.invoice_audit(before, after, change.action, actor=actor, at=at))
        elif isinstance(after, PaymentMethod) and change.action is not None:
            effects.append(fx.method_audit(after, change.action, actor=actor))
        elif isinstance(after, Subscription | InstallmentPlan) and change.action is not None:
            payload = dict(change.payload) if change.payload else None
            effects.append(db.billing_audit(before, after, change.action, actor=actor, at=at, payload=payload))
        effects.extend(change.effects)
        return effects

    def _update(self, after: _R, expected: int, effects: Sequence[Effect]) -> bool:
        companions = COMPANIONS.get()
        if companions is not None and isinstance(after, Payment):
            batch = self._companion_writes(companions, after, effects)
            if batch:
                return self._write_with(companions, after, expected, effects, batch)
        applying = _APPLYING.get()
        if applying is not None and not applying.marked and applying.reaction.target_id == after.id:
            # The write that applies a reaction also marks it done: no separate write, and no
            # moment where it is applied but still pending. Not handed to _written: it is no new reaction.
            marker = replace(applying.reaction, done=True)
            if self._write(after, expected, [*effects, marker]):
                applying.marked = True
                return True
            return False
        return self._write(after, expected, effects)

    def _companion_writes(
        self, companions: Companions, payment: Payment, effects: Sequence[Effect]
    ) -> list[tuple[Reaction, Any, Any, list[Effect]]]:
        """The held targets of the payment write's reactions, each with its change built."""
        batch: list[tuple[Reaction, Any, Any, list[Effect]]] = []
        for reaction in effects:
            if not isinstance(reaction, Reaction) or reaction.id in companions.written:
                continue
            held: Any = companions.held.get(reaction.target_id)  # one of _R's types, known at run time
            build = companions.builds.get(reaction.kind)
            if held is None or build is None:
                continue
            now = self.now()
            change = build(held, reaction, payment, now)
            if not change.write:
                continue  # its reactor finds nothing to do either, and marks it done
            after = copy_with(held, {**change.updates, "version": held.version + 1, "updated_at": now})
            written = self._effects(held, after, change, actor=companions.actors.get(reaction.kind, self.actor), at=now)
            batch.append((reaction, held, after, written))
        return batch

    def _write_with(
        self,
        companions: Companions,
        payment: Payment,
        expected: int,
        effects: Sequence[Effect],
        batch: list[tuple[Reaction, Any, Any, list[Effect]]],
    ) -> bool:
        """The payment's write and its held targets' in one batch; ``react`` finishes what was written."""
        writes = [Write(payment, effects, expected)]
        writes += [Write(after, [*fx, replace(r, done=True)], held.version) for r, held, after, fx in batch]
        made = self.storage.write_batch(writes)
        for reaction, held, after, written in batch[: max(made - 1, 0)]:
            companions.written[reaction.id] = (held, after, written)
            companions.held[after.id] = after
        return made > 0

    def _write(self, after: _R, expected: int, effects: Sequence[Effect]) -> bool:
        if isinstance(after, Payment):
            return self.storage.update_payment(after, expected_version=expected, effects=effects)
        if isinstance(after, Invoice):
            return self.storage.update_invoice(after, expected_version=expected, effects=effects)
        if isinstance(after, Subscription | InstallmentPlan):
            return self.storage.update_billing(after, expected_version=expected, effects=effects)
        return self.storage.update_payment_method(after, expected_version=expected, effects=effects)

    def _written(self, before: _R, after: _R, effects: Sequence[Effect]) -> None:
        self.emit(effects)
        if isinstance(before, Payment) and isinstance(after, Payment) and before.status != after.status:
            telemetry.record("paykit.payment.transitions", provider=after.provider, status=after.status.value)
            if log.isEnabledFor(logging.INFO):  # the event's values are not even read while INFO is off
                log.info(
                    "payment status changed",
                    payment_id=after.id,
                    provider=after.provider,
                    status_before=before.status.value,
                    status=after.status.value,
                )
        reactions = [e for e in effects if isinstance(e, Reaction)]
        if reactions:  # most writes carry none
            self.react(reactions)

    def emit(self, effects: Sequence[Effect]) -> None:
        """Hand stored audit entries to the audit hooks, off the payment path."""
        self.hooks.submit([e for e in effects if isinstance(e, AuditEntry)])

    # -- reactions ------------------------------------------------------------
    def react(self, reactions: Sequence[Reaction]) -> int:
        """Apply reactions and mark them done; a failure leaves them for ``reconcile()``.

        A reactor applies its reaction in one write of the reaction's target (through
        :meth:`transact`), and that write carries the reaction's done marker; a reaction
        that needed no write (applied already) is marked done after the loop.

        Returns how many were applied.
        """
        applied: list[str] = []
        marked = 0
        companions = COMPANIONS.get()
        for reaction in reactions:
            done = companions.written.pop(reaction.id, None) if companions is not None else None
            if done is not None:  # written, done marker and all, in its payment's batch
                self._written(*done)
                marked += 1
                continue
            reactor = self.reactors.get(reaction.kind)
            if reactor is None:
                log.warning("no reactor for reaction", kind=reaction.kind, reaction_id=reaction.id)
                continue
            applying = _Applying(reaction)
            token = _APPLYING.set(applying)
            try:
                reactor(reaction)
            except PaykitError as exc:
                log.warning("reaction left for reconcile", reaction_id=reaction.id, error=type(exc).__name__)
                continue
            finally:
                _APPLYING.reset(token)
            if applying.marked:
                marked += 1
            else:
                applied.append(reaction.id)
        if not applied:
            return marked
        # One write marks them all done: a crash before it only means reconcile applies them again,
        # which changes nothing (reactors are idempotent).
        try:
            self.storage.complete_reactions(applied)
        except PaykitError as exc:
            log.warning("reactions left for reconcile", count=len(applied), error=type(exc).__name__)
            return marked
        return marked + len(applied)

    # -- providers --------------------------------------------------------------
    @staticmethod
    def _provider_failed(adapter: Provider, operation: str, exc: PaykitError, attempt: int, started: float) -> None:
        decline = getattr(exc, "decline_code", None) or getattr(exc, "code", None)
        telemetry.mark(outcome="error", decline_code=decline, error=type(exc).__name__)
        telemetry.record(
            "paykit.provider.duration",
            time.perf_counter() - started,
            provider=adapter.name,
            operation=operation,
            outcome="error",
        )
        telemetry.record("paykit.provider.errors", provider=adapter.name, operation=operation, error=type(exc).__name__)
        log.info(
            "provider call failed",
            provider=adapter.name,
            operation=operation,
            error=type(exc).__name__,
            code=getattr(exc, "code", None),
            should_retry=getattr(exc, "should_retry", False),
            attempt=attempt,
        )

    def call_provider(
        self,
        adapter: Provider,
        operation: str,
        call: Callable[[], _T],
        *,
        payment_id: str | None = None,
        read_only: bool = False,
    ) -> _T:
        """Call an adapter: the one place provider calls pass through.

        Reads (``read_only``) are retried once when the failure may pass; writes
        never are here, since their idempotency keys make the caller's retry (or
        ``reconcile()``) the safe one. Errors carry the payment id, and anything
        an adapter lets escape untranslated becomes a :class:`ProviderError`.
        """
        tries = _READ_RETRIES if read_only else 1
        for attempt in range(1, tries + 1):
            started = time.perf_counter()
            with telemetry.provider_span(adapter.name, operation, attempt):
                try:
                    result = call()
                except ProviderError as exc:
                    exc.payment_id = exc.payment_id or payment_id
                    self._provider_failed(adapter, operation, exc, attempt, started)
                    if attempt < tries and exc.should_retry:
                        sleep(0.05 * attempt)
                        continue
                    raise
                except PaykitError as exc:
                    exc.payment_id = exc.payment_id or payment_id
                    self._provider_failed(adapter, operation, exc, attempt, started)
                    raise
                except Exception as exc:
                    log.exception(
                        "provider adapter raised an untranslated error", provider=adapter.name, operation=operation
                    )
                    error = ProviderError(
                        f"{adapter.name} {operation} failed: {type(exc).__name__}", provider=adapter.name
                    )
                    error.payment_id = payment_id
                    self._provider_failed(adapter, operation, error, attempt, started)
                    raise error from exc
                seconds = time.perf_counter() - started
                telemetry.mark(outcome="ok")
                telemetry.record(
                    "paykit.provider.duration", seconds, provider=adapter.name, operation=operation, outcome="ok"
                )
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("provider call", provider=adapter.name, operation=operation, ms=round(seconds * 1000, 3))
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    # -- the policy gate ----------------------------------------------------------
    def check_policies(self, context: pol.PolicyContext, proof: pol.StepUpProof | None) -> pol.Passed:
        """Ask the policies before anything is reserved or sent; count velocity; use a step-up proof once.

        A refusal writes its audit entry and nothing else.

        Raises:
            PolicyDeniedError: A policy refused, a limit would pass, or the proof is wrong, expired or used.
            StepUpRequiredError: A second factor is needed and none (of an accepted method) was given.
        """
        if not self.policies:
            return pol.Passed()
        verdict = pol.evaluate(self.policies, context)
        if verdict.denied:
            self.refuse(context, verdict.denied)
        proof_id = None
        if verdict.step_up:
            proof_id = self._verify_step_up(context, verdict, proof)
        usage = self._add_usage(context, verdict.usage)
        if proof is not None and proof_id is not None:
            used = KeyClaim(
                scope="step_up",
                key=f"{context.actor.id}:{proof.method}:{proof_id}",
                owner_id=dc.new_id("use"),
                fingerprint="",
                claimed_at=self.now(),
            )
            if self.storage.claim_key(used).owner_id != used.owner_id:
                self.release_usage(usage)
                self.refuse(context, (("StepUp", "this second factor was used already"),))
            payload = {"method": proof.method, "policies": list(verdict.step_up_by)}
            self._policy_audit(context, AuditAction.POLICY_STEPPED_UP, payload)
        return pol.Passed(usage, verdict.approval)

    def _verify_step_up(self, context: pol.PolicyContext, verdict: pol.Verdict, proof: pol.StepUpProof | None) -> str:
        methods = verdict.methods
        reasons = "; ".join(need.reason for need in verdict.step_up)
        if not methods:
            self.refuse(context, (("StepUp", f"no step-up method satisfies every policy: {reasons}"),))
        if proof is None or proof.method not in methods:
            payload = {"methods": list(methods), "policies": list(verdict.step_up_by)}
            self._policy_audit(context, AuditAction.POLICY_STEP_UP_REQUIRED, payload)
            error = StepUpRequiredError(
                f"{reasons}: pass step_up=StepUpProof(method, code) with one of {', '.join(methods)}",
                methods=methods,
            )
            error.payment_id = context.payment_id
            raise error
        verifier = self.verifiers.get(proof.method)
        if verifier is None:
            raise ConfigurationError(f"no step-up verifier for {proof.method!r} was given to the service")
        proof_id = verifier.verify(context.actor, proof, self.now())
        if not proof_id:
            self.refuse(context, (("StepUp", f"the {proof.method} proof is wrong or expired"),))
        return proof_id

    def _add_usage(self, context: pol.PolicyContext, usage: Sequence[pol.Usage]) -> tuple[pol.Usage, ...]:
        added: list[pol.Usage] = []
        for item in usage:
            fits = self.storage.add_usage(
                item.key,
                count=item.count,
                amount_minor=item.amount_minor,
                max_count=item.max_count,
                max_amount_minor=item.max_amount_minor,
                expires_at=item.until,
            )
            if not fits:
                self.release_usage(added)
                self.refuse(context, (("VelocityLimit", item.reason),))
            added.append(item)
        return tuple(added)

    def release_usage(self, usage: Sequence[pol.Usage]) -> None:
        """Give back usage counted for an operation that did not go ahead after all."""
        for item in usage:
            try:
                self.storage.add_usage(
                    item.key,
                    count=-item.count,
                    amount_minor=-item.amount_minor,
                    max_count=None,
                    max_amount_minor=None,
                    expires_at=item.until,
                )
            except PaykitError as exc:  # the counter then over-counts until its window ends: never under
                log.warning("could not give velocity usage back", error=type(exc).__name__)

    def refuse(self, context: pol.PolicyContext, reasons: Sequence[tuple[str, str]]) -> NoReturn:
        """Audit a refusal by (policy name, reason) pairs, then raise :class:`PolicyDeniedError`."""
        payload = {"policies": [name for name, _ in reasons], "reasons": [reason for _, reason in reasons]}
        self._policy_audit(context, AuditAction.POLICY_DENIED, payload)
        lines = tuple(f"{name}: {reason}" for name, reason in reasons)
        error = PolicyDeniedError(f"{context.operation} refused: {'; '.join(lines)}", reasons=lines)
        error.payment_id = context.payment_id
        raise error

    def _policy_audit(self, context: pol.PolicyContext, action: AuditAction, payload: Mapping[str, object]) -> None:
        entry = pol.policy_audit(context, action, at=self.now(), payload=payload)
        self.storage.append_audit([entry])
        self.emit([entry])
        log.info("policy decision", action=action.value, operation=context.operation, payment_id=context.payment_id)


_NAMES: Final[dict[type, str]] = {
    Payment: "payment",
    Invoice: "invoice",
    PaymentMethod: "payment method",
    Subscription: "subscription",
    InstallmentPlan: "installment plan",
}
_GETTERS: Final[dict[type, Callable[[Storage, str], object]]] = {
    Payment: lambda storage, record_id: storage.get_payment(record_id),
    Invoice: lambda storage, record_id: storage.get_invoice(record_id),
    PaymentMethod: lambda storage, record_id: storage.get_payment_method(record_id),
    Subscription: lambda storage, record_id: storage.get_billing(record_id),
    InstallmentPlan: lambda storage, record_id: storage.get_billing(record_id),
}
