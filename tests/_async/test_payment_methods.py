# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Saved payment methods: save, list, default, delete (at the provider too), never card data.

Written once for both APIs (tests/_sync/test_payment_methods.py is generated from
here); the threaded race for the first default is in tests/test_payment_methods_sync_only.py.
"""

from __future__ import annotations

import pytest

from paykit import (
    AsyncPaymentService,
    AuditAction,
    IdempotencyConflictError,
    InvalidRequestError,
    Money,
    NotFoundError,
    PaymentMethod,
)
from paykit.testing import AsyncFakeProvider, ManualClock

pytestmark = pytest.mark.anyio


async def default_ids(service: AsyncPaymentService, user_id: str) -> list[str]:
    """Ids of the user's methods marked default."""
    return [m.id for m in await service.list_payment_methods(user_id) if m.is_default]


class TestSave:
    """Saving a provider token keeps a safe description of the method."""

    async def test_first_method_is_default(self, service: AsyncPaymentService, clock: ManualClock) -> None:
        """The first saved method becomes the default; later ones do not; the list is oldest first."""
        first = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        clock.advance(seconds=1)
        second = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        assert (True, False) == (first.is_default, second.is_default)
        assert [first.id, second.id] == [m.id for m in await service.list_payment_methods("u1")]
        assert [first.id] == await default_ids(service, "u1")

    async def test_description_and_no_token(self, service: AsyncPaymentService) -> None:
        """Brand, last4 and expiry are kept; the stored provider_ref is the provider's, not the raw token."""
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        assert ("mastercard", "4444", "u1", "fake") == (method.brand, method.last4, method.user_id, method.provider)
        assert method.provider_ref.startswith("pm_fake_")

    async def test_make_default(self, service: AsyncPaymentService) -> None:
        """make_default moves the default to the new method."""
        await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = await service.save_payment_method(
            user_id="u1", provider="fake", token="pm_card_visa", make_default=True
        )
        assert second.is_default
        assert [second.id] == await default_ids(service, "u1")

    async def test_users_are_separate(self, service: AsyncPaymentService) -> None:
        """Each user has their own list and their own default."""
        a = await service.save_payment_method(user_id="alice", provider="fake", token="pm_card_visa")
        b = await service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        assert [a.id] == [m.id for m in await service.list_payment_methods("alice")]
        assert [b.id] == await default_ids(service, "bob")

    async def test_audited_without_secrets(self, service: AsyncPaymentService) -> None:
        """Saving leaves a PAYMENT_METHOD_SAVE entry that holds neither token nor provider ref."""
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", actor="alice")
        entries = await service.audit_trail(method.id)
        assert [AuditAction.PAYMENT_METHOD_SAVE] == [e.action for e in entries]
        assert "alice" == entries[0].actor
        dumped = entries[0].model_dump_json()
        assert "pm_card_visa" not in dumped
        assert method.provider_ref not in dumped

    @pytest.mark.parametrize(
        "token",
        ["4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", " 5555555555554444 ", "378282246310005"],
    )
    async def test_card_numbers_are_refused(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, token: str
    ) -> None:
        """A raw card number is refused before the provider sees it, and the number is not echoed."""
        with pytest.raises(InvalidRequestError) as info:
            await service.save_payment_method(user_id="u1", provider="fake", token=token)
        assert token.strip() not in str(info.value)
        assert [] == fake.calls_to("save_payment_method")
        assert [] == await service.list_payment_methods("u1")

    @pytest.mark.parametrize(
        ("user_id", "provider", "token"),
        [("", "fake", "pm_card_visa"), ("u1", "nope", "pm_card_visa"), ("u1", "fake", ""), ("u1", "fake", "tok_bad")],
    )
    async def test_bad_input_writes_nothing(
        self, service: AsyncPaymentService, user_id: str, provider: str, token: str
    ) -> None:
        """A blank id, unknown provider or a token the provider rejects saves nothing."""
        with pytest.raises(InvalidRequestError):
            await service.save_payment_method(user_id=user_id, provider=provider, token=token)
        assert [] == await service.list_payment_methods("u1")


class TestIdempotency:
    """save_payment_method honours idempotency keys."""

    async def test_replay_returns_the_same_method(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """The same key and token give the same method and one provider call."""
        first = await service.save_payment_method(
            user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1"
        )
        again = await service.save_payment_method(
            user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1"
        )
        assert first == again
        assert 1 == len(fake.calls_to("save_payment_method"))
        assert [first.id] == [m.id for m in await service.list_payment_methods("u1")]

    async def test_same_key_other_token_conflicts(self, service: AsyncPaymentService) -> None:
        """The same key with another token raises IdempotencyConflictError."""
        await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa", idempotency_key="s-1")
        with pytest.raises(IdempotencyConflictError):
            await service.save_payment_method(
                user_id="u1", provider="fake", token="pm_card_mastercard", idempotency_key="s-1"
            )


class TestDefault:
    """set_default_payment_method keeps exactly one default per user."""

    async def test_set_default(self, service: AsyncPaymentService) -> None:
        """The chosen method becomes the only default; choosing it again is a no-op."""
        first = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        chosen = await service.set_default_payment_method("u1", second.id)
        assert chosen.is_default
        assert [second.id] == await default_ids(service, "u1")
        assert chosen == await service.set_default_payment_method("u1", second.id)
        await service.set_default_payment_method("u1", first.id)
        assert [first.id] == await default_ids(service, "u1")
        assert AuditAction.PAYMENT_METHOD_DEFAULT in [e.action for e in await service.audit_trail(first.id)]

    async def test_other_users_method_is_refused(self, service: AsyncPaymentService) -> None:
        """A user cannot make another user's method their default."""
        theirs = await service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        await service.save_payment_method(user_id="alice", provider="fake", token="pm_card_visa")
        with pytest.raises(NotFoundError):
            await service.set_default_payment_method("alice", theirs.id)
        assert [theirs.id] == await default_ids(service, "bob")

    async def test_unknown_method(self, service: AsyncPaymentService) -> None:
        """An unknown id raises NotFoundError."""
        with pytest.raises(NotFoundError):
            await service.set_default_payment_method("u1", "pm_missing")


class TestDelete:
    """Deleting removes the method here and at the provider."""

    async def test_delete(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """The method leaves the list, the provider is told, and the deletion is audited."""
        keep = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        gone = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        deleted = await service.delete_payment_method("u1", gone.id)
        assert deleted.deleted
        assert not deleted.is_default
        assert [keep.id] == [m.id for m in await service.list_payment_methods("u1")]
        assert [gone.provider_ref] == [c.provider_ref for c in fake.calls_to("delete_payment_method")]
        assert AuditAction.PAYMENT_METHOD_DELETE == (await service.audit_trail(gone.id))[-1].action

    async def test_deleting_the_default_leaves_no_default(self, service: AsyncPaymentService) -> None:
        """No other method is made default on the user's behalf; setting one again works."""
        first = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        second = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_mastercard")
        await service.delete_payment_method("u1", first.id)
        assert ([], [second.id]) == (
            await default_ids(service, "u1"),
            [m.id for m in await service.list_payment_methods("u1")],
        )
        await service.set_default_payment_method("u1", second.id)
        assert [second.id] == await default_ids(service, "u1")

    async def test_deleted_method_is_gone(self, service: AsyncPaymentService) -> None:
        """A deleted method cannot be deleted again, made default, or used to pay."""
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        await service.delete_payment_method("u1", method.id)
        with pytest.raises(NotFoundError):
            await service.delete_payment_method("u1", method.id)
        with pytest.raises(NotFoundError):
            await service.set_default_payment_method("u1", method.id)
        with pytest.raises(InvalidRequestError):
            await service.initialize_payment(
                user_id="u1", amount=Money.of("1", "USD"), provider="fake", payment_method=method.id
            )

    async def test_other_users_method_is_refused(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """A user cannot delete another user's method; the provider is not called."""
        theirs = await service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        with pytest.raises(NotFoundError):
            await service.delete_payment_method("alice", theirs.id)
        assert [] == fake.calls_to("delete_payment_method")
        assert [theirs.id] == [m.id for m in await service.list_payment_methods("bob")]

    async def test_provider_failure_keeps_the_method(
        self, service: AsyncPaymentService, fake: AsyncFakeProvider, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When the provider cannot delete, the method stays saved."""
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")

        async def refuse(_: PaymentMethod) -> None:
            raise InvalidRequestError("the provider refused")

        monkeypatch.setattr(fake, "delete_payment_method", refuse)
        with pytest.raises(InvalidRequestError):
            await service.delete_payment_method("u1", method.id)
        assert [method.id] == [m.id for m in await service.list_payment_methods("u1")]


class TestPayingWithSavedMethods:
    """Saved methods are used by id, only by their owner."""

    async def test_pay_with_saved_method(self, service: AsyncPaymentService) -> None:
        """A saved method id is turned into its provider token for the payment."""
        method = await service.save_payment_method(user_id="u1", provider="fake", token="pm_card_visa")
        payment = await service.initialize_payment(
            user_id="u1", amount=Money.of("3.000", "KWD"), provider="fake", payment_method=method.id
        )
        assert method.provider_ref == payment.payment_method_ref

    async def test_other_users_method_cannot_pay(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """Paying with someone else's saved method is refused before any provider call."""
        theirs = await service.save_payment_method(user_id="bob", provider="fake", token="pm_card_visa")
        with pytest.raises(InvalidRequestError):
            await service.initialize_payment(
                user_id="alice", amount=Money.of("1", "USD"), provider="fake", payment_method=theirs.id
            )
        payment = await service.initialize_payment(user_id="alice", amount=Money.of("1", "USD"), provider="fake")
        with pytest.raises(InvalidRequestError):
            await service.confirm_payment(payment.id, payment_method=theirs.id)
        assert [] == fake.calls_to("confirm_payment")

    async def test_card_number_cannot_pay(self, service: AsyncPaymentService, fake: AsyncFakeProvider) -> None:
        """A raw card number as payment_method is refused."""
        with pytest.raises(InvalidRequestError):
            await service.initialize_payment(
                user_id="u1", amount=Money.of("1", "USD"), provider="fake", payment_method="4242424242424242"
            )
        assert [] == fake.calls_to("create_payment")
