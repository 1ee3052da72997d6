"""A stateful property test: PaymentService over MemoryStorage and FakeProvider against a simple model."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, precondition, rule

from paykit import (
    AuditAction,
    InvalidRequestError,
    InvalidStateError,
    Money,
    NotificationKind,
    PaymentDeclinedError,
    PaymentService,
    PaymentStatus,
    RefundStatus,
    can_transition,
)
from paykit.storage import MemoryStorage
from paykit.testing import FakeBehavior, FakeProvider, FakeWebhook, ManualClock
from paykit.webhooks import handle_webhook

S = PaymentStatus
CONFIRMABLE = {S.PENDING, S.REQUIRES_ACTION}
CANCELABLE = {S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED}
REFUNDABLE = {S.SUCCEEDED, S.PARTIALLY_REFUNDED}
SETTLED = {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED}
# Webhooks the fake may send at any time. SUCCEEDED and FAILED also move the fake's own
# state, so they are only held back for late delivery once the payment is already there.
WEBHOOK_STATUSES = [S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED]
QUIET_STATUSES = [S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.CANCELED]


@dataclass
class ModelPayment:
    """What the model expects of one payment."""

    user_id: str
    amount: Money
    manual: bool
    status: PaymentStatus = S.PENDING
    captured: int = 0
    refunded: int = 0
    history: list[tuple[str, str, str]] = field(default_factory=list)
    keyed_refunds: dict[str, str] = field(default_factory=dict)

    def move(self, target: PaymentStatus, action: AuditAction) -> None:
        """Record a status change the service must make (and audit exactly once)."""
        if target == self.status:
            return
        assert can_transition(self.status, target), f"model bug: {self.status} -> {target}"
        self.history.append((action.value, self.status.value, target.value))
        self.status = target


@dataclass
class SentWebhook:
    """A webhook the fake produced, delivered or not yet."""

    payment_id: str
    status: PaymentStatus
    event_id: str
    request: FakeWebhook


def floats_in(value: Any) -> list[Any]:
    """Every float inside a JSON-like value."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for v in value.values() for f in floats_in(v)]
    if isinstance(value, list | tuple):
        return [f for v in value for f in floats_in(v)]
    return []


class PaymentMachine(RuleBasedStateMachine):
    """Random sequences of payment operations and webhooks, checked against a model."""

    payments = Bundle("payments")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.fake = FakeProvider(clock=self.clock.unix)
        self.service = PaymentService(storage=MemoryStorage(), providers=[self.fake], clock=self.clock)
        self.model: dict[str, ModelPayment] = {}
        self.sent: list[SentWebhook] = []
        self.delivered: set[str] = set()
        self.counter = itertools.count()

    def teardown(self) -> None:
        self.service.close()

    # -- operations ----------------------------------------------------------
    @rule(
        target=payments,
        minor=st.integers(min_value=1, max_value=10**7),
        currency=st.sampled_from(["USD", "KWD", "JPY"]),
        manual=st.booleans(),
    )
    def initialize(self, minor: int, currency: str, manual: bool) -> str:
        return self._new_payment(minor, currency, manual=manual)

    def _new_payment(self, minor: int, currency: str, *, manual: bool) -> str:
        user_id = f"user-{next(self.counter)}"
        amount = Money.from_minor(minor, currency)
        payment = self.service.initialize_payment(
            user_id=user_id, amount=amount, provider="fake", capture_method="manual" if manual else "automatic"
        )
        assert S.PENDING == payment.status
        self.model[payment.id] = ModelPayment(user_id=user_id, amount=amount, manual=manual)
        return payment.id

    @rule(target=payments, minor=st.integers(min_value=1, max_value=10**7), currency=st.sampled_from(["USD", "KWD"]))
    def initialize_and_pay(self, minor: int, currency: str) -> str:
        """A shortcut to a captured payment, so refunds get exercised often."""
        payment_id = self._new_payment(minor, currency, manual=False)
        self._confirm(payment_id, "succeed")
        return payment_id

    @rule(
        payment_id=payments,
        behavior=st.sampled_from(["succeed", "decline", "processing", "require_action"]),
    )
    def confirm(self, payment_id: str, behavior: FakeBehavior) -> None:
        self._confirm(payment_id, behavior)

    def _confirm(self, payment_id: str, behavior: FakeBehavior) -> None:
        m = self.model[payment_id]
        self.fake.behavior = behavior
        try:
            if m.status not in CONFIRMABLE:
                with pytest.raises(InvalidStateError):
                    self.service.confirm_payment(payment_id)
                return
            if behavior == "decline":
                with pytest.raises(PaymentDeclinedError):
                    self.service.confirm_payment(payment_id)
                m.move(S.FAILED, AuditAction.PAYMENT_CONFIRM)
                return
            payment = self.service.confirm_payment(payment_id)
        finally:
            self.fake.behavior = "succeed"
        if behavior == "succeed" and m.manual:
            m.move(S.AUTHORIZED, AuditAction.PAYMENT_CONFIRM)
        elif behavior == "succeed":
            m.move(S.SUCCEEDED, AuditAction.PAYMENT_CONFIRM)
            m.captured = m.amount.minor_units
        elif behavior == "processing":
            m.move(S.PROCESSING, AuditAction.PAYMENT_CONFIRM)
        else:
            m.move(S.REQUIRES_ACTION, AuditAction.PAYMENT_CONFIRM)
        assert m.status == payment.status

    @rule(payment_id=payments, minor=st.one_of(st.none(), st.integers(min_value=1, max_value=2 * 10**7)))
    def capture(self, payment_id: str, minor: int | None) -> None:
        m = self.model[payment_id]
        amount = None if minor is None else Money.from_minor(minor, m.amount.currency)
        if m.status != S.AUTHORIZED:
            with pytest.raises(InvalidStateError):
                self.service.capture_payment(payment_id, amount=amount)
            return
        if minor is not None and minor > m.amount.minor_units:
            with pytest.raises(InvalidRequestError):
                self.service.capture_payment(payment_id, amount=amount)
            return
        payment = self.service.capture_payment(payment_id, amount=amount)
        m.move(S.SUCCEEDED, AuditAction.PAYMENT_CAPTURE)
        m.captured = m.amount.minor_units if minor is None else minor
        assert m.captured == payment.captured_minor

    @rule(payment_id=payments)
    def cancel(self, payment_id: str) -> None:
        m = self.model[payment_id]
        if m.status not in CANCELABLE:
            with pytest.raises(InvalidStateError):
                self.service.cancel_payment(payment_id)
            return
        assert S.CANCELED == self.service.cancel_payment(payment_id).status
        m.move(S.CANCELED, AuditAction.PAYMENT_CANCEL)

    @rule(
        payment_id=payments,
        fraction=st.one_of(st.none(), st.integers(min_value=1, max_value=120)),
        key=st.sampled_from([None, "a", "b"]),
    )
    def refund(self, payment_id: str, fraction: int | None, key: str | None) -> None:
        """Refund a share of the capture (percent, up to 120 %), all that remains, or replay a key."""
        m = self.model[payment_id]
        minor = None if fraction is None else max(1, m.captured * fraction // 100 or m.amount.minor_units)
        amount = None if minor is None else Money.from_minor(minor, m.amount.currency)
        scoped_key = None if key is None else f"{payment_id}-{key}-{minor}"
        if scoped_key is not None and scoped_key in m.keyed_refunds:
            before = self.service.get_payment(payment_id)
            replay = self.service.refund_payment(payment_id, amount=amount, idempotency_key=scoped_key)
            assert m.keyed_refunds[scoped_key] == replay.id
            assert before == self.service.get_payment(payment_id)
            return
        remaining = m.captured - m.refunded
        wanted = remaining if minor is None else minor
        if m.status not in REFUNDABLE or wanted > remaining:
            with pytest.raises(InvalidStateError):
                self.service.refund_payment(payment_id, amount=amount, idempotency_key=scoped_key)
            return
        refund = self.service.refund_payment(payment_id, amount=amount, idempotency_key=scoped_key)
        assert RefundStatus.SUCCEEDED == refund.status
        assert wanted == refund.amount.minor_units
        m.refunded += wanted
        m.move(S.REFUNDED if m.refunded == m.captured else S.PARTIALLY_REFUNDED, AuditAction.PAYMENT_REFUND)
        if scoped_key is not None:
            m.keyed_refunds[scoped_key] = refund.id

    # -- webhooks --------------------------------------------------------------
    def _send(self, payment_id: str, status: PaymentStatus) -> SentWebhook:
        event_id = f"evt_{next(self.counter)}"
        request = self.fake.webhook(self.service.get_payment(payment_id), status, event_id=event_id)
        sent = SentWebhook(payment_id, status, event_id, request)
        self.sent.append(sent)
        return sent

    def _deliver(self, sent: SentWebhook) -> None:
        m = self.model[sent.payment_id]
        response = handle_webhook(self.service, "fake", sent.request.body, sent.request.headers)
        assert 200 == response.status_code
        if sent.event_id in self.delivered or m.status == sent.status:
            expected = "duplicate"
        elif can_transition(m.status, sent.status):
            expected = "applied"
            m.move(sent.status, AuditAction.PAYMENT_STATUS_UPDATE)
            if sent.status == S.SUCCEEDED and not m.captured:
                m.captured = m.amount.minor_units
        else:
            expected = "stale"
        assert expected == response.outcome
        self.delivered.add(sent.event_id)

    @rule(payment_id=payments, status=st.sampled_from(WEBHOOK_STATUSES))
    def webhook_now(self, payment_id: str, status: PaymentStatus) -> None:
        self._deliver(self._send(payment_id, status))

    @rule(payment_id=payments, status=st.sampled_from([*QUIET_STATUSES, S.SUCCEEDED, S.FAILED]))
    def webhook_later(self, payment_id: str, status: PaymentStatus) -> None:
        """The provider sends an event that arrives only after later operations (out of order)."""
        current = self.model[payment_id].status
        if status == S.SUCCEEDED and current not in SETTLED:
            return
        if status == S.FAILED and current != S.FAILED:
            return
        self._send(payment_id, status)

    @precondition(lambda self: bool(self.sent))
    @rule(index=st.integers(min_value=0))
    def deliver_sent(self, index: int) -> None:
        """Deliver a held-back webhook, or redeliver one already delivered."""
        self._deliver(self.sent[index % len(self.sent)])

    # -- invariants --------------------------------------------------------------
    @invariant()
    def payments_match_model(self) -> None:
        for payment_id, m in self.model.items():
            payment = self.service.get_payment(payment_id)
            assert m.status == payment.status
            assert m.captured == payment.captured_minor
            assert m.refunded == payment.refunded_minor
            assert {} == payment.pending_refunds
            assert payment.refunded_minor + sum(payment.pending_refunds.values()) <= payment.captured_minor
            assert payment.captured_minor <= payment.amount.minor_units
            succeeded = [r for r in self.service.list_refunds(payment_id) if r.status == RefundStatus.SUCCEEDED]
            assert m.refunded == sum(r.amount.minor_units for r in succeeded)

    @invariant()
    def each_status_change_is_audited_once(self) -> None:
        for payment_id, m in self.model.items():
            trail = [e for e in self.service.audit_trail(payment_id) if e.subject_type == "payment"]
            changes = [
                (e.action.value, e.status_before, e.status_after) for e in trail if e.status_before != e.status_after
            ]
            assert m.history == changes
            assert trail, "every payment has at least its PAYMENT_INIT entry"
            assert S.PENDING.value == trail[0].status_before
            for before, after in itertools.pairwise(trail):
                assert before.status_after == after.status_before
            assert m.status.value == trail[-1].status_after

    @invariant()
    def each_status_change_is_notified_once(self) -> None:
        for payment_id, m in self.model.items():
            notes = self.service.list_notifications(m.user_id, limit=1000)
            changed = [n for n in notes if n.subject_id == payment_id and n.kind == NotificationKind.STATUS_CHANGED]
            assert len(m.history) == len(changed)
            assert len(notes) == len({n.id for n in notes})

    @invariant()
    def no_float_anywhere(self) -> None:
        for payment_id, m in self.model.items():
            records: list[Any] = [self.service.get_payment(payment_id)]
            records += self.service.list_refunds(payment_id)
            records += self.service.audit_trail(payment_id)
            records += self.service.list_notifications(m.user_id, limit=1000)
            for record in records:
                assert [] == floats_in(record.model_dump())
                assert [] == floats_in(record.model_dump(mode="json"))


PaymentMachine.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


TestPaymentStateMachine = PaymentMachine.TestCase
TestPaymentStateMachine.__doc__ = "The service agrees with the model after any sequence of operations and webhooks."


class TestRedeliveredWebhooks:
    """The smallest cases the machine found, kept as plain examples."""

    def test_redelivery_after_the_payment_moved_on_is_a_duplicate(self) -> None:
        """An event delivered when the payment already had its status stays a duplicate on every redelivery."""
        clock = ManualClock()
        fake = FakeProvider(clock=clock.unix)
        with PaymentService(storage=MemoryStorage(), providers=[fake], clock=clock) as service:
            payment = service.initialize_payment(user_id="u1", amount=Money.of("10.00", "USD"), provider="fake")
            service.confirm_payment(payment.id)
            hook = fake.webhook(service.get_payment(payment.id), S.SUCCEEDED, event_id="evt_1")
            first = handle_webhook(service, "fake", hook.body, hook.headers)
            service.refund_payment(payment.id, amount=Money.of("1.00", "USD"))
            again = handle_webhook(service, "fake", hook.body, hook.headers)
            actions = [e.action for e in service.audit_trail(payment.id)]
        assert ("duplicate", "duplicate") == (first.outcome, again.outcome)
        assert AuditAction.PAYMENT_EVENT_IGNORED not in actions
