"""The pure policy rules (paykit._decisions.policy) and the TOTP verifier, without a service."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from paykit import (
    Actor,
    Allow,
    AmountLimit,
    ConfigurationError,
    Deny,
    InvalidRequestError,
    MissingExtraError,
    Money,
    PaymentService,
    PolicyContext,
    RefundApproval,
    RequireApproval,
    RequireStepUp,
    StepUp,
    StepUpProof,
    TotpVerifier,
    VelocityLimit,
)
from paykit._decisions import policy as pol
from paykit.storage import MemoryStorage

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ctx(operation: str = "refund_payment", amount: Money | None = None, actor: Actor | None = None) -> PolicyContext:
    return PolicyContext(
        operation=operation,
        actor=actor or Actor("a"),
        user_id="u1",
        amount=amount,
        provider="fake",
        payment_id="pay_1",
        at=NOW,
    )


class TestActor:
    def test_plain_string_is_an_actor_without_roles(self) -> None:
        assert Actor("bob") == pol.as_actor("bob", "system")
        assert Actor("system") == pol.as_actor(None, "system")
        assert frozenset() == pol.as_actor("bob", "system").roles

    @pytest.mark.parametrize("bad", ["", "  "])
    def test_empty_id_is_refused(self, bad: str) -> None:
        with pytest.raises(InvalidRequestError):
            Actor(bad)

    def test_roles_must_not_be_one_string(self) -> None:
        with pytest.raises(InvalidRequestError):
            Actor("a", "support")

    def test_frozen(self) -> None:
        actor = Actor("a", ["x"])
        with pytest.raises(AttributeError):
            actor.id = "b"  # type: ignore[misc]


class TestWindow:
    def test_fixed_windows_from_the_epoch(self) -> None:
        start, end = pol.window(datetime(2026, 1, 1, 12, 59, 59, 999999, tzinfo=UTC), timedelta(hours=1))

        assert (datetime(2026, 1, 1, 12, tzinfo=UTC), datetime(2026, 1, 1, 13, tzinfo=UTC)) == (start, end)
        assert datetime(2026, 1, 1, 13, tzinfo=UTC) == pol.window(end, timedelta(hours=1))[0]


class TestBuiltIns:
    def test_amount_limit_takes_the_highest_role_limit(self) -> None:
        limit = AmountLimit({"a": Money.of("1.000", "KWD"), "b": Money.of("2.000", "KWD")})
        both = Actor("x", {"a", "b"})

        assert Allow() == limit.evaluate(ctx(amount=Money.of("2.000", "KWD"), actor=both))
        assert isinstance(limit.evaluate(ctx(amount=Money.of("2.001", "KWD"), actor=both)), Deny)
        assert Allow() == limit.evaluate(ctx("save_payment_method", None, both))

    def test_velocity_usage_names_subject_window_and_currency(self) -> None:
        limit = VelocityLimit(timedelta(hours=1), max_count=2, max_amount=Money.of("5.000", "KWD"), per="actor")
        decision = limit.evaluate(ctx(amount=Money.of("1.500", "KWD"), actor=Actor("clerk")))

        assert isinstance(decision, Allow)
        count, amount = decision.usage
        assert (1, 2, None) == (count.count, count.max_count, count.max_amount_minor)
        assert (1500, 5000) == (amount.amount_minor, amount.max_amount_minor)
        assert "actor:clerk" in amount.key
        assert amount.key.endswith("|KWD")
        assert datetime(2026, 1, 1, 13, tzinfo=UTC) == amount.until

    def test_velocity_ignores_other_roles_and_operations(self) -> None:
        limit = VelocityLimit(timedelta(hours=1), max_count=1, roles={"support"}, operations={"refund_payment"})

        assert Allow() == limit.evaluate(ctx(actor=Actor("boss", {"manager"})))
        assert Allow() == limit.evaluate(ctx("capture_payment", actor=Actor("c", {"support"})))

    def test_step_up_threshold_roles_and_unlisted_currency(self) -> None:
        rule = StepUp(above=Money.of("20.000", "KWD"), roles={"support"})
        clerk = Actor("c", {"support"})

        assert Allow() == rule.evaluate(ctx(amount=Money.of("20.000", "KWD"), actor=clerk))
        assert isinstance(rule.evaluate(ctx(amount=Money.of("20.001", "KWD"), actor=clerk)), RequireStepUp)
        assert isinstance(rule.evaluate(ctx(amount=Money.of("0.01", "USD"), actor=clerk)), RequireStepUp)
        assert Allow() == rule.evaluate(ctx(amount=Money.of("99.000", "KWD"), actor=Actor("m", {"manager"})))

    def test_refund_approval_only_for_refunds(self) -> None:
        rule = RefundApproval(Money.of("10.000", "KWD"))

        assert isinstance(rule.evaluate(ctx(amount=Money.of("10.001", "KWD"))), RequireApproval)
        assert Allow() == rule.evaluate(ctx(amount=Money.of("10.000", "KWD")))
        assert Allow() == rule.evaluate(ctx("capture_payment", Money.of("99.000", "KWD")))

    def test_approval_asked_for_another_operation_is_a_denial(self) -> None:
        class Odd:
            def evaluate(self, context: PolicyContext) -> RequireApproval:
                return RequireApproval("why not", "boss")

        verdict = pol.evaluate([Odd()], ctx("capture_payment", Money.of("1.000", "KWD")))

        assert verdict.approval is None
        assert "Odd" == verdict.denied[0][0]

    def test_a_policy_answering_no_decision_is_a_configuration_error(self) -> None:
        class Broken:
            def evaluate(self, context: PolicyContext) -> object:
                return True

        with pytest.raises(ConfigurationError):
            pol.evaluate([Broken()], ctx())

    @pytest.mark.parametrize(
        "make",
        [
            lambda: AmountLimit({"a": [Money.of("1", "USD"), Money.of("2", "USD")]}),
            lambda: AmountLimit({"a": Money.of("1", "USD")}, operations={"refund"}),
            lambda: VelocityLimit(timedelta(0), max_count=1),
            lambda: VelocityLimit(timedelta(days=32), max_count=1),
            lambda: VelocityLimit(timedelta(hours=1)),
            lambda: StepUp(methods=()),
            lambda: RefundApproval(Money.of("1", "USD"), expires_after=timedelta(0)),
        ],
    )
    def test_bad_configuration_is_refused(self, make: object) -> None:
        with pytest.raises(ConfigurationError):
            make()  # type: ignore[operator]

    def test_service_refuses_two_verifiers_of_one_method(self) -> None:
        totp = TotpVerifier({})
        with pytest.raises(ConfigurationError):
            PaymentService(storage=MemoryStorage(), step_up_verifiers=[totp, totp])
        with pytest.raises(ConfigurationError):
            PaymentService(storage=MemoryStorage(), policies=[object()])  # type: ignore[list-item]


class TestTotpVerifier:
    SECRET = pyotp.random_base32()

    def test_accepts_the_current_and_adjacent_steps_only(self) -> None:
        verifier = TotpVerifier({"a": self.SECRET})
        totp = pyotp.TOTP(self.SECRET)
        actor = Actor("a")

        now_id = verifier.verify(actor, StepUpProof("totp", totp.at(NOW)), NOW)
        late_id = verifier.verify(actor, StepUpProof("totp", totp.at(NOW - timedelta(seconds=30))), NOW)

        assert str(totp.timecode(NOW)) == now_id
        assert late_id is not None
        assert late_id != now_id
        assert verifier.verify(actor, StepUpProof("totp", totp.at(NOW - timedelta(seconds=90))), NOW) is None
        assert verifier.verify(Actor("b"), StepUpProof("totp", totp.at(NOW)), NOW) is None
        assert verifier.verify(actor, StepUpProof("totp", "12345"), NOW) is None

    def test_code_never_in_repr(self) -> None:
        assert "654321" not in repr(StepUpProof("totp", "654321"))
        assert self.SECRET not in repr(TotpVerifier({"a": self.SECRET}))

    def test_missing_extra_names_it(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(sys.modules, "pyotp", None)

        with pytest.raises(MissingExtraError, match=r"paykit-payments\[policy\]"):
            TotpVerifier({})
