# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Installment plans: a total split exactly into installments, charged by the billing tick."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from .. import _telemetry as telemetry
from .._decisions import billing as db
from .._decisions import common as d
from .._decisions.policy import Actor
from .._errors import InvalidRequestError, InvalidStateError
from .._models import AuditAction, Dunning, Installment, InstallmentPlan, Interval, InvoiceStatus
from .._money import Money
from ._part import _Part
from .billing import _Billing

_INTERVALS = ("day", "week", "month", "year")


class _Installments(_Billing, _Part):
    @telemetry.operation("create_installment_plan")
    async def create_installment_plan(
        self,
        *,
        user_id: str,
        total: Money,
        count: int,
        provider: str,
        payment_method: str | None = None,
        interval: Interval = "month",
        interval_count: int = 1,
        first_due: datetime | None = None,
        dunning: Dunning | None = None,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        return_url: str | None = None,
        cancel_url: str | None = None,
        idempotency_key: str | None = None,
        actor: Actor | str | None = None,
    ) -> InstallmentPlan:
        """Split ``total`` into ``count`` installments, due from ``first_due`` every ``interval_count`` intervals.

        The installments are exact minor units that always sum to ``total``: the
        first ``total % count`` of them take one minor unit more than the rest
        (100.000 KWD in 3: 33.334, 33.333, 33.333). :meth:`bill_due` charges each
        when due, with the same dunning as subscriptions.

        Raises:
            InvalidRequestError: A bad argument (1-120 installments of at least one minor unit each).
            IdempotencyConflictError: The key was used with other parameters.
        """
        d.check_id(user_id, "user_id")
        key = d.check_key(idempotency_key)
        d.check_positive(total)
        if interval not in _INTERVALS:
            raise InvalidRequestError(f"interval must be one of {', '.join(_INTERVALS)}")
        if isinstance(interval_count, bool) or not isinstance(interval_count, int) or not 1 <= interval_count <= 366:
            raise InvalidRequestError("interval_count must be an int from 1 to 366")
        amounts = db.split_installments(total, count)
        adapter = self.provider(provider)
        currencies = adapter.capabilities.currencies
        if currencies is not None and total.currency not in currencies:
            raise InvalidRequestError(f"provider {provider!r} does not take {total.currency}")
        for amount in set(amounts):
            adapter.check_amount(amount)
        d.check_text(description, "description")
        meta = d.check_metadata(metadata)
        method_saved = await self._method_saved(user_id, provider, payment_method)
        customer_ref = await self._stored_customer(provider, user_id, payment_method)
        now = self._engine.now()
        begin = first_due or now
        if begin.tzinfo is None:
            raise InvalidRequestError("first_due must be timezone-aware")
        dates = db.installment_schedule(begin, interval, interval_count, count)
        params = {
            "user_id": user_id,
            "total": total,
            "count": count,
            "provider": provider,
            "payment_method": payment_method,
            "interval": interval,
            "interval_count": interval_count,
            "first_due": first_due.isoformat() if first_due else None,
            "dunning": dunning,
            "description": description,
            "metadata": meta,
        }
        fp = d.fingerprint(**params) if key else ""
        plan_id = d.keyed_id("ipl", "installment_plan", key) if key else d.new_id("ipl")
        items = tuple(
            Installment(number=k + 1, amount=amount, due_at=due)
            for k, (amount, due) in enumerate(zip(amounts, dates, strict=True))
        )
        draft = InstallmentPlan(
            id=plan_id,
            user_id=user_id,
            provider=provider,
            payment_method=payment_method,
            dunning=dunning or Dunning(),
            renews_at=items[0].due_at,
            total=total,
            installments=items,
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
            draft, AuditAction.INSTALLMENT_PLAN_CREATE, actor=actor, fingerprint=fp, params=params
        )

    async def get_installment_plan(self, plan_id: str) -> InstallmentPlan:
        """The installment plan with this id.

        Raises:
            NotFoundError: No such installment plan.
        """
        d.check_id(plan_id, "plan_id")
        return await self._engine.load(InstallmentPlan, plan_id)

    async def list_installment_plans(self, *, user_id: str | None = None, limit: int = 50) -> list[InstallmentPlan]:
        """Installment plans newest first, of one user or all, at most ``limit`` (1-500).

        Raises:
            InvalidRequestError: A bad limit.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be an int from 1 to 500")
        if user_id is not None:
            d.check_id(user_id, "user_id")
        found = await self._engine.storage.list_billing(user_id=user_id, kind="installment_plan", limit=limit)
        return [p for p in found if isinstance(p, InstallmentPlan)]

    @telemetry.operation("cancel_installment_plan")
    async def cancel_installment_plan(self, plan_id: str, *, actor: Actor | str | None = None) -> InstallmentPlan:
        """Stop charging the installments not yet paid; canceling again is a no-op.

        Raises:
            InvalidStateError: The plan is completed or unpaid.
        """
        plan = await self.get_installment_plan(plan_id)
        now = self._engine.now()
        build = lambda c: db.cancel(c, at_period_end=False, now=now)  # noqa: E731
        return (await self._engine.transact(plan, build, actor=self._actor(actor)))[0]

    @telemetry.operation("pay_off_installment_plan")
    async def pay_off_installment_plan(self, plan_id: str, *, actor: Actor | str | None = None) -> InstallmentPlan:
        """Pay everything left now: the unpaid installments become one, charged by this call's tick.

        Returns the plan after the charge: ``completed`` when it succeeded, or
        waiting for the customer (providers without off-session charges), or
        ``past_due`` with a retry scheduled.

        Raises:
            InvalidStateError: The plan ended, or an installment payment is under way.
        """
        plan = await self.get_installment_plan(plan_id)
        if await self._engine.storage.get_payment(db.current_payment_id(plan)) is not None:
            raise InvalidStateError("an installment payment is under way; pay off after it settles")
        superseded = d.keyed_id("inv", "invoice", db.invoice_key(plan))
        now = self._engine.now()
        plan = (await self._engine.transact(plan, lambda c: db.pay_off(c, now=now), actor=self._actor(actor)))[0]
        old = await self._engine.storage.get_invoice(superseded)
        if old is not None and old.status == InvoiceStatus.OPEN and old.payment_id is None:
            # A past-due installment's invoice: the pay-off's own invoice replaces it.
            await self.void_invoice(old.id, actor=actor)
        await self._bill_one(plan)
        return await self.get_installment_plan(plan_id)
