# Source of the generated sync twin (scripts/unasync.py): edit here.
"""FakeProvider: an in-process payment provider for tests and the demo, in both twins.

Its provider methods are awaited in :class:`AsyncFakeProvider` and plain in
:class:`FakeProvider`; its steering and webhook helpers are plain in both. Nothing
in it waits, so its threading locks are never held across an await.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from ..._errors import (
    InvalidRequestError,
    NotFoundError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    WebhookVerificationError,
)
from ..._models import EventKind, Payment, PaymentMethod, Refund, RefundStatus, WebhookEvent
from ..._money import Money
from ..._status import PaymentStatus
from ...providers._async.base import AsyncBaseProvider
from ...providers._base import (
    CreatePaymentRequest,
    ProviderCapabilities,
    ProviderPayment,
    ProviderPaymentMethod,
    ProviderRefund,
)
from .._fake_values import (
    _CARDS,
    SIGNATURE_HEADER,
    FakeBehavior,
    FakeCall,
    FakeWebhook,
    LookupFault,
    _FakePayment,
    _FakeRefund,
)

__all__ = ["AsyncFakeProvider"]


class AsyncFakeProvider(AsyncBaseProvider):
    """A provider that lives in memory, records every call and signs its own webhooks.

    Args:
        name: The provider name payments use.
        webhook_secret: The HMAC secret its webhooks are signed with.
        behavior: The default answer to confirm/capture/refund calls (see :data:`FakeBehavior`).
        clock: Unix time, for webhook timestamps and their 300 s tolerance.
        off_session: Declare (and honour) off-session charges, as Stripe does; ``False``
            makes a customer-present provider (as PayPal and KNET are), whose periods wait
            for the customer.

    Idempotency keys behave as at a real provider: a repeated key returns the
    first answer and creates nothing new (the call is still recorded), until
    :meth:`forget_idempotency_keys`. Refunds are kept by paykit refund id, so
    ``capabilities.refund_lookup`` is true and :meth:`refunds_for` counts the
    refunds made at the provider for one paykit refund.

    Attributes:
        amount_rule: Called by :meth:`check_amount`; ``None`` (the default) takes
            every amount. Set it to a provider's rule, e.g. ``StripeProvider``'s
            ``check_amount``, to test amount refusals.
    """

    def __init__(
        self,
        name: str = "fake",
        *,
        webhook_secret: str = "whsec_paykit_fake",
        behavior: FakeBehavior = "succeed",
        clock: Callable[[], float] = time.time,
        off_session: bool = True,
    ) -> None:
        self.name = name
        self.capabilities = ProviderCapabilities(
            off_session=off_session,
            manual_capture=True,
            partial_capture=True,
            refunds=True,
            partial_refunds=True,
            saved_payment_methods=True,
            server_side_confirm=True,
            refund_lookup=True,
        )
        self.behavior: FakeBehavior = behavior
        self.amount_rule: Callable[[Money], None] | None = None
        self.calls: list[FakeCall] = []
        self._secret = webhook_secret.encode()
        self._clock = clock
        self._lock = threading.Lock()
        self._refund_lock = threading.Lock()
        self._queued: deque[FakeBehavior] = deque()
        self._payments: dict[str, _FakePayment] = {}
        self._by_create_key: dict[str, str] = {}
        self._refund_answers: dict[str, ProviderRefund | ProviderError] = {}
        self._refund_records: dict[str, _FakeRefund] = {}
        self._queued_lookups: deque[LookupFault] = deque()
        self._counter = 0

    # -- steering -----------------------------------------------------------
    def fail_next(self, behavior: FakeBehavior, times: int = 1) -> None:
        """Answer the next ``times`` money-moving calls (create included) with ``behavior``."""
        with self._lock:
            self._queued.extend([behavior] * times)

    def fail_next_lookup(self, fault: LookupFault, times: int = 1) -> None:
        """Fail the next ``times`` refund lookups (``retrieve_refund``, ``find_refund``) with ``fault``."""
        with self._lock:
            self._queued_lookups.extend([fault] * times)

    def forget_idempotency_keys(self) -> None:
        """Forget every idempotency key, as Stripe does after 24 hours.

        A resend with a forgotten key is a new request: a refund sent again
        creates a second refund at the provider, and a replayed 500 is no
        longer replayed. What was created stays.
        """
        with self._lock:
            self._refund_answers.clear()
            self._by_create_key.clear()
            for state in self._payments.values():
                state.by_key.clear()

    def refunds_for(self, refund_id: str) -> list[ProviderRefund]:
        """The refunds made at the provider for paykit refund ``refund_id``, oldest first, as they stand now.

        More than one means the same paykit refund was paid out twice.
        """
        with self._lock:
            return [r.view() for r in self._refund_records.values() if r.refund_id == refund_id]

    def refunded_amount(self, provider_ref: str) -> Money:
        """What the provider has refunded, or is refunding, of payment ``provider_ref``.

        Pending and succeeded refunds count; failed and canceled ones do not.

        Raises:
            NotFoundError: The fake knows no such payment.
        """
        with self._lock:
            state = self._payments.get(provider_ref)
            if state is None:
                raise NotFoundError(f"the fake provider has no payment {provider_ref!r}")
            total = sum(
                r.amount.minor_units
                for r in self._refund_records.values()
                if r.payment_ref == provider_ref and r.status in (RefundStatus.PENDING, RefundStatus.SUCCEEDED)
            )
            return Money(total, state.amount.currency)

    def settle_refund(self, refund: str, status: RefundStatus, *, failure_message: str | None = None) -> None:
        """Change a refund's state at the fake without telling anyone (a lost webhook).

        Args:
            refund: The refund's provider reference, or its paykit refund id (its latest refund).
            status: The refund's new state; FAILED after SUCCEEDED is a refund that fails later.
            failure_message: Why it failed, for FAILED and CANCELED.

        Raises:
            NotFoundError: The fake knows no such refund.
        """
        with self._lock:
            record = self._refund_record(refund)
            record.status = status
            record.failure_message = failure_message if status in (RefundStatus.FAILED, RefundStatus.CANCELED) else None

    def _refund_record(self, refund: str) -> _FakeRefund:
        """The refund by provider reference or paykit refund id; the caller holds the lock."""
        record = self._refund_records.get(refund)
        if record is None:
            matches = [r for r in self._refund_records.values() if r.refund_id == refund]
            if not matches:
                raise NotFoundError(f"the fake provider has no refund {refund!r}")
            record = matches[-1]
        return record

    def calls_to(self, method: str) -> list[FakeCall]:
        """The recorded calls of one method (``"create_payment"``, ``"refund_payment"``...)."""
        return [c for c in self.calls if c.method == method]

    def _next_behavior(self, *, queued_only: bool = False) -> FakeBehavior | None:
        with self._lock:
            if self._queued:
                return self._queued.popleft()
        return None if queued_only else self.behavior

    def _record(self, call: FakeCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _new_ref(self, prefix: str) -> str:
        with self._lock:
            self._counter += 1
            return f"{prefix}_fake_{self._counter:06d}"

    def _raise_unavailable(self, behavior: FakeBehavior | None) -> None:
        if behavior == "timeout":
            raise ProviderUnavailableError("the fake provider timed out", provider=self.name, code="timeout")
        if behavior == "server_error":
            raise ProviderUnavailableError(
                "the fake provider answered 503", provider=self.name, http_status=503, code="server_error"
            )

    def _get(self, payment: Payment) -> _FakePayment:
        state = self._payments.get(payment.provider_ref or "")
        if state is None:
            raise NotFoundError(f"the fake provider has no payment {payment.provider_ref!r}")
        return state

    @staticmethod
    def _answer(state: _FakePayment, **extra: Any) -> ProviderPayment:
        return ProviderPayment(
            provider_ref=state.ref,
            status=state.status,
            amount_captured=Money(state.captured, state.amount.currency) if state.captured else None,
            **extra,
        )

    # -- Provider -----------------------------------------------------------
    async def create_payment(self, request: CreatePaymentRequest) -> ProviderPayment:
        """Create a fake payment (status PENDING, with a client secret)."""
        self._record(FakeCall("create_payment", request.idempotency_key, None, request.amount))
        off_session = request.off_session and self.capabilities.off_session
        behavior = self._next_behavior(queued_only=not off_session)
        self._raise_unavailable(behavior)
        with self._lock:
            ref = self._by_create_key.get(request.idempotency_key)
        if ref is None:
            ref = self._new_ref("pi")
            with self._lock:
                self._by_create_key[request.idempotency_key] = ref
                self._payments[ref] = _FakePayment(
                    ref=ref,
                    payment_id=request.payment_id,
                    amount=request.amount,
                    capture_method=request.capture_method,
                    status=PaymentStatus.PENDING,
                )
        if off_session:
            return self._charge_off_session(self._payments[ref], behavior)
        return self._answer(self._payments[ref], client_secret=f"{ref}_secret_{ref[-6:]}")

    def _charge_off_session(self, state: _FakePayment, behavior: FakeBehavior | None) -> ProviderPayment:
        """Confirm at creation without the customer, once per payment, as Stripe's ``off_session``.

        ``"decline"`` answers ``card_declined``; ``"require_action"`` answers
        ``authentication_required`` (the bank wants the customer); both fail the payment.
        """
        with self._lock:
            answer = state.by_key.get("off_session")
            if answer is None:
                if behavior in ("decline", "require_action"):
                    state.status = PaymentStatus.FAILED
                    code = "card_declined" if behavior == "decline" else "authentication_required"
                    decline = "generic_decline" if behavior == "decline" else "authentication_required"
                    answer = PaymentDeclinedError(
                        "Your card was declined." if behavior == "decline" else "This payment requires authentication.",
                        provider=self.name,
                        http_status=402,
                        code=code,
                        decline_code=decline,
                    )
                else:
                    state.status, state.captured = PaymentStatus.SUCCEEDED, state.amount.minor_units
                    answer = self._answer(state)
                state.by_key["off_session"] = answer
        if isinstance(answer, PaymentDeclinedError):
            raise answer
        result: ProviderPayment = answer
        return result

    async def confirm_payment(
        self, payment: Payment, *, payment_method_ref: str | None, idempotency_key: str
    ) -> ProviderPayment:
        """Confirm according to the current behavior."""
        self._record(FakeCall("confirm_payment", idempotency_key, payment.provider_ref, payment.amount))
        state = self._get(payment)
        if idempotency_key in state.by_key:
            answer: ProviderPayment = state.by_key[idempotency_key]
            return answer
        behavior = self._next_behavior()
        self._raise_unavailable(behavior)
        if behavior == "decline":
            state.status = PaymentStatus.FAILED
            raise PaymentDeclinedError(
                "Your card has insufficient funds.",
                provider=self.name,
                http_status=402,
                code="card_declined",
                decline_code="insufficient_funds",
            )
        extra: dict[str, Any] = {}
        if behavior == "require_action":
            state.status = PaymentStatus.REQUIRES_ACTION
            extra["next_action"] = {"type": "redirect_to_url", "url": f"https://fake.example/3ds/{state.ref}"}
        elif behavior in ("processing", "accept_then_fail"):
            state.status = PaymentStatus.PROCESSING
        elif state.capture_method == "manual":
            state.status = PaymentStatus.AUTHORIZED
        else:
            state.status, state.captured = PaymentStatus.SUCCEEDED, state.amount.minor_units
        answer = self._answer(state, payment_method_ref=payment_method_ref, **extra)
        if behavior == "accept_then_fail":
            state.status = PaymentStatus.FAILED
        state.by_key[idempotency_key] = answer
        return answer

    async def capture_payment(self, payment: Payment, *, amount: Money | None, idempotency_key: str) -> ProviderPayment:
        """Capture an authorized fake payment."""
        self._record(FakeCall("capture_payment", idempotency_key, payment.provider_ref, amount))
        state = self._get(payment)
        self._raise_unavailable(self._next_behavior(queued_only=True))
        if idempotency_key not in state.by_key:
            state.status = PaymentStatus.SUCCEEDED
            state.captured = (amount or state.amount).minor_units
            state.by_key[idempotency_key] = self._answer(state)
        answer: ProviderPayment = state.by_key[idempotency_key]
        return answer

    async def cancel_payment(self, payment: Payment, *, idempotency_key: str) -> ProviderPayment:
        """Cancel a fake payment."""
        self._record(FakeCall("cancel_payment", idempotency_key, payment.provider_ref))
        state = self._get(payment)
        self._raise_unavailable(self._next_behavior(queued_only=True))
        state.status = PaymentStatus.CANCELED
        return self._answer(state)

    async def retrieve_payment(self, payment: Payment) -> ProviderPayment:
        """The fake payment's current state."""
        self._record(FakeCall("retrieve_payment", None, payment.provider_ref))
        return self._answer(self._get(payment))

    async def refund_payment(self, payment: Payment, refund: Refund, *, idempotency_key: str) -> ProviderRefund:
        """Refund according to the queued behavior (default: succeed at once).

        A repeated idempotency key answers what the first request got (a replayed
        500 included) and creates nothing new. See :data:`FakeBehavior` for the
        refund faults.
        """
        self._record(
            FakeCall("refund_payment", idempotency_key, payment.provider_ref, refund.amount, refund_id=refund.id)
        )
        # One refund request at a time, as a provider serializes requests with one key.
        with self._refund_lock:
            return self._refund(payment, refund, idempotency_key)

    def _refund(self, payment: Payment, refund: Refund, idempotency_key: str) -> ProviderRefund:
        with self._lock:
            done = self._refund_answers.get(idempotency_key)
        if isinstance(done, ProviderError):
            raise done
        if done is not None:
            return done
        behavior = self._next_behavior(queued_only=True)
        self._raise_unavailable(behavior)
        if behavior == "decline":
            raise PaymentDeclinedError(
                "The refund was declined.", provider=self.name, http_status=402, code="refund_declined"
            )
        if behavior == "refund_replayed_server_error":
            error = ProviderUnavailableError(
                "the fake provider answered 500", provider=self.name, http_status=500, code="api_error"
            )
            with self._lock:
                self._refund_answers[idempotency_key] = error
            raise error
        status = RefundStatus.PENDING if behavior == "refund_pending" else RefundStatus.SUCCEEDED
        with self._lock:
            self._counter += 1
            record = _FakeRefund(
                ref=f"re_fake_{self._counter:06d}",
                refund_id=refund.id,
                payment_ref=payment.provider_ref or "",
                payment_id=payment.id,
                amount=refund.amount,
                status=status,
            )
            self._refund_records[record.ref] = record
            answer = record.view()
            self._refund_answers[idempotency_key] = answer
            if behavior == "refund_fails_later":
                record.status = RefundStatus.FAILED
                record.failure_message = "the refund failed at the provider after succeeding"
        if behavior == "refund_timeout_after_success":
            raise ProviderUnavailableError(
                "the fake provider timed out after refunding", provider=self.name, code="timeout"
            )
        return answer

    def check_amount(self, amount: Money) -> None:
        """Take every amount, unless :attr:`amount_rule` is set (then it decides). No I/O."""
        if self.amount_rule is not None:
            self.amount_rule(amount)

    async def retrieve_refund(self, payment: Payment, refund: Refund) -> ProviderRefund:
        """The refund ``refund.provider_ref`` as it stands at the fake now.

        Raises:
            ProviderRequestError: The fake knows no such refund (code ``resource_missing``, like Stripe's 404).
            ProviderUnavailableError: A lookup fault was queued (:meth:`fail_next_lookup`).
        """
        self._record(FakeCall("retrieve_refund", None, refund.provider_ref, refund_id=refund.id))
        self._raise_lookup_fault()
        with self._lock:
            record = self._refund_records.get(refund.provider_ref or "")
            if record is None:
                raise ProviderRequestError(
                    f"the fake provider has no refund {refund.provider_ref!r}",
                    provider=self.name,
                    http_status=404,
                    code="resource_missing",
                )
            return record.view()

    async def find_refund(self, payment: Payment, refund: Refund) -> ProviderRefund | None:
        """The payment's first refund made for paykit refund ``refund.id``, or ``None``.

        Raises:
            ProviderUnavailableError: A lookup fault was queued (:meth:`fail_next_lookup`).
        """
        self._record(FakeCall("find_refund", None, payment.provider_ref, refund_id=refund.id))
        self._raise_lookup_fault()
        with self._lock:
            for record in self._refund_records.values():
                if record.refund_id == refund.id and record.payment_ref == (payment.provider_ref or ""):
                    return record.view()
        return None

    def _raise_lookup_fault(self) -> None:
        with self._lock:
            fault = self._queued_lookups.popleft() if self._queued_lookups else None
        self._raise_unavailable(fault)

    async def save_payment_method(
        self, user_id: str, token: str, *, customer_ref: str | None, idempotency_key: str
    ) -> tuple[ProviderPaymentMethod, str | None]:
        """Attach a test token (``pm_card_visa``, ``pm_card_mastercard``...)."""
        self._record(FakeCall("save_payment_method", idempotency_key))
        brand, last4 = _CARDS.get(token, ("visa", "4242"))
        if token.startswith("tok_bad"):
            raise InvalidRequestError(f"the fake provider rejects token {token!r}")
        method = ProviderPaymentMethod(
            provider_ref=self._new_ref("pm"), brand=brand, last4=last4, exp_month=12, exp_year=2030
        )
        return method, customer_ref or f"cus_fake_{hashlib.sha256(user_id.encode()).hexdigest()[:10]}"

    async def set_default_payment_method(self, method: PaymentMethod, *, customer_ref: str | None) -> None:
        """Make the method the default (just recorded)."""
        self._record(FakeCall("set_default_payment_method", customer_ref, method.provider_ref))

    async def delete_payment_method(self, method: PaymentMethod) -> None:
        """Detach (just recorded)."""
        self._record(FakeCall("delete_payment_method", None, method.provider_ref))

    # -- webhooks -------------------------------------------------------------
    def settle(self, provider_ref: str, status: PaymentStatus) -> None:
        """Change a payment's state at the fake without telling anyone (a lost webhook)."""
        with self._lock:
            state = self._payments[provider_ref]
            state.status = status
            if status == PaymentStatus.SUCCEEDED and not state.captured:
                state.captured = state.amount.minor_units

    def sign(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """Headers signing ``body`` the fake's way: ``t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``."""
        t = int(self._clock()) if timestamp is None else timestamp
        mac = hmac.new(self._secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return {SIGNATURE_HEADER: f"t={t},v1={mac}", "content-type": "application/json"}

    def webhook(
        self,
        payment: Payment | str,
        status: PaymentStatus,
        *,
        event_id: str | None = None,
        amount: Money | None = None,
        timestamp: int | None = None,
    ) -> FakeWebhook:
        """A signed event saying the payment (or provider reference) is now ``status``.

        The fake's own state moves too, so :meth:`retrieve_payment` agrees.
        """
        ref = payment if isinstance(payment, str) else payment.provider_ref
        if ref is None:
            raise InvalidRequestError("the payment has no provider reference yet")
        with self._lock:
            state = self._payments.get(ref)
        if state is not None and status in (PaymentStatus.SUCCEEDED, PaymentStatus.FAILED):
            self.settle(ref, status)
        data: dict[str, Any] = {"provider_ref": ref, "status": status.value}
        if state is not None:
            data["payment_id"] = state.payment_id
            shown = amount or state.amount
            data["amount"] = {"minor_units": shown.minor_units, "currency": shown.currency}
        body = json.dumps(
            {"id": event_id or self._new_ref("evt"), "type": f"payment.{status.value}", "data": data},
            separators=(",", ":"),
        ).encode()
        return FakeWebhook(body=body, headers=self.sign(body, timestamp=timestamp))

    def dispute_webhook(
        self, payment: Payment, *, event_id: str | None = None, timestamp: int | None = None
    ) -> FakeWebhook:
        """A signed event saying the payer disputed ``payment`` (a chargeback was opened)."""
        if payment.provider_ref is None:
            raise InvalidRequestError("the payment has no provider reference yet")
        data = {"provider_ref": payment.provider_ref, "payment_id": payment.id, "dispute": "needs_response"}
        body = json.dumps(
            {"id": event_id or self._new_ref("evt"), "type": "dispute.created", "data": data},
            separators=(",", ":"),
        ).encode()
        return FakeWebhook(body=body, headers=self.sign(body, timestamp=timestamp))

    def refund_webhook(
        self,
        refund: str,
        status: RefundStatus | None = None,
        *,
        event_id: str | None = None,
        timestamp: int | None = None,
        failure_message: str | None = None,
    ) -> FakeWebhook:
        """A signed event telling a refund's state, with its paykit refund id (as Stripe echoes it).

        Args:
            refund: The refund's provider reference, or its paykit refund id (its latest refund).
            status: Move the refund to this state first (FAILED after SUCCEEDED: it failed later);
                ``None`` tells its current state.
            event_id: The event id; a new one when ``None``.
            timestamp: The signature's Unix time; now when ``None``.
            failure_message: Why it failed, with ``status`` FAILED or CANCELED.

        Raises:
            NotFoundError: The fake knows no such refund.
        """
        if status is not None:
            self.settle_refund(refund, status, failure_message=failure_message)
        with self._lock:
            record = self._refund_record(refund)
            data: dict[str, Any] = {
                "provider_ref": record.payment_ref,
                "payment_id": record.payment_id,
                "refund_ref": record.ref,
                "refund_id": record.refund_id,
                "refund_status": record.status.value,
                "amount": {"minor_units": record.amount.minor_units, "currency": record.amount.currency},
            }
            if record.failure_message is not None:
                data["failure_message"] = record.failure_message
            kind = record.status.value
        body = json.dumps(
            {"id": event_id or self._new_ref("evt"), "type": f"refund.{kind}", "data": data},
            separators=(",", ":"),
        ).encode()
        return FakeWebhook(body=body, headers=self.sign(body, timestamp=timestamp))

    async def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Verify the fake's signature (300 s tolerance) and normalize the event."""
        header = headers.get(SIGNATURE_HEADER)
        if not header:
            raise WebhookVerificationError("missing signature header")
        try:
            parts = dict(item.split("=", 1) for item in header.split(","))
            timestamp = int(parts["t"])
            signature = parts["v1"]
        except (ValueError, KeyError):
            raise WebhookVerificationError("malformed signature header") from None
        if abs(self._clock() - timestamp) > 300:
            raise WebhookVerificationError("signature timestamp outside the tolerance")
        expected = hmac.new(self._secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise WebhookVerificationError("signature mismatch")
        try:
            event = json.loads(body)
            data = event["data"]
            amount = data.get("amount")
            if "refund_ref" in data:
                return self._refund_event(event, data)
            if "dispute" in data:
                return WebhookEvent(
                    provider=self.name,
                    event_id=str(event["id"]),
                    type=str(event["type"]),
                    kind=EventKind.DISPUTE,
                    provider_ref=str(data["provider_ref"]),
                    payment_id=data.get("payment_id"),
                )
            return WebhookEvent(
                provider=self.name,
                event_id=str(event["id"]),
                type=str(event["type"]),
                kind=EventKind.PAYMENT,
                provider_ref=str(data["provider_ref"]),
                payment_id=data.get("payment_id"),
                status=PaymentStatus(data["status"]),
                amount=Money(amount["minor_units"], amount["currency"]) if amount else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookVerificationError("malformed event body") from exc

    def _refund_event(self, event: Mapping[str, Any], data: Mapping[str, Any]) -> WebhookEvent:
        amount = data["amount"]
        return WebhookEvent(
            provider=self.name,
            event_id=str(event["id"]),
            type=str(event["type"]),
            kind=EventKind.REFUND,
            provider_ref=str(data["provider_ref"]),
            payment_id=data.get("payment_id"),
            amount_refunded=Money(amount["minor_units"], amount["currency"]),
            refund_ref=str(data["refund_ref"]),
            refund_id=data.get("refund_id"),
            refund_status=RefundStatus(data["refund_status"]),
            failure_message=data.get("failure_message"),
        )
