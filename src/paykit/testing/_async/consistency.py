# Source of the generated sync twin (scripts/unasync.py): edit here.
"""assert_consistent(): what must always hold between paykit's records and the fake provider's."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..._models import NotificationKind, Payment, RefundStatus
from ..._status import PaymentStatus, can_transition
from .._stripe_fake import IDEMPOTENCY_RETENTION, StripeFake

if TYPE_CHECKING:
    from ..._async.service import AsyncPaymentService
    from .._chaos import Chaos

__all__ = ["assert_consistent"]

_S = PaymentStatus
_INTENT_STATUS: dict[str, frozenset[PaymentStatus]] = {
    "requires_payment_method": frozenset({_S.PENDING}),
    "requires_confirmation": frozenset({_S.PENDING}),
    "requires_action": frozenset({_S.REQUIRES_ACTION}),
    "processing": frozenset({_S.PROCESSING}),
    "requires_capture": frozenset({_S.AUTHORIZED}),
    "succeeded": frozenset({_S.SUCCEEDED, _S.PARTIALLY_REFUNDED, _S.REFUNDED}),
    "canceled": frozenset({_S.CANCELED}),
}
_REFUND_STATUS = {
    "pending": RefundStatus.PENDING,
    "requires_action": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}


async def assert_consistent(
    service: AsyncPaymentService,
    fake: StripeFake,
    *,
    reconcile: bool = True,
    chaos: Chaos | None = None,
) -> int:
    """Assert that paykit's payments agree with the fake Stripe account, and with themselves.

    First (unless ``reconcile=False``) it runs ``service.reconcile()`` as a
    production job would, with the fake's faults off: two minutes later, and
    again 25 hours later, once Stripe has forgotten the idempotency keys (a 500
    Stripe saved for a key is replayed until then). It moves ``fake.clock``,
    which must be the service's clock. Then, for every Stripe payment in storage:

    - it reached Stripe, and Stripe's PaymentIntent has the status and the
      captured amount paykit has (nothing pending at paykit that is settled at Stripe);
    - refunded amounts agree, each refund has Stripe's status, and neither side
      refunded more than it captured;
    - its status never moved backwards: every status change in its audit trail is
      a legal step, each status is left at most once, and they chain up to its status;
    - one ``status_changed`` notification per status change, and at most one
      ``payment_succeeded`` / ``payment_failed``;

    and no paykit payment was charged twice (two PaymentIntents both succeeded).

    Args:
        service: The service under test.
        fake: The fake Stripe account it talks to.
        reconcile: Run ``reconcile()`` first, as a production job would.
        chaos: Its seed and decisions are added to the failure message.

    Returns:
        How many payments were checked.

    Raises:
        AssertionError: Every inconsistency found, one per line.
    """
    if reconcile:
        steering, fake.on_request = fake.on_request, None
        try:
            # As a job every minute would, then again once Stripe has forgotten the idempotency
            # keys (24 h): a replayed 500 keeps a payment pending until then, never longer.
            for wait in (timedelta(minutes=2), IDEMPOTENCY_RETENTION + timedelta(hours=1)):
                fake.clock.advance(wait)
                for _ in range(5):
                    report = await service.reconcile(older_than=timedelta(minutes=1), recheck_refunds_since=wait * 2)
                    if not report.updated and not report.errors and not report.effects_flushed:
                        break
        finally:
            fake.on_request = steering
    problems: list[str] = []
    payments: list[Payment] = []
    cursor: str | None = None
    while True:
        page = await service.list_payments(limit=500, cursor=cursor)
        payments.extend(p for p in page.items if p.provider == "stripe")
        cursor = page.next_cursor
        if cursor is None:
            break
    known = {p.id for p in payments}
    for payment in payments:
        problems.extend(await _check_payment(service, fake, payment))
    succeeded: dict[str, list[str]] = {}
    for intent in fake.intents.values():
        paykit_id = intent["metadata"].get("paykit_payment_id")
        if paykit_id is None:
            continue
        if paykit_id not in known:
            problems.append(f"Stripe {intent['id']} names paykit payment {paykit_id}, which storage does not have")
        if intent["status"] == "succeeded":
            succeeded.setdefault(paykit_id, []).append(intent["id"])
    problems.extend(
        f"payment {pid} was charged {len(ids)} times: {', '.join(ids)}"
        for pid, ids in succeeded.items()
        if len(ids) > 1
    )
    if problems:
        context = f"\n{chaos.report()}" if chaos is not None else ""
        raise AssertionError("paykit and Stripe disagree:\n- " + "\n- ".join(problems) + context)
    return len(payments)


async def _check_payment(service: AsyncPaymentService, fake: StripeFake, payment: Payment) -> list[str]:
    name = f"payment {payment.id} ({payment.status.value})"
    problems: list[str] = []
    explanation = await service.explain(payment.id)
    problems.extend(_check_history(name, payment, explanation.audit, explanation.notifications))
    if payment.provider_ref is None:
        if payment.status not in {_S.FAILED, _S.CANCELED}:
            problems.append(f"{name} never reached Stripe and is still pending")
        return problems
    intent = fake.intents.get(payment.provider_ref)
    if intent is None:
        return [*problems, f"{name}: Stripe has no PaymentIntent {payment.provider_ref}"]
    allowed = _INTENT_STATUS.get(intent["status"], frozenset())
    if intent["status"] == "requires_payment_method" and intent["last_payment_error"] is not None:
        allowed = allowed | {_S.FAILED}
    if payment.status not in allowed:
        problems.append(f"{name}: Stripe's PaymentIntent {intent['id']} is {intent['status']}")
    # Stripe's units per paykit minor unit (100 for ISK's two-decimal quirk, else 1).
    scale = intent["amount"] // payment.amount.minor_units if payment.amount.minor_units else 1
    if payment.captured_minor * scale != intent["amount_received"]:
        problems.append(
            f"{name}: captured {payment.captured_minor} here, {intent['amount_received']} at Stripe ({intent['id']})"
        )
    stripe_refunds = fake.refunds_of(intent["id"])
    stripe_refunded = sum(r["amount"] for r in stripe_refunds if r["status"] == "succeeded")
    if payment.refunded_minor * scale != stripe_refunded:
        problems.append(f"{name}: refunded {payment.refunded_minor} here, {stripe_refunded} at Stripe")
    if payment.refunded_minor > payment.captured_minor:
        problems.append(f"{name}: refunded {payment.refunded_minor}, more than captured {payment.captured_minor}")
    if stripe_refunded > intent["amount_received"]:
        problems.append(f"{name}: Stripe refunded {stripe_refunded}, more than it received")
    by_paykit_id = {r["metadata"].get("paykit_refund_id"): r for r in stripe_refunds}
    local = {r.id: r for r in explanation.refunds}
    for refund in explanation.refunds:
        remote = by_paykit_id.get(refund.id)
        if remote is None:
            if refund.status in {RefundStatus.SUCCEEDED, RefundStatus.PENDING}:
                problems.append(f"{name}: refund {refund.id} is {refund.status.value} here, Stripe has none")
            continue
        if _REFUND_STATUS[remote["status"]] != refund.status:
            problems.append(f"{name}: refund {refund.id} is {refund.status.value} here, {remote['status']} at Stripe")
        if refund.amount.minor_units * scale != remote["amount"]:
            problems.append(
                f"{name}: refund {refund.id} is {refund.amount.minor_units} here, {remote['amount']} at Stripe"
            )
    problems.extend(
        f"{name}: Stripe Refund {remote['id']} names paykit refund {rid}, which storage does not have"
        for rid, remote in by_paykit_id.items()
        if rid is not None and rid not in local
    )
    return problems


def _check_history(name: str, payment: Payment, audit: Any, notifications: Any) -> list[str]:
    problems: list[str] = []
    changes = [
        (e.status_before, e.status_after)
        for e in audit
        if e.subject_type == "payment" and e.status_before is not None and e.status_before != e.status_after
    ]
    left: dict[str, str] = {}
    for before, after in changes:
        if not can_transition(PaymentStatus(before), PaymentStatus(after)):
            problems.append(f"{name}: its audit trail moves it backwards, {before} -> {after}")
        if before in left:
            problems.append(f"{name}: its audit trail leaves {before} twice (to {left[before]} and to {after})")
        left[before] = after
    status = _S.PENDING.value
    for _ in changes:
        status = left.get(status, status)
    if changes and status != payment.status.value:
        problems.append(f"{name}: its audit trail ends in {status}")
    mine = [n for n in notifications if n.subject_id == payment.id]
    counts = {kind: sum(1 for n in mine if n.kind == kind) for kind in NotificationKind}
    if counts[NotificationKind.STATUS_CHANGED] != len(changes):
        problems.append(
            f"{name}: {len(changes)} status changes but {counts[NotificationKind.STATUS_CHANGED]} "
            "status_changed notifications"
        )
    for kind, target in (
        (NotificationKind.PAYMENT_SUCCEEDED, _S.SUCCEEDED),
        (NotificationKind.PAYMENT_FAILED, _S.FAILED),
    ):
        entered = sum(1 for _, after in changes if after == target.value)
        if counts[kind] != entered:
            problems.append(
                f"{name}: entered {target.value} {entered} times but has {counts[kind]} {kind.value} notifications"
            )
    return problems
