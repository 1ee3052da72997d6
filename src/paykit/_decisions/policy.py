"""Pure policy rules: who may do what, for how much, how often, and with which proof.

A policy looks at one :class:`PolicyContext` (operation, actor, paying user,
amount, provider, payment) and answers with a decision: :class:`Allow` (maybe
with :class:`Usage` to count against a velocity counter), :class:`Deny`,
:class:`RequireStepUp` or :class:`RequireApproval`. Nothing here reads storage
or a clock: the engine's policy gate does the counting and the proof checks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol, runtime_checkable

from .._errors import ConfigurationError, InvalidRequestError
from .._models import AuditAction, AuditEntry
from .._money import Money
from .._redact import redact
from . import common

__all__ = [
    "OPERATIONS",
    "Actor",
    "Allow",
    "AmountLimit",
    "Decision",
    "Deny",
    "Passed",
    "Policy",
    "PolicyContext",
    "RefundApproval",
    "RequireApproval",
    "RequireStepUp",
    "StepUp",
    "StepUpProof",
    "StepUpVerifier",
    "Usage",
    "VelocityLimit",
    "Verdict",
    "as_actor",
    "evaluate",
    "policy_audit",
    "window",
]

OPERATIONS: Final = frozenset(
    {
        "initialize_payment",
        "confirm_payment",
        "capture_payment",
        "refund_payment",
        "pay_invoice",
        "save_payment_method",
        "delete_payment_method",
        "approve_refund",
    }
)
"""The operations policies are asked about (``PolicyContext.operation``).

``approve_refund`` is asked after the approver's own checks (the approving role, not the requester);
only a policy that names it (or names no operations, as ``StepUp`` may) applies to it."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

MAX_WINDOW: Final = timedelta(days=31)
"""The longest velocity window: storages may drop a counter some time after its last use."""


@dataclass(frozen=True, slots=True, init=False)
class Actor:
    """Who performs an operation: an id (kept in the audit trail) and roles (read by policies).

    A plain string wherever ``actor=`` is accepted means ``Actor(that_string)``: no roles.

    >>> Actor("alice", {"support"}).has_role("support")
    True
    """

    id: str
    roles: frozenset[str]

    def __init__(self, id: str, roles: Iterable[str] = ()) -> None:
        if not isinstance(id, str) or not id.strip():
            raise InvalidRequestError("an actor id must be a non-empty string")
        if isinstance(roles, str):
            raise InvalidRequestError("roles must be a collection of strings, not one string")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "roles", frozenset(roles))

    def has_role(self, *roles: str) -> bool:
        """Whether the actor holds any of ``roles``."""
        return not self.roles.isdisjoint(roles)


def as_actor(actor: Actor | str | None, default: str) -> Actor:
    """The actor a call names: an :class:`Actor`, a plain id (no roles), or the service's default."""
    if actor is None:
        return Actor(default)
    if isinstance(actor, Actor):
        return actor
    if isinstance(actor, str):
        return Actor(actor)
    raise InvalidRequestError("actor must be an Actor or a string")


@dataclass(frozen=True, slots=True)
class StepUpProof:
    """A second factor given with one call, e.g. ``StepUpProof("totp", "123456")``.

    The code never shows in a repr, a log line or an audit entry.
    """

    method: str
    code: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """What a policy decides on: one operation about to run."""

    operation: str
    """One of :data:`OPERATIONS`."""
    actor: Actor
    user_id: str
    """The paying user (the owner of the payment or saved method)."""
    amount: Money | None
    """What moves: the payment, capture or refund amount; ``None`` for saved-method changes."""
    provider: str
    payment_id: str | None = None
    at: datetime = _EPOCH
    """The service clock's time of the call."""
    step_up: str | None = None
    """The method of the step-up proof given with the call (not yet verified), if any."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Count ``count`` and ``amount_minor`` on counter ``key`` until ``until``, unless a limit would pass.

    The gate adds it with one conditional storage write; a usage that does not
    fit makes the decision a denial.
    """

    key: str
    until: datetime
    count: int = 0
    amount_minor: int = 0
    max_count: int | None = None
    max_amount_minor: int | None = None
    reason: str = "velocity limit reached"


@dataclass(frozen=True, slots=True)
class Allow:
    """Go ahead (after counting ``usage``, if any)."""

    usage: tuple[Usage, ...] = ()


@dataclass(frozen=True, slots=True)
class Deny:
    """Refuse the operation: it raises :class:`~paykit.PolicyDeniedError` with ``reason``."""

    reason: str


@dataclass(frozen=True, slots=True)
class RequireStepUp:
    """The call needs a verified second factor of one of ``methods``."""

    reason: str
    methods: tuple[str, ...] = ("totp",)


@dataclass(frozen=True, slots=True)
class RequireApproval:
    """A refund waits for another actor holding ``approver_role`` (refunds only)."""

    reason: str
    approver_role: str
    expires_after: timedelta = timedelta(hours=72)


Decision = Allow | Deny | RequireStepUp | RequireApproval
"""What :meth:`Policy.evaluate` returns."""


@runtime_checkable
class Policy(Protocol):
    """A rule the service asks before an operation; write your own as a plain class.

    ``evaluate`` must be pure and quick: it runs before every gated operation.
    """

    def evaluate(self, context: PolicyContext) -> Decision:
        """Decide on one operation."""
        ...


@runtime_checkable
class StepUpVerifier(Protocol):
    """Checks step-up proofs of one ``method`` (``"totp"``...); give verifiers to the service.

    ``verify`` returns an id for an accepted proof, the same for every use of
    the same proof (a TOTP code's time step, say): the service records it so a
    proof is used once. It returns ``None`` for a wrong or expired proof.
    It is called on the event loop by the async service: keep it quick.
    """

    method: str

    def verify(self, actor: Actor, proof: StepUpProof, at: datetime) -> str | None:
        """The accepted proof's id, or ``None``."""
        ...


@dataclass(frozen=True, slots=True)
class Passed:
    """What a gate that let an operation through leaves it: counted usage, maybe an approval to wait for."""

    usage: tuple[Usage, ...] = ()
    approval: RequireApproval | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """Every policy's answer, combined: denials first, then step-up, then counting, then approval."""

    denied: tuple[tuple[str, str], ...] = ()
    step_up: tuple[RequireStepUp, ...] = ()
    usage: tuple[Usage, ...] = ()
    approval: RequireApproval | None = None
    step_up_by: tuple[str, ...] = ()

    @property
    def methods(self) -> tuple[str, ...]:
        """Step-up methods every requiring policy accepts (the first policy's order)."""
        if not self.step_up:
            return ()
        common_methods = set(self.step_up[0].methods)
        for need in self.step_up[1:]:
            common_methods &= set(need.methods)
        return tuple(m for m in self.step_up[0].methods if m in common_methods)


def check_config(
    policies: Sequence[Policy], verifiers: Sequence[StepUpVerifier]
) -> tuple[tuple[Policy, ...], dict[str, StepUpVerifier]]:
    """The service's policies and verifiers by method, checked once at construction."""
    for policy in policies:
        if not callable(getattr(policy, "evaluate", None)):
            raise ConfigurationError(f"policy {policy!r} has no evaluate(context) method")
    by_method: dict[str, StepUpVerifier] = {}
    for verifier in verifiers:
        method = getattr(verifier, "method", None)
        if not isinstance(method, str) or not callable(getattr(verifier, "verify", None)):
            raise ConfigurationError(f"step-up verifier {verifier!r} needs a method name and verify()")
        if method in by_method:
            raise ConfigurationError(f"two step-up verifiers for {method!r}")
        by_method[method] = verifier
    return tuple(policies), by_method


def policy_name(policy: object) -> str:
    """How the audit trail names a policy: its ``name`` attribute, else its class name."""
    name = getattr(policy, "name", None)
    return name if isinstance(name, str) and name else type(policy).__name__


def evaluate(policies: Sequence[object], context: PolicyContext) -> Verdict:
    """Ask every policy; a policy that answers something else than a decision is a configuration error."""
    denied: list[tuple[str, str]] = []
    step_up: list[RequireStepUp] = []
    step_up_by: list[str] = []
    usage: list[Usage] = []
    approval: RequireApproval | None = None
    for policy in policies:
        decision = policy.evaluate(context)  # type: ignore[attr-defined]
        name = policy_name(policy)
        if isinstance(decision, Deny):
            denied.append((name, decision.reason))
        elif isinstance(decision, RequireStepUp):
            step_up.append(decision)
            step_up_by.append(name)
        elif isinstance(decision, RequireApproval):
            if context.operation != "refund_payment":
                denied.append((name, f"{context.operation} cannot wait for approval: {decision.reason}"))
            elif approval is None:
                approval = decision
        elif isinstance(decision, Allow):
            usage.extend(decision.usage)
        else:
            raise ConfigurationError(f"policy {name} returned {decision!r}, not a decision")
    return Verdict(tuple(denied), tuple(step_up), tuple(usage), approval, tuple(step_up_by))


def window(at: datetime, length: timedelta) -> tuple[datetime, datetime]:
    """The fixed window holding ``at``: windows of ``length`` laid end to end from the Unix epoch (UTC)."""
    step = int(length.total_seconds() * 1_000_000)
    elapsed = (at - _EPOCH) // timedelta(microseconds=1)
    start = _EPOCH + timedelta(microseconds=elapsed - elapsed % step)
    return start, start + length


def policy_audit(
    context: PolicyContext,
    action: AuditAction,
    *,
    at: datetime,
    payload: Mapping[str, Any],
) -> AuditEntry:
    """The audit entry of a policy decision on ``context`` (never a proof's code)."""
    body: dict[str, Any] = {
        "operation": context.operation,
        "roles": sorted(context.actor.roles),
        "provider": context.provider,
        **payload,
    }
    if context.amount is not None:
        body["amount"] = str(context.amount)
    return AuditEntry(
        id=common.new_id("aud"),
        action=action,
        subject_type="policy",
        subject_id=context.actor.id,
        payment_id=context.payment_id,
        user_id=context.user_id,
        actor=context.actor.id,
        at=at,
        payload=redact(body),
    )


# -- built-in policies -------------------------------------------------------------------------------


def _by_currency(amounts: Money | Iterable[Money], what: str) -> dict[str, Money]:
    items = [amounts] if isinstance(amounts, Money) else list(amounts)
    found: dict[str, Money] = {}
    for amount in items:
        if not isinstance(amount, Money):
            raise ConfigurationError(f"{what} must be Money values (one per currency)")
        if amount.minor_units < 0:
            raise ConfigurationError(f"{what} must not be negative")
        if amount.currency in found:
            raise ConfigurationError(f"{what}: two amounts in {amount.currency}")
        found[amount.currency] = amount
    return found


def _operations(operations: Collection[str] | None, default: Collection[str]) -> frozenset[str]:
    chosen = frozenset(default if operations is None else operations)
    unknown = chosen - OPERATIONS
    if isinstance(operations, str) or unknown:
        raise ConfigurationError(f"unknown operations {sorted(unknown) or operations!r}; known: {sorted(OPERATIONS)}")
    return chosen


def _roles(roles: Collection[str] | None) -> frozenset[str] | None:
    if isinstance(roles, str):
        raise ConfigurationError("roles must be a collection of role names, not one string")
    return None if roles is None else frozenset(roles)


_MONEY_OPERATIONS: Final = frozenset(
    {"initialize_payment", "confirm_payment", "capture_payment", "refund_payment", "pay_invoice"}
)
_STARTS: Final = frozenset({"initialize_payment", "pay_invoice", "refund_payment"})
"""Operations that each start a movement of money: one payment (confirming and capturing it continue it)."""


class AmountLimit:
    """The most an actor may move in one operation, per role and per currency.

    ``limits`` maps a role to its maximum amounts (one :class:`Money` per
    currency); ``"*"`` is every actor. An actor may move up to the highest limit
    among its roles (and ``"*"``) in the operation's currency, the limit itself
    included. Limits are an allow list: an actor none of whose roles has a limit
    in that currency is refused.

    >>> from paykit import Money
    >>> limit = AmountLimit({"support": [Money.of("100.00", "USD"), Money.of("30.000", "KWD")]},
    ...                     operations={"refund_payment"})
    """

    def __init__(
        self,
        limits: Mapping[str, Money | Iterable[Money]],
        *,
        operations: Collection[str] | None = None,
        name: str | None = None,
    ) -> None:
        self.limits = {role: _by_currency(amounts, f"limits[{role!r}]") for role, amounts in limits.items()}
        self.operations = _operations(operations, _MONEY_OPERATIONS)
        self.name = name or "AmountLimit"

    def evaluate(self, context: PolicyContext) -> Decision:
        """Allow up to the highest limit of the actor's roles in the amount's currency."""
        amount = context.amount
        if context.operation not in self.operations or amount is None:
            return Allow()
        roles = [*sorted(context.actor.roles), "*"]
        caps = [
            self.limits[r][amount.currency] for r in roles if r in self.limits and amount.currency in self.limits[r]
        ]
        if not caps:
            return Deny(f"no {context.operation} limit in {amount.currency} for actor {context.actor.id!r}")
        cap = max(caps, key=lambda m: m.minor_units)
        if amount.minor_units > cap.minor_units:
            return Deny(f"{context.operation} of {amount} is above the limit of {cap}")
        return Allow()


class VelocityLimit:
    """At most ``max_count`` operations and ``max_amount`` per ``window``, per paying user or per actor.

    Windows are fixed: laid end to end from the Unix epoch, so a burst across a
    window's end may reach twice a limit within one ``window`` of time (see
    docs/policies.md). The amount limit counts only currencies listed in
    ``max_amount``; the count limit counts every operation.

    Args:
        window: The length of a window.
        max_count: Operations allowed per window, or ``None``.
        max_amount: The amount allowed per window, one :class:`Money` per currency.
        per: ``"user"`` (the paying user) or ``"actor"`` (who performs the operation).
        operations: Which operations count (default: ``initialize_payment``, ``pay_invoice`` and
            ``refund_payment``, so a payment counts once, not again when confirmed and captured).
        roles: Count only actors holding one of these roles (default: every actor).
        name: The counters' name; give one to keep counting when other settings change.
    """

    def __init__(
        self,
        window: timedelta,
        *,
        max_count: int | None = None,
        max_amount: Money | Iterable[Money] = (),
        per: Literal["user", "actor"] = "user",
        operations: Collection[str] | None = None,
        roles: Collection[str] | None = None,
        name: str | None = None,
    ) -> None:
        if window <= timedelta(0) or window > MAX_WINDOW or window % timedelta(microseconds=1):
            raise ConfigurationError("window must be positive, at most 31 days, in whole microseconds")
        if max_count is not None and (isinstance(max_count, bool) or max_count < 0):
            raise ConfigurationError("max_count must be a non-negative int")
        if per not in ("user", "actor"):
            raise ConfigurationError("per must be 'user' or 'actor'")
        self.window = window
        self.max_count = max_count
        self.max_amount = _by_currency(max_amount, "max_amount")
        if max_count is None and not self.max_amount:
            raise ConfigurationError("a VelocityLimit needs max_count or max_amount")
        self.per = per
        self.operations = _operations(operations, _STARTS)
        self.roles = _roles(roles)
        ops = ",".join(sorted(self.operations))
        self.name = name or f"velocity:{per}:{int(window.total_seconds())}s:{ops}"

    def evaluate(self, context: PolicyContext) -> Decision:
        """Allow, counting one operation (and its amount) in the current window."""
        if context.operation not in self.operations:
            return Allow()
        if self.roles is not None and not context.actor.has_role(*self.roles):
            return Allow()
        subject = context.user_id if self.per == "user" else context.actor.id
        start, end = window(context.at, self.window)
        base = f"{self.name}|{self.per}:{subject}|{start.isoformat()}"
        who = f"{self.per} {subject!r}"
        usage: list[Usage] = []
        if self.max_count is not None:
            reason = f"at most {self.max_count} operations per {self.window} for {who}"
            usage.append(Usage(f"{base}|count", end, count=1, max_count=self.max_count, reason=reason))
        amount = context.amount
        cap = self.max_amount.get(amount.currency) if amount is not None else None
        if amount is not None and cap is not None:
            reason = f"at most {cap} per {self.window} for {who}"
            key = f"{base}|{amount.currency}"
            usage.append(
                Usage(key, end, amount_minor=amount.minor_units, max_amount_minor=cap.minor_units, reason=reason)
            )
        return Allow(tuple(usage))


class StepUp:
    """Ask for a second factor: above an amount, for chosen roles, for chosen operations.

    The step-up is required when the operation is one of ``operations``, the
    actor holds one of ``roles`` (when given), and the amount is above
    ``above`` in its currency (when given; a currency not listed always
    requires it, and an operation without an amount does too).

    Args:
        above: Amounts (one per currency) above which a proof is needed.
        roles: Actors these roles need a proof (default: every actor).
        operations: Which operations (default: all of :data:`OPERATIONS`).
        methods: The proof methods accepted (each needs a verifier on the service).
    """

    def __init__(
        self,
        *,
        above: Money | Iterable[Money] | None = None,
        roles: Collection[str] | None = None,
        operations: Collection[str] | None = None,
        methods: Sequence[str] = ("totp",),
        name: str | None = None,
    ) -> None:
        self.above = None if above is None else _by_currency(above, "above")
        self.roles = _roles(roles)
        self.operations = _operations(operations, OPERATIONS)
        if not methods or isinstance(methods, str):
            raise ConfigurationError("methods must name at least one step-up method")
        self.methods = tuple(methods)
        self.name = name or "StepUp"

    def evaluate(self, context: PolicyContext) -> Decision:
        """Require a proof when every configured condition holds."""
        if context.operation not in self.operations:
            return Allow()
        if self.roles is not None and not context.actor.has_role(*self.roles):
            return Allow()
        if self.above is not None and context.amount is not None:
            threshold = self.above.get(context.amount.currency)
            if threshold is not None and context.amount.minor_units <= threshold.minor_units:
                return Allow()
            reason = f"{context.operation} of {context.amount} needs a second factor"
        else:
            reason = f"{context.operation} needs a second factor"
        return RequireStepUp(reason, self.methods)


class RefundApproval:
    """Two-person approval: a refund above ``above`` waits for another actor holding ``approver_role``.

    The refund's amount stays reserved meanwhile; it is sent when approved,
    released when rejected or when ``expires_after`` passes. A currency not
    listed in ``above`` always needs approval.
    """

    def __init__(
        self,
        above: Money | Iterable[Money],
        *,
        approver_role: str = "refund_approver",
        expires_after: timedelta = timedelta(hours=72),
        roles: Collection[str] | None = None,
        name: str | None = None,
    ) -> None:
        if not approver_role:
            raise ConfigurationError("approver_role must be a role name")
        if expires_after <= timedelta(0):
            raise ConfigurationError("expires_after must be positive")
        self.above = _by_currency(above, "above")
        self.approver_role = approver_role
        self.expires_after = expires_after
        self.roles = _roles(roles)
        self.name = name or "RefundApproval"

    def evaluate(self, context: PolicyContext) -> Decision:
        """Require approval of refunds above the threshold (for ``roles``, when given)."""
        amount = context.amount
        if context.operation != "refund_payment" or amount is None:
            return Allow()
        if self.roles is not None and not context.actor.has_role(*self.roles):
            return Allow()
        threshold = self.above.get(amount.currency)
        if threshold is not None and amount.minor_units <= threshold.minor_units:
            return Allow()
        return RequireApproval(f"a refund of {amount} needs approval", self.approver_role, self.expires_after)
