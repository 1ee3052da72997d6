# Generated from tests/_async/test_billing.py by scripts/unasync.py: do not edit.
"""Subscriptions and installment plans through the service: renewals, dunning, customer-present, crashes.

Written once for both APIs (tests/_sync/test_billing.py is generated from here), on
memory and on the MongoDB-wire server. The 200-subscription thread and process runs
are in tests/test_billing_concurrency.py.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paykit import (
    AmountLimit,
    AuditAction,
    Dunning,
    IdempotencyConflictError,
    InstallmentPlan,
    InvalidRequestError,
    InvalidStateError,
    InvoiceStatus,
    Money,
    NotFoundError,
    NotificationKind,
    PaymentService,
    PaymentStatus,
    Plan,
    StorageError,
    Subscription,
    SubscriptionStatus,
)
from paykit.storage import MemoryStorage, Storage
from paykit.storage._sync.memory import write_each
from paykit.testing import FakeProvider, ManualClock
from tests import _concurrency
from tests._storages import mongo_server_fixture, storage_params

START = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
MONTHLY = Plan(amount=Money.of("9.99", "USD"), name="Pro")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(params=storage_params(Storage))
def store(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    storage: Storage = request.getfixturevalue(mongo_server_fixture(Storage, "real_mongo_storage"))
    return storage


@pytest.fixture
def svc(store: Storage, fake: FakeProvider, clock: ManualClock) -> PaymentService:
    return PaymentService(storage=store, providers=[fake], clock=clock)


def subscribe(svc: PaymentService, **changes: Any) -> Subscription:
    values: dict[str, Any] = {"user_id": "u1", "plan": MONTHLY, "provider": "fake", "payment_method": "pm_card_visa"}
    values.update(changes)
    return svc.create_subscription(**values)


def kinds(svc: PaymentService, subject_id: str, user_id: str = "u1") -> list[str]:
    """The notifications about one subscription, oldest first."""
    notes = svc.list_notifications(user_id, limit=500)
    return [n.kind.value for n in reversed(notes) if n.subject_id == subject_id]


def charges(fake: FakeProvider) -> Counter[str]:
    """Money taken at the fake, by paykit payment id: more than 1 for an id is a double charge."""
    return Counter(state.payment_id for state in fake._payments.values() if state.status == PaymentStatus.SUCCEEDED)


class TestRenewals:
    """A subscription is charged once per period, on calendar boundaries anchored on its first day."""

    def test_the_first_period_is_charged_by_the_first_tick(self, svc: PaymentService) -> None:
        sub = subscribe(svc)
        assert (sub.status, sub.due_at, sub.period) == (SubscriptionStatus.ACTIVE, START, 0)

        report = svc.bill_due()

        sub = svc.get_subscription(sub.id)
        assert (report.claimed, report.paid) == (1, 1)
        assert (sub.status, sub.period, sub.current_period_start, sub.current_period_end) == (
            SubscriptionStatus.ACTIVE,
            1,
            START,
            datetime(2027, 2, 28, 9, 30, tzinfo=UTC),
        )
        payment = svc.get_payment(sub.last_payment_id or "")
        invoice = svc.get_invoice(payment.invoice_id or "")
        assert (payment.status, payment.off_session, payment.billing_id) == (PaymentStatus.SUCCEEDED, True, sub.id)
        assert (invoice.status, invoice.total, invoice.payment_id) == (InvoiceStatus.PAID, MONTHLY.amount, payment.id)
        trail = [e.action for e in svc.audit_trail(sub.id)]
        assert trail == [AuditAction.SUBSCRIPTION_CREATE, AuditAction.BILLING_PERIOD_PAID]

    def test_a_year_of_month_end_renewals(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        """Jan 31 renews Feb 28, Mar 31, Apr 30...; reminders come 3 days before; each period once."""
        sub = subscribe(svc)
        ends: list[datetime] = []
        while len(ends) < 12:
            svc.bill_due()
            assert svc.bill_due().claimed == 0  # a second tick finds nothing more to do
            sub = svc.get_subscription(sub.id)
            if sub.current_period_end is not None and sub.current_period_end not in ends:
                ends.append(sub.current_period_end)
            clock.advance((sub.due_at or START) - clock())
        assert [e.date().isoformat() if e else "" for e in ends] == [
            "2027-02-28",
            "2027-03-31",
            "2027-04-30",
            "2027-05-31",
            "2027-06-30",
            "2027-07-31",
            "2027-08-31",
            "2027-09-30",
            "2027-10-31",
            "2027-11-30",
            "2027-12-31",
            "2028-01-31",
        ]
        paid = charges(fake)
        assert (len(paid), set(paid.values())) == (12, {1})
        assert kinds(svc, sub.id).count("renewal_upcoming") == 11

    def test_a_trial_charges_nothing_until_it_ends(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        sub = subscribe(svc, plan=Plan(amount=Money.of("5.000", "KWD"), trial_days=14))
        assert (sub.status, sub.trial_end, sub.renews_at) == (
            SubscriptionStatus.TRIALING,
            START + timedelta(days=14),
            START + timedelta(days=14),
        )
        assert svc.bill_due().claimed == 0
        clock.advance(days=11)
        assert svc.bill_due().reminded == 1
        assert not fake.calls_to("create_payment")
        clock.advance(days=3)
        assert svc.bill_due().paid == 1
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.current_period_start) == (SubscriptionStatus.ACTIVE, START + timedelta(days=14))
        assert kinds(svc, sub.id) == ["renewal_upcoming"]

    def test_create_is_idempotent_by_key(self, svc: PaymentService) -> None:
        first = subscribe(svc, idempotency_key="sub-1")
        assert subscribe(svc, idempotency_key="sub-1") == first
        with pytest.raises(IdempotencyConflictError):
            subscribe(svc, idempotency_key="sub-1", plan=Plan(amount=Money.of("1.00", "USD")))
        assert [s.id for s in svc.list_subscriptions(user_id="u1")] == [first.id]

    @pytest.mark.parametrize(
        "bad",
        [
            {"plan": {"amount": Money.of("0", "USD")}},
            {"plan": {"amount": Money.of("1.00", "USD"), "interval": "fortnight"}},
            {"user_id": ""},
            {"provider": "nope"},
            {"start": datetime(2027, 1, 1)},
        ],
    )
    def test_bad_input_is_refused_and_nothing_is_stored(self, svc: PaymentService, bad: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequestError):
            subscribe(svc, **bad)
        assert svc.list_subscriptions() == []


class TestChanges:
    """Cancel now or at period end, pause and resume, change plan from the next period."""

    def test_cancel_at_period_end_charges_no_more(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        sub = subscribe(svc)
        svc.bill_due()
        sub = svc.cancel_subscription(sub.id, at_period_end=True)
        assert (sub.status, sub.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
        clock.advance(days=28)
        report = svc.bill_due()
        sub = svc.get_subscription(sub.id)
        assert (report.ended, sub.status, sub.due_at) == (1, SubscriptionStatus.CANCELED, None)
        assert len(charges(fake)) == 1
        assert "subscription_canceled" in kinds(svc, sub.id)
        assert svc.cancel_subscription(sub.id) == sub  # again: a no-op

    def test_cancel_now(self, svc: PaymentService) -> None:
        sub = svc.cancel_subscription(subscribe(svc).id)
        assert (sub.status, sub.due_at, sub.canceled_at) == (SubscriptionStatus.CANCELED, None, START)
        assert svc.bill_due().claimed == 0
        with pytest.raises(InvalidStateError):
            svc.pause_subscription(sub.id)

    def test_periods_paused_are_not_charged(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        sub = subscribe(svc)
        svc.bill_due()
        svc.pause_subscription(sub.id)
        clock.advance(days=70)  # Feb 28 and Mar 31 pass while paused
        assert svc.bill_due().claimed == 0
        sub = svc.resume_subscription(sub.id)
        assert (sub.status, sub.renews_at) == (SubscriptionStatus.ACTIVE, datetime(2027, 4, 30, 9, 30, tzinfo=UTC))
        clock.advance(sub.renews_at - clock() if sub.renews_at else timedelta(0))
        svc.bill_due()
        sub = svc.get_subscription(sub.id)
        assert (sub.current_period_start, sub.current_period_end) == (
            datetime(2027, 4, 30, 9, 30, tzinfo=UTC),
            datetime(2027, 5, 31, 9, 30, tzinfo=UTC),
        )
        assert len(charges(fake)) == 2
        actions = [e.action for e in svc.audit_trail(sub.id)]
        assert AuditAction.SUBSCRIPTION_PAUSE in actions
        assert AuditAction.SUBSCRIPTION_RESUME in actions

    def test_a_new_plan_starts_with_the_next_period(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        sub = subscribe(svc)
        svc.bill_due()
        yearly = Plan(amount=Money.of("99.00", "USD"), interval="year")
        sub = svc.change_subscription_plan(sub.id, yearly)
        assert (sub.plan, sub.next_plan) == (MONTHLY, yearly)
        clock.advance(days=28)
        svc.bill_due()
        sub = svc.get_subscription(sub.id)
        assert (sub.plan, sub.next_plan, sub.current_period_end) == (
            yearly,
            None,
            datetime(2028, 2, 28, 9, 30, tzinfo=UTC),
        )
        assert sorted(c.amount for c in fake.calls_to("create_payment") if c.amount) == [
            Money.of("9.99", "USD"),
            Money.of("99.00", "USD"),
        ]
        with pytest.raises(InvalidRequestError):
            svc.change_subscription_plan(sub.id, Plan(amount=Money.of("1.000", "KWD")))


class TestDunning:
    """Failure, retries at the scheduled times, recovery, and the final cancellation."""

    def test_retries_then_recovery(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        sub = subscribe(svc)
        fake.fail_next("decline", times=2)
        assert svc.bill_due().failed == 1
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.attempt, sub.due_at) == (SubscriptionStatus.PAST_DUE, 1, START + timedelta(days=1))

        clock.advance(hours=23)
        assert svc.bill_due().claimed == 0  # not before the retry time
        clock.advance(hours=1)
        assert svc.bill_due().failed == 1
        sub = svc.get_subscription(sub.id)
        assert (sub.attempt, sub.due_at) == (2, START + timedelta(days=3))

        clock.advance(days=2)
        assert svc.bill_due().paid == 1
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.attempt, sub.period, sub.current_period_end) == (
            SubscriptionStatus.ACTIVE,
            0,
            1,
            datetime(2027, 2, 28, 9, 30, tzinfo=UTC),  # recovery keeps the calendar
        )
        assert kinds(svc, sub.id).count("retry_scheduled") == 2
        invoices = {svc.get_payment(p).invoice_id for p in charges(fake)}
        assert len(invoices) == 1  # three attempts, one invoice

    @pytest.mark.parametrize(
        ("final", "kind"), [("canceled", "subscription_canceled"), ("unpaid", "subscription_unpaid")]
    )
    def test_the_last_failure_ends_it(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock, final: str, kind: str
    ) -> None:
        sub = subscribe(svc, dunning=Dunning(final_status=final))  # type: ignore[arg-type]
        fake.behavior = "decline"
        times = []
        for _ in range(6):
            if svc.bill_due().failed:
                times.append(clock() - START)
            sub = svc.get_subscription(sub.id)
            if sub.due_at is None:
                break
            clock.advance(sub.due_at - clock())
        assert times == [timedelta(days=d) for d in (0, 1, 3, 5, 7)]
        assert (sub.status, sub.attempt, sub.due_at) == (SubscriptionStatus(final), 5, None)
        assert kinds(svc, sub.id)[-1] == kind
        assert len(fake.calls_to("create_payment")) == 5

    def test_authentication_required_needs_the_customer(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """Off-session 3-D Secure: past due, the user is told what to do, the customer pays, active again."""
        sub = subscribe(svc)
        fake.fail_next("require_action")
        svc.bill_due()
        sub = svc.get_subscription(sub.id)
        assert sub.status == SubscriptionStatus.PAST_DUE
        notes = [n for n in svc.list_notifications("u1", limit=50) if n.subject_id == sub.id]
        action = next(n for n in notes if n.kind == NotificationKind.PAYMENT_ACTION_REQUIRED)
        assert (action.payload["action"], action.payload["failure"]) == ("authenticate", "authentication_required")

        payment = svc.pay_subscription(sub.id)  # the customer is back, on-session
        assert (payment.off_session, payment.status, payment.client_secret is not None) == (
            False,
            PaymentStatus.PENDING,
            True,
        )
        assert svc.pay_subscription(sub.id) == svc.get_payment(payment.id)  # again: the same payment
        svc.confirm_payment(payment.id, payment_method="pm_card_visa")
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.period, sub.attempt) == (SubscriptionStatus.ACTIVE, 1, 0)
        clock.advance(days=1)
        assert svc.bill_due().claimed == 0  # the retry is off: nothing is outstanding

    def test_a_deleted_card_enters_dunning_until_a_new_one_is_set(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        card = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        sub = subscribe(svc, payment_method=card.id)
        svc.delete_payment_method("u1", card.id)
        assert svc.bill_due().failed == 1
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.attempt) == (SubscriptionStatus.PAST_DUE, 1)
        assert not fake.calls_to("create_payment")
        assert "payment_failed" in kinds(svc, sub.id)

        new = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        sub = svc.change_subscription_payment_method(sub.id, new.id)
        assert AuditAction.SUBSCRIPTION_CHANGE_METHOD in [e.action for e in svc.audit_trail(sub.id)]
        clock.advance(days=1)
        assert svc.bill_due().paid == 1
        assert svc.get_subscription(sub.id).status == SubscriptionStatus.ACTIVE
        with pytest.raises(InvalidRequestError):
            svc.change_subscription_payment_method(sub.id, card.id)  # deleted


class TestCustomerPresent:
    """A provider without off-session charges: each period waits for the customer, with the same dunning."""

    @pytest.fixture
    def fake(self, clock: ManualClock) -> FakeProvider:
        return FakeProvider(clock=clock.unix, off_session=False)

    def test_the_customer_pays_by_the_link(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        sub = subscribe(svc)
        assert svc.bill_due().awaiting == 1
        sub = svc.get_subscription(sub.id)
        payment = svc.get_payment(sub.payment_id or "")
        assert (payment.status, payment.off_session, sub.status, sub.due_at) == (
            PaymentStatus.PENDING,
            False,
            SubscriptionStatus.ACTIVE,
            START + timedelta(days=1),
        )
        assert kinds(svc, sub.id) == ["payment_action_required"]
        hook = fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id="evt_1")
        svc.apply_webhook_event(fake.parse_webhook(hook.body, hook.headers))
        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.period, sub.payment_id) == (SubscriptionStatus.ACTIVE, 1, None)

    def test_an_unpaid_link_counts_as_a_failure(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        sub = subscribe(svc)
        svc.bill_due()
        first = svc.get_subscription(sub.id).payment_id or ""
        clock.advance(days=1)
        svc.bill_due()  # the deadline passed: the link is canceled, a retry scheduled
        sub = svc.get_subscription(sub.id)
        assert (svc.get_payment(first).status, sub.status, sub.attempt) == (
            PaymentStatus.CANCELED,
            SubscriptionStatus.PAST_DUE,
            1,
        )
        assert svc.bill_due().awaiting == 1  # the retry is due now: a new link
        second = svc.get_subscription(sub.id).payment_id
        assert second not in (None, first)


class TestInstallments:
    """Exact installments on a schedule, the same dunning, pay off early, cancel."""

    def test_three_installments_in_kwd(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("100.000", "KWD"), count=3, provider="fake", payment_method="pm_card_visa"
        )
        assert [str(i.amount) for i in plan.installments] == ["33.334 KWD", "33.333 KWD", "33.333 KWD"]
        assert [i.due_at.date().isoformat() for i in plan.installments] == ["2027-01-31", "2027-02-28", "2027-03-31"]
        for _ in range(5):  # three charges and two reminders
            svc.bill_due()
            plan = svc.get_installment_plan(plan.id)
            clock.advance((plan.due_at or clock()) - clock())
        assert (plan.status, plan.amount_paid, plan.amount_remaining.minor_units) == (
            SubscriptionStatus.COMPLETED,
            Money.of("100.000", "KWD"),
            0,
        )
        assert all(i.paid_at is not None for i in plan.installments)
        assert sum(c.amount.minor_units for c in fake.calls_to("create_payment") if c.amount) == 100_000

    def test_pay_off_early(self, svc: PaymentService, fake: FakeProvider, clock: ManualClock) -> None:
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("1000", "JPY"), count=4, provider="fake", payment_method="pm_card_visa"
        )
        svc.bill_due()
        clock.advance(days=3)
        plan = svc.pay_off_installment_plan(plan.id)
        assert (plan.status, plan.amount_paid, len(plan.installments)) == (
            SubscriptionStatus.COMPLETED,
            Money.of("1000", "JPY"),
            2,
        )
        assert [c.amount for c in fake.calls_to("create_payment")] == [Money.of("250", "JPY"), Money.of("750", "JPY")]

    def test_pay_off_while_past_due(self, svc: PaymentService, fake: FakeProvider) -> None:
        """The past-due installment's invoice is voided; the pay-off's own invoice carries the whole rest."""
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("30.00", "USD"), count=3, provider="fake", payment_method="pm_card_visa"
        )
        fake.fail_next("decline")
        svc.bill_due()
        failed = svc.list_payments(user_id="u1").items[0]
        plan = svc.pay_off_installment_plan(plan.id)
        assert (plan.status, plan.amount_paid) == (SubscriptionStatus.COMPLETED, Money.of("30.00", "USD"))
        paid = svc.get_payment(plan.last_payment_id or "")
        assert (paid.amount, svc.get_invoice(paid.invoice_id or "").status) == (
            Money.of("30.00", "USD"),
            InvoiceStatus.PAID,
        )
        assert svc.get_invoice(failed.invoice_id or "").status == InvoiceStatus.VOID

    def test_cancel_and_dunning(self, svc: PaymentService, fake: FakeProvider) -> None:
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("10.00", "USD"), count=2, provider="fake", payment_method="pm_card_visa"
        )
        fake.fail_next("decline")
        svc.bill_due()
        plan = svc.get_installment_plan(plan.id)
        assert (plan.status, plan.attempt) == (SubscriptionStatus.PAST_DUE, 1)
        plan = svc.cancel_installment_plan(plan.id)
        assert (plan.status, plan.due_at) == (SubscriptionStatus.CANCELED, None)
        with pytest.raises(InvalidStateError):
            svc.pay_off_installment_plan(plan.id)
        assert [p.id for p in svc.list_installment_plans(user_id="u1")] == [plan.id]
        assert isinstance(plan, InstallmentPlan)


class TestBadInput:
    """Bad input is a typed PaykitError, and nothing is stored."""

    @pytest.mark.parametrize(
        "bad",
        [
            {"count": 0},
            {"count": 121},
            {"total": Money.of("0.02", "USD"), "count": 3},
            {"interval": "fortnight"},
            {"interval_count": 0},
            {"first_due": datetime(2027, 1, 1)},
            {"provider": "nope"},
        ],
    )
    def test_installment_plans(self, svc: PaymentService, bad: dict[str, Any]) -> None:
        values: dict[str, Any] = {"user_id": "u1", "total": Money.of("10.00", "USD"), "count": 3, "provider": "fake"}
        with pytest.raises(InvalidRequestError):
            svc.create_installment_plan(**{**values, **bad})
        assert svc.list_installment_plans() == []

    @pytest.mark.parametrize("limit", [0, 1001, True])
    def test_bill_due_limit(self, svc: PaymentService, limit: int) -> None:
        with pytest.raises(InvalidRequestError):
            svc.bill_due(limit=limit)

    def test_unknown_ids(self, svc: PaymentService) -> None:
        plan = svc.create_installment_plan(user_id="u1", total=Money.of("10.00", "USD"), count=2, provider="fake")
        with pytest.raises(NotFoundError):
            svc.get_subscription(plan.id)  # an installment plan is not a subscription
        with pytest.raises(NotFoundError):
            svc.cancel_subscription("sub_missing")

    def test_notifications_carry_no_secret(self, svc: PaymentService, fake: FakeProvider) -> None:
        """The customer-present link goes out; the payment's client secret never does."""
        fake.capabilities = replace(fake.capabilities, off_session=False)
        sub = subscribe(svc)
        svc.bill_due()
        payment = svc.get_payment(svc.get_subscription(sub.id).payment_id or "")
        secret = payment.client_secret.get_secret_value() if payment.client_secret else "unset"
        notes = svc.list_notifications("u1", limit=50)
        assert notes
        assert secret not in repr([n.payload for n in notes])
        trail = svc.audit_trail(sub.id)
        assert secret not in repr([e.payload for e in trail])


class TestConcurrentTicks:
    """Ticks running together (tasks, or threads in the sync twin) charge each period exactly once."""

    def test_four_ticks_over_twenty_subscriptions(
        self, svc: PaymentService, fake: FakeProvider, clock: ManualClock
    ) -> None:
        subs = [subscribe(svc, user_id=f"u{k}") for k in range(20)]
        for _ in range(3):  # three periods
            _concurrency.run_together(4, lambda: svc.bill_due(limit=100))
            clock.advance(days=31)
        paid = charges(fake)
        assert (sum(paid.values()), set(paid.values())) == (60, {1})
        assert {svc.get_subscription(s.id).period for s in subs} == {3}


class Spy:
    """Delegates to a storage, counts calls by name, and fails the first ``fail`` calls named so."""

    def __init__(self, inner: Storage, fail: str = "", *, split: bool = False) -> None:
        self.inner = inner
        self.fail = fail
        self.split = split
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        if name == "write_batch" and self.split:  # each write of a batch on its own, counted and failing as such
            return lambda writes: write_each(self, writes)  # type: ignore[arg-type]
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == self.fail:
                self.fail = ""
                raise StorageError(f"{name} failed")
            return attribute(*args, **kwargs)

        return call


class TestPeriodInvoice:
    """A period's invoice is made once with one number, read first only when it may exist already."""

    def test_a_fresh_tick_inserts_the_invoice_without_reading_it_first(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)

        assert svc.bill_due().paid == 1

        # The invoice rides in the payment's insert batch; the settling writes in a second batch.
        calls = ("get_invoice", "next_invoice_sequence", "insert_invoice", "insert_payment", "write_batch")
        assert [spy.calls[name] for name in calls] == [0, 1, 0, 0, 2]
        assert svc.get_subscription(sub.id).period == 1

    def test_a_tick_taking_over_a_lease_left_behind_reads_it_first_and_draws_no_second_number(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        spy = Spy(store, fail="insert_payment", split=True)  # the first tick stops after making the invoice
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)
        first = svc.bill_due()
        assert (first.paid, list(first.errors)) == (0, [sub.id])

        clock.advance(minutes=6)  # the lease left behind expires
        assert svc.bill_due().paid == 1

        sub = svc.get_subscription(sub.id)
        invoice = svc.get_invoice(svc.get_payment(sub.last_payment_id or "").invoice_id or "")
        assert (spy.calls["next_invoice_sequence"], spy.calls["insert_invoice"]) == (1, 1)
        assert (sub.period, invoice.status) == (1, InvoiceStatus.PAID)

    def test_a_likely_new_invoice_that_exists_is_paid_under_its_stored_number(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """The batch with the payment stops at the invoice: nothing written, the tick pays the stored one."""
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)
        stored = svc._period_invoice(sub)  # made meanwhile, as pay_subscription would

        assert svc.bill_due().paid == 1

        sub = svc.get_subscription(sub.id)
        payment = svc.get_payment(sub.last_payment_id or "")
        invoice = svc.get_invoice(stored.id)
        assert (payment.invoice_id, payment.description) == (stored.id, stored.number)
        assert (invoice.number, invoice.status) == (stored.number, InvoiceStatus.PAID)
        assert charges(fake) == Counter({payment.id: 1})

    def test_a_first_attempt_refused_before_its_payment_keeps_the_period_invoice(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """A deleted method fails the attempt before any payment: the drafted invoice is stored all the same."""
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        card = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        sub = subscribe(svc, payment_method=card.id)
        svc.delete_payment_method("u1", card.id)
        assert svc.bill_due().failed == 1
        sub = svc.get_subscription(sub.id)
        svc.change_subscription_payment_method(sub.id, "pm_card_mastercard")
        clock.advance(days=1)

        assert svc.bill_due().paid == 1

        sub = svc.get_subscription(sub.id)
        invoice = svc.get_invoice(svc.get_payment(sub.last_payment_id or "").invoice_id or "")
        assert (invoice.status, spy.calls["next_invoice_sequence"]) == (InvoiceStatus.PAID, 1)
        assert invoice.number.endswith("-000001")

    def test_with_policies_the_invoice_is_stored_before_the_payment(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """A gate that passed must not run twice: the invoice is not batched with the payment then."""
        spy = Spy(store)
        limit = AmountLimit({"*": [Money.of("100.00", "USD")]})
        svc = PaymentService(storage=spy, providers=[fake], clock=clock, policies=[limit])  # type: ignore[arg-type]
        subscribe(svc)

        assert svc.bill_due().paid == 1

        assert (spy.calls["insert_invoice"], spy.calls["insert_payment"], spy.calls["write_batch"]) == (1, 1, 1)

    def test_a_second_insert_of_a_likely_new_invoice_returns_the_first(self, svc: PaymentService) -> None:
        """Should a "likely new" invoice exist after all, the unique id keeps it single."""
        sub = subscribe(svc)
        made = svc._period_invoice(sub, likely_new=True)

        again = svc._period_invoice(sub, likely_new=True)

        assert again == made == svc.get_invoice(made.id)


class TestKnownCustomer:
    """A record made with a saved method keeps the user's provider customer: charges do not look it up."""

    def test_the_customer_stored_at_creation_reaches_the_provider_without_a_lookup(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        card = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        customer = store.get_customer_ref("fake", "u1")
        sub = subscribe(svc, payment_method=card.id)
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("30.00", "USD"), count=3, provider="fake", payment_method=card.id
        )
        assert (customer is not None, sub.customer_ref, plan.customer_ref) == (True, customer, customer)
        sent: list[str | None] = []
        create = fake.create_payment

        def create_payment(request: Any) -> Any:
            sent.append(request.customer_ref)
            return create(request)

        fake.create_payment = create_payment  # type: ignore[method-assign]
        spy.calls.clear()

        assert svc.bill_due().paid == 2  # the subscription's first period and the first installment

        assert (spy.calls["get_customer_ref"], sent) == (0, [customer, customer])

    def test_without_a_stored_customer_a_charge_still_looks_it_up(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        """A customer made after the record (a method saved later) is still found and sent."""
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)  # a bare provider token: no customer yet
        assert sub.customer_ref is None
        svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        sent: list[str | None] = []
        create = fake.create_payment

        def create_payment(request: Any) -> Any:
            sent.append(request.customer_ref)
            return create(request)

        fake.create_payment = create_payment  # type: ignore[method-assign]

        assert svc.bill_due().paid == 1

        assert sent == [store.get_customer_ref("fake", "u1")] != [None]


class TestKnownMethod:
    """A record tells a provider token from a saved method's id: only a saved method is read at each charge."""

    def test_a_token_is_charged_unread_and_a_saved_method_is_checked(
        self, store: Storage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        card = svc.save_payment_method(user_id="u2", provider="fake", token="pm_card_mastercard")
        by_token = subscribe(svc)
        by_card = subscribe(svc, user_id="u2", payment_method=card.id)
        plan = svc.create_installment_plan(
            user_id="u1", total=Money.of("30.00", "USD"), count=3, provider="fake", payment_method="pm_card_visa"
        )
        assert (by_token.payment_method_saved, by_card.payment_method_saved, plan.payment_method_saved) == (
            False,
            True,
            False,
        )
        spy.calls.clear()

        assert svc.bill_due().paid == 3

        assert spy.calls["get_payment_method"] == 1  # the saved method's: it may have been deleted since

    def test_a_new_method_is_told_apart_too(self, svc: PaymentService) -> None:
        card = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        sub = subscribe(svc)

        assert svc.change_subscription_payment_method(sub.id, card.id).payment_method_saved is True
        assert svc.change_subscription_payment_method(sub.id, "pm_card_visa").payment_method_saved is False
        assert svc.change_subscription_payment_method(sub.id, None).payment_method_saved is None

    def test_a_record_stored_before_it_was_kept_still_reads_its_method(
        self, store: Storage, svc: PaymentService, fake: FakeProvider
    ) -> None:
        """Unknown (``None``): the charge reads the method, so a deleted one is still never charged."""
        card = svc.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        sub = subscribe(svc, payment_method=card.id)
        older = sub.model_copy(update={"payment_method_saved": None, "version": sub.version + 1})
        assert store.update_billing(older, expected_version=sub.version)
        svc.delete_payment_method("u1", card.id)

        assert svc.bill_due().failed == 1
        assert not fake.calls_to("create_payment")


class TestReactionsDone:
    """The writes that move the invoice and the record mark their reactions done: no separate write."""

    def test_a_paid_period_leaves_nothing_pending(self, store: Storage, fake: FakeProvider, clock: ManualClock) -> None:
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        subscribe(svc)

        assert svc.bill_due().paid == 1

        assert (spy.calls["complete_reactions"], spy.calls["complete_reaction"]) == (0, 0)
        assert store.list_pending_reactions(limit=10) == []
        assert svc.reconcile(older_than=timedelta(0)).reactions_applied == 0

    def test_a_declined_period_is_not_read_back(self, store: Storage, fake: FakeProvider, clock: ManualClock) -> None:
        """Its own write carried the dunning step; the reactor moves the record the tick holds."""
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)
        fake.fail_next("decline")

        assert svc.bill_due().failed == 1

        sub = svc.get_subscription(sub.id)
        assert (sub.status, sub.attempt) == (SubscriptionStatus.PAST_DUE, 1)
        assert (spy.calls["get_billing"], spy.calls["complete_reactions"]) == (1, 0)  # get_subscription's own
        assert store.list_pending_reactions(limit=10) == []


class TestOneBatch:
    """The payment's settling write, the invoice's and the record's go in one batch; a stale copy falls back."""

    @staticmethod
    def during_the_charge(fake: FakeProvider, meanwhile: Any) -> None:
        create = fake.create_payment

        def create_payment(request: Any) -> Any:
            result = create(request)
            meanwhile(request.payment_id)
            return result

        fake.create_payment = create_payment  # type: ignore[method-assign]

    def test_a_paid_period_is_one_batch(self, store: Storage, fake: FakeProvider, clock: ManualClock) -> None:
        spy = Spy(store)
        svc = PaymentService(storage=spy, providers=[fake], clock=clock)  # type: ignore[arg-type]
        sub = subscribe(svc)
        spy.calls.clear()

        assert svc.bill_due().paid == 1

        # One batch inserts the invoice and the payment, one settles the payment, the invoice and the record.
        assert (spy.calls["write_batch"], spy.calls["update_invoice"], spy.calls["update_billing"]) == (2, 0, 0)
        sub = svc.get_subscription(sub.id)
        invoice = svc.get_invoice(svc.get_payment(sub.last_payment_id or "").invoice_id or "")
        assert (sub.period, sub.lease_until, invoice.status) == (1, None, InvoiceStatus.PAID)
        trail = [e.action for e in svc.audit_trail(sub.id)]
        assert trail.count(AuditAction.BILLING_PERIOD_PAID) == 1
        assert [e.actor for e in svc.audit_trail(sub.id) if e.action == AuditAction.BILLING_PERIOD_PAID] == ["billing"]

    def test_a_record_changed_during_the_charge_is_moved_by_its_reactor(
        self, svc: PaymentService, store: Storage, fake: FakeProvider
    ) -> None:
        sub = subscribe(svc)

        def change_method(_: str) -> None:
            svc.change_subscription_payment_method(sub.id, "pm_card_mastercard")

        self.during_the_charge(fake, change_method)

        assert svc.bill_due().paid == 1

        sub = svc.get_subscription(sub.id)
        invoice = svc.get_invoice(svc.get_payment(sub.last_payment_id or "").invoice_id or "")
        assert (sub.period, sub.payment_method, sub.lease_until) == (1, "pm_card_mastercard", None)
        assert invoice.status == InvoiceStatus.PAID
        assert store.list_pending_reactions(limit=10) == []
        assert charges(fake) == Counter({sub.last_payment_id: 1})

    def test_a_payment_written_meanwhile_makes_the_batch_stop_and_start_again(
        self, svc: PaymentService, store: Storage, fake: FakeProvider
    ) -> None:
        """The payment's compare-and-set loses: neither the invoice nor the record is written with it."""
        sub = subscribe(svc)

        def touch(payment_id: str) -> None:
            payment = store.get_payment(payment_id)
            assert payment is not None
            moved = payment.model_copy(update={"version": payment.version + 1})
            assert store.update_payment(moved, expected_version=payment.version)

        self.during_the_charge(fake, touch)

        assert svc.bill_due().paid == 1

        sub = svc.get_subscription(sub.id)
        payment = svc.get_payment(sub.last_payment_id or "")
        invoice = svc.get_invoice(payment.invoice_id or "")
        assert (payment.status, sub.period, invoice.status) == (PaymentStatus.SUCCEEDED, 1, InvoiceStatus.PAID)
        assert [e.action for e in svc.audit_trail(sub.id)].count(AuditAction.BILLING_PERIOD_PAID) == 1
        assert store.list_pending_reactions(limit=10) == []
        assert charges(fake) == Counter({payment.id: 1})
