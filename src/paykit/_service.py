"""PaymentService: orchestration of providers, storage, audit and notifications.

No provider or database specifics live here: adapters speak to providers,
storages to databases, and ``_decisions`` holds every I/O-free rule.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import SecretStr, ValidationError

from . import _decisions as d
from ._errors import (
    ConfigurationError,
    DuplicateRecordError,
    InvalidRequestError,
    InvalidStateError,
    NotFoundError,
    PaykitError,
    PaymentDeclinedError,
    ProviderError,
    StorageError,
    WebhookVerificationError,
)
from ._log import get_logger
from ._models import (
    AuditAction,
    AuditEntry,
    CaptureMethod,
    EventKind,
    Invoice,
    InvoiceStatus,
    LineItem,
    Notification,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from ._money import Money
from ._status import PaymentStatus, can_transition
from .audit import AuditHook, _HookRunner, redact
from .notify import DispatchReport, NotificationDispatcher, Notifier
from .providers._base import CreatePaymentRequest, Provider, ProviderPayment
from .storage._base import Effect, Storage, WebhookEventRecord

__all__ = ["HealthReport", "MetricsReport", "Page", "PaymentService", "ReconcileReport", "WebhookOutcome"]

log = get_logger(__name__)

_CAS_ATTEMPTS = 200
_CONFIRMABLE = frozenset({PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION})
_CANCELABLE = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING, PaymentStatus.AUTHORIZED}
)
_REFUNDABLE = frozenset({PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED})
_UNSETTLED = (
    PaymentStatus.PENDING,
    PaymentStatus.REQUIRES_ACTION,
    PaymentStatus.PROCESSING,
    PaymentStatus.AUTHORIZED,
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class WebhookOutcome(StrEnum):
    """What applying a provider event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    STALE = "stale"
    """Recorded but not applied: it would have moved the payment backwards."""
    UNKNOWN_PAYMENT = "unknown_payment"


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a keyset-paginated listing; pass ``next_cursor`` for the next."""

    items: list[Payment]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class HealthReport:
    """Whether paykit can work: storage reachable, recent activity, providers."""

    ok: bool
    storage: str
    payments_last_24h: int | None
    providers: list[str]
    checked_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "status": "ok" if self.ok else "unavailable",
            "storage": self.storage,
            "payments_last_24h": self.payments_last_24h,
            "providers": self.providers,
            "checked_at": self.checked_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class MetricsReport:
    """Counts and money per currency (never summed across currencies)."""

    count_by_status: dict[str, int]
    revenue_by_currency: dict[str, Money]
    refunds_by_currency: dict[str, Money]
    net_by_currency: dict[str, Money]
    pending: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; amounts are decimal strings."""
        return {
            "total": self.total,
            "pending": self.pending,
            "count_by_status": dict(self.count_by_status),
            "revenue_by_currency": {c: m.to_decimal_string() for c, m in self.revenue_by_currency.items()},
            "refunds_by_currency": {c: m.to_decimal_string() for c, m in self.refunds_by_currency.items()},
            "net_by_currency": {c: m.to_decimal_string() for c, m in self.net_by_currency.items()},
        }


@dataclass(slots=True)
class ReconcileReport:
    """What :meth:`PaymentService.reconcile` found."""

    checked: int = 0
    updated: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    effects_flushed: int = 0


class PaymentService:
    """Drives payments, refunds, invoices and saved methods through providers.

    Args:
        storage: Where everything is kept (``MemoryStorage()``, ``MongoStorage(...)``).
        providers: The adapters payments may use, looked up by their ``name``.
        notifiers: Receive notifications through :meth:`dispatch_notifications`.
        audit_hooks: Callables that receive each stored audit entry, off the payment path.
        clock: Returns the current timezone-aware time; inject one in tests.
        actor: Who operations are attributed to when a call names no ``actor``.
        notifier_timeout: Seconds a notifier call may take before it counts as failed.
        invoice_prefix: Invoice numbers read ``{prefix}-{year}-{sequence:06d}``.

    Raises:
        ConfigurationError: Two providers share a name.
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
    ) -> None:
        self._storage = storage
        self._providers: dict[str, Provider] = {}
        for provider in providers:
            if provider.name in self._providers:
                raise ConfigurationError(f"two providers are named {provider.name!r}")
            self._providers[provider.name] = provider
        self._clock = clock
        self._actor = actor
        self._invoice_prefix = invoice_prefix
        self._hooks = _HookRunner(audit_hooks)
        self._dispatcher = NotificationDispatcher(storage, notifiers, clock=clock, timeout=notifier_timeout)

    # -- plumbing -----------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """The storage this service writes to."""
        return self._storage

    def provider(self, name: str) -> Provider:
        """The configured provider called ``name``.

        Raises:
            InvalidRequestError: No provider has that name.
        """
        try:
            return self._providers[name]
        except KeyError:
            known = ", ".join(sorted(self._providers)) or "none"
            raise InvalidRequestError(f"unknown provider {name!r} (configured: {known})") from None

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise InvalidRequestError("the clock must return timezone-aware datetimes")
        return now

    def _emit(self, effects: Sequence[Effect]) -> None:
        self._hooks.submit([e for e in effects if isinstance(e, AuditEntry)])

    def _load(self, payment_id: str) -> Payment:
        d.check_id(payment_id, "payment_id")
        payment = self._storage.get_payment(payment_id)
        if payment is None:
            raise NotFoundError(f"no payment {payment_id!r}")
        return payment

    def _write(self, before: Payment, after: Payment, effects: Sequence[Effect]) -> bool:
        """Compare-and-set ``after`` over ``before``; hooks hear of the effects on success."""
        if not self._storage.update_payment(after, expected_version=before.version, effects=effects):
            return False
        self._emit(effects)
        return True

    def _change(
        self,
        before: Payment,
        action: AuditAction,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        extra_effects: Sequence[Effect] = (),
        **changes: Any,
    ) -> Payment | None:
        """Write one new version of a payment with its audit entry and notifications.

        Returns ``None`` when another writer changed the payment first.
        """
        now = self._now()
        after = before.model_copy(update={**changes, "version": before.version + 1, "updated_at": now})
        effects: list[Effect] = [d.payment_audit(before, after, action, actor=actor, at=now, payload=payload)]
        effects.extend(d.payment_notifications(before, after, at=now))
        effects.extend(extra_effects)
        if not self._write(before, after, effects):
            return None
        if after.status != before.status:
            log.info(
                "payment status changed",
                payment_id=after.id,
                provider=after.provider,
                status_before=before.status.value,
                status=after.status.value,
            )
            if after.status == PaymentStatus.SUCCEEDED and after.invoice_id:
                self._mark_invoice_paid(after, actor=actor)
        return after

    def _provider_changes(self, payment: Payment, result: ProviderPayment) -> dict[str, Any]:
        """The payment fields a provider answer sets; status only when it moves forward."""
        changes: dict[str, Any] = {"provider_ref": result.provider_ref}
        if result.client_secret is not None:
            changes["client_secret"] = SecretStr(result.client_secret)
        if result.redirect_url is not None:
            changes["redirect_url"] = result.redirect_url
        if result.next_action is not None:
            changes["next_action"] = redact(dict(result.next_action))
        if result.payment_method_ref is not None:
            changes["payment_method_ref"] = result.payment_method_ref
        if result.provider_data:
            changes["provider_data"] = {**payment.provider_data, **result.provider_data}
        if result.status != payment.status and can_transition(payment.status, result.status):
            changes["status"] = result.status
            if result.status == PaymentStatus.FAILED:
                changes["failure_code"] = result.failure_code
                changes["failure_message"] = result.failure_message
        if result.amount_captured is not None:
            captured = self._same_currency(payment, result.amount_captured)
            changes["captured_minor"] = max(payment.captured_minor, captured)
        elif changes.get("status") == PaymentStatus.SUCCEEDED and not payment.captured_minor:
            changes["captured_minor"] = payment.amount.minor_units
        return changes

    @staticmethod
    def _same_currency(payment: Payment, amount: Money) -> int:
        if amount.currency != payment.currency:
            raise InvalidRequestError(f"amount is in {amount.currency}, the payment in {payment.currency}")
        return amount.minor_units

    @staticmethod
    def _attempts(what: str) -> Iterator[int]:
        """Number the tries of a compare-and-set, pausing briefly between them.

        Raises:
            StorageError: Every try lost to another writer.
        """
        for attempt in range(_CAS_ATTEMPTS):
            if attempt:
                time.sleep(min(0.001 * attempt, 0.02))
            yield attempt
        raise StorageError(f"{what} kept changing under this write; try again")

    def _retry_change(
        self,
        payment: Payment | str,
        action: AuditAction,
        build: Callable[[Payment], dict[str, Any] | None],
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        extra_effects: Sequence[Effect] = (),
    ) -> Payment:
        """Apply ``build``'s changes with compare-and-set, reloading on conflict.

        ``payment`` is the copy in hand (saving a read when it is still current)
        or an id. ``build`` returns ``None`` when there is nothing to write.
        """
        current = payment if isinstance(payment, Payment) else self._load(payment)
        for attempt in self._attempts(f"payment {current.id}"):
            if attempt:
                current = self._load(current.id)
            changes = build(current)
            if changes is None:
                return current
            written = self._change(
                current, action, actor=actor, payload=payload, extra_effects=extra_effects, **changes
            )
            if written is not None:
                return written
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    # -- payments -----------------------------------------------------------
    def initialize_payment(
        self,
        *,
        user_id: str,
        amount: Money,
        provider: str,
        idempotency_key: str | None = None,
        capture_method: CaptureMethod = "automatic",
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        payment_method: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        actor: str | None = None,
        invoice_id: str | None = None,
    ) -> Payment:
        """Create a payment and register it with its provider.

        The payment is stored as PENDING before the provider is called, with a
        provider idempotency key derived from its id, so a retry with the same
        ``idempotency_key`` (or :meth:`reconcile`) completes it without a second
        charge.

        Args:
            user_id: Your id for the paying user.
            amount: What to charge.
            provider: The name of a configured provider.
            idempotency_key: Replays with the same parameters return the first payment.
            capture_method: ``"manual"`` authorizes now and captures with :meth:`capture_payment`.
            description: Shown by providers that display one.
            metadata: Your own str -> str data, passed to the provider.
            payment_method: A saved method's id or a provider token (``pm_...``).
            return_url: Where redirect-based providers send the payer back.
            cancel_url: Where they send a payer who cancels.
            actor: Who to attribute the operation to in the audit trail.
            invoice_id: The invoice this payment settles (set by :meth:`pay_invoice`).

        Returns:
            The payment, with ``client_secret`` or ``redirect_url`` when the payer must act.

        Raises:
            InvalidRequestError: A bad argument, or a currency the provider does not take.
            IdempotencyConflictError: The key was used with other parameters.
            PaymentDeclinedError: The provider declined at creation; the payment is FAILED.
            ProviderError: Any other provider failure; the payment stays PENDING.
        """
        d.check_id(user_id, "user_id")
        d.check_positive(amount)
        key = d.check_key(idempotency_key)
        adapter = self.provider(provider)
        if capture_method not in ("automatic", "manual"):
            raise InvalidRequestError("capture_method must be 'automatic' or 'manual'")
        if capture_method == "manual" and not adapter.capabilities.manual_capture:
            raise InvalidRequestError(f"provider {provider!r} does not support manual capture")
        currencies = adapter.capabilities.currencies
        if currencies is not None and amount.currency not in currencies:
            raise InvalidRequestError(f"provider {provider!r} does not take {amount.currency}")
        meta = d.check_metadata(metadata)
        method_ref = self._resolve_method(user_id, provider, payment_method)
        fp = d.fingerprint(
            user_id=user_id,
            amount=amount,
            provider=provider,
            capture_method=capture_method,
            description=description,
            metadata=meta,
            payment_method=payment_method,
            return_url=return_url,
            cancel_url=cancel_url,
            invoice_id=invoice_id,
        )
        payment_id = d.keyed_id("pay", "payment", key) if key else d.new_id("pay")
        now = self._now()
        fresh = Payment(
            id=payment_id,
            user_id=user_id,
            provider=provider,
            amount=amount,
            capture_method=capture_method,
            description=description,
            metadata=meta,
            payment_method_ref=method_ref,
            invoice_id=invoice_id,
            idempotency_key=key,
            request_fingerprint=fp,
            created_at=now,
            updated_at=now,
        )
        try:
            self._storage.insert_payment(fresh)
            payment = fresh
        except DuplicateRecordError:
            payment = self._load(payment_id)
            d.check_replay(payment.request_fingerprint, fp, "payment")
            if payment.provider_ref is not None or payment.status != PaymentStatus.PENDING:
                return payment
        log.info("payment initializing", payment_id=payment.id, provider=provider, amount=str(amount))
        return self._register_with_provider(
            payment, actor=actor or self._actor, return_url=return_url, cancel_url=cancel_url
        )

    def _register_with_provider(
        self,
        payment: Payment,
        *,
        actor: str,
        return_url: str | None = None,
        cancel_url: str | None = None,
    ) -> Payment:
        adapter = self.provider(payment.provider)
        request = CreatePaymentRequest(
            payment_id=payment.id,
            user_id=payment.user_id,
            amount=payment.amount,
            capture_method=payment.capture_method,
            idempotency_key=f"paykit-{payment.id}-create",
            description=payment.description,
            metadata=payment.metadata,
            payment_method_ref=payment.payment_method_ref,
            customer_ref=self._customer_ref(adapter, payment),
            return_url=return_url,
            cancel_url=cancel_url,
        )
        try:
            result = adapter.create_payment(request)
        except PaymentDeclinedError as exc:
            self._fail(payment, exc, AuditAction.PAYMENT_INIT, actor=actor)
            raise
        return self._retry_change(
            payment,
            AuditAction.PAYMENT_INIT,
            lambda current: None if current.provider_ref else self._provider_changes(current, result),
            actor=actor,
        )

    def _customer_ref(self, adapter: Provider, payment: Payment) -> str | None:
        """The user's provider customer, needed only to pay with a method saved on it."""
        if payment.payment_method_ref is None or not adapter.capabilities.saved_payment_methods:
            return None
        return self._storage.get_customer_ref(payment.provider, payment.user_id)

    def _fail(self, payment: Payment, exc: ProviderError, action: AuditAction, *, actor: str) -> None:
        """Record a provider decline as FAILED, attaching the payment id to the error."""
        exc.payment_id = payment.id

        def build(current: Payment) -> dict[str, Any] | None:
            if not can_transition(current.status, PaymentStatus.FAILED):
                return None
            return {
                "status": PaymentStatus.FAILED,
                "failure_code": getattr(exc, "decline_code", None) or exc.code,
                "failure_message": exc.message,
            }

        self._retry_change(payment, action, build, actor=actor, payload={"error": exc.code})

    def _resolve_method(self, user_id: str, provider: str, payment_method: str | None) -> str | None:
        """A saved method id becomes its provider token; anything else is passed through."""
        if payment_method is None:
            return None
        d.check_id(payment_method, "payment_method")
        if d.looks_like_card_number(payment_method):
            raise InvalidRequestError("pass a provider token or saved method id, never a card number")
        saved = self._storage.get_payment_method(payment_method)
        if saved is None:
            return payment_method
        if saved.user_id != user_id or saved.deleted or saved.provider != provider:
            raise InvalidRequestError("that saved payment method does not belong to this user and provider")
        return saved.provider_ref

    def _operation(
        self,
        payment_id: str,
        op: str,
        key: str | None,
        fp: str,
        allowed: frozenset[PaymentStatus],
    ) -> tuple[Payment, str | None]:
        """Load a payment for an operation; return it and ``None`` when the key replays it."""
        payment = self._load(payment_id)
        if key is not None:
            stored = payment.operation_keys.get(f"{op}:{key}")
            if stored is not None:
                d.check_replay(stored, fp, op)
                return payment, None
        if payment.status not in allowed:
            raise InvalidStateError(f"cannot {op} a payment that is {payment.status.value}")
        return payment, f"paykit-{payment.id}-{op}-{key or payment.version}"

    def _apply_result(
        self,
        payment: Payment,
        result: ProviderPayment,
        action: AuditAction,
        *,
        op: str,
        key: str | None,
        fp: str,
        actor: str,
        extra: Mapping[str, Any] | None = None,
    ) -> Payment:
        def build(current: Payment) -> dict[str, Any]:
            changes = self._provider_changes(current, result)
            changes.update(extra or {})
            if key is not None:
                changes["operation_keys"] = {**current.operation_keys, f"{op}:{key}": fp}
            return changes

        return self._retry_change(payment, action, build, actor=actor)

    def confirm_payment(
        self,
        payment_id: str,
        *,
        payment_method: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Payment:
        """Confirm a payment server-side (with a saved method id or provider token).

        Raises:
            NotFoundError: No such payment.
            InvalidStateError: The payment is past confirmation, or the provider confirms client-side only.
            PaymentDeclinedError: Declined; the payment is now FAILED.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint(payment_method=payment_method)
        payment, provider_key = self._operation(payment_id, "confirm", key, fp, _CONFIRMABLE)
        if provider_key is None:
            return payment
        adapter = self.provider(payment.provider)
        if not adapter.capabilities.server_side_confirm:
            raise InvalidStateError(f"provider {payment.provider!r} payments are confirmed by the payer (redirect_url)")
        method_ref = self._resolve_method(payment.user_id, payment.provider, payment_method)
        if payment.provider_ref is None:
            payment = self._register_with_provider(payment, actor=actor or self._actor)
        try:
            result = adapter.confirm_payment(
                payment,
                payment_method_ref=method_ref or payment.payment_method_ref,
                idempotency_key=provider_key,
            )
        except PaymentDeclinedError as exc:
            self._fail(payment, exc, AuditAction.PAYMENT_CONFIRM, actor=actor or self._actor)
            raise
        return self._apply_result(
            payment,
            result,
            AuditAction.PAYMENT_CONFIRM,
            op="confirm",
            key=key,
            fp=fp,
            actor=actor or self._actor,
        )

    def capture_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Payment:
        """Capture an AUTHORIZED payment, in full or (``amount``) in part.

        Raises:
            InvalidStateError: The payment is not authorized.
            InvalidRequestError: ``amount`` is above the authorized amount or in another currency.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint(amount=amount)
        payment, provider_key = self._operation(payment_id, "capture", key, fp, frozenset({PaymentStatus.AUTHORIZED}))
        if provider_key is None:
            return payment
        adapter = self.provider(payment.provider)
        if amount is not None:
            d.check_positive(amount)
            minor = self._same_currency(payment, amount)
            if minor > payment.amount.minor_units:
                raise InvalidRequestError(f"cannot capture {amount}: only {payment.amount} was authorized")
            if minor < payment.amount.minor_units and not adapter.capabilities.partial_capture:
                raise InvalidRequestError(f"provider {payment.provider!r} does not support partial capture")
        result = adapter.capture_payment(payment, amount=amount, idempotency_key=provider_key)
        captured = result.amount_captured or amount or payment.amount
        return self._apply_result(
            payment,
            result,
            AuditAction.PAYMENT_CAPTURE,
            op="capture",
            key=key,
            fp=fp,
            actor=actor or self._actor,
            extra={"captured_minor": self._same_currency(payment, captured)},
        )

    def cancel_payment(
        self, payment_id: str, *, idempotency_key: str | None = None, actor: str | None = None
    ) -> Payment:
        """Cancel a payment that was not captured.

        Raises:
            InvalidStateError: The payment was captured, failed or already canceled.
        """
        key = d.check_key(idempotency_key)
        fp = d.fingerprint()
        payment, provider_key = self._operation(payment_id, "cancel", key, fp, _CANCELABLE)
        if provider_key is None:
            return payment
        if payment.provider_ref is None:
            result = ProviderPayment(provider_ref="", status=PaymentStatus.CANCELED)
        else:
            result = self.provider(payment.provider).cancel_payment(payment, idempotency_key=provider_key)

        def build(current: Payment) -> dict[str, Any]:
            changes = self._provider_changes(current, result) if result.provider_ref else {}
            if can_transition(current.status, PaymentStatus.CANCELED):
                changes["status"] = PaymentStatus.CANCELED
            if key is not None:
                changes["operation_keys"] = {**current.operation_keys, f"cancel:{key}": fp}
            return changes

        return self._retry_change(payment, AuditAction.PAYMENT_CANCEL, build, actor=actor or self._actor)

    def get_payment(self, payment_id: str) -> Payment:
        """The payment with this id.

        Raises:
            NotFoundError: No such payment.
        """
        return self._load(payment_id)

    def list_payments(
        self,
        *,
        user_id: str | None = None,
        status: PaymentStatus | str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Payments newest first, ``limit`` per page (1-500), by user and status.

        Raises:
            InvalidRequestError: A bad limit, status or cursor.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        if user_id is not None:
            d.check_id(user_id, "user_id")
        try:
            wanted = PaymentStatus(status) if status is not None else None
        except ValueError:
            raise InvalidRequestError(f"unknown status {status!r}") from None
        after = d.decode_cursor(cursor) if cursor is not None else None
        items = self._storage.list_payments(user_id=user_id, status=wanted, limit=limit + 1, after=after)
        more = len(items) > limit
        items = items[:limit]
        return Page(items=items, next_cursor=d.encode_cursor(items[-1]) if more else None)

    # -- refunds ------------------------------------------------------------
    def refund_payment(
        self,
        payment_id: str,
        *,
        amount: Money | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Refund:
        """Refund a captured payment, in full (``amount=None``: all that remains) or in part.

        The amount is reserved on the payment with compare-and-set before the
        provider is called, together with the PENDING refund record, so
        concurrent refunds can never exceed the capture and a refund in flight
        is never lost. The provider's answer settles (or releases) it in one
        more write: three round trips in all.

        Raises:
            InvalidStateError: Nothing captured to refund, or ``amount`` above what remains.
            InvalidRequestError: A bad amount or currency.
            IdempotencyConflictError: The key was used with other parameters.
            ProviderError: The provider refused; the refund is FAILED and the amount released.
                A ``ProviderUnavailableError`` keeps the reservation: retry with the same key.
        """
        key = d.check_key(idempotency_key)
        if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
            raise InvalidRequestError("reason must be a string of at most 500 characters")
        payment = self._load(payment_id)
        actor = actor or self._actor
        fp = d.fingerprint(payment_id=payment_id, amount=amount, reason=reason)
        refund_id = d.keyed_id("re", "refund", key) if key else d.new_id("re")
        operation = f"refund:{key}"
        if key is not None and (stored := payment.operation_keys.get(operation)) is not None:
            d.check_replay(stored, fp, "refund")
            return self._resume_refund(self.get_refund(refund_id), payment, actor=actor)
        adapter = self.provider(payment.provider)
        if amount is not None:
            d.check_positive(amount)
            self._same_currency(payment, amount)
        now = self._now()
        refund = Refund(
            id=refund_id,
            payment_id=payment.id,
            user_id=payment.user_id,
            provider=payment.provider,
            amount=amount or payment.amount_refundable,
            reason=reason,
            idempotency_key=key,
            request_fingerprint=fp,
            version=1,
            created_at=now,
            updated_at=now,
        )

        def reserve(current: Payment) -> dict[str, Any] | None:
            if key is not None and operation in current.operation_keys:
                return None  # a concurrent call with the same key got there first
            if current.status not in _REFUNDABLE:
                raise InvalidStateError(f"cannot refund a payment that is {current.status.value}")
            wanted = amount or current.amount_refundable
            if wanted.minor_units <= 0 or wanted > current.amount_refundable:
                raise InvalidStateError(f"cannot refund {wanted}: {current.amount_refundable} remains refundable")
            if wanted.minor_units < current.captured_minor and not adapter.capabilities.partial_refunds:
                raise InvalidRequestError(f"provider {current.provider!r} does not support partial refunds")
            changes: dict[str, Any] = {"pending_refunds": {**current.pending_refunds, refund_id: wanted.minor_units}}
            if key is not None:
                changes["operation_keys"] = {**current.operation_keys, operation: fp}
            return changes

        def record(current: Payment) -> list[Effect]:
            # The PENDING record is written with the reservation, so a refund in flight always shows.
            return [refund if amount is not None else refund.model_copy(update={"amount": current.amount_refundable})]

        reserved = self._retry_write(payment, reserve, record)
        if refund_id not in reserved.pending_refunds:
            return self._resume_refund(self.get_refund(refund_id), reserved, actor=actor)
        refund = refund.model_copy(update={"amount": Money(reserved.pending_refunds[refund_id], payment.currency)})
        return self._call_refund(refund, reserved, actor=actor)

    def _retry_write(
        self,
        payment: Payment,
        build: Callable[[Payment], dict[str, Any] | None],
        effects: Callable[[Payment], Sequence[Effect]],
    ) -> Payment:
        """Compare-and-set changes that need no audit entry of their own (a reservation)."""
        current = payment
        for attempt in self._attempts(f"payment {payment.id}"):
            if attempt:
                current = self._load(current.id)
            changes = build(current)
            if changes is None:
                return current
            after = current.model_copy(update={**changes, "version": current.version + 1, "updated_at": self._now()})
            if self._storage.update_payment(after, expected_version=current.version, effects=effects(current)):
                return after
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def _call_refund(self, refund: Refund, payment: Payment, *, actor: str) -> Refund:
        """Ask the provider to refund a reserved refund, then settle or release it."""
        try:
            result = self.provider(refund.provider).refund_payment(
                payment, refund, idempotency_key=f"paykit-{refund.id}-refund"
            )
        except ProviderError as exc:
            if exc.should_retry:
                exc.payment_id = payment.id
                raise  # the reservation stays; a retry with the same key resumes here
            self._finish_refund(
                refund, payment, RefundStatus.FAILED, actor=actor, failure_message=exc.message, code=exc.code
            )
            raise
        return self._finish_refund(
            refund,
            payment,
            result.status,
            actor=actor,
            provider_ref=result.provider_ref,
            failure_message=result.failure_message,
        )

    def _finish_refund(
        self,
        refund: Refund,
        payment: Payment | str,
        status: RefundStatus,
        *,
        actor: str,
        provider_ref: str | None = None,
        failure_message: str | None = None,
        code: str | None = None,
    ) -> Refund:
        """Write the refund's new status with its payment: settle, release, or keep waiting.

        One compare-and-set on the payment carries the refund record, its audit
        entry and notifications, so the two can never disagree.
        """
        done = refund.model_copy(
            update={
                "status": status,
                "provider_ref": provider_ref or refund.provider_ref,
                "failure_message": failure_message,
                "version": refund.version + 1,
                "updated_at": self._now(),
            }
        )
        outcome = {RefundStatus.SUCCEEDED: "succeeded", RefundStatus.PENDING: "pending"}.get(status, "failed")

        def build(current: Payment) -> dict[str, Any] | None:
            if refund.id not in current.pending_refunds:
                return None  # settled or released already
            pending = {k: v for k, v in current.pending_refunds.items() if k != refund.id}
            if status == RefundStatus.SUCCEEDED:
                refunded = current.refunded_minor + refund.amount.minor_units
                return {
                    "pending_refunds": pending,
                    "refunded_minor": refunded,
                    "status": d.refund_status_after(current, refunded),
                }
            if status == RefundStatus.PENDING:
                return {}  # the provider settles later; keep the reservation
            return {"pending_refunds": pending}

        payload = {"refund_id": refund.id, "refund_amount": str(refund.amount), "outcome": outcome}
        if code:
            payload["reason"] = code
        self._retry_change(
            payment, AuditAction.PAYMENT_REFUND, build, actor=actor, payload=payload, extra_effects=[done]
        )
        return done

    def _resume_refund(self, refund: Refund, payment: Payment, *, actor: str) -> Refund:
        """Finish a refund a replayed key or a crash left behind."""
        unsent = refund.status == RefundStatus.PENDING and refund.provider_ref is None
        if unsent and refund.id in payment.pending_refunds:
            return self._call_refund(refund, payment, actor=actor)
        if refund.status == RefundStatus.CANCELED:
            raise InvalidStateError(f"refund {refund.id} was rejected: {refund.failure_message}")
        return refund

    def get_refund(self, refund_id: str) -> Refund:
        """The refund with this id.

        Raises:
            NotFoundError: No such refund.
        """
        d.check_id(refund_id, "refund_id")
        refund = self._storage.get_refund(refund_id)
        if refund is None:
            raise NotFoundError(f"no refund {refund_id!r}")
        return refund

    def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first."""
        return self._storage.list_refunds(self._load(payment_id).id)

    # -- status updates and webhooks ----------------------------------------
    def update_payment_status(
        self,
        provider: str,
        provider_ref: str,
        status: PaymentStatus | str,
        *,
        amount_captured: Money | None = None,
        metadata: Mapping[str, str] | None = None,
        actor: str | None = None,
    ) -> Payment:
        """Move the payment a provider knows as ``provider_ref`` to ``status``.

        The generic updater for applications that learn of changes their own way.
        Repeating the current status is a no-op.

        Raises:
            NotFoundError: No payment has that provider reference.
            InvalidStateError: The transition is not allowed (a payment never moves backwards).
        """
        d.check_id(provider, "provider")
        d.check_id(provider_ref, "provider_ref")
        try:
            target = PaymentStatus(status)
        except ValueError:
            raise InvalidRequestError(f"unknown status {status!r}") from None
        meta = d.check_metadata(metadata)
        payment = self._storage.find_payment_by_provider_ref(provider, provider_ref)
        if payment is None:
            raise NotFoundError(f"no {provider} payment with reference {provider_ref!r}")

        def build(current: Payment) -> dict[str, Any] | None:
            if current.status == target:
                return None
            if not can_transition(current.status, target):
                raise InvalidStateError(
                    f"payment {current.id} cannot move from {current.status.value} to {target.value}"
                )
            changes: dict[str, Any] = {"status": target, "metadata": {**current.metadata, **meta}}
            if amount_captured is not None:
                changes["captured_minor"] = self._same_currency(current, amount_captured)
            elif target == PaymentStatus.SUCCEEDED and not current.captured_minor:
                changes["captured_minor"] = current.amount.minor_units
            return changes

        return self._retry_change(payment, AuditAction.PAYMENT_STATUS_UPDATE, build, actor=actor or self._actor)

    def apply_webhook_event(self, event: WebhookEvent) -> WebhookOutcome:
        """Apply a verified, normalized provider event exactly once.

        A redelivered event is a no-op; one that would move a payment backwards
        is recorded in the audit trail and not applied. A status change costs one
        read and one compare-and-set write, which also records the event.

        Raises:
            WebhookVerificationError: The event contradicts the stored payment (amount, currency).
            StorageError: Storage failed; nothing was recorded, so the provider's retry is safe.
        """
        if event.kind == EventKind.IGNORED:
            return self._record_event(event, WebhookOutcome.IGNORED, None)
        payment = self._find_event_payment(event)
        if payment is None:
            log.warning("webhook for unknown payment", provider=event.provider, event_type=event.type)
            return self._record_event(event, WebhookOutcome.UNKNOWN_PAYMENT, None)
        actor = f"webhook:{event.provider}"
        if event.amount is not None and event.amount != payment.amount:
            log.warning("webhook amount mismatch", payment_id=payment.id, provider=event.provider)
            raise WebhookVerificationError(f"event amount does not match payment {payment.id}")
        if event.kind == EventKind.PAYMENT and event.status is not None:
            return self._apply_status(payment, event, actor=actor)
        if self._storage.get_webhook_event(event.provider, event.event_id) is not None:
            return WebhookOutcome.DUPLICATE
        if event.kind == EventKind.DISPUTE:
            self._retry_change(
                payment,
                AuditAction.PAYMENT_DISPUTE,
                lambda _: {},
                actor=actor,
                payload={"event_type": event.type, "event_id": event.event_id},
            )
            outcome = WebhookOutcome.APPLIED
        elif event.kind == EventKind.REFUND:
            outcome = self._apply_refund_event(payment, event, actor=actor)
        else:
            outcome = WebhookOutcome.IGNORED
        return self._record_event(event, outcome, payment.id)

    def _event_record(self, event: WebhookEvent, outcome: WebhookOutcome, payment_id: str | None) -> WebhookEventRecord:
        return WebhookEventRecord(
            provider=event.provider,
            event_id=event.event_id,
            type=event.type,
            outcome=outcome.value,
            received_at=self._now(),
            payment_id=payment_id,
        )

    def _record_event(self, event: WebhookEvent, outcome: WebhookOutcome, payment_id: str | None) -> WebhookOutcome:
        """Record an event that changed no payment; a second delivery is a duplicate."""
        if not self._storage.record_webhook_event(self._event_record(event, outcome, payment_id)):
            return WebhookOutcome.DUPLICATE
        return outcome

    def _find_event_payment(self, event: WebhookEvent) -> Payment | None:
        if event.payment_id:
            payment = self._storage.get_payment(event.payment_id)
            if payment is not None and payment.provider == event.provider:
                return payment
        if event.provider_ref:
            return self._storage.find_payment_by_provider_ref(event.provider, event.provider_ref)
        return None

    def _apply_status(
        self, payment: Payment, event: WebhookEvent, *, actor: str, from_provider_event: bool = True
    ) -> WebhookOutcome:
        """Move ``payment`` to the event's status if the table allows; record a stale event once.

        ``from_provider_event=False`` (reconcile) records no event and leaves stale answers unrecorded.
        """
        target = event.status
        if target is None:
            return WebhookOutcome.IGNORED
        payload = {"event_type": event.type, "event_id": event.event_id, "requested_status": target.value}
        current = payment
        for attempt in self._attempts(f"payment {payment.id}"):
            if attempt:
                current = self._load(current.id)
            data = {**current.provider_data, **event.provider_data}
            if current.status == target:
                # Already there (this event, or the API call that caused it, was applied). Record
                # the event anyway, so a redelivery after the payment moves on is still a duplicate.
                if from_provider_event:
                    self._storage.record_webhook_event(self._event_record(event, WebhookOutcome.DUPLICATE, current.id))
                if data != current.provider_data:
                    self._retry_change(
                        current,
                        AuditAction.PAYMENT_STATUS_UPDATE,
                        lambda latest: self._merged_data(latest, event),
                        actor=actor,
                        payload=payload,
                    )
                return WebhookOutcome.DUPLICATE
            if can_transition(current.status, target):
                outcome, action = WebhookOutcome.APPLIED, AuditAction.PAYMENT_STATUS_UPDATE
                changes = self._event_changes(current, event, target, data)
            elif not from_provider_event:
                return WebhookOutcome.STALE
            else:
                if self._storage.get_webhook_event(event.provider, event.event_id) is not None:
                    return WebhookOutcome.DUPLICATE
                outcome, action, changes = WebhookOutcome.STALE, AuditAction.PAYMENT_EVENT_IGNORED, {}
            records = [self._event_record(event, outcome, current.id)] if from_provider_event else []
            written = self._change(current, action, actor=actor, payload=payload, extra_effects=records, **changes)
            if written is not None:
                if outcome == WebhookOutcome.STALE:
                    log.info("stale provider event ignored", payment_id=current.id, event_type=event.type)
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    @staticmethod
    def _merged_data(current: Payment, event: WebhookEvent) -> dict[str, Any] | None:
        data = {**current.provider_data, **event.provider_data}
        return None if data == current.provider_data else {"provider_data": data}

    def _event_changes(
        self, current: Payment, event: WebhookEvent, target: PaymentStatus, data: dict[str, str]
    ) -> dict[str, Any]:
        changes: dict[str, Any] = {"status": target, "provider_data": data}
        if event.provider_ref and current.provider_ref is None:
            changes["provider_ref"] = event.provider_ref
        if target == PaymentStatus.FAILED:
            changes["failure_code"] = event.failure_code
            changes["failure_message"] = event.failure_message
        if event.amount_captured is not None:
            captured = self._same_currency(current, event.amount_captured)
            changes["captured_minor"] = max(current.captured_minor, captured)
        elif target == PaymentStatus.SUCCEEDED and not current.captured_minor:
            changes["captured_minor"] = current.amount.minor_units
        return changes

    def _apply_refund_event(self, payment: Payment, event: WebhookEvent, *, actor: str) -> WebhookOutcome:
        """Settle a pending refund the provider finished, or record one made outside paykit."""
        if event.refund_ref is None or event.refund_status is None:
            return WebhookOutcome.IGNORED
        known = next((r for r in self._storage.list_refunds(payment.id) if r.provider_ref == event.refund_ref), None)
        if known is not None:
            if known.status != RefundStatus.PENDING or event.refund_status == RefundStatus.PENDING:
                return WebhookOutcome.DUPLICATE
            self._finish_refund(known, payment, event.refund_status, actor=actor, failure_message=event.failure_message)
            return WebhookOutcome.APPLIED
        if event.refund_status != RefundStatus.SUCCEEDED or event.amount_refunded is None:
            return WebhookOutcome.IGNORED
        # A refund made in the provider's dashboard: record it, in one write, so totals stay true.
        amount = event.amount_refunded
        self._same_currency(payment, amount)
        operation = f"refund:external:{event.refund_ref}"
        now = self._now()
        refund = Refund(
            id=d.keyed_id("re", f"external:{payment.provider}", event.refund_ref),
            payment_id=payment.id,
            user_id=payment.user_id,
            provider=payment.provider,
            amount=amount,
            status=RefundStatus.SUCCEEDED,
            provider_ref=event.refund_ref,
            reason="made at the provider",
            version=1,
            created_at=now,
            updated_at=now,
        )
        outcome = WebhookOutcome.APPLIED

        def build(current: Payment) -> dict[str, Any] | None:
            nonlocal outcome
            if operation in current.operation_keys:
                outcome = WebhookOutcome.DUPLICATE
                return None
            if current.status not in _REFUNDABLE or amount > current.amount_refundable:
                outcome = WebhookOutcome.STALE
                log.warning("provider refund exceeds what paykit can refund", payment_id=current.id)
                return None
            refunded = current.refunded_minor + amount.minor_units
            return {
                "refunded_minor": refunded,
                "status": d.refund_status_after(current, refunded),
                "operation_keys": {**current.operation_keys, operation: "provider"},
            }

        payload = {"refund_id": refund.id, "refund_amount": str(amount), "outcome": "succeeded", "origin": "provider"}
        self._retry_change(
            payment, AuditAction.PAYMENT_REFUND, build, actor=actor, payload=payload, extra_effects=[refund]
        )
        return outcome

    # -- reconciliation ------------------------------------------------------
    def reconcile(self, *, limit: int = 100, older_than: timedelta = timedelta(minutes=1)) -> ReconcileReport:
        """Re-fetch unsettled payments from their providers and apply what changed.

        The answer to a lost webhook or a crash mid-operation: PENDING payments
        never registered with their provider are registered (with the same
        provider idempotency key, so never charged twice), others are retrieved
        and moved forward; refunds reserved but never sent (a provider outage
        without a retry) are sent with their original provider key; effects left
        in outboxes are flushed.
        """
        report = ReconcileReport(effects_flushed=self._storage.flush_pending_effects())
        cutoff = self._now() - older_than
        self._reconcile_refunds(report, cutoff=cutoff, limit=limit)
        for payment in self._storage.list_payments_in_status(_UNSETTLED, updated_before=cutoff, limit=limit):
            report.checked += 1
            try:
                if payment.provider not in self._providers:
                    raise InvalidStateError(f"provider {payment.provider!r} is not configured")
                if payment.provider_ref is None:
                    after = self._register_with_provider(payment, actor="reconcile")
                    changed = after.version != payment.version
                else:
                    result = self.provider(payment.provider).retrieve_payment(payment)
                    event = WebhookEvent(
                        provider=payment.provider,
                        event_id=f"reconcile:{payment.id}:{payment.version}",
                        type="reconcile",
                        kind=EventKind.PAYMENT,
                        status=result.status,
                        amount_captured=result.amount_captured,
                        failure_code=result.failure_code,
                        failure_message=result.failure_message,
                        provider_data=dict(result.provider_data),
                    )
                    outcome = self._apply_status(payment, event, actor="reconcile", from_provider_event=False)
                    changed = outcome == WebhookOutcome.APPLIED
                report.updated += int(changed)
            except PaykitError as exc:
                report.errors[payment.id] = f"{type(exc).__name__}: {exc.message}"
                log.warning("reconcile failed for payment", payment_id=payment.id, error=type(exc).__name__)
        return report

    def _reconcile_refunds(self, report: ReconcileReport, *, cutoff: datetime, limit: int) -> None:
        """Finish refunds a provider outage or a crash left reserved but never sent."""
        for payment in self._storage.list_payments_refunding(updated_before=cutoff, limit=limit):
            for refund_id in list(payment.pending_refunds):
                report.checked += 1
                try:
                    refund = self.get_refund(refund_id)
                    if refund.status == RefundStatus.PENDING and refund.provider_ref is None:
                        done = self._call_refund(refund, self._load(payment.id), actor="reconcile")
                        report.updated += int(done.status != RefundStatus.PENDING or done.provider_ref is not None)
                except PaykitError as exc:
                    report.errors[refund_id] = f"{type(exc).__name__}: {exc.message}"
                    log.warning("reconcile failed for refund", refund_id=refund_id, error=type(exc).__name__)

    # -- invoices ------------------------------------------------------------
    def create_invoice(
        self,
        *,
        user_id: str,
        currency: str,
        line_items: Sequence[LineItem | Mapping[str, Any]],
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> Invoice:
        """Create a draft invoice with exact totals and a unique number.

        Args:
            user_id: Who is invoiced.
            currency: Every line's currency.
            line_items: ``LineItem``s or mappings of their fields.
            description: Free text.
            metadata: Your own str -> str data.
            idempotency_key: Replays with the same parameters return the first invoice.
            actor: Who to attribute the operation to in the audit trail.

        Raises:
            InvalidRequestError: No lines, a line in another currency, or a zero total.
            IdempotencyConflictError: The key was used with other parameters.
        """
        d.check_id(user_id, "user_id")
        key = d.check_key(idempotency_key)
        code = Money.zero(currency).currency
        if not line_items:
            raise InvalidRequestError("an invoice needs at least one line item")
        try:
            lines = tuple(li if isinstance(li, LineItem) else LineItem.model_validate(li) for li in line_items)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid line item: {exc.errors()[0]['msg']}") from None
        if any(li.unit_amount.currency != code for li in lines):
            raise InvalidRequestError(f"every line item must be in {code}")
        meta = d.check_metadata(metadata)
        fp = d.fingerprint(user_id=user_id, currency=code, lines=lines, description=description, metadata=meta)
        invoice_id = d.keyed_id("inv", "invoice", key) if key else d.new_id("inv")
        if key is not None and (existing := self._storage.get_invoice(invoice_id)) is not None:
            d.check_replay(existing.request_fingerprint, fp, "invoice")
            return existing
        subtotal = sum((li.subtotal for li in lines), Money.zero(code))
        tax = sum((li.tax for li in lines), Money.zero(code))
        if (subtotal + tax).minor_units <= 0:
            raise InvalidRequestError("an invoice total must be positive")
        now = self._now()
        series = f"{self._invoice_prefix}-{now.year}"
        invoice = Invoice(
            id=invoice_id,
            number=f"{series}-{self._storage.next_invoice_sequence(series):06d}",
            user_id=user_id,
            currency=code,
            line_items=lines,
            subtotal=subtotal,
            tax=tax,
            total=subtotal + tax,
            description=description,
            metadata=meta,
            idempotency_key=key,
            request_fingerprint=fp,
            created_at=now,
            updated_at=now,
        )
        audit = d.invoice_audit(None, invoice, AuditAction.INVOICE_CREATE, actor=actor or self._actor, at=now)
        try:
            self._storage.insert_invoice(invoice, [audit])
        except DuplicateRecordError:
            existing = self._storage.get_invoice(invoice_id)
            if existing is None:
                raise
            d.check_replay(existing.request_fingerprint, fp, "invoice")
            return existing
        self._emit([audit])
        return invoice

    def get_invoice(self, invoice_id: str) -> Invoice:
        """The invoice with this id.

        Raises:
            NotFoundError: No such invoice.
        """
        d.check_id(invoice_id, "invoice_id")
        invoice = self._storage.get_invoice(invoice_id)
        if invoice is None:
            raise NotFoundError(f"no invoice {invoice_id!r}")
        return invoice

    def _change_invoice(
        self,
        invoice_id: str,
        action: AuditAction,
        build: Callable[[Invoice], dict[str, Any] | None],
        *,
        actor: str | None,
        notify_sent: bool = False,
    ) -> Invoice:
        for _ in self._attempts(f"invoice {invoice_id}"):
            current = self.get_invoice(invoice_id)
            changes = build(current)
            if changes is None:
                return current
            now = self._now()
            after = current.model_copy(update={**changes, "version": current.version + 1, "updated_at": now})
            effects: list[Effect] = [d.invoice_audit(current, after, action, actor=actor or self._actor, at=now)]
            if notify_sent:
                effects.append(d.invoice_sent(after, at=now))
            if self._storage.update_invoice(after, expected_version=current.version, effects=effects):
                self._emit(effects)
                return after
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def send_invoice(self, invoice_id: str, *, actor: str | None = None) -> Invoice:
        """Send a draft invoice: it becomes OPEN and the user is notified. Sending again is a no-op.

        Raises:
            InvalidStateError: The invoice is paid or void.
        """

        def build(current: Invoice) -> dict[str, Any] | None:
            if current.status == InvoiceStatus.OPEN:
                return None
            if current.status != InvoiceStatus.DRAFT:
                raise InvalidStateError(f"cannot send an invoice that is {current.status.value}")
            return {"status": InvoiceStatus.OPEN, "sent_at": self._now()}

        return self._change_invoice(invoice_id, AuditAction.INVOICE_SEND, build, actor=actor, notify_sent=True)

    def void_invoice(self, invoice_id: str, *, actor: str | None = None) -> Invoice:
        """Void a draft or open invoice that has no successful payment.

        Raises:
            InvalidStateError: The invoice is paid.
        """

        def build(current: Invoice) -> dict[str, Any] | None:
            if current.status == InvoiceStatus.VOID:
                return None
            if current.status == InvoiceStatus.PAID:
                raise InvalidStateError("cannot void a paid invoice; refund its payment instead")
            return {"status": InvoiceStatus.VOID}

        return self._change_invoice(invoice_id, AuditAction.INVOICE_VOID, build, actor=actor)

    def pay_invoice(
        self,
        invoice_id: str,
        *,
        provider: str,
        payment_method: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        actor: str | None = None,
    ) -> Payment:
        """Start paying an OPEN invoice: one payment for its total, created once.

        The invoice becomes PAID when that payment succeeds (by confirmation,
        webhook or reconcile). Calling again returns the same payment, unless it
        failed or was canceled: then a new payment starts, so a payer whose card
        was declined can try again.

        Raises:
            InvalidStateError: The invoice is not open.
            IdempotencyConflictError: A payment for the invoice is under way with other parameters.
        """
        invoice = self.get_invoice(invoice_id)
        if invoice.status != InvoiceStatus.OPEN:
            raise InvalidStateError(f"cannot pay an invoice that is {invoice.status.value}; send it first")
        key = f"invoice:{invoice.id}"
        if invoice.payment_id is not None:
            previous = self._storage.get_payment(invoice.payment_id)
            if previous is not None and previous.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
                key = f"invoice:{invoice.id}:after:{previous.id}"
            elif previous is not None and previous.idempotency_key is not None:
                key = previous.idempotency_key
        payment = self.initialize_payment(
            user_id=invoice.user_id,
            amount=invoice.total,
            provider=provider,
            idempotency_key=key,
            description=f"Invoice {invoice.number}",
            metadata={"invoice_id": invoice.id, "invoice_number": invoice.number},
            payment_method=payment_method,
            return_url=return_url,
            cancel_url=cancel_url,
            actor=actor,
            invoice_id=invoice.id,
        )
        if invoice.payment_id != payment.id:
            self._change_invoice(
                invoice.id,
                AuditAction.INVOICE_PAYMENT,
                lambda current: None if current.payment_id == payment.id else {"payment_id": payment.id},
                actor=actor,
            )
        if payment.status == PaymentStatus.SUCCEEDED:
            self._mark_invoice_paid(payment, actor=actor or self._actor)
        return payment

    def _mark_invoice_paid(self, payment: Payment, *, actor: str) -> None:
        if payment.invoice_id is None:
            return

        def build(current: Invoice) -> dict[str, Any] | None:
            if current.status != InvoiceStatus.OPEN:
                return None
            return {"status": InvoiceStatus.PAID, "paid_at": self._now(), "payment_id": payment.id}

        try:
            self._change_invoice(payment.invoice_id, AuditAction.INVOICE_PAID, build, actor=actor)
        except NotFoundError:
            log.warning("paid payment names a missing invoice", payment_id=payment.id)

    # -- saved payment methods ------------------------------------------------
    def save_payment_method(
        self,
        *,
        user_id: str,
        provider: str,
        token: str,
        make_default: bool = False,
        idempotency_key: str | None = None,
        actor: str | None = None,
    ) -> PaymentMethod:
        """Save a provider token (``pm_...``) as a payment method of the user.

        The user's first method becomes the default. Card numbers are refused:
        collect cards with the provider's own client-side tools.

        Raises:
            InvalidRequestError: A card number instead of a token, or an unknown provider.
            InvalidStateError: The provider does not keep payment methods.
        """
        d.check_id(user_id, "user_id")
        d.check_id(token, "token")
        if d.looks_like_card_number(token):
            raise InvalidRequestError("pass a provider token (e.g. 'pm_...'), never a card number")
        key = d.check_key(idempotency_key)
        adapter = self.provider(provider)
        if not adapter.capabilities.saved_payment_methods:
            raise InvalidStateError(f"provider {provider!r} does not keep payment methods")
        fp = d.fingerprint(user_id=user_id, provider=provider, token=token, make_default=make_default)
        method_id = d.keyed_id("pm", "payment_method", key) if key else d.new_id("pm")
        if key is not None and (existing := self._storage.get_payment_method(method_id)) is not None:
            d.check_replay(existing.request_fingerprint, fp, "payment method")
            return existing
        customer_ref = self._storage.get_customer_ref(provider, user_id)
        saved, new_customer = adapter.save_payment_method(
            user_id, token, customer_ref=customer_ref, idempotency_key=f"paykit-{method_id}-save"
        )
        if new_customer is not None and new_customer != customer_ref:
            self._storage.set_customer_ref(provider, user_id, new_customer)
        first = not self._storage.list_payment_methods(user_id)
        now = self._now()
        method = PaymentMethod(
            id=method_id,
            user_id=user_id,
            provider=provider,
            provider_ref=saved.provider_ref,
            type=saved.type,
            brand=saved.brand,
            last4=saved.last4,
            exp_month=saved.exp_month,
            exp_year=saved.exp_year,
            is_default=first,
            idempotency_key=key,
            request_fingerprint=fp,
            created_at=now,
            updated_at=now,
        )
        audit = d.method_audit(method, AuditAction.PAYMENT_METHOD_SAVE, actor=actor or self._actor)
        try:
            self._storage.insert_payment_method(method, [audit])
        except DuplicateRecordError:
            existing = self._storage.get_payment_method(method_id)
            if existing is None:
                raise
            d.check_replay(existing.request_fingerprint, fp, "payment method")
            return existing
        self._emit([audit])
        if make_default and not first:
            return self.set_default_payment_method(user_id, method.id, actor=actor)
        if first:
            # Two first saves may race and both claim the default: keep the oldest.
            self._settle_default(user_id, actor=actor)
            return self._storage.get_payment_method(method.id) or method
        return method

    def _settle_default(self, user_id: str, *, actor: str | None) -> None:
        defaults = [m for m in self._storage.list_payment_methods(user_id) if m.is_default]
        for extra in sorted(defaults, key=lambda m: (m.created_at, m.id))[1:]:
            self._set_method(extra, None, actor, is_default=False)

    def _own_method(self, user_id: str, method_id: str) -> PaymentMethod:
        d.check_id(user_id, "user_id")
        d.check_id(method_id, "method_id")
        method = self._storage.get_payment_method(method_id)
        if method is None or method.deleted or method.user_id != user_id:
            raise NotFoundError(f"user {user_id!r} has no payment method {method_id!r}")
        return method

    def _set_method(
        self, method: PaymentMethod, action: AuditAction | None, actor: str | None, **changes: Any
    ) -> PaymentMethod:
        current: PaymentMethod | None = method
        for _ in self._attempts(f"payment method {method.id}"):
            if current is None:
                raise NotFoundError(f"no payment method {method.id!r}")
            after = current.model_copy(update={**changes, "version": current.version + 1, "updated_at": self._now()})
            effects: list[Effect] = [d.method_audit(after, action, actor=actor or self._actor)] if action else []
            if self._storage.update_payment_method(after, expected_version=current.version, effects=effects):
                self._emit(effects)
                return after
            current = self._storage.get_payment_method(method.id)
        raise AssertionError("unreachable")  # pragma: no cover - _attempts raises

    def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """The user's saved methods, oldest first."""
        d.check_id(user_id, "user_id")
        return self._storage.list_payment_methods(user_id)

    def set_default_payment_method(self, user_id: str, method_id: str, *, actor: str | None = None) -> PaymentMethod:
        """Make ``method_id`` the user's default (and no other), at its provider too.

        Raises:
            NotFoundError: The user has no such method.
            ProviderError: The provider refused; nothing changed.
        """
        method = self._own_method(user_id, method_id)
        if not method.is_default:
            # The provider first: if it refuses, nothing changed here either.
            customer_ref = self._storage.get_customer_ref(method.provider, user_id)
            self.provider(method.provider).set_default_payment_method(method, customer_ref=customer_ref)
        for other in self._storage.list_payment_methods(user_id):
            if other.is_default and other.id != method.id:
                self._set_method(other, None, actor, is_default=False)
        if method.is_default:
            return method
        return self._set_method(method, AuditAction.PAYMENT_METHOD_DEFAULT, actor, is_default=True)

    def delete_payment_method(self, user_id: str, method_id: str, *, actor: str | None = None) -> PaymentMethod:
        """Delete a saved method here and at its provider.

        Raises:
            NotFoundError: The user has no such method.
        """
        method = self._own_method(user_id, method_id)
        self.provider(method.provider).delete_payment_method(method)
        return self._set_method(method, AuditAction.PAYMENT_METHOD_DELETE, actor, deleted=True, is_default=False)

    # -- audit, notifications, health, metrics --------------------------------
    def audit_trail(self, subject_id: str, *, limit: int = 1000) -> list[AuditEntry]:
        """Every audit entry of a payment (refunds included), invoice or method, oldest first."""
        d.check_id(subject_id, "subject_id")
        return self._storage.list_audit(subject_id, limit=limit)

    def dispatch_notifications(self, *, limit: int = 100) -> DispatchReport:
        """Deliver due notifications to the notifiers once; return what happened."""
        return self._dispatcher.dispatch(limit=limit)

    def start_dispatcher(self, *, interval: float = 1.0) -> None:
        """Dispatch notifications from a daemon thread every ``interval`` seconds."""
        self._dispatcher.start(interval=interval)

    def list_notifications(self, user_id: str, *, unread_only: bool = False, limit: int = 50) -> list[Notification]:
        """A user's notifications, newest first."""
        d.check_id(user_id, "user_id")
        return self._storage.list_notifications(user_id, unread_only=unread_only, limit=limit)

    def mark_notification_read(self, notification_id: str) -> None:
        """Mark a notification read.

        Raises:
            NotFoundError: No such notification.
        """
        d.check_id(notification_id, "notification_id")
        if not self._storage.mark_notification_read(notification_id):
            raise NotFoundError(f"no notification {notification_id!r}")

    def health(self) -> HealthReport:
        """Whether storage answers, how many payments were created in 24 h, which providers exist."""
        now = self._now()
        try:
            self._storage.ping()
            recent: int | None = self._storage.payment_stats(created_since=now - timedelta(hours=24)).created_since
            storage = "ok"
        except PaykitError as exc:
            recent, storage = None, f"unreachable: {type(exc).__name__}"
        return HealthReport(
            ok=storage == "ok",
            storage=storage,
            payments_last_24h=recent,
            providers=sorted(self._providers),
            checked_at=now,
        )

    def metrics(self) -> MetricsReport:
        """Counts by status, captured and refunded money per currency, pending count."""
        stats = self._storage.payment_stats(created_since=self._now() - timedelta(hours=24))
        revenue = {c: Money(v, c) for c, v in sorted(stats.captured_by_currency.items())}
        refunds = {c: Money(stats.refunded_by_currency.get(c, 0), c) for c in revenue}
        return MetricsReport(
            count_by_status=dict(sorted(stats.count_by_status.items())),
            revenue_by_currency=revenue,
            refunds_by_currency=refunds,
            net_by_currency={c: revenue[c] - refunds[c] for c in revenue},
            pending=sum(stats.count_by_status.get(s.value, 0) for s in _UNSETTLED),
            total=sum(stats.count_by_status.values()),
        )

    def close(self) -> None:
        """Stop the dispatcher thread and wait for audit hooks to finish."""
        self._dispatcher.close()
        self._hooks.close()

    def __enter__(self) -> PaymentService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
