# Generated from src/paykit/_async/methods.py by scripts/unasync.py: do not edit.
"""Saved payment methods per user: provider tokens only, one default, soft deletes."""

from __future__ import annotations

from typing import Any

from .. import _telemetry as telemetry
from .._decisions import common as d
from .._decisions import effects as fx
from .._decisions.change import Change
from .._decisions.policy import Actor, StepUpProof
from .._errors import DuplicateRecordError, InvalidRequestError, InvalidStateError, NotFoundError
from .._models import AuditAction, PaymentMethod
from ._part import _Part


class _Methods(_Part):
    @telemetry.operation("save_payment_method")
    def save_payment_method(
        self,
        *,
        user_id: str,
        provider: str,
        token: str,
        make_default: bool = False,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> PaymentMethod:
        """Save a provider token (``pm_...``) as a payment method of the user.

        The user's first method becomes the default. Card numbers are refused:
        collect cards with the provider's own client-side tools.

        Raises:
            InvalidRequestError: A card number instead of a token, or an unknown provider.
            InvalidStateError: The provider does not keep payment methods.
            PolicyDeniedError: A policy refused; nothing was saved.
            StepUpRequiredError: A policy asks for a second factor (``step_up``).
        """
        d.check_id(user_id, "user_id")
        d.check_id(token, "token")
        if d.looks_like_card_number(token):
            raise InvalidRequestError("pass a provider token (e.g. 'pm_...'), never a card number")
        key = d.check_key(idempotency_key)
        adapter = self.provider(provider)
        if not adapter.capabilities.saved_payment_methods:
            raise InvalidStateError(f"provider {provider!r} does not keep payment methods")
        storage = self._engine.storage
        fp = d.fingerprint(user_id=user_id, provider=provider, token=token, make_default=make_default)
        method_id = d.keyed_id("pm", "payment_method", key) if key else d.new_id("pm")
        if key is not None and (existing := storage.get_payment_method(method_id)) is not None:
            d.check_replay(existing.request_fingerprint, fp, "payment method")
            return existing
        self._gate("save_payment_method", actor, user_id=user_id, amount=None, provider=provider, step_up=step_up)
        customer_ref = storage.get_customer_ref(provider, user_id)
        saved, new_customer = self._engine.call_provider(
            adapter,
            "save_payment_method",
            lambda: adapter.save_payment_method(
                user_id, token, customer_ref=customer_ref, idempotency_key=f"paykit-{method_id}-save"
            ),
        )
        if new_customer is not None and new_customer != customer_ref:
            storage.set_customer_ref(provider, user_id, new_customer)
        first = not storage.list_payment_methods(user_id)
        now = self._engine.now()
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
        audit = fx.method_audit(method, AuditAction.PAYMENT_METHOD_SAVE, actor=self._actor(actor))
        try:
            storage.insert_payment_method(method, [audit])
        except DuplicateRecordError:
            existing = storage.get_payment_method(method_id)
            if existing is None:
                raise
            d.check_replay(existing.request_fingerprint, fp, "payment method")
            return existing
        self._engine.emit([audit])
        if make_default and not first:
            return self.set_default_payment_method(user_id, method.id, actor=actor)
        if first:
            # Two first saves may race and both claim the default: keep the oldest.
            self._settle_default(user_id, actor=actor)
            return storage.get_payment_method(method.id) or method
        return method

    def _settle_default(self, user_id: str, *, actor: Actor | str | None) -> None:
        defaults = [m for m in self._engine.storage.list_payment_methods(user_id) if m.is_default]
        for extra in sorted(defaults, key=lambda m: (m.created_at, m.id))[1:]:
            self._set_method(extra, None, actor, is_default=False)

    def _own_method(self, user_id: str, method_id: str) -> PaymentMethod:
        d.check_id(user_id, "user_id")
        d.check_id(method_id, "method_id")
        method = self._engine.storage.get_payment_method(method_id)
        if method is None or method.deleted or method.user_id != user_id:
            raise NotFoundError(f"user {user_id!r} has no payment method {method_id!r}")
        return method

    def _set_method(
        self, method: PaymentMethod, action: AuditAction | None, actor: Actor | str | None, **changes: Any
    ) -> PaymentMethod:
        return (self._engine.transact(method, lambda _: Change(changes, action=action), actor=self._actor(actor)))[0]

    def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """The user's saved methods, oldest first."""
        d.check_id(user_id, "user_id")
        return self._engine.storage.list_payment_methods(user_id)

    @telemetry.operation("set_default_payment_method")
    def set_default_payment_method(
        self, user_id: str, method_id: str, *, actor: Actor | str | None = None
    ) -> PaymentMethod:
        """Make ``method_id`` the user's default (and no other), at its provider too.

        Raises:
            NotFoundError: The user has no such method.
            ProviderError: The provider refused; nothing changed.
        """
        method = self._own_method(user_id, method_id)
        storage = self._engine.storage
        if not method.is_default:
            # The provider first: if it refuses, nothing changed here either.
            customer_ref = storage.get_customer_ref(method.provider, user_id)
            adapter = self.provider(method.provider)
            self._engine.call_provider(
                adapter,
                "set_default_payment_method",
                lambda: adapter.set_default_payment_method(method, customer_ref=customer_ref),
            )
        for other in storage.list_payment_methods(user_id):
            if other.is_default and other.id != method.id:
                self._set_method(other, None, actor, is_default=False)
        if method.is_default:
            return method
        return self._set_method(method, AuditAction.PAYMENT_METHOD_DEFAULT, actor, is_default=True)

    @telemetry.operation("delete_payment_method")
    def delete_payment_method(
        self,
        user_id: str,
        method_id: str,
        *,
        actor: Actor | str | None = None,
        step_up: StepUpProof | None = None,
    ) -> PaymentMethod:
        """Delete a saved method here and at its provider.

        Deleting the default leaves the user without one: no other method is picked on the
        user's behalf (call :meth:`set_default_payment_method`), as at the providers.

        Raises:
            NotFoundError: The user has no such method.
            PolicyDeniedError: A policy refused; nothing was deleted.
            StepUpRequiredError: A policy asks for a second factor (``step_up``).
        """
        method = self._own_method(user_id, method_id)
        self._gate(
            "delete_payment_method", actor, user_id=user_id, amount=None, provider=method.provider, step_up=step_up
        )
        adapter = self.provider(method.provider)
        self._engine.call_provider(adapter, "delete_payment_method", lambda: adapter.delete_payment_method(method))
        return self._set_method(method, AuditAction.PAYMENT_METHOD_DELETE, actor, deleted=True, is_default=False)
