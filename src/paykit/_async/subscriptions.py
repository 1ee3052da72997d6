# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Subscriptions: create, read, cancel, pause, resume, change plan, and pay a period with the customer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from .. import _telemetry as telemetry
from .._decisions import billing as db
from .._decisions import common as d
from .._decisions.change import Change
from .._decisions.policy import Actor
from .._errors import InvalidRequestError, InvalidStateError
from .._models import AuditAction, Dunning, Payment, Plan, Subscription
from .._status import SubscriptionStatus
from ._part import _Part
from .billing import _Billing


class _Subscriptions(_Billing, _Part):
    @telemetry.operation("create_subscription")
    async def create_subscription(
        self,
        *,
        user_id: str,
        plan: Plan | Mapping[str, Any],
        provider: str,
        payment_method: str | None = None,
        start: datetime | None = None,
        dunning: Dunning | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
    ) -> Subscription:
        """Subscribe a user to a plan; :meth:`bill_due` charges each period when it starts.

        The first period starts at ``start`` (default: now), or when the plan's trial
        ends; it is charged by the first :meth:`bill_due` after that (call it right
        away to charge now). Periods are anchored on that first day: one that starts
        on Jan 31 renews Feb 28 (29 in a leap year), then Mar 31. All times are UTC.

        Args:
            user_id: Who pays.
            plan: A :class:`Plan`, or a mapping of its fields.
            provider: The configured provider that charges the periods.
            payment_method: A saved method's id (or a provider token) charged without the
                customer, where the provider can (``capabilities.off_session``). Without
                one, or on providers that cannot, each period waits for the customer, who
                is notified with the link to pay.
            start: When the first period (or the trial) starts; timezone-aware.
            dunning: Retries after a failed charge (default: 1, 3, 5 and 7 days, then canceled).
            description: Shown on the payments.
            metadata: Your own str -> str data.
            return_url: Where redirect-based providers send the customer back.
            cancel_url: Where they send a customer who cancels.
            idempotency_key: Replays with the same parameters return the first subscription.
            actor: Who to attribute the operation to in the audit trail.

        Raises:
            InvalidRequestError: A bad argument, or a plan the provider cannot charge.
            IdempotencyConflictError: The key was used with other parameters.
        """
        d.check_id(user_id, "user_id")
        key = d.check_key(idempotency_key)
        try:
            plan = plan if isinstance(plan, Plan) else Plan.model_validate(plan)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid plan: {exc.errors()[0]['msg']}") from None
        adapter = self.provider(provider)
        currencies = adapter.capabilities.currencies
        if currencies is not None and plan.amount.currency not in currencies:
            raise InvalidRequestError(f"provider {provider!r} does not take {plan.amount.currency}")
        adapter.check_amount(plan.amount)
        d.check_text(description, "description")
        meta = d.check_metadata(metadata)
        method_saved = await self._method_saved(user_id, provider, payment_method)
        customer_ref = await self._stored_customer(provider, user_id, payment_method)
        now = self._engine.now()
        begin = start or now
        if begin.tzinfo is None:
            raise InvalidRequestError("start must be timezone-aware")
        trial_end = begin + timedelta(days=plan.trial_days) if plan.trial_days else None
        anchor = trial_end or begin
        params = {
            "user_id": user_id,
            "plan": plan,
            "provider": provider,
            "payment_method": payment_method,
            "start": start.isoformat() if start else None,
            "dunning": dunning,
            "description": description,
            "metadata": meta,
        }
        fp = d.fingerprint(**params) if key else ""
        sub_id = d.keyed_id("sub", "subscription", key) if key else d.new_id("sub")
        draft = Subscription(
            id=sub_id,
            user_id=user_id,
            provider=provider,
            payment_method=payment_method,
            status=SubscriptionStatus.TRIALING if trial_end else SubscriptionStatus.ACTIVE,
            dunning=dunning or Dunning(),
            renews_at=anchor,
            plan=plan,
            anchor=anchor,
            trial_end=trial_end,
            description=description,
            metadata=meta,
            return_url=return_url,
            cancel_url=cancel_url,
            idempotency_key=key,
            request_fingerprint=fp,
            created_at=now,
            updated_at=now,
            customer_ref=customer_ref,
            payment_method_saved=method_saved,
        )
        return await self._insert_billing(
            draft, AuditAction.SUBSCRIPTION_CREATE, actor=actor, fingerprint=fp, params=params
        )

    async def get_subscription(self, subscription_id: str) -> Subscription:
        """The subscription with this id.

        Raises:
            NotFoundError: No such subscription.
        """
        d.check_id(subscription_id, "subscription_id")
        return await self._engine.load(Subscription, subscription_id)

    async def list_subscriptions(self, *, user_id: str | None = None, limit: int = 50) -> list[Subscription]:
        """Subscriptions newest first, of one user or all, at most ``limit`` (1-500).

        Raises:
            InvalidRequestError: A bad limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        if user_id is not None:
            d.check_id(user_id, "user_id")
        found = await self._engine.storage.list_billing(user_id=user_id, kind="subscription", limit=limit)
        return [s for s in found if isinstance(s, Subscription)]

    async def _change_subscription(
        self, subscription_id: str, build: Callable[[Subscription], Change], actor: Actor | str | None
    ) -> Subscription:
        sub = await self.get_subscription(subscription_id)
        return (await self._engine.transact(sub, build, actor=self._actor(actor)))[0]

    @telemetry.operation("cancel_subscription")
    async def cancel_subscription(
        self, subscription_id: str, *, at_period_end: bool = False, actor: Actor | str | None = None
    ) -> Subscription:
        """Cancel now, or at the end of the period paid (``at_period_end``). Canceling again is a no-op.

        Raises:
            InvalidStateError: The subscription ended as ``unpaid``.
        """
        now = self._engine.now()
        return await self._change_subscription(
            subscription_id, lambda c: db.cancel(c, at_period_end=at_period_end, now=now), actor
        )

    @telemetry.operation("pause_subscription")
    async def pause_subscription(self, subscription_id: str, *, actor: Actor | str | None = None) -> Subscription:
        """Stop charging until :meth:`resume_subscription`; pausing again is a no-op.

        Raises:
            InvalidStateError: The subscription ended.
        """
        now = self._engine.now()
        return await self._change_subscription(subscription_id, lambda c: db.pause(c, now=now), actor)

    @telemetry.operation("resume_subscription")
    async def resume_subscription(self, subscription_id: str, *, actor: Actor | str | None = None) -> Subscription:
        """Charge a paused subscription again from its next period start; periods paused are not charged.

        Raises:
            InvalidStateError: The subscription ended.
        """
        now = self._engine.now()
        return await self._change_subscription(subscription_id, lambda c: db.resume(c, now=now), actor)

    @telemetry.operation("change_subscription_plan")
    async def change_subscription_plan(
        self, subscription_id: str, plan: Plan | Mapping[str, Any], *, actor: Actor | str | None = None
    ) -> Subscription:
        """Switch to ``plan`` from the next period on; the period already paid is not prorated.

        A plan with another interval re-anchors the periods on the day it takes over.

        Raises:
            InvalidRequestError: A plan in another currency.
            InvalidStateError: The subscription ended, or a payment for the next period is under way.
        """
        try:
            new = plan if isinstance(plan, Plan) else Plan.model_validate(plan)
        except ValidationError as exc:
            raise InvalidRequestError(f"invalid plan: {exc.errors()[0]['msg']}") from None
        sub = await self.get_subscription(subscription_id)
        self.provider(sub.provider).check_amount(new.amount)
        return (await self._engine.transact(sub, lambda c: db.change_plan(c, new), actor=self._actor(actor)))[0]

    @telemetry.operation("change_subscription_payment_method")
    async def change_subscription_payment_method(
        self, subscription_id: str, payment_method: str | None, *, actor: Actor | str | None = None
    ) -> Subscription:
        """Charge the next periods (and retries) to another saved method; ``None`` waits for the customer.

        Raises:
            InvalidRequestError: The method is not the subscriber's on the subscription's provider.
            InvalidStateError: The subscription ended.
        """
        sub = await self.get_subscription(subscription_id)
        saved = await self._method_saved(sub.user_id, sub.provider, payment_method)
        build = lambda c: db.change_method(c, payment_method, saved=saved)  # noqa: E731
        return (await self._engine.transact(sub, build, actor=self._actor(actor)))[0]

    @telemetry.operation("pay_subscription")
    async def pay_subscription(
        self,
        subscription_id: str,
        *,
        payment_method: str | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        actor: Actor | str | None = None,
    ) -> Payment:
        """Pay the outstanding period with the customer present (after ``authentication_required``).

        The payment is the current dunning attempt's own (same derived id), so the
        billing tick follows it instead of charging again; when it succeeds the
        subscription is active again. Calling again returns the same payment.

        Raises:
            InvalidStateError: Nothing is outstanding (the subscription is not past due).
        """
        sub = await self.get_subscription(subscription_id)
        if sub.status != SubscriptionStatus.PAST_DUE:
            raise InvalidStateError(f"a subscription that is {sub.status.value} has nothing outstanding")
        return await self._pay_now(sub, payment_method, return_url, cancel_url, actor)
