# Generated from tests/_async/test_payment_methods.py by scripts/unasync.py: do not edit.
"""Saved payment methods: save, list, default, delete (at the provider too), never card data.

Written once for both APIs (tests/_sync/test_payment_methods.py is generated from
here); the threaded race for the first default is in tests/test_payment_methods_sync_only.py.
"""

from __future__ import annotations

import pytest

from paykit import (
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    Money,
    NotFoundError,
    PaymentMethod,
    PaymentService,
)
from paykit.testing import FakeProvider, ManualClock


def default_ids(service: PaymentService, user_id: str) -> list[str]:
    """Ids of the user's methods marked default."""
    return [m.id for m in service.list_payment_methods(user_id) if m.is_default]


class TestSave:
    """Saving a provider token keeps a safe description of the method."""

    def test_first_method_is_default(self, service: PaymentService, clock: ManualClock) -> None:
        """The first saved method becomes the default; later ones do not; the list is oldest first."""
        first = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        clock.advance(seconds=1)
        second = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        assert (True, False) == (first.is_default, second.is_default)
        assert [first.id, second.id] == [m.id for m in service.list_payment_methods("u1")]
        assert [first.id] == default_ids(service, "u1")

    def test_description_and_no_token(self, service: PaymentService) -> None:
        """Brand, last4 and expiry are kept; the stored provider_ref is the provider's, not the raw token."""
        method = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        assert ("mastercard", "4444", "u1", "fake") == (method.brand, method.last4, method.user_id, method.provider)
        assert method.provider_ref.startswith("pm_fake_")

    def test_make_default(self, service: PaymentService) -> None:
        """make_default moves the default to the new method."""
        service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", make_default=True)
        assert second.is_default
        assert [second.id] == default_ids(service, "u1")

    def test_users_are_separate(self, service: PaymentService) -> None:
        """Each user has their own list and their own default."""
        a = service.save_payment_method(user_id="alice", provider="fake", token="pm_card_visa")
        b = service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        assert [a.id] == [m.id for m in service.list_payment_methods("alice")]
        assert [b.id] == default_ids(service, "bob")

    def test_audited_without_secrets(self, service: PaymentService) -> None:
        """Saving leaves a PAYMENT_METHOD_SAVE entry that holds neither token nor provider ref."""
        method = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", actor="alice")
        entries = service.audit_trail(method.id)
        assert [AuditAction.PAYMENT_METHOD_SAVE] == [e.action for e in entries]
        assert "alice" == entries[0].actor
        dumped = entries[0].model_dump_json()
        assert "pm_card_visa" not in dumped
        assert method.provider_ref not in dumped

    @pytest.mark.parametrize(
        "token",
        ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", " 5555555555554444 ", "378282246310005"],
    )
    def test_card_numbers_are_refused(self, service: PaymentService, fake: FakeProvider, token: str) -> None:
        """A raw card number is refused before the provider sees it, and the number is not echoed."""
        with pytest.raises(InvalidRequestError) as info:
            service.save_payment_method(user_id="u1", provider="fake", token=token)
        assert token.strip() not in str(info.value)
        assert [] == fake.calls_to("save_payment_method")
        assert [] == service.list_payment_methods("u1")

    @pytest.mark.parametrize(
        ("user_id", "provider", "token"),
        [("", "fake", "pm_card_visa"), ("u1", "nope", "pm_card_visa"), ("u1", "fake", ""), ("u1", "fake", "tok_bad")],
    )
    def test_bad_input_writes_nothing(self, service: PaymentService, user_id: str, provider: str, token: str) -> None:
        """A blank id, unknown provider or a token the provider rejects saves nothing."""
        with pytest.raises(InvalidRequestError):
            service.save_payment_method(user_id=user_id, provider=provider, token=token)
        assert [] == service.list_payment_methods("u1")


class TestIdempotency:
    """save_payment_method honours idempotency keys."""

    def test_replay_returns_the_same_method(self, service: PaymentService, fake: FakeProvider) -> None:
        """The same key and token give the same method and one provider call."""
        first = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1")
        again = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1")
        assert first == again
        assert 1 == len(fake.calls_to("save_payment_method"))
        assert [first.id] == [m.id for m in service.list_payment_methods("u1")]

    def test_same_key_other_token_conflicts(self, service: PaymentService) -> None:
        """The same key with another token raises IdempotencyConflictError."""
        service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1")
        with pytest.raises(IdempotencyConflictError):
            service.save_payment_method(
                user_id="u1", provider="fake", token="pm_card_mastercard", idempotency_key="s-1"
            )


class TestDefault:
    """set_default_payment_method keeps exactly one default per user."""

    def test_set_default(self, service: PaymentService) -> None:
        """The chosen method becomes the only default; choosing it again is a no-op."""
        first = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        chosen = service.set_default_payment_method("u1", second.id)
        assert chosen.is_default
        assert [second.id] == default_ids(service, "u1")
        assert chosen == service.set_default_payment_method("u1", second.id)
        service.set_default_payment_method("u1", first.id)
        assert [first.id] == default_ids(service, "u1")
        assert AuditAction.PAYMENT_METHOD_DEFAULT in [e.action for e in service.audit_trail(first.id)]

    def test_other_users_method_is_refused(self, service: PaymentService) -> None:
        """A user cannot make another user's method their default."""
        theirs = service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        service.save_payment_method(user_id="alice", provider="fake", token="pm_card_visa")
        with pytest.raises(NotFoundError):
            service.set_default_payment_method("alice", theirs.id)
        assert [theirs.id] == default_ids(service, "bob")

    def test_unknown_method(self, service: PaymentService) -> None:
        """An unknown id raises NotFoundError."""
        with pytest.raises(NotFoundError):
            service.set_default_payment_method("u1", "pm_missing")


class TestDelete:
    """Deleting removes the method here and at the provider."""

    def test_delete(self, service: PaymentService, fake: FakeProvider) -> None:
        """The method leaves the list, the provider is told, and the deletion is audited."""
        keep = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        gone = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        deleted = service.delete_payment_method("u1", gone.id)
        assert deleted.deleted
        assert not deleted.is_default
        assert [keep.id] == [m.id for m in service.list_payment_methods("u1")]
        assert [gone.provider_ref] == [c.provider_ref for c in fake.calls_to("delete_payment_method")]
        assert AuditAction.PAYMENT_METHOD_DELETE == service.audit_trail(gone.id)[-1].action

    def test_deleting_the_default_leaves_no_default(self, service: PaymentService) -> None:
        """No other method is made default on the user's behalf; setting one again works."""
        first = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        service.delete_payment_method("u1", first.id)
        assert ([], [second.id]) == (
            default_ids(service, "u1"),
            [m.id for m in service.list_payment_methods("u1")],
        )
        service.set_default_payment_method("u1", second.id)
        assert [second.id] == default_ids(service, "u1")

    def test_deleted_method_is_gone(self, service: PaymentService) -> None:
        """A deleted method cannot be deleted again, made default, or used to pay."""
        method = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        service.delete_payment_method("u1", method.id)
        with pytest.raises(NotFoundError):
            service.delete_payment_method("u1", method.id)
        with pytest.raises(NotFoundError):
            service.set_default_payment_method("u1", method.id)
        with pytest.raises(InvalidRequestError):
            service.initialize_payment(
                user_id="u1", amount=Money.of("1", "USD"), provider="fake", payment_method=method.id
            )

    def test_other_users_method_is_refused(self, service: PaymentService, fake: FakeProvider) -> None:
        """A user cannot delete another user's method; the provider is not called."""
        theirs = service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        with pytest.raises(NotFoundError):
            service.delete_payment_method("alice", theirs.id)
        assert [] == fake.calls_to("delete_payment_method")
        assert [theirs.id] == [m.id for m in service.list_payment_methods("bob")]

    def test_provider_failure_keeps_the_method(
        self, service: PaymentService, fake: FakeProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the provider cannot delete, the method stays saved."""
        method = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")

        def refuse(_: PaymentMethod) -> None:
            raise InvalidRequestError("the provider refused")

        monkeypatch.setattr(fake, "delete_payment_method", refuse)
        with pytest.raises(InvalidRequestError):
            service.delete_payment_method("u1", method.id)
        assert [method.id] == [m.id for m in service.list_payment_methods("u1")]


class TestPayingWithSavedMethods:
    """Saved methods are used by id, only by their owner."""

    def test_pay_with_saved_method(self, service: PaymentService) -> None:
        """A saved method id is turned into its provider token for the payment."""
        method = service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        payment = service.initialize_payment(
            user_id="u1", amount=Money.of("3.000", "KWD"), provider="fake", payment_method=method.id
        )
        assert method.provider_ref == payment.payment_method_ref

    def test_other_users_method_cannot_pay(self, service: PaymentService, fake: FakeProvider) -> None:
        """Paying with someone else's saved method is refused before any provider call."""
        theirs = service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        with pytest.raises(InvalidRequestError):
            service.initialize_payment(
                user_id="alice", amount=Money.of("1", "USD"), provider="fake", payment_method=theirs.id
            )
        payment = service.initialize_payment(user_id="alice", amount=Money.of("1", "USD"), provider="fake")
        with pytest.raises(InvalidRequestError):
            service.confirm_payment(payment.id, payment_method=theirs.id)
        assert [] == fake.calls_to("confirm_payment")

    def test_card_number_cannot_pay(self, service: PaymentService, fake: FakeProvider) -> None:
        """A raw card number as payment_method is refused."""
        with pytest.raises(InvalidRequestError):
            service.initialize_payment(
                user_id="u1", amount=Money.of("1", "USD"), provider="fake", payment_method="4242424242424242"
            )
        assert [] == fake.calls_to("create_payment")
