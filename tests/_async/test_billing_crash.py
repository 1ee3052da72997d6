# Source of the generated sync twin (scripts/unasync.py): edit here.
"""Crash injection in a billing tick: the process dies before or after any write, then restarts.

A subscription is created and its first period charged (paid, or declined into
dunning). The run is made once to count its writes; then, for every write N, a
service whose storage dies just before (or just after) its N-th write runs it
until it dies; the leases of the dead process expire; a fresh service on the
same storage and provider runs ``reconcile()`` and the same steps again. The
outcome must equal the run that never crashed: the subscription's state, the
period's one invoice, every payment, what the provider charged, the audit
trail's actions and the notifications. Nothing lost, nothing doubled, on memory
and on the MongoDB-wire server, in both APIs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from paykit import AsyncPaymentService, Money, PaymentStatus, Plan
from paykit._decisions.common import keyed_id
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.storage._async.memory import write_each
from paykit.storage._base import Write
from paykit.testing import AsyncFakeProvider, ManualClock
from tests._storages import mongo_server_fixture, storage_params

pytestmark = pytest.mark.anyio

START = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
WRITES = frozenset(
    {
        "insert_billing",
        "update_billing",
        "claim_billing_due",
        "insert_payment",
        "update_payment",
        "insert_invoice",
        "update_invoice",
        "next_invoice_sequence",
        "append_audit",
        "insert_notifications",
        "claim_key",
        "set_customer_ref",
        "complete_reaction",
        "complete_reactions",
    }
)


class ProcessDied(BaseException):
    """The process died at a write (nothing in paykit may catch it)."""


class Dies:
    """Delegates to a storage and dies just before (``before=True``) or after its ``die_at``-th write."""

    def __init__(self, inner: AsyncStorage, die_at: int = 0, *, before: bool = False) -> None:
        self.inner = inner
        self.die_at = die_at
        self.before = before
        self.writes: list[str] = []

    async def write_batch(self, writes: Sequence[Write]) -> int:
        """One crash point per write of a batch, as a server may stop between any two of them."""
        return await write_each(self, writes)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in WRITES:
            return attribute

        async def write(*args: Any, **kwargs: Any) -> Any:
            if self.before and len(self.writes) + 1 == self.die_at:
                raise ProcessDied(name)
            result = await attribute(*args, **kwargs)
            self.writes.append(name)
            if not self.before and len(self.writes) == self.die_at:
                raise ProcessDied(name)
            return result

        return write


async def scenario(service: AsyncPaymentService) -> str:
    sub = await service.create_subscription(
        user_id="u1",
        plan=Plan(amount=Money.of("12.500", "KWD")),
        provider="fake",
        payment_method="pm_card_visa",
        start=START,
        idempotency_key="sub-1",
    )
    await service.bill_due()
    return sub.id


async def outcome(service: AsyncPaymentService, fake: AsyncFakeProvider, sub_id: str) -> tuple[Any, ...]:
    sub = await service.get_subscription(sub_id)
    payments = (await service.list_payments(user_id="u1")).items
    invoice = await service.get_invoice(keyed_id("inv", "invoice", f"billing:{sub_id}:0:12500"))
    charged = Counter(s.payment_id for s in fake._payments.values() if s.status == PaymentStatus.SUCCEEDED)
    notes = Counter((n.kind.value, n.subject_id) for n in await service.list_notifications("u1", limit=500))
    payment_audit = []
    for p in payments:
        payment_audit += [e.action.value for e in await service.audit_trail(p.id)]
    return (
        (sub.status, sub.period, sub.attempt, sub.current_period_end, sub.due_at, sub.payment_id, sub.lease_until),
        sorted((p.id, p.status, p.amount, p.invoice_id) for p in payments),
        (invoice.status, invoice.total, invoice.payment_id),
        sorted(charged.items()),
        len({c.idempotency_key for c in fake.calls_to("create_payment")}),
        sorted(e.action.value for e in await service.audit_trail(sub_id)),
        sorted(payment_audit),
        sorted(notes.items()),
    )


async def run(make_storage: Any, behavior: str, die_at: int, *, before: bool = False) -> tuple[Any, list[str]]:
    storage = make_storage()
    clock = ManualClock(START)
    fake = AsyncFakeProvider(clock=clock.unix, behavior=behavior)  # type: ignore[arg-type]
    dying = Dies(storage, die_at, before=before)
    first = AsyncPaymentService(storage=dying, providers=[fake], clock=clock)  # type: ignore[arg-type]
    try:
        sub_id = await scenario(first)
    except ProcessDied:
        clock.advance(minutes=6)  # the restart takes a while: the dead tick's lease expires
        restarted = AsyncPaymentService(storage=storage, providers=[fake], clock=clock)
        await restarted.reconcile(older_than=timedelta(0))
        sub_id = await scenario(restarted)
        await restarted.reconcile(older_than=timedelta(0))
        return await outcome(restarted, fake, sub_id), dying.writes
    clock.advance(minutes=6)
    await first.reconcile(older_than=timedelta(0))
    return await outcome(first, fake, sub_id), dying.writes


@pytest.fixture(params=storage_params(AsyncStorage))
def make_storage(request: pytest.FixtureRequest) -> Any:
    """Makes a fresh, empty storage at each call."""
    if request.param == "memory":
        return AsyncMemoryStorage
    return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "mongo_storage_factory"))


@pytest.mark.parametrize("behavior", ["succeed", "decline"])
@pytest.mark.parametrize("before", [False, True], ids=["after_write", "before_write"])
async def test_death_at_every_write_of_a_tick(make_storage: Any, behavior: str, before: bool) -> None:
    expected, writes = await run(make_storage, behavior, 0)
    assert {"insert_billing", "update_billing", "insert_invoice", "insert_payment", "update_payment"} <= set(writes)
    status = expected[0][0].value
    assert status == ("active" if behavior == "succeed" else "past_due")

    for die_at in range(1, len(writes) + 1):
        actual, _ = await run(make_storage, behavior, die_at, before=before)
        assert (die_at, writes[die_at - 1], actual) == (die_at, writes[die_at - 1], expected)


async def test_reconcile_alone_moves_the_subscription_when_the_process_dies_after_the_payment(
    make_storage: Any,
) -> None:
    """The payment's succeeded write carries the subscription's change: reconcile() alone finishes it."""
    _, writes = await run(make_storage, "succeed", 0)
    paid_at = writes.index("update_payment") + 1  # the write that records the provider's success
    storage = make_storage()
    clock = ManualClock(START)
    fake = AsyncFakeProvider(clock=clock.unix)
    dying = AsyncPaymentService(storage=Dies(storage, paid_at), providers=[fake], clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ProcessDied):
        await scenario(dying)

    restarted = AsyncPaymentService(storage=storage, providers=[fake], clock=clock)
    (sub,) = await restarted.list_subscriptions()
    assert (sub.period, sub.lease_until is not None) == (0, True)  # the tick died holding it
    report = await restarted.reconcile(older_than=timedelta(0))

    sub = await restarted.get_subscription(sub.id)
    payment = await restarted.get_payment(sub.last_payment_id or "")
    assert (report.reactions_applied, sub.period, sub.status.value, sub.lease_until) == (2, 1, "active", None)
    assert (await restarted.get_invoice(payment.invoice_id or "")).status.value == "paid"
    assert len(fake.calls_to("create_payment")) == 1


async def test_each_reaction_is_done_with_the_write_that_applies_it(make_storage: Any) -> None:
    """Dying between the invoice's paying write and the subscription's leaves only the subscription's reaction."""
    _, writes = await run(make_storage, "succeed", 0)
    assert "complete_reactions" not in writes
    invoice_paid_at = writes.index("update_payment") + 2  # the payment's write, then the invoice's
    assert writes[invoice_paid_at - 1] == "update_invoice"
    storage = make_storage()
    clock = ManualClock(START)
    fake = AsyncFakeProvider(clock=clock.unix)
    dying = AsyncPaymentService(storage=Dies(storage, invoice_paid_at), providers=[fake], clock=clock)  # type: ignore[arg-type]
    with pytest.raises(ProcessDied):
        await scenario(dying)

    assert [r.kind for r in await storage.list_pending_reactions(limit=10)] == ["billing_paid"]
    restarted = AsyncPaymentService(storage=storage, providers=[fake], clock=clock)
    report = await restarted.reconcile(older_than=timedelta(0))

    (sub,) = await restarted.list_subscriptions()
    assert (report.reactions_applied, sub.period, sub.lease_until) == (1, 1, None)
    assert await storage.list_pending_reactions(limit=10) == []
