# Generated from tests/_async/storage/test_billing_contract.py by scripts/unasync.py: do not edit.
"""The storage contract of subscriptions and installment plans, on every storage of both APIs.

Insert, read back every field, compare-and-set with effects, list by user and
kind, and the billing tick's due query (due date reached, lease free, earliest first).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from paykit._errors import DuplicateRecordError
from paykit._models import AuditAction, AuditEntry, Dunning, Installment, InstallmentPlan, Plan, Subscription
from paykit._money import Money
from paykit._status import PaymentStatus, SubscriptionStatus
from paykit.storage import Storage
from paykit.storage._base import Reaction, Write

from ...storage.records import T0, at, bump, make_payment


def make_subscription(sid: str = "sub_1", *, user: str = "u1", when: int = 0, **changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": sid,
        "user_id": user,
        "provider": "fake",
        "payment_method": "pm_1",
        "plan": Plan(amount=Money.of("4.990", "KWD"), interval="month", interval_count=2, trial_days=7, name="Pro"),
        "next_plan": Plan(amount=Money.of("49.000", "KWD"), interval="year"),
        "dunning": Dunning(retry_days=(2, 4), final_status="unpaid", remind_days=None),
        "anchor": at(when),
        "renews_at": at(when),
        "due_at": at(when),
        "metadata": {"k": "v"},
        "created_at": at(when),
        "updated_at": at(when),
    }
    fields.update(changes)
    return Subscription(**fields)


def make_plan(pid: str = "ipl_1", *, when: int = 0, **changes: Any) -> InstallmentPlan:
    items = tuple(
        Installment(number=k + 1, amount=Money.of(a, "JPY"), due_at=at(when + 60 * k))
        for k, a in enumerate(["334", "333", "333"])
    )
    fields: dict[str, Any] = {
        "id": pid,
        "user_id": "u1",
        "provider": "fake",
        "total": Money.of("1000", "JPY"),
        "installments": items,
        "renews_at": at(when),
        "due_at": at(when),
        "created_at": at(when),
        "updated_at": at(when),
    }
    fields.update(changes)
    return InstallmentPlan(**fields)


def audit(record_id: str, version: int) -> AuditEntry:
    return AuditEntry(
        id=f"{record_id}:v{version}:x",
        action=AuditAction.SUBSCRIPTION_PAUSE,
        subject_type="subscription",
        subject_id=record_id,
        actor="t",
        at=T0,
    )


class TestRecords:
    def test_round_trip_keeps_every_field(self, storage: Storage) -> None:
        sub = make_subscription(lease_until=at(5), lease_token="lease_1", status=SubscriptionStatus.PAST_DUE)
        plan = make_plan()
        storage.insert_billing(sub)
        storage.insert_billing(plan)
        assert storage.get_billing(sub.id) == sub
        assert storage.get_billing(plan.id) == plan
        assert storage.get_billing("nope") is None

    def test_a_second_insert_of_an_id_is_refused(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription())
        with pytest.raises(DuplicateRecordError):
            storage.insert_billing(make_subscription())

    def test_compare_and_set_writes_its_effects_only_when_it_wins(self, storage: Storage) -> None:
        sub = make_subscription()
        storage.insert_billing(sub)
        paused = sub.model_copy(update={"status": SubscriptionStatus.PAUSED, "version": 1})
        assert storage.update_billing(paused, expected_version=0, effects=[audit(sub.id, 1)])
        late = sub.model_copy(update={"status": SubscriptionStatus.CANCELED, "version": 1})
        assert not storage.update_billing(late, expected_version=0, effects=[audit(sub.id, 99)])
        assert storage.get_billing(sub.id) == paused
        assert [e.id for e in storage.list_audit(sub.id, limit=10)] == [f"{sub.id}:v1:x"]

    def test_lists_by_user_and_kind_newest_first(self, storage: Storage) -> None:
        for k in range(3):
            storage.insert_billing(make_subscription(f"sub_{k}", when=k))
        storage.insert_billing(make_subscription("sub_other", user="u2", when=9))
        storage.insert_billing(make_plan(when=5))
        found = storage.list_billing(user_id="u1", kind="subscription", limit=10)
        assert [r.id for r in found] == ["sub_2", "sub_1", "sub_0"]
        assert [r.id for r in storage.list_billing(user_id=None, kind=None, limit=2)] == ["sub_other", "ipl_1"]
        assert [r.id for r in storage.list_billing(user_id="u1", kind="installment_plan", limit=10)] == ["ipl_1"]


class TestDueQuery:
    def test_due_and_free_records_earliest_first(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription("sub_late", due_at=at(30)))
        storage.insert_billing(make_subscription("sub_early", due_at=at(10)))
        storage.insert_billing(make_plan("ipl_mid", due_at=at(20)))
        storage.insert_billing(make_subscription("sub_future", due_at=at(100)))
        storage.insert_billing(make_subscription("sub_none", due_at=None))
        storage.insert_billing(make_subscription("sub_leased", due_at=at(0), lease_until=at(60)))
        storage.insert_billing(make_subscription("sub_expired", due_at=at(5), lease_until=at(40)))

        due = storage.list_billing_due(now=at(50), limit=10)

        assert [r.id for r in due] == ["sub_expired", "sub_early", "ipl_mid", "sub_late"]
        assert [r.id for r in storage.list_billing_due(now=at(50), limit=2)] == ["sub_expired", "sub_early"]
        assert storage.list_billing_due(now=at(50), limit=0) == []

    def test_a_due_date_at_now_is_due(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription(due_at=at(10)))
        assert [r.id for r in storage.list_billing_due(now=at(10), limit=5)] == ["sub_1"]
        assert storage.list_billing_due(now=at(9), limit=5) == []


class TestClaimDue:
    """claim_billing_due: the due query and the lease in one atomic write."""

    def test_claims_what_the_due_query_lists_first_and_writes_the_lease(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription("sub_late", due_at=at(30)))
        storage.insert_billing(make_subscription("sub_leased", due_at=at(0), lease_until=at(60)))
        storage.insert_billing(make_subscription("sub_future", due_at=at(100)))
        storage.insert_billing(make_subscription("sub_expired", due_at=at(5), lease_until=at(40), lease_token="x"))

        claimed = storage.claim_billing_due(now=at(50), lease_until=at(350), token="t1")

        assert claimed is not None
        record, before = claimed
        assert (record.id, before, record.lease_until, record.lease_token) == ("sub_expired", at(40), at(350), "t1")
        assert (record.version, record.updated_at) == (1, at(50))
        assert storage.get_billing("sub_expired") == record
        assert [r.id for r in storage.list_billing_due(now=at(50), limit=10)] == ["sub_late"]

    def test_takes_each_record_once_then_none(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription("sub_a", due_at=at(1)))
        storage.insert_billing(make_plan("ipl_b", due_at=at(2)))

        first = storage.claim_billing_due(now=at(10), lease_until=at(20), token="t1")
        second = storage.claim_billing_due(now=at(10), lease_until=at(20), token="t2")
        third = storage.claim_billing_due(now=at(10), lease_until=at(20), token="t3")

        assert first is not None
        assert second is not None
        assert (first[0].id, first[1], second[0].id, second[0].kind, third) == (
            "sub_a",
            None,
            "ipl_b",
            "installment_plan",
            None,
        )

    def test_skips_excluded_ids(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription("sub_a", due_at=at(1)))
        storage.insert_billing(make_subscription("sub_b", due_at=at(2)))

        claimed = storage.claim_billing_due(now=at(10), lease_until=at(20), token="t", exclude=["sub_a"])

        assert claimed is not None
        assert claimed[0].id == "sub_b"
        assert storage.claim_billing_due(now=at(10), lease_until=at(20), token="t", exclude=["sub_a"]) is None

    def test_a_claimed_record_is_written_by_compare_and_set_from_the_returned_version(self, storage: Storage) -> None:
        storage.insert_billing(make_subscription(due_at=at(1)))
        claimed = storage.claim_billing_due(now=at(10), lease_until=at(20), token="t")
        assert claimed is not None
        record = claimed[0]

        moved = record.model_copy(update={"lease_until": None, "lease_token": None, "version": record.version + 1})
        stale = record.model_copy(update={"version": record.version})

        assert storage.update_billing(moved, expected_version=record.version) is True
        assert storage.update_billing(stale, expected_version=record.version - 1) is False


class TestWriteBatch:
    """Several records in order, one command where the server has one; the first failure stops the rest."""

    def test_inserts_and_compare_and_sets_with_their_effects(self, storage: Storage) -> None:
        sub = make_subscription()
        storage.insert_billing(sub)
        payment = make_payment()
        paid = bump(payment, status=PaymentStatus.SUCCEEDED, provider_ref="pi_1")
        moved = sub.model_copy(update={"period": 1, "version": 1})
        done = Reaction(id="r1", kind="billing_paid", target_id=sub.id, payment_id=payment.id, created_at=T0, done=True)

        assert storage.write_batch([Write(payment)]) == 1
        made = storage.write_batch(
            [
                Write(paid, [replace(done, done=False)], expected_version=0),
                Write(moved, [audit(sub.id, 1), done], expected_version=0),
            ]
        )

        assert made == 2
        assert (storage.get_payment(payment.id), storage.get_billing(sub.id)) == (paid, moved)
        assert storage.find_payment_by_provider_ref("fake", "pi_1") == paid
        assert [e.id for e in storage.list_audit(sub.id, limit=10)] == [f"{sub.id}:v1:x"]
        assert storage.list_pending_reactions(limit=10) == []
        assert storage.write_batch([]) == 0

    def test_a_taken_id_stops_the_batch_where_it_is(self, storage: Storage) -> None:
        storage.insert_payment(make_payment("pay_2"))

        made = storage.write_batch([Write(make_subscription()), Write(make_payment("pay_2")), Write(make_plan())])

        assert made == 1
        assert (storage.get_billing("sub_1") is not None, storage.get_billing("ipl_1")) == (True, None)

    def test_a_lost_race_stops_the_batch_and_writes_nothing_after_it(self, storage: Storage) -> None:
        sub = make_subscription()
        payment = make_payment()
        storage.insert_billing(sub)
        storage.insert_payment(payment)
        assert storage.update_payment(bump(payment), expected_version=0)
        stale = bump(payment, status=PaymentStatus.SUCCEEDED)  # version 1 over 0: another writer won
        moved = sub.model_copy(update={"period": 1, "version": 1})

        made = storage.write_batch(
            [Write(stale, expected_version=0), Write(moved, [audit(sub.id, 1)], expected_version=0)]
        )

        assert made == 0
        assert (storage.get_payment(payment.id), storage.get_billing(sub.id)) == (bump(payment), sub)
        assert storage.list_audit(sub.id, limit=10) == []

    def test_a_taken_provider_reference_is_refused(self, storage: Storage) -> None:
        storage.insert_payment(make_payment("pay_2", provider_ref="pi_taken"))
        payment = make_payment()
        storage.insert_payment(payment)

        with pytest.raises(DuplicateRecordError):
            storage.write_batch([Write(bump(payment, provider_ref="pi_taken"), expected_version=0)])

        assert storage.get_payment(payment.id) == payment

    def test_a_bad_version_is_a_bug(self, storage: Storage) -> None:
        sub = make_subscription()
        storage.insert_billing(sub)

        with pytest.raises(ValueError, match="expected_version"):
            storage.write_batch([Write(sub.model_copy(update={"version": 5}), expected_version=0)])
