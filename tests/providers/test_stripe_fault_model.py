"""The Stripe fault model: a real PaymentService and StripeProvider against a stateful fake Stripe.

Every scenario makes a succeeded payment at the simulator (``_stripe_sim``),
refunds part of it through ``PaymentService.refund_payment`` while one fault is
injected (a timeout after Stripe made the refund, resets before and after
sending, a 503, a 500 Stripe replays for the key, a key Stripe forgot, the
refund's webhook arriving before the refund call's answer, a pending refund whose
webhook is lost, a refund that fails later), then lets ``reconcile()`` finish
with the clock moved past ``older_than``. Afterwards, on MemoryStorage and on
MongoStorage over the suite's MongoDB-wire server alike:

- paykit's refunded total equals what Stripe refunded (its succeeded refunds);
- Stripe holds at most one refund per paykit refund id;
- nothing stays reserved unless its refund is pending at Stripe;
- the payment's status follows the total (succeeded, partially_refunded, refunded);
- the audit trail has one refund entry per change of the money, never two.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from paykit import Money, PaymentService, PaymentStatus
from paykit._errors import IdempotencyConflictError, ProviderUnavailableError
from paykit._models import AuditAction, NotificationKind, Payment, RefundStatus
from paykit.providers.stripe import StripeProvider
from paykit.storage import MemoryStorage, Storage
from paykit.testing import ManualClock
from paykit.webhooks import handle_webhook

from ._stripe_sim import Fault, StripeSim

SECRET = "whsec_fault_model"
START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PAYMENT = Money.of("5.000", "KWD")
REFUND = Money.of("2.000", "KWD")
OLDER_THAN = timedelta(minutes=1)


@dataclass
class World:
    """One service, its Stripe adapter and the simulated Stripe account behind respx."""

    clock: ManualClock
    sim: StripeSim
    service: PaymentService

    def paid(self, user: str = "u1", amount: Money = PAYMENT) -> Payment:
        """A payment that succeeded at Stripe (created, then confirmed server-side)."""
        payment = self.service.initialize_payment(user_id=user, amount=amount, provider="stripe")
        payment = self.service.confirm_payment(payment.id, payment_method="pm_card_visa")
        assert payment.status == PaymentStatus.SUCCEEDED, payment.status
        return payment

    def reconcile(self, *, rounds: int = 1, recheck: timedelta | None = None) -> None:
        """Run ``reconcile()`` ``rounds`` times, each once the clock passed ``older_than``."""
        for _ in range(rounds):
            self.clock.advance(OLDER_THAN + timedelta(seconds=1))
            self.service.reconcile(older_than=OLDER_THAN, recheck_refunds_since=recheck)

    def check(self, payment_id: str, *, pending_at_stripe: int = 0) -> Payment:
        """Assert every invariant of the fault model for one payment; return it."""
        payment = self.service.get_payment(payment_id)
        assert payment.provider_ref is not None
        at_stripe = self.sim.refunds_of(payment.provider_ref)
        local = self.service.list_refunds(payment_id)
        # paykit's refunded total is Stripe's.
        assert payment.refunded_minor == self.sim.succeeded_minor(payment.provider_ref), (
            f"paykit counts {payment.amount_refunded}, Stripe refunded "
            f"{Money(self.sim.succeeded_minor(payment.provider_ref), payment.currency)}"
        )
        # At most one Stripe refund per paykit refund.
        per_id = Counter(r["metadata"].get("paykit_refund_id") for r in at_stripe)
        assert all(n == 1 for n in per_id.values()), f"Stripe refunds per paykit refund: {dict(per_id)}"
        # Reserved exactly while pending at Stripe.
        pending_ids = {r["metadata"].get("paykit_refund_id") for r in at_stripe if r["status"] == "pending"}
        assert set(payment.pending_refunds) == pending_ids, (
            f"reserved {sorted(payment.pending_refunds)}, pending at Stripe {sorted(pending_ids)}"
        )
        assert len(payment.pending_refunds) == pending_at_stripe
        # Every local refund record agrees with its Stripe refund.
        stripe_status = {r["metadata"].get("paykit_refund_id"): r["status"] for r in at_stripe}
        for refund in local:
            if refund.id in stripe_status:
                assert refund.status.value == stripe_status[refund.id], (refund.id, refund.status)
            else:  # never made at Stripe: it must not count, nor hold anything
                assert refund.status in {RefundStatus.FAILED, RefundStatus.CANCELED}, (refund.id, refund.status)
        succeeded_locally = sum(r.amount.minor_units for r in local if r.status == RefundStatus.SUCCEEDED)
        assert succeeded_locally == payment.refunded_minor
        # The status follows the total.
        if payment.refunded_minor == 0:
            expected = PaymentStatus.SUCCEEDED
        elif payment.refunded_minor >= payment.captured_minor:
            expected = PaymentStatus.REFUNDED
        else:
            expected = PaymentStatus.PARTIALLY_REFUNDED
        assert payment.status == expected
        # One audit entry per change of the money.
        entries = [e for e in self.service.audit_trail(payment_id) if e.action == AuditAction.PAYMENT_REFUND]
        changes = Counter((e.payload.get("refund_id"), e.payload.get("outcome")) for e in entries)
        assert all(n == 1 for n in changes.values()), f"refund audit entries: {dict(changes)}"
        counted = [e for e in entries if e.payload.get("outcome") == "succeeded"]
        reversed_ = [e for e in entries if e.payload.get("outcome") == "reversed"]
        assert len(counted) - len(reversed_) == sum(1 for r in at_stripe if r["status"] == "succeeded")
        for entry in entries:  # a refund is released as failed only if Stripe never made it, or failed it
            if entry.payload.get("outcome") == "failed":
                assert stripe_status.get(entry.payload.get("refund_id")) in {None, "failed", "canceled"}, (
                    f"refund {entry.payload.get('refund_id')} audited as failed, "
                    f"{stripe_status.get(entry.payload.get('refund_id'))} at Stripe"
                )
        return payment


@pytest.fixture(params=["memory", pytest.param("mongo", marks=pytest.mark.mongo_server)])
def fault_storage(request: pytest.FixtureRequest) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return request.getfixturevalue("real_mongo_storage")  # type: ignore[no-any-return]


@pytest.fixture
def world(fault_storage: Storage) -> Iterator[World]:
    clock = ManualClock(START)
    sim = StripeSim(clock=clock, secret=SECRET)
    provider = StripeProvider("sk_test_fault_model", webhook_secrets=[SECRET], clock=clock)
    with sim.serve(), PaymentService(storage=fault_storage, providers=[provider], clock=clock) as service:
        sim.sink = lambda body, headers: handle_webhook(service, "stripe", body, headers).status_code
        yield World(clock, sim, service)
    provider.close()
    assert not sim.faults, f"faults injected but never reached: {list(sim.faults)}"


def refund_with(world: World, payment: Payment, fault: Fault | None, *, key: str | None = "refund-1") -> str:
    """Refund ``REFUND`` of ``payment`` with ``fault`` on the first request; the paykit refund id."""
    if fault is not None:
        world.sim.faults.append(fault)
    try:
        refund = world.service.refund_payment(payment.id, amount=REFUND, idempotency_key=key)
    except ProviderUnavailableError:
        (refund,) = [r for r in world.service.list_refunds(payment.id) if r.idempotency_key == key]
    return refund.id


def outcome(call: Callable[[], object]) -> object:
    """What ``call`` returned, or the exception it raised."""
    try:
        return call()
    except Exception as exc:
        return exc


class TestCleanRefund:
    """The baseline: no fault, the webhooks after the answer."""

    def test_refund_then_webhooks(self, world: World) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, None)
        world.sim.deliver_events()
        world.reconcile()

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED
        assert world.sim.refund_posts == 1


UNCLEAR = [
    pytest.param(Fault.TIMEOUT_AFTER_SUCCESS, True, id="timeout-after-success"),
    pytest.param(Fault.RESET_BEFORE_SENDING, False, id="reset-before-sending"),
    pytest.param(Fault.RESET_AFTER_SENDING, True, id="reset-after-sending"),
    pytest.param(Fault.UNAVAILABLE_503, False, id="503"),
    pytest.param(Fault.REPLAYED_500_MADE, True, id="500-replayed-refund-made"),
    pytest.param(Fault.REPLAYED_500_NOT_MADE, False, id="500-replayed-nothing-made"),
]


class TestUnclearAnswers:
    """The refund call gets no clear answer; its webhooks are lost; reconcile() finishes it."""

    @pytest.mark.parametrize(("fault", "made"), UNCLEAR)
    def test_reconcile_settles_once(self, world: World, fault: Fault, made: bool) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, fault)
        assert len(world.sim.refunds_of(payment.provider_ref or "")) == int(made)
        held = world.service.get_payment(payment.id)
        assert refund_id in held.pending_refunds  # unclear: the reservation stays
        world.sim.lose_events()

        world.reconcile(rounds=3)

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED

    @pytest.mark.parametrize(("fault", "made"), UNCLEAR)
    def test_keyed_retry_then_reconcile(self, world: World, fault: Fault, made: bool) -> None:
        """The caller retries with its key right away, then reconcile() runs: still one refund."""
        payment = world.paid()
        refund_id = refund_with(world, payment, fault)
        for _ in range(2):
            with contextlib.suppress(ProviderUnavailableError):
                world.service.refund_payment(payment.id, amount=REFUND, idempotency_key="refund-1")
        world.sim.deliver_events()
        world.reconcile(rounds=3)

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED


class TestForgottenKey:
    """Stripe forgets a key after 24 hours: a resend with it would make a second refund."""

    @pytest.mark.parametrize("fault", [Fault.TIMEOUT_AFTER_SUCCESS, Fault.RESET_AFTER_SENDING, Fault.REPLAYED_500_MADE])
    def test_reconcile_after_the_key_expired(self, world: World, fault: Fault) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, fault)
        world.sim.lose_events()
        world.clock.advance(hours=25)

        world.reconcile(rounds=3)

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED

    def test_keyed_retry_after_the_key_expired(self, world: World) -> None:
        payment = world.paid()
        refund_with(world, payment, Fault.TIMEOUT_AFTER_SUCCESS)
        world.sim.lose_events()
        world.clock.advance(hours=25)

        world.service.refund_payment(payment.id, amount=REFUND, idempotency_key="refund-1")
        world.reconcile()

        world.check(payment.id)
        assert world.sim.refund_posts == 1

    def test_nothing_made_and_the_key_expired(self, world: World) -> None:
        """Reset before sending, a day passes: the refund is made once, by reconcile()."""
        payment = world.paid()
        refund_with(world, payment, Fault.RESET_BEFORE_SENDING)
        world.clock.advance(hours=25)

        world.reconcile(rounds=2)

        assert world.check(payment.id).amount_refunded == REFUND


class TestWebhookBeforeAnswer:
    """Stripe's refund.created and charge.refunded arrive while the refund call is still waiting."""

    def test_one_refund(self, world: World) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, Fault.WEBHOOK_FIRST)
        assert [status for _, status in world.sim.deliveries] == [200, 200]
        world.reconcile()

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED
        assert len(world.service.list_refunds(payment.id)) == 1

    def test_two_refunds_refunding_everything(self, world: World) -> None:
        payment = world.paid(amount=Money.of("4.000", "KWD"))
        refund_with(world, payment, Fault.WEBHOOK_FIRST, key="refund-1")
        refund_with(world, payment, Fault.WEBHOOK_FIRST, key="refund-2")
        world.reconcile()

        after = world.check(payment.id)
        assert (after.amount_refunded, after.status) == (Money.of("4.000", "KWD"), PaymentStatus.REFUNDED)

    def test_from_eight_threads_on_eight_payments(self, world: World) -> None:
        payments = [world.paid(user=f"u{i}") for i in range(8)]
        world.sim.faults.extend([Fault.WEBHOOK_FIRST] * 8)
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def refund(payment: Payment) -> None:
            try:
                barrier.wait()
                world.service.refund_payment(payment.id, amount=REFUND, idempotency_key=f"refund-{payment.id}")
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=refund, args=(p,)) for p in payments]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        world.reconcile()

        for payment in payments:
            assert world.check(payment.id).amount_refunded == REFUND
        assert all(status == 200 for _, status in world.sim.deliveries)


class TestMoreUnclearAnswers:
    """Unclear answers that need a lookup past page one, repeat until paykit gives up, or race a webhook."""

    def test_lookup_pages_past_newer_refunds(self, world: World) -> None:
        """The lost refund is the oldest of three: Stripe lists it on page two (two per page here)."""
        payment = world.paid(amount=Money.of("8.000", "KWD"))
        first = refund_with(world, payment, Fault.TIMEOUT_AFTER_SUCCESS, key="refund-1")
        refund_with(world, payment, None, key="refund-2")
        refund_with(world, payment, None, key="refund-3")
        world.sim.lose_events()

        world.reconcile()

        after = world.check(payment.id)
        assert after.amount_refunded == Money.of("6.000", "KWD")
        assert world.service.get_refund(first).status == RefundStatus.SUCCEEDED
        assert world.sim.refund_posts == 3

    def test_given_up_after_five_unclear_answers(self, world: World) -> None:
        """Five 503s: looked up before each resend, fresh keys from the third, then FAILED and released."""
        payment = world.paid()
        world.sim.faults.extend([Fault.UNAVAILABLE_503] * 5)
        refund_id = refund_with(world, payment, None)

        world.reconcile(rounds=6)

        after = world.check(payment.id)
        assert (after.refunded_minor, after.pending_refunds) == (0, {})
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED
        base = f"paykit-{refund_id}-refund"
        assert world.sim.keys_used == [base, base, f"{base}-3", f"{base}-4", f"{base}-5"]

    def test_webhook_first_then_the_answer_times_out(self, world: World) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, Fault.WEBHOOK_FIRST_THEN_TIMEOUT)
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED

        world.reconcile()

        assert world.check(payment.id).amount_refunded == REFUND
        assert world.sim.refund_posts == 1


class TestWhileTheRequestIsInFlight:
    """Stripe is still working on the refund (its key in use) when paykit asks again.

    Stripe answers a second request with the same key ``409 idempotency_error``
    ("another in-progress request using this key"): the outcome is unknown, not a
    refusal, so the refund must stay reserved and end counted once.
    """

    def run_held(self, world: World, payment: Payment, meanwhile: Callable[[], object]) -> tuple[object, object]:
        world.sim.faults.append(Fault.HELD)
        first: list[object] = []
        thread = threading.Thread(
            target=lambda: first.append(
                outcome(lambda: world.service.refund_payment(payment.id, amount=REFUND, idempotency_key="refund-1"))
            )
        )
        thread.start()
        assert world.sim.held.wait(10)
        try:
            second = meanwhile()
        finally:
            world.sim.release.set()
            thread.join(30)
        return first[0], second

    def test_keyed_retry_while_the_first_request_is_in_flight(self, world: World) -> None:
        payment = world.paid()

        first, retry = self.run_held(
            world,
            payment,
            lambda: outcome(
                lambda: world.service.refund_payment(payment.id, amount=REFUND, idempotency_key="refund-1")
            ),
        )
        world.sim.lose_events()
        world.reconcile()

        assert not isinstance(first, Exception), first
        assert not isinstance(retry, IdempotencyConflictError), retry
        (refund,) = world.service.list_refunds(payment.id)
        assert refund.status == RefundStatus.SUCCEEDED
        assert world.check(payment.id).amount_refunded == REFUND

    def test_reconcile_while_the_first_request_is_in_flight(self, world: World) -> None:
        payment = world.paid()

        def reconcile() -> Payment:
            world.reconcile()
            return world.service.get_payment(payment.id)

        first, during = self.run_held(world, payment, reconcile)
        world.sim.lose_events()
        world.reconcile()

        assert not isinstance(first, Exception), first
        assert isinstance(during, Payment)
        assert len(during.pending_refunds) == 1, "the refund in flight must stay reserved"
        (refund,) = world.service.list_refunds(payment.id)
        assert refund.status == RefundStatus.SUCCEEDED
        assert world.check(payment.id).amount_refunded == REFUND


class TestManyRefundsOfOnePayment:
    """Concurrent refunds of one payment, each answered only after its webhooks."""

    def test_eight_threads_on_one_payment(self, world: World) -> None:
        payment = world.paid(amount=Money.of("16.000", "KWD"))
        world.sim.faults.extend([Fault.WEBHOOK_FIRST] * 8)
        barrier = threading.Barrier(8)
        results: list[object] = []

        def refund(n: int) -> None:
            barrier.wait()
            results.append(
                outcome(lambda: world.service.refund_payment(payment.id, amount=REFUND, idempotency_key=f"r-{n}"))
            )

        threads = [threading.Thread(target=refund, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not [r for r in results if isinstance(r, Exception)]
        world.reconcile()

        after = world.check(payment.id)
        assert (after.amount_refunded, after.status) == (Money.of("16.000", "KWD"), PaymentStatus.REFUNDED)


class TestPendingRefund:
    """Stripe answers pending; the webhook that settles it is lost."""

    def test_reserved_while_pending_then_settled_by_reconcile(self, world: World) -> None:
        payment = world.paid()
        world.sim.refund_statuses.append("pending")
        refund_id = refund_with(world, payment, None)
        world.sim.lose_events()

        world.reconcile()
        world.check(payment.id, pending_at_stripe=1)  # genuinely pending: still reserved

        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.settle_refund(ref, "succeeded")
        world.sim.lose_events()
        world.reconcile()

        after = world.check(payment.id)
        assert after.amount_refunded == REFUND
        assert world.service.get_refund(refund_id).status == RefundStatus.SUCCEEDED

    def test_pending_after_a_timeout(self, world: World) -> None:
        """Made pending, answer lost, webhooks lost: looked up, then retrieved until it settles."""
        payment = world.paid()
        world.sim.refund_statuses.append("pending")
        refund_id = refund_with(world, payment, Fault.TIMEOUT_AFTER_SUCCESS)
        world.sim.lose_events()
        world.reconcile()
        world.check(payment.id, pending_at_stripe=1)

        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.settle_refund(ref, "succeeded")
        world.sim.lose_events()
        world.reconcile()

        assert world.check(payment.id).amount_refunded == REFUND


class TestRefundFailsLater:
    """A refund Stripe reports failed after paykit saw it succeed or pend."""

    def succeeded(self, world: World) -> tuple[Payment, str, str]:
        payment = world.paid()
        refund_id = refund_with(world, payment, None)
        world.sim.deliver_events()
        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        assert world.service.get_payment(payment.id).amount_refunded == REFUND
        return payment, refund_id, ref

    def test_refund_failed_webhook_reverses_it(self, world: World) -> None:
        payment, refund_id, ref = self.succeeded(world)
        world.sim.fail_refund(ref)
        world.sim.deliver_events()
        world.reconcile()

        after = world.check(payment.id)
        assert (after.refunded_minor, after.status) == (0, PaymentStatus.SUCCEEDED)
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED
        outcomes = [e.payload.get("outcome") for e in world.service.audit_trail(payment.id)]
        assert outcomes.count("reversed") == 1
        kinds = [n.kind for n in world.service.list_notifications("u1", limit=100)]
        assert kinds.count(NotificationKind.REFUND_FAILED) == 1

    def test_only_refund_updated_failed_reverses_it(self, world: World) -> None:
        """Only ``refund.updated`` (status failed) arrives; ``refund.failed`` is lost."""
        payment, refund_id, ref = self.succeeded(world)
        world.sim.fail_refund(ref)
        world.sim.events = [e for e in world.sim.events if e.type != "refund.failed"]
        world.sim.deliver_events()
        world.reconcile()

        assert world.check(payment.id).refunded_minor == 0
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED

    def test_pending_refund_that_fails_seen_only_by_retrieve(self, world: World) -> None:
        payment = world.paid()
        world.sim.refund_statuses.append("pending")
        refund_id = refund_with(world, payment, None)
        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.fail_refund(ref)
        world.sim.lose_events()

        world.reconcile()

        after = world.check(payment.id)
        assert (after.refunded_minor, after.pending_refunds) == (0, {})
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED

    def test_pending_refund_that_fails_by_webhook(self, world: World) -> None:
        payment = world.paid()
        world.sim.refund_statuses.append("pending")
        refund_id = refund_with(world, payment, None)
        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.fail_refund(ref)
        world.sim.deliver_events()
        world.reconcile()

        after = world.check(payment.id)
        assert (after.refunded_minor, after.pending_refunds) == (0, {})
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED

    def test_one_of_two_refunds_of_everything_fails(self, world: World) -> None:
        """Refunded in full by two refunds; one fails: back to partially refunded."""
        payment = world.paid(amount=Money.of("4.000", "KWD"))
        refund_with(world, payment, None, key="refund-1")
        second = refund_with(world, payment, None, key="refund-2")
        world.sim.deliver_events()
        assert world.service.get_payment(payment.id).status == PaymentStatus.REFUNDED
        ref = world.service.get_refund(second).provider_ref
        assert ref is not None
        world.sim.fail_refund(ref)
        world.sim.deliver_events()
        world.reconcile()

        after = world.check(payment.id)
        assert (after.amount_refunded, after.status) == (REFUND, PaymentStatus.PARTIALLY_REFUNDED)

    def test_delayed_success_events_after_the_failure(self, world: World) -> None:
        """Stripe does not order webhooks: refund.created and charge.refunded (succeeded) arrive after refund.failed."""
        payment = world.paid()
        refund_id = refund_with(world, payment, None)
        delayed = list(world.sim.events)  # refund.created, charge.refunded: held back by Stripe's retries
        world.sim.events.clear()
        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.fail_refund(ref)
        world.sim.deliver_events()
        assert world.service.get_payment(payment.id).refunded_minor == 0
        world.sim.events.extend(delayed)
        world.sim.deliver_events()
        world.reconcile()

        after = world.check(payment.id)
        assert after.refunded_minor == 0
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED

    @pytest.mark.parametrize("webhooks", ["lost", "delivered"])
    def test_made_during_a_timeout_then_failed_before_reconcile(self, world: World, webhooks: str) -> None:
        payment = world.paid()
        refund_id = refund_with(world, payment, Fault.TIMEOUT_AFTER_SUCCESS)
        world.sim.lose_events()
        (made,) = world.sim.refunds_of(payment.provider_ref or "")
        world.sim.fail_refund(made["id"])
        if webhooks == "lost":
            world.sim.lose_events()
        else:
            world.sim.deliver_events()

        world.reconcile(rounds=2)

        after = world.check(payment.id)
        assert (after.refunded_minor, after.pending_refunds) == (0, {})
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED
        assert world.sim.refund_posts == 1

    def test_pending_refund_canceled_seen_only_by_retrieve(self, world: World) -> None:
        payment = world.paid()
        world.sim.refund_statuses.append("pending")
        refund_id = refund_with(world, payment, None)
        ref = world.service.get_refund(refund_id).provider_ref
        assert ref is not None
        world.sim.settle_refund(ref, "canceled")
        world.sim.lose_events()

        world.reconcile()

        after = world.check(payment.id)
        assert (after.refunded_minor, after.pending_refunds) == (0, {})
        assert world.service.get_refund(refund_id).status == RefundStatus.CANCELED

    def test_succeeded_refund_that_fails_seen_only_by_retrieve(self, world: World) -> None:
        payment, refund_id, ref = self.succeeded(world)
        world.sim.fail_refund(ref)
        world.sim.lose_events()

        world.reconcile(rounds=2)
        assert world.service.get_payment(payment.id).refunded_minor > 0, "without a recheck nothing asks Stripe"
        world.reconcile(recheck=timedelta(days=7))

        assert world.check(payment.id).refunded_minor == 0
        assert world.service.get_refund(refund_id).status == RefundStatus.FAILED
