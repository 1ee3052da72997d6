"""The webhook and lifecycle hot path: its shortcuts give exactly what the plain rules give."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from paykit import (
    Actor,
    AuditAction,
    AuditEntry,
    Money,
    Notification,
    NotificationKind,
    Payment,
    PaymentService,
    PaymentStatus,
)
from paykit._decisions import effects as fx
from paykit._errors import InvalidRequestError, WebhookVerificationError
from paykit._models import EventKind, WebhookEvent, copy_with, trusted
from paykit._money import CURRENCY_EXPONENTS, MAX_MINOR_UNITS
from paykit._redact import _PAN_LIKE, REDACTED, redact
from paykit._webhook_answers import json_answer
from paykit.providers import _stripe_wire as stripe_wire
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, capture_logs

from ._shared import shared_path

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PAN = "4242 4242 4242 4242"


def _reference_mask(text: str) -> str:
    """What redaction did to a string before its byte-level shortcuts."""
    if len(text) - len(text.translate(str.maketrans("", "", "0123456789"))) < 12:
        return text
    return _PAN_LIKE.sub(REDACTED, text)


class TestRedactionShortcuts:
    """Strings and flat dicts take fast paths that must mask exactly what the regex masks."""

    @given(st.text(alphabet="0123456789 -x.\u0663", max_size=48))
    def test_strings_are_masked_as_by_the_regex(self, text: str) -> None:
        assert _reference_mask(text) == redact(text)

    @given(st.text(max_size=40))
    def test_any_text_is_masked_as_by_the_regex(self, text: str) -> None:
        assert _reference_mask(text) == redact(text)

    @pytest.mark.parametrize(
        "text",
        [PAN, "4242-4242-4242-4242", "card 4242424242424242.", "1 2 3 4 5 6 7 8 9 0 1 2", "x" * 11 + "4" * 12],
    )
    def test_card_numbers_are_masked(self, text: str) -> None:
        assert "4242" not in redact(text).replace("x", "")
        assert REDACTED in redact(text)

    @pytest.mark.parametrize("text", ["pay_9e7a4dcb5050fee1c73d5193", "pi_fake_000001", "12345678901", "12.50 USD"])
    def test_ids_and_amounts_stay(self, text: str) -> None:
        assert text == redact(text)

    def test_flat_and_nested_dicts(self) -> None:
        value: dict[Any, Any] = {
            "client_secret": "pi_1_secret_x",
            "note": f"card {PAN}",
            "n": 3,
            "ok": None,
            7: "seven",
            "nested": {"api_key": "sk_live_x", "items": [PAN, {"cvc": "123"}]},
        }

        assert {
            "client_secret": REDACTED,
            "note": f"card {REDACTED}",
            "n": 3,
            "ok": None,
            "7": "seven",
            "nested": {"api_key": REDACTED, "items": [REDACTED, {"cvc": REDACTED}]},
        } == redact(value)


class TestMoneyString:
    """Money formats with integer arithmetic: the same digits Decimal formatting gives."""

    @given(st.integers(-MAX_MINOR_UNITS, MAX_MINOR_UNITS), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
    def test_same_as_decimal(self, minor: int, currency: str) -> None:
        money = Money(minor, currency)
        exponent = CURRENCY_EXPONENTS[currency]

        assert f"{Decimal(minor).scaleb(-exponent):.{exponent}f}" == money.to_decimal_string()

    def test_lower_case_codes_are_still_normalized(self) -> None:
        assert "USD" == Money(1, "usd").currency
        assert "0.01 USD" == str(Money(1, " usd "))


def _payment(status: PaymentStatus, **extra: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": "pay_1",
        "user_id": "u1",
        "provider": "fake",
        "amount": Money.of("12.50", "USD"),
        "status": status,
        "provider_ref": "pi_1",
        "version": 1,
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }
    return Payment(**fields)


class TestPaymentEffects:
    """One redaction per change gives the entries payment_audit and payment_notifications give."""

    @pytest.mark.parametrize(
        ("before", "after", "action", "payload"),
        [
            (PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, AuditAction.PAYMENT_STATUS_UPDATE, {"event_id": "evt_1"}),
            (PaymentStatus.PENDING, PaymentStatus.FAILED, AuditAction.PAYMENT_STATUS_UPDATE, None),
            (PaymentStatus.PENDING, PaymentStatus.PROCESSING, AuditAction.PAYMENT_CONFIRM, {"note": f"x {PAN}"}),
            (PaymentStatus.SUCCEEDED, PaymentStatus.SUCCEEDED, AuditAction.PAYMENT_EVENT_IGNORED, {"amount": "1"}),
            (PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, None, None),
            (PaymentStatus.PENDING, PaymentStatus.PENDING, None, None),
            (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED, AuditAction.PAYMENT_REFUND, {"secret": "s"}),
        ],
    )
    def test_same_entries_as_the_separate_builders(
        self,
        before: PaymentStatus,
        after: PaymentStatus,
        action: AuditAction | None,
        payload: dict[str, Any] | None,
    ) -> None:
        old = _payment(before)
        new = _payment(after, version=2, failure_code=f"declined {PAN}", provider_ref=f"pi {PAN}")
        expected: list[Any] = []
        if action is not None:
            expected.append(fx.payment_audit(old, new, action, actor="tester", at=NOW, payload=payload))
        expected.extend(fx.payment_notifications(old, new, at=NOW))

        made = fx.payment_effects(old, new, action, actor="tester", at=NOW, payload=payload)

        assert expected == made
        assert all(PAN not in repr(entry.payload) for entry in made)

    def test_paykit_ids_are_never_masked(self) -> None:
        """A random id with 12 digits in a row is paykit's own, not a card number (it used to be masked)."""
        pid = "pay_3672dce990121712113f3794"
        old, new = _payment(PaymentStatus.PENDING, id=pid), _payment(PaymentStatus.SUCCEEDED, id=pid, version=2)

        for made in (fx.payment_effects(old, new, None, actor="t", at=NOW), fx.payment_notifications(old, new, at=NOW)):
            assert [pid, pid] == [entry.payload["payment_id"] for entry in made]

    def test_notifications_do_not_share_a_payload(self) -> None:
        made = fx.payment_effects(
            _payment(PaymentStatus.PENDING), _payment(PaymentStatus.SUCCEEDED, version=2), None, actor="t", at=NOW
        )

        assert 2 == len(made)
        assert made[0].payload is not made[1].payload


class TestAnswers:
    def test_constant_bodies_are_reused_and_extras_are_not(self) -> None:
        first, again = json_answer(200, "applied"), json_answer(200, "applied")
        extra = json_answer(400, "rejected", reason="x")

        assert b'{"outcome": "applied"}' == first.body == again.body
        assert first.headers is not again.headers
        assert b'{"outcome": "rejected", "reason": "x"}' == extra.body
        assert {"content-type": "application/json", "retry-after": "30"} == json_answer(503, "unavailable").headers


class TestLazyLogEvents:
    """Log events on the hot path are built only when their level is on, and still arrive when it is."""

    def test_status_change_logged_when_info_is_on(self) -> None:
        service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])
        with capture_logs(level=logging.DEBUG) as events:
            payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
            service.confirm_payment(payment.id)

        names = [event["event"] for event in events]
        assert "payment initializing" in names
        assert "payment status changed" in names
        assert "provider call" in names


def _same_record(fast: Any, validated: Any, *, fields_set: bool = True) -> None:
    """Equal as pydantic compares, and equal in everything pydantic keeps beside the values."""
    assert type(validated) is type(fast)
    assert validated == fast
    assert list(validated.__dict__) == list(fast.__dict__)  # field order: what model_dump and storage see
    if fields_set:  # a record rebuilt from model_dump() has every field set
        assert validated.model_fields_set == fast.model_fields_set
    assert validated.__pydantic_extra__ == fast.__pydantic_extra__
    assert validated.__pydantic_private__ == fast.__pydantic_private__
    assert validated.model_dump_json() == fast.model_dump_json()
    assert type(fast).model_validate(fast.model_dump()) == fast


class TestTrustedRecords:
    """``trusted`` builds what validating the same typed values builds, without validating them again."""

    @pytest.mark.parametrize("kind", list(NotificationKind))
    def test_notification_as_validated(self, kind: NotificationKind) -> None:
        made = fx.notification(user_id="u1", subject_id="pay_1", version=3, kind=kind, payload={"n": 1}, at=NOW)

        validated = Notification(
            id=f"pay_1:v3:{kind.value}",
            user_id="u1",
            kind=kind,
            subject_id="pay_1",
            payload={"n": 1},
            created_at=NOW,
            next_attempt_at=NOW,
        )
        _same_record(made, validated)

    @pytest.mark.parametrize("before", [PaymentStatus.PENDING, PaymentStatus.SUCCEEDED])
    @pytest.mark.parametrize("after", [PaymentStatus.SUCCEEDED, PaymentStatus.FAILED, PaymentStatus.REFUNDED])
    def test_payment_effects_as_validated(self, before: PaymentStatus, after: PaymentStatus) -> None:
        old = _payment(before)
        new = _payment(after, version=2, failure_code="card_declined")

        made = fx.payment_effects(old, new, AuditAction.PAYMENT_STATUS_UPDATE, actor="t", at=NOW, payload={"x": 1})

        assert made
        for record in made:
            given = {name: getattr(record, name) for name in record.model_fields_set}
            _same_record(record, type(record)(**given))

    def test_defaults_come_fresh_and_in_field_order(self) -> None:
        first = trusted(
            AuditEntry,
            id="a",
            action=AuditAction.PAYMENT_CONFIRM,
            subject_type="payment",
            subject_id="p",
            actor="t",
            at=NOW,
        )
        second = trusted(
            AuditEntry,
            id="b",
            action=AuditAction.PAYMENT_CONFIRM,
            subject_type="payment",
            subject_id="p",
            actor="t",
            at=NOW,
        )

        assert {} == first.payload
        assert first.payload is not second.payload  # a default_factory is called per record, as validation does
        _same_record(
            first,
            AuditEntry(
                id="a", action=AuditAction.PAYMENT_CONFIRM, subject_type="payment", subject_id="p", actor="t", at=NOW
            ),
        )

    def test_records_stay_frozen(self) -> None:
        made = fx.notification(
            user_id="u1", subject_id="p", version=1, kind=NotificationKind.STATUS_CHANGED, payload={}, at=NOW
        )

        with pytest.raises(ValidationError):
            made.read = True  # type: ignore[misc]


_UPDATES = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(list(PaymentStatus)),
        "captured_minor": st.integers(0, 10**6),
        "provider_ref": st.none() | st.text(max_size=8),
        "seen_events": st.lists(st.text(max_size=5), max_size=3).map(tuple),
        "provider_data": st.dictionaries(st.text(max_size=4), st.text(max_size=4), max_size=3),
        "version": st.integers(2, 9),
        "updated_at": st.just(NOW),
    },
)


class TestCopyWith:
    """The engine's new version is ``model_copy(update=...)``, only without its copy.copy calls."""

    @given(_UPDATES, st.booleans())
    def test_same_as_model_copy(self, updates: dict[str, Any], with_metadata: bool) -> None:
        current = _payment(PaymentStatus.PENDING, **({"metadata": {"order": "7"}} if with_metadata else {}))

        _same_record(copy_with(current, updates), current.model_copy(update=updates))

    def test_leaves_the_current_version_alone(self) -> None:
        current = _payment(PaymentStatus.PENDING)

        after = copy_with(current, {"status": PaymentStatus.SUCCEEDED, "version": 2})

        assert (PaymentStatus.PENDING, 1) == (current.status, current.version)
        assert (PaymentStatus.SUCCEEDED, 2) == (after.status, after.version)
        assert current.model_fields_set is not after.model_fields_set
        assert current.__dict__ is not after.__dict__


class TestWebhookPathRecords:
    """A webhook applied through the engine stores records equal to their validated selves."""

    def test_stored_records_revalidate(self) -> None:
        service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])
        payment = service.initialize_payment(user_id="u1", amount=Money.of("5.00", "USD"), provider="fake")
        service.confirm_payment(payment.id)

        stored = service.get_payment(payment.id)
        _same_record(stored, Payment.model_validate(stored.model_dump()), fields_set=False)
        trail = service.audit_trail(payment.id)
        assert trail
        for entry in trail:
            _same_record(entry, AuditEntry.model_validate(entry.model_dump()), fields_set=False)
        notes = service.list_notifications("u1")
        assert notes
        for note in notes:
            _same_record(note, Notification.model_validate(note.model_dump()), fields_set=False)


_SIMPLE_AMOUNTS = st.tuples(
    st.sampled_from(["", "-", "+"]),
    st.text(alphabet="0123456789", min_size=0, max_size=17),
    st.none() | st.text(alphabet="0123456789", min_size=0, max_size=5),
    st.sampled_from(["", " "]),
).map(lambda t: f"{t[3]}{t[0]}{t[1]}{'' if t[2] is None else '.' + t[2]}{t[3]}")


class TestMoneyOfShortcut:
    """``Money.of("12.50", ...)`` reads plain amounts with integers: as the Decimal path reads them."""

    @given(_SIMPLE_AMOUNTS, st.sampled_from(["USD", "JPY", "KWD", "usd", "CLF"]))
    def test_same_as_the_decimal_path(self, text: str, currency: str) -> None:
        def outcome(amount: str | Decimal) -> Money | type[Exception]:
            try:
                return Money.of(amount, currency)
            except InvalidRequestError:
                return InvalidRequestError

        try:
            reference: Decimal | None = Decimal(text.strip())
        except ArithmeticError:
            reference = None  # "", "-", "+.": not a number: refused as such either way
        if reference is None or not reference.is_finite():
            assert InvalidRequestError == outcome(text)
        else:
            assert outcome(reference) == outcome(text)

    @pytest.mark.parametrize(
        ("text", "currency", "minor"),
        [
            ("12.50", "USD", 1250),
            ("-0.00", "USD", 0),
            ("5", "JPY", 5),
            ("000123.4", "KWD", 123400),
            ("1.5", "USD", 150),
        ],
    )
    def test_examples(self, text: str, currency: str, minor: int) -> None:
        assert Money(minor, currency) == Money.of(text, currency)

    @pytest.mark.parametrize(("text", "currency"), [("0.001", "USD"), ("1.5", "JPY"), ("1.0001", "KWD")])
    def test_too_many_decimals_still_refused(self, text: str, currency: str) -> None:
        with pytest.raises(InvalidRequestError, match="decimal places"):
            Money.of(text, currency)


class TestGateWithoutPolicies:
    """With no policies the gate builds nothing to ask, and still refuses a malformed actor or proof."""

    def test_bad_actor_and_proof_still_refused(self) -> None:
        service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])
        amount = Money.of("5.00", "USD")

        with pytest.raises(InvalidRequestError, match="actor"):
            service.initialize_payment(user_id="u1", amount=amount, provider="fake", actor=7)  # type: ignore[arg-type]
        with pytest.raises(InvalidRequestError, match="step_up"):
            service.initialize_payment(user_id="u1", amount=amount, provider="fake", step_up="123456")  # type: ignore[arg-type]
        assert [] == service.list_payments().items

    def test_the_actor_is_audited(self) -> None:
        service = PaymentService(storage=MemoryStorage(), providers=[FakeProvider()])

        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("5.00", "USD"), provider="fake", actor=Actor("alice", {"support"})
        )

        assert {"alice"} == {entry.actor for entry in service.audit_trail(payment.id)}


def _stripe_payment_intent(**changes: Any) -> dict[str, Any]:
    pi: dict[str, Any] = copy.deepcopy(
        json.loads(shared_path("specs", "stripe", "fixtures3.json").read_text())["resources"]["payment_intent"]
    )
    pi.update(changes)
    return pi


class TestStripeEventShortcut:
    """A ``payment_intent.*`` event is built without revalidation: the same event validation builds."""

    @pytest.mark.parametrize(
        ("event_type", "changes"),
        [
            ("payment_intent.succeeded", {"status": "succeeded", "amount_received": 1099, "amount": 1099}),
            ("payment_intent.processing", {"status": "processing", "latest_charge": {"id": "ch_1"}}),
            (
                "payment_intent.payment_failed",
                {
                    "status": "requires_payment_method",
                    "last_payment_error": {"code": "card_declined", "decline_code": "do_not_honor", "message": "no"},
                    "customer": {"id": "cus_1", "object": "customer"},
                    "metadata": {"paykit_payment_id": "pay_1"},
                },
            ),
            ("payment_intent.canceled", {"status": "canceled", "currency": "jpy", "amount": 500, "customer": None}),
        ],
    )
    def test_same_as_validated(self, event_type: str, changes: dict[str, Any]) -> None:
        event = {
            "id": "evt_1",
            "type": event_type,
            "created": 1_700_000_000,
            "data": {"object": _stripe_payment_intent(**changes)},
        }

        made = stripe_wire.normalize_event(event)

        assert EventKind.PAYMENT == made.kind
        _same_record(made, WebhookEvent(**{name: getattr(made, name) for name in made.model_fields_set}))

    @pytest.mark.parametrize(
        "changes", [{"status": 3}, {"amount": "1099"}, {"currency": None}, {"currency": 5}, {"amount_received": 1.5}]
    )
    def test_wrong_types_still_refused(self, changes: dict[str, Any]) -> None:
        pi = _stripe_payment_intent(**changes)
        event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": pi}}

        with pytest.raises(WebhookVerificationError, match="malformed"):
            stripe_wire.normalize_event(event)
