"""The refund settle rule: an answer counted once, also when the provider's event came first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paykit import Money, Payment, PaymentStatus, Refund, RefundStatus
from paykit._decisions import refunds as dr

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _payment(**extra: Any) -> Payment:
    fields: dict[str, Any] = {
        "id": "pay_1",
        "user_id": "u1",
        "provider": "fake",
        "amount": Money.of("12.50", "USD"),
        "status": PaymentStatus.SUCCEEDED,
        "provider_ref": "pi_1",
        "captured_minor": 1250,
        "version": 3,
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }
    return Payment(**fields)


def _refund(**extra: Any) -> Refund:
    fields: dict[str, Any] = {
        "id": "re_1",
        "payment_id": "pay_1",
        "user_id": "u1",
        "provider": "fake",
        "amount": Money.of("5.00", "USD"),
        "attempts": 1,
        "version": 3,
        "created_at": NOW,
        "updated_at": NOW,
        **extra,
    }
    return Refund(**fields)


def test_an_answer_counts_a_reserved_refund() -> None:
    current = _payment(pending_refunds={"re_1": 500})

    change = dr.settle(current, _refund(), RefundStatus.SUCCEEDED, now=NOW, provider_ref="re_fake_1")

    assert change.outcome == "succeeded"
    assert change.updates["settled_refunds"] == {"re_1": 500}
    assert change.updates["pending_refunds"] == {}
    assert change.updates["status"] == PaymentStatus.PARTIALLY_REFUNDED
    (record,) = change.effects
    assert isinstance(record, Refund)
    assert (record.status, record.provider_ref, record.version) == (RefundStatus.SUCCEEDED, "re_fake_1", 4)
    assert record.model_fields_set >= {"status", "provider_ref", "version", "updated_at"}


def test_an_answer_after_its_event_takes_over_the_refund_counted_from_outside() -> None:
    external = dr.external_refund_id("fake", "re_fake_1")
    current = _payment(pending_refunds={"re_1": 500}, settled_refunds={"re_other": 100, external: 500})

    change = dr.settle(current, _refund(), RefundStatus.SUCCEEDED, now=NOW, provider_ref="re_fake_1")

    assert change.outcome == "succeeded"
    assert change.updates == {"pending_refunds": {}, "settled_refunds": {"re_other": 100, "re_1": 500}}
    ours, outside = change.effects
    assert (ours.id, ours.status, ours.provider_ref) == ("re_1", RefundStatus.SUCCEEDED, "re_fake_1")
    assert (outside.id, outside.status, outside.provider_ref) == (external, RefundStatus.CANCELED, "re_fake_1")


def test_an_answer_with_other_refunds_counted_is_counted_on_its_own() -> None:
    current = _payment(pending_refunds={"re_1": 500}, settled_refunds={"re_other": 100}, refunded_minor=100)

    change = dr.settle(current, _refund(), RefundStatus.SUCCEEDED, now=NOW, provider_ref="re_fake_1")

    assert change.updates["settled_refunds"] == {"re_other": 100, "re_1": 500}
    assert change.updates["refunded_minor"] == 600
