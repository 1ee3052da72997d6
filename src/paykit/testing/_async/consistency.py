# Source of the generated sync twin (scripts/unasync.py): edit here.
"""assert_consistent(): what must always hold between paykit's records and the fake provider's."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..._models import NotificationKind, Payment, RefundStatus
from ..._status import PaymentStatus, can_transition
from .._wire_fake import WireFake

if TYPE_CHECKING:
    from ..._async.service import AsyncPaymentService
    from .._chaos import Chaos

__all__ = ["assert_consistent"]

_S = PaymentStatus


async def assert_consistent(
    service: AsyncPaymentService,
    fake: WireFake,
    *,
    reconcile: bool = True,
    chaos: Chaos | None = None,
) -> int:
    """Assert that paykit's payments agree with the fake provider, and with themselves.

    ``fake`` is a :class:`~paykit.testing.StripeFake`, :class:`~paykit.testing.PayPalFake`
    or :class:`~paykit.testing.KnetFake` (any :class:`~paykit.testing.WireFake`).
    First (unless ``reconcile=False``) it runs ``service.reconcile()`` as a
    production job would, with the fake's faults off: two minutes later, and
    again an hour after the provider has forgotten the idempotency keys (24 h
    for Stripe, whose saved 500 is replayed until then). It moves ``fake.clock``,
    which must be the service's clock. Then, for every payment of that provider in storage:

    - it reached the provider, which holds it in a status and with the captured
      amount paykit has (nothing pending at paykit that is settled there);
    - refunded amounts agree, each refund has the provider's status, and neither side
      refunded more than it captured;
    - its status never moved backwards: every status change in its audit trail is
      a legal step, each status is left at most once, and they chain up to its status;
    - one ``status_changed`` notification per status change, and at most one
      ``payment_succeeded`` / ``payment_failed``;

    and no paykit payment was charged twice (two PaymentIntents both succeeded).

    Args:
        service: The service under test.
        fake: The fake provider it talks to.
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
            for wait in (timedelta(minutes=2), fake.idempotency_retention + timedelta(hours=1)):
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
        payments.extend(p for p in page.items if p.provider == fake.provider_name)
        cursor = page.next_cursor
        if cursor is None:
            break
    known = {p.id for p in payments}
    for payment in payments:
        problems.extend(await _check_payment(service, fake, payment))
    problems.extend(
        f"{fake.display_name} {ref} names paykit payment {pid}, which storage does not have"
        for ref, pid in fake.unknown_payment_ids().items()
        if pid not in known
    )
    problems.extend(
        f"payment {pid} was charged {len(ids)} times: {', '.join(ids)}"
        for pid, ids in fake.charges().items()
        if len(ids) > 1
    )
    if problems:
        context = f"\n{chaos.report()}" if chaos is not None else ""
        raise AssertionError(f"paykit and {fake.display_name} disagree:\n- " + "\n- ".join(problems) + context)
    return len(payments)


async def _check_payment(service: AsyncPaymentService, fake: WireFake, payment: Payment) -> list[str]:
    name = f"payment {payment.id} ({payment.status.value})"
    there = fake.display_name
    problems: list[str] = []
    explanation = await service.explain(payment.id)
    problems.extend(_check_history(name, payment, explanation.audit, explanation.notifications))
    if payment.provider_ref is None:
        if payment.status not in {_S.FAILED, _S.CANCELED}:
            problems.append(f"{name} never reached {there} and is still pending")
        return problems
    remote = fake.remote_payment(payment)
    if remote is None:
        return [*problems, f"{name}: {there} has nothing under {payment.provider_ref}"]
    if payment.status not in remote.allowed:
        problems.append(f"{name}: {remote.what} {remote.ref} is {remote.status}")
    if payment.captured_minor != remote.captured_minor:
        problems.append(
            f"{name}: captured {payment.captured_minor} here, {remote.captured_minor} at {there} ({remote.ref})"
        )
    if payment.refunded_minor != remote.refunded_minor:
        problems.append(f"{name}: refunded {payment.refunded_minor} here, {remote.refunded_minor} at {there}")
    if payment.refunded_minor > payment.captured_minor:
        problems.append(f"{name}: refunded {payment.refunded_minor}, more than captured {payment.captured_minor}")
    if remote.refunded_minor > remote.captured_minor:
        problems.append(f"{name}: {there} refunded {remote.refunded_minor}, more than it received")
    by_paykit_id = {r.paykit_refund_id: r for r in remote.refunds if r.paykit_refund_id is not None}
    by_ref = {r.ref: r for r in remote.refunds}
    local = {r.id: r for r in explanation.refunds}
    matched: set[str] = set()
    # A refund the provider reported (webhook first) before its API answer named it is recorded
    # once: paykit cancels its own request as "the same refund" and keeps the reported one.
    live_refs = {r.provider_ref for r in explanation.refunds if r.status is not RefundStatus.CANCELED}
    for refund in explanation.refunds:
        if refund.status is RefundStatus.CANCELED and refund.provider_ref in live_refs:
            continue
        found = by_paykit_id.get(refund.id) or (by_ref.get(refund.provider_ref) if refund.provider_ref else None)
        if found is None:
            if refund.status in {RefundStatus.SUCCEEDED, RefundStatus.PENDING}:
                problems.append(f"{name}: refund {refund.id} is {refund.status.value} here, {there} has none")
            continue
        matched.add(found.ref)
        if found.status != refund.status:
            problems.append(
                f"{name}: refund {refund.id} is {refund.status.value} here, {found.status.value} at {there}"
            )
        if refund.amount.minor_units != found.amount_minor:
            problems.append(
                f"{name}: refund {refund.id} is {refund.amount.minor_units} here, {found.amount_minor} at {there}"
            )
    problems.extend(
        f"{name}: {there} refund {remote_refund.ref} names paykit refund {rid}, which storage does not have"
        for rid, remote_refund in by_paykit_id.items()
        if rid not in local
    )
    problems.extend(
        f"{name}: {there} refund {r.ref} ({r.status.value}, {r.amount_minor}) is not in storage"
        for r in remote.refunds
        if r.paykit_refund_id is None and r.ref not in matched
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
