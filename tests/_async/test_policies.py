# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Policies at their boundaries, on memory and on the MongoDB-wire server, for both APIs.

Amount limits per role and currency (KWD with 3 decimals), velocity windows on
the test clock, step-up with real TOTP codes (pyotp), two-person refund
approvals, and concurrent calls (tasks here, threads in the generated sync
twin) that together would pass a velocity limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pyotp
import pytest

from paykit import (
    Actor,
    Allow,
    AmountLimit,
    AsyncPaymentService,
    AuditAction,
    Decision,
    Deny,
    InvalidStateError,
    Money,
    PolicyContext,
    PolicyDeniedError,
    RefundApproval,
    RefundStatus,
    StepUp,
    StepUpProof,
    StepUpRequiredError,
    TotpVerifier,
    VelocityLimit,
)
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.testing import AsyncFakeProvider, ManualClock
from tests import _concurrency
from tests._storages import mongo_server_fixture, storage_params

pytestmark = pytest.mark.anyio

SECRET = pyotp.random_base32()
CLERK = Actor("clerk", {"support"})
BOSS = Actor("boss", {"support", "refund_approver"})
BOSS2 = Actor("boss2", {"refund_approver"})

MakeService = Callable[..., AsyncPaymentService]


@pytest.fixture(params=storage_params(AsyncStorage))
def store(request: pytest.FixtureRequest) -> AsyncStorage:
    if request.param == "memory":
        return AsyncMemoryStorage()
    return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "real_mongo_storage"))  # type: ignore[no-any-return]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
async def make(store: AsyncStorage, fake: AsyncFakeProvider, clock: ManualClock) -> AsyncIterator[MakeService]:
    made: list[AsyncPaymentService] = []

    def build(*policies: Any, verifiers: Sequence[Any] = ()) -> AsyncPaymentService:
        made.append(
            AsyncPaymentService(
                storage=store, providers=[fake], clock=clock, policies=policies, step_up_verifiers=verifiers
            )
        )
        return made[-1]

    yield build
    for svc in made:
        await svc.aclose()


def kwd(value: str) -> Money:
    return Money.of(value, "KWD")


async def paid(service: AsyncPaymentService, amount: Money, user: str = "u1") -> str:
    payment = await service.initialize_payment(user_id=user, amount=amount, provider="fake")
    await service.confirm_payment(payment.id, payment_method="pm_card_visa")
    return payment.id


async def actions(service: AsyncPaymentService, subject_id: str) -> list[AuditAction]:
    return [e.action for e in await service.audit_trail(subject_id)]


class Recorder:
    """A policy written as a plain class: records what it is asked, refuses the operations named."""

    name = "Recorder"

    def __init__(self, *refuse: str) -> None:
        self.refuse = set(refuse)
        self.seen: list[tuple[str, str, str | None, str | None]] = []

    def evaluate(self, context: PolicyContext) -> Decision:
        amount = str(context.amount) if context.amount is not None else None
        self.seen.append((context.operation, context.actor.id, amount, context.payment_id))
        if context.operation in self.refuse:
            return Deny(f"no {context.operation}")
        return Allow()


class TestEveryOperationIsAsked:
    """Payments, confirmations, captures, refunds, invoice payments and saved-method changes pass the gate."""

    async def test_each_operation_asks_with_its_actor_and_amount(self, make: MakeService) -> None:
        recorder = Recorder()
        service = make(recorder)
        usd = Money.of("10.00", "USD")

        payment = await service.initialize_payment(
            user_id="u1", amount=usd, provider="fake", capture_method="manual", actor=CLERK
        )
        await service.confirm_payment(payment.id, payment_method="pm_card_visa", actor=CLERK)
        await service.capture_payment(payment.id, amount=Money.of("8.00", "USD"), actor=BOSS)
        await service.refund_payment(payment.id, actor=BOSS)
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", actor="x")
        await service.delete_payment_method("u1", method.id, actor="x")
        invoice = await service.create_invoice(
            user_id="u1", currency="USD", line_items=[{"description": "a", "quantity": 1, "unit_amount": usd}]
        )
        await service.send_invoice(invoice.id)
        await service.pay_invoice(invoice.id, provider="fake", actor=CLERK)

        assert [
            ("initialize_payment", "clerk", "10.00 USD", None),
            ("confirm_payment", "clerk", "10.00 USD", payment.id),
            ("capture_payment", "boss", "8.00 USD", payment.id),
            ("refund_payment", "boss", "8.00 USD", payment.id),
            ("save_payment_method", "x", None, None),
            ("delete_payment_method", "x", None, None),
            ("pay_invoice", "clerk", "10.00 USD", None),
        ] == recorder.seen

    async def test_idempotent_replays_are_not_asked_again(self, make: MakeService) -> None:
        recorder = Recorder()
        service = make(recorder)

        first = await service.initialize_payment(
            user_id="u1", amount=kwd("1.000"), provider="fake", idempotency_key="k"
        )
        again = await service.initialize_payment(
            user_id="u1", amount=kwd("1.000"), provider="fake", idempotency_key="k"
        )

        assert first.id == again.id
        assert 1 == len(recorder.seen)

    @pytest.mark.parametrize(
        "operation",
        ["initialize_payment", "confirm_payment", "capture_payment", "save_payment_method", "delete_payment_method"],
    )
    async def test_a_refusal_never_reaches_the_provider(
        self, make: MakeService, fake: AsyncFakeProvider, operation: str
    ) -> None:
        service = make(Recorder(operation))
        provider_call = {
            "initialize_payment": "create_payment",
            "confirm_payment": "confirm_payment",
            "capture_payment": "capture_payment",
            "save_payment_method": "save_payment_method",
            "delete_payment_method": "delete_payment_method",
        }[operation]

        call = await _setup_for(service, operation)

        with pytest.raises(PolicyDeniedError, match=f"Recorder: no {operation}"):
            await call()

        assert [] == fake.calls_to(provider_call)


async def _setup_for(service: AsyncPaymentService, operation: str) -> Callable[[], Awaitable[object]]:
    """Prepare what ``operation`` needs (each step before it passes the gate); return the call itself."""
    if operation == "save_payment_method":
        return lambda: service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
    if operation == "delete_payment_method":
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        return lambda: service.delete_payment_method("u1", method.id)
    if operation == "initialize_payment":
        return lambda: service.initialize_payment(user_id="u1", amount=kwd("1.000"), provider="fake")
    payment = await service.initialize_payment(
        user_id="u1", amount=kwd("1.000"), provider="fake", capture_method="manual"
    )
    if operation == "confirm_payment":
        return lambda: service.confirm_payment(payment.id, payment_method="pm_card_visa")
    await service.confirm_payment(payment.id, payment_method="pm_card_visa")
    return lambda: service.capture_payment(payment.id)


class TestAmountLimit:
    """Per role, per operation, per currency; the limit itself is allowed, one minor unit more is not."""

    async def test_kwd_refund_limit_at_its_exact_boundary(self, make: MakeService, fake: AsyncFakeProvider) -> None:
        limit = AmountLimit(
            {"support": [kwd("30.000"), Money.of("100.00", "USD")], "manager": kwd("500.000")},
            operations={"refund_payment"},
        )
        service = make(limit)
        payment_id = await paid(service, kwd("100.000"))

        with pytest.raises(PolicyDeniedError, match=r"30\.000 KWD") as denied:
            await service.refund_payment(payment_id, amount=kwd("30.001"), actor=CLERK)
        refund = await service.refund_payment(payment_id, amount=kwd("30.000"), actor=CLERK)
        manager = await service.refund_payment(payment_id, amount=kwd("70.000"), actor=Actor("m", {"manager"}))

        assert denied.value.payment_id == payment_id
        assert [RefundStatus.SUCCEEDED, RefundStatus.SUCCEEDED] == [refund.status, manager.status]
        assert 2 == len(fake.calls_to("refund_payment"))
        trail = await service.audit_trail(payment_id)
        refusal = next(e for e in trail if e.action == AuditAction.POLICY_DENIED)
        assert ("clerk", ["support"], "30.001 KWD") == (
            refusal.actor,
            refusal.payload["roles"],
            refusal.payload["amount"],
        )

    async def test_denied_refund_writes_nothing_but_its_audit_entry(
        self, make: MakeService, fake: AsyncFakeProvider
    ) -> None:
        service = make(AmountLimit({"support": kwd("1.000")}, operations={"refund_payment"}))
        payment_id = await paid(service, kwd("5.000"))
        before = await service.get_payment(payment_id)

        with pytest.raises(PolicyDeniedError):
            await service.refund_payment(payment_id, amount=kwd("1.001"), actor=CLERK, idempotency_key="r-1")

        after = await service.get_payment(payment_id)
        assert (before.version, before.pending_refunds) == (after.version, after.pending_refunds)
        assert [] == await service.list_refunds(payment_id)
        assert [] == fake.calls_to("refund_payment")

    async def test_unlisted_currency_and_role_are_refused(self, make: MakeService) -> None:
        service = make(AmountLimit({"*": Money.of("100.00", "USD")}, operations={"initialize_payment"}))

        ok = await service.initialize_payment(
            user_id="u1", amount=Money.of("100.00", "USD"), provider="fake", actor="anyone"
        )
        with pytest.raises(PolicyDeniedError, match="no initialize_payment limit in KWD"):
            await service.initialize_payment(user_id="u1", amount=kwd("0.001"), provider="fake", actor="anyone")
        with pytest.raises(PolicyDeniedError):
            await service.initialize_payment(
                user_id="u1", amount=Money.of("100.01", "USD"), provider="fake", idempotency_key="k1"
            )

        assert ok.amount == Money.of("100.00", "USD")
        assert 1 == len((await service.list_payments(user_id="u1")).items)


class TestVelocityLimit:
    """Count and amount per fixed window, per paying user or per actor, on the service clock."""

    async def test_count_per_user_resets_in_the_next_window(self, make: MakeService, clock: ManualClock) -> None:
        service = make(VelocityLimit(timedelta(hours=1), max_count=2, per="user"))
        usd = Money.of("1.00", "USD")

        for _ in range(2):
            await service.initialize_payment(user_id="u1", amount=usd, provider="fake")
        with pytest.raises(PolicyDeniedError, match="at most 2 operations"):
            await service.initialize_payment(user_id="u1", amount=usd, provider="fake")
        other_user = await service.initialize_payment(user_id="u2", amount=usd, provider="fake")
        clock.advance(hours=1)
        next_window = await service.initialize_payment(user_id="u1", amount=usd, provider="fake")

        assert other_user.user_id == "u2"
        assert next_window.user_id == "u1"
        assert 3 == len((await service.list_payments(user_id="u1")).items)

    async def test_amount_per_actor_in_kwd(self, make: MakeService, clock: ManualClock) -> None:
        limit = VelocityLimit(timedelta(days=1), max_amount=kwd("15.000"), per="actor", operations={"refund_payment"})
        service = make(limit)
        payment_id = await paid(service, kwd("50.000"))

        await service.refund_payment(payment_id, amount=kwd("10.000"), actor=CLERK)
        with pytest.raises(PolicyDeniedError, match=r"15\.000 KWD"):
            await service.refund_payment(payment_id, amount=kwd("5.001"), actor=CLERK)
        exact = await service.refund_payment(payment_id, amount=kwd("5.000"), actor=CLERK)
        by_other = await service.refund_payment(payment_id, amount=kwd("15.000"), actor=BOSS)
        clock.advance(days=1)
        tomorrow = await service.refund_payment(payment_id, amount=kwd("0.001"), actor=CLERK)

        assert [RefundStatus.SUCCEEDED] * 3 == [exact.status, by_other.status, tomorrow.status]

    async def test_usage_is_given_back_when_the_refund_is_refused_later(self, make: MakeService) -> None:
        service = make(VelocityLimit(timedelta(hours=1), max_count=1, per="actor", operations={"refund_payment"}))
        payment_id = await paid(service, kwd("1.000"))

        with pytest.raises(InvalidStateError):
            await service.refund_payment(payment_id, amount=kwd("2.000"), actor=CLERK)
        refund = await service.refund_payment(payment_id, amount=kwd("1.000"), actor=CLERK)

        assert RefundStatus.SUCCEEDED == refund.status

    async def test_concurrent_calls_never_pass_the_limit(self, make: MakeService) -> None:
        service = make(
            VelocityLimit(timedelta(hours=1), max_count=3, max_amount=kwd("4.000"), per="user"),
        )

        async def attempt() -> str:
            try:
                await service.initialize_payment(user_id="u1", amount=kwd("1.000"), provider="fake")
            except PolicyDeniedError:
                return "denied"
            return "ok"

        outcomes = await _concurrency.run_together_async(12, attempt)

        assert (3, 9) == (outcomes.count("ok"), outcomes.count("denied"))
        assert 3 == len((await service.list_payments(user_id="u1")).items)

    async def test_concurrent_amounts_never_pass_the_limit(self, make: MakeService) -> None:
        service = make(VelocityLimit(timedelta(hours=1), max_amount=kwd("5.000"), per="user"))

        async def attempt() -> Money | None:
            try:
                return (await service.initialize_payment(user_id="u1", amount=kwd("2.000"), provider="fake")).amount
            except PolicyDeniedError:
                return None

        outcomes = await _concurrency.run_together_async(10, attempt)

        assert 2 == len([o for o in outcomes if o is not None])


class TestStepUp:
    """A proof is asked for above a threshold; it must be right, fresh, and used once."""

    @pytest.fixture
    def service(self, make: MakeService) -> AsyncPaymentService:
        return make(
            StepUp(above=kwd("20.000"), operations={"refund_payment"}),
            verifiers=[TotpVerifier({"clerk": SECRET, "boss": SECRET})],
        )

    async def test_missing_proof_says_what_is_needed(self, service: AsyncPaymentService) -> None:
        payment_id = await paid(service, kwd("50.000"))

        small = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=CLERK)
        with pytest.raises(StepUpRequiredError) as needed:
            await service.refund_payment(payment_id, amount=kwd("20.001"), actor=CLERK)

        assert RefundStatus.SUCCEEDED == small.status
        assert ("totp",) == needed.value.methods
        assert AuditAction.POLICY_STEP_UP_REQUIRED in await actions(service, payment_id)
        assert kwd("30.000") == (await service.get_payment(payment_id)).amount_refundable

    async def test_valid_code_passes_once_and_replay_is_refused(
        self, service: AsyncPaymentService, clock: ManualClock, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service, kwd("50.000"))
        code = pyotp.TOTP(SECRET).at(clock())

        refund = await service.refund_payment(
            payment_id, amount=kwd("25.000"), actor=CLERK, step_up=StepUpProof("totp", code)
        )
        with pytest.raises(PolicyDeniedError, match="used already"):
            await service.refund_payment(
                payment_id, amount=kwd("25.000"), actor=CLERK, step_up=StepUpProof("totp", code)
            )
        by_other_actor = await service.refund_payment(
            payment_id, amount=kwd("25.000"), actor=BOSS, step_up=StepUpProof("totp", code)
        )

        assert [RefundStatus.SUCCEEDED] * 2 == [refund.status, by_other_actor.status]
        assert 2 == len(fake.calls_to("refund_payment"))
        trail = await service.audit_trail(payment_id)
        assert AuditAction.POLICY_STEPPED_UP in [e.action for e in trail]
        assert all(code not in repr(e.payload) for e in trail)

    async def test_wrong_and_expired_codes_are_refused(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        payment_id = await paid(service, kwd("50.000"))
        totp = pyotp.TOTP(SECRET)
        expired = totp.at(clock() - timedelta(minutes=2))
        drifted = totp.at(clock() - timedelta(seconds=30))
        wrong = "000000" if totp.at(clock()) != "000000" else "111111"

        with pytest.raises(PolicyDeniedError, match="wrong or expired"):
            await service.refund_payment(
                payment_id, amount=kwd("21.000"), actor=CLERK, step_up=StepUpProof("totp", wrong)
            )
        with pytest.raises(PolicyDeniedError, match="wrong or expired"):
            await service.refund_payment(
                payment_id, amount=kwd("21.000"), actor=CLERK, step_up=StepUpProof("totp", expired)
            )
        one_step_late = await service.refund_payment(
            payment_id, amount=kwd("21.000"), actor=CLERK, step_up=StepUpProof("totp", drifted)
        )
        with pytest.raises(PolicyDeniedError, match="wrong or expired"):
            await service.refund_payment(
                payment_id, amount=kwd("21.000"), actor="nobody", step_up=StepUpProof("totp", drifted)
            )

        assert RefundStatus.SUCCEEDED == one_step_late.status
        assert 3 == (await actions(service, payment_id)).count(AuditAction.POLICY_DENIED)


class TestRefundApproval:
    """Above the threshold a refund waits, holding its amount, for another actor with the approving role."""

    @pytest.fixture
    def service(self, make: MakeService) -> AsyncPaymentService:
        return make(RefundApproval(kwd("10.000"), approver_role="refund_approver"))

    async def test_held_refund_reserves_its_amount_and_is_not_sent(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service, kwd("30.000"))

        small = await service.refund_payment(payment_id, amount=kwd("10.000"), actor=CLERK)
        held = await service.refund_payment(payment_id, amount=kwd("10.001"), actor=CLERK)

        assert RefundStatus.SUCCEEDED == small.status
        assert (RefundStatus.AWAITING_APPROVAL, "clerk") == (held.status, held.requested_by)
        assert kwd("9.999") == (await service.get_payment(payment_id)).amount_refundable
        assert 1 == len(fake.calls_to("refund_payment"))
        assert [held.id] == [r.id for r in await service.list_refunds_awaiting_approval()]
        with pytest.raises(InvalidStateError):
            await service.refund_payment(payment_id, amount=kwd("10.000"), actor=CLERK)

    async def test_self_approval_and_missing_role_are_refused(self, service: AsyncPaymentService) -> None:
        payment_id = await paid(service, kwd("30.000"))
        held = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=BOSS)

        with pytest.raises(PolicyDeniedError, match="its requester"):
            await service.approve_refund(held.id, actor=BOSS)
        with pytest.raises(PolicyDeniedError, match="refund_approver"):
            await service.approve_refund(held.id, actor=CLERK)

        assert RefundStatus.AWAITING_APPROVAL == (await service.get_refund(held.id)).status
        assert 2 == (await actions(service, payment_id)).count(AuditAction.POLICY_DENIED)

    async def test_approval_by_the_right_role_sends_once(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service, kwd("30.000"))
        held = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=CLERK)

        approved = await service.approve_refund(held.id, actor=BOSS)
        again = await service.approve_refund(held.id, actor=BOSS2)

        assert (RefundStatus.SUCCEEDED, "boss") == (approved.status, approved.decided_by)
        assert again.id == approved.id
        assert 1 == len(fake.calls_to("refund_payment"))
        assert kwd("20.000") == (await service.get_payment(payment_id)).amount_refunded
        trail = await service.audit_trail(payment_id)
        approval = next(e for e in trail if e.action == AuditAction.REFUND_APPROVED)
        assert "boss" == approval.actor
        assert {"clerk"} == {e.actor for e in trail if e.action == AuditAction.REFUND_APPROVAL_REQUESTED}
        assert AuditAction.REFUND_APPROVAL_REQUESTED in [e.action for e in trail]

    async def test_approvers_can_be_asked_for_a_second_factor(
        self, make: MakeService, clock: ManualClock, fake: AsyncFakeProvider
    ) -> None:
        service = make(
            RefundApproval(kwd("10.000")),
            StepUp(operations={"approve_refund"}),
            verifiers=[TotpVerifier({"boss": SECRET})],
        )
        payment_id = await paid(service, kwd("30.000"))
        held = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=CLERK)

        with pytest.raises(StepUpRequiredError):
            await service.approve_refund(held.id, actor=BOSS)
        code = pyotp.TOTP(SECRET).at(clock())
        approved = await service.approve_refund(held.id, actor=BOSS, step_up=StepUpProof("totp", code))

        assert RefundStatus.SUCCEEDED == approved.status
        assert 1 == len(fake.calls_to("refund_payment"))

    async def test_concurrent_approvals_send_once(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        payment_id = await paid(service, kwd("30.000"))
        held = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=CLERK)

        results = await _concurrency.run_together_async(6, lambda: service.approve_refund(held.id, actor=BOSS))

        assert 1 == len(fake.calls_to("refund_payment"))
        assert {held.id} == {r.id for r in results}
        assert kwd("20.000") == (await service.get_payment(payment_id)).amount_refunded

    async def test_rejection_releases_the_hold(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        payment_id = await paid(service, kwd("30.000"))
        held = await service.refund_payment(payment_id, amount=kwd("20.000"), actor=CLERK)

        with pytest.raises(PolicyDeniedError):
            await service.reject_refund(held.id, actor=Actor("stranger"))
        rejected = await service.reject_refund(held.id, actor=BOSS, reason="not our fault")

        assert (RefundStatus.CANCELED, "boss") == (rejected.status, rejected.decided_by)
        assert kwd("30.000") == (await service.get_payment(payment_id)).amount_refundable
        assert [] == fake.calls_to("refund_payment")
        with pytest.raises(InvalidStateError):
            await service.approve_refund(held.id, actor=BOSS)
        assert AuditAction.REFUND_REJECTED in await actions(service, payment_id)

    async def test_expiry_releases_the_hold_on_read_and_in_reconcile(
        self, service: AsyncPaymentService, clock: ManualClock, fake: AsyncFakeProvider
    ) -> None:
        payment_id = await paid(service, kwd("30.000"))
        first = await service.refund_payment(payment_id, amount=kwd("11.000"), actor=CLERK)
        second = await service.refund_payment(payment_id, amount=kwd("12.000"), actor=CLERK)

        clock.advance(hours=71, minutes=59)
        assert RefundStatus.AWAITING_APPROVAL == (await service.get_refund(first.id)).status
        clock.advance(minutes=1)
        expired = await service.get_refund(first.id)
        report = await service.reconcile()

        assert RefundStatus.CANCELED == expired.status
        assert RefundStatus.CANCELED == (await service.get_refund(second.id)).status
        assert report.updated >= 1
        assert kwd("30.000") == (await service.get_payment(payment_id)).amount_refundable
        assert [] == await service.list_refunds_awaiting_approval()
        with pytest.raises(InvalidStateError):
            await service.approve_refund(second.id, actor=BOSS)
        assert [] == fake.calls_to("refund_payment")
        assert 2 == (await actions(service, payment_id)).count(AuditAction.REFUND_APPROVAL_EXPIRED)
