# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The storage contract: one suite, run unchanged against every storage of both APIs.

Written once, as async code; scripts/unasync.py generates its sync twin. The
``storage`` fixture of each side (the ``conftest.py`` above it, written by
hand) yields every backend of that API: memory and MongoDB over the suite's
server, and for the sync API mongomock too (it has no async API).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import SecretStr

from paykit._errors import DuplicateRecordError
from paykit._models import (
    Dispute,
    Invoice,
    LineItem,
    Notification,
    NotificationKind,
    NotificationPreferences,
    PaymentMethod,
    Refund,
    RefundStatus,
)
from paykit._money import Money
from paykit._status import DisputeStatus, PaymentStatus
from paykit.storage import AsyncStorage, PageCursor, WebhookEventRecord
from paykit.storage._base import Reaction

from ...storage.records import T0, at, bump, make_audit, make_notification, make_payment, released, token

pytestmark = pytest.mark.anyio


class TestPing:
    """ping() succeeds on a reachable backend."""

    async def test_ping(self, storage: AsyncStorage) -> None:
        assert await storage.ping() is None


class TestPayments:
    """Payments: insert, read back, find by provider reference, compare-and-set."""

    async def test_round_trip_keeps_every_field(self, storage: AsyncStorage) -> None:
        payment = make_payment(
            status=PaymentStatus.REQUIRES_ACTION,
            provider_ref="pi_1",
            client_secret=SecretStr("pi_1_secret_abc"),
            redirect_url="https://pay.example/1",
            next_action={"type": "redirect", "steps": [1, 2]},
            metadata={"order": "42"},
            provider_data={"tranid": "t1"},
            operation_keys={"capture": "k1"},
            captured_minor=0,
            idempotency_key="order-42",
            request_fingerprint="fp",
        )
        await storage.insert_payment(payment)

        stored = await storage.get_payment("pay_1")

        assert payment == stored
        assert stored is not None
        assert stored.client_secret.get_secret_value() == "pi_1_secret_abc"  # type: ignore[union-attr]
        assert Money.of("12.500", "KWD") == stored.amount

    async def test_found_by_capture_ref(self, storage: AsyncStorage) -> None:
        """A payment is found by the capture its provider data names, and no longer by a replaced one."""
        await storage.insert_payment(make_payment(provider_data={"capture_id": "CAP1"}))
        await storage.insert_payment(make_payment("pay_2", provider_data={"capture_id": "CAP2"}, provider="other"))
        found = await storage.find_payment_by_capture_ref("fake", "CAP1")
        assert found is not None
        moved = found.model_copy(update={"version": 1, "provider_data": {"capture_id": "CAP3"}})
        assert await storage.update_payment(moved, expected_version=0)

        assert (None, "pay_1", None) == (
            await storage.find_payment_by_capture_ref("fake", "CAP2"),
            getattr(await storage.find_payment_by_capture_ref("fake", "CAP3"), "id", None),
            await storage.find_payment_by_capture_ref("fake", "CAP1"),
        )

    async def test_missing_payment_is_none(self, storage: AsyncStorage) -> None:
        assert await storage.get_payment("nope") is None

    async def test_duplicate_id_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment())

        with pytest.raises(DuplicateRecordError):
            await storage.insert_payment(make_payment(user="u2"))

    async def test_find_by_provider_ref(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment("pay_1", provider_ref="pi_1"))
        await storage.insert_payment(make_payment("pay_2", provider_ref="pi_2"))

        found = await storage.find_payment_by_provider_ref("fake", "pi_2")

        assert (found.id if found else None) == "pay_2"
        assert await storage.find_payment_by_provider_ref("other", "pi_2") is None

    async def test_payments_without_provider_ref_do_not_collide(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment("pay_1"))
        await storage.insert_payment(make_payment("pay_2"))

        assert [p.id for p in await storage.list_payments(user_id=None, status=None, limit=10, after=None)] == [
            "pay_2",
            "pay_1",
        ]

    async def test_same_ref_on_other_provider_is_allowed(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment("pay_1", provider_ref="r1"))
        await storage.insert_payment(make_payment("pay_2", provider="other", provider_ref="r1"))

        found = await storage.find_payment_by_provider_ref("other", "r1")

        assert (found.id if found else None) == "pay_2"

    async def test_duplicate_provider_ref_on_insert_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment("pay_1", provider_ref="pi_1"))

        with pytest.raises(DuplicateRecordError):
            await storage.insert_payment(make_payment("pay_2", provider_ref="pi_1"))

    async def test_duplicate_provider_ref_on_update_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment("pay_1", provider_ref="pi_1"))
        second = make_payment("pay_2")
        await storage.insert_payment(second)

        with pytest.raises(DuplicateRecordError):
            await storage.update_payment(bump(second, provider_ref="pi_1"), expected_version=0)
        assert second == await storage.get_payment("pay_2")

    async def test_update_sets_provider_ref(self, storage: AsyncStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment)

        assert await storage.update_payment(bump(payment, provider_ref="pi_9"), expected_version=0)

        found = await storage.find_payment_by_provider_ref("fake", "pi_9")
        assert ((found.version, found.id) if found else None) == (1, "pay_1")

    async def test_compare_and_set_wins_once(self, storage: AsyncStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment)
        succeeded = bump(payment, status=PaymentStatus.SUCCEEDED, captured_minor=12500, updated_at=at(5))
        canceled = bump(payment, status=PaymentStatus.CANCELED)

        first = await storage.update_payment(succeeded, expected_version=0)
        second = await storage.update_payment(canceled, expected_version=0)

        assert (first, second) == (True, False)
        assert succeeded == await storage.get_payment("pay_1")

    async def test_update_of_missing_payment_is_false(self, storage: AsyncStorage) -> None:
        assert await storage.update_payment(bump(make_payment()), expected_version=0) is False

    async def test_new_version_must_follow_expected(self, storage: AsyncStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment)

        with pytest.raises(ValueError, match="expected_version"):
            await storage.update_payment(payment.model_copy(update={"version": 5}), expected_version=0)

    async def test_clearing_a_field_is_stored(self, storage: AsyncStorage) -> None:
        payment = make_payment(client_secret=SecretStr("s"), redirect_url="https://x")
        await storage.insert_payment(payment)
        cleared = bump(payment, client_secret=None, redirect_url=None)

        await storage.update_payment(cleared, expected_version=0)

        assert cleared == await storage.get_payment("pay_1")


class TestListing:
    """list_payments: newest first with keyset pagination; list_payments_in_status."""

    @pytest.fixture
    async def populated(self, storage: AsyncStorage) -> AsyncStorage:
        for i in range(7):
            status = PaymentStatus.SUCCEEDED if i % 2 else PaymentStatus.PENDING
            await storage.insert_payment(make_payment(f"pay_{i}", user=f"u{i % 2}", when=i // 2, status=status))
        return storage

    async def test_newest_first_ties_broken_by_id(self, populated: AsyncStorage) -> None:
        listed = await populated.list_payments(user_id=None, status=None, limit=100, after=None)

        assert [p.id for p in listed] == ["pay_6", "pay_5", "pay_4", "pay_3", "pay_2", "pay_1", "pay_0"]

    async def test_pages_cover_everything_once(self, populated: AsyncStorage) -> None:
        seen: list[str] = []
        after: PageCursor | None = None
        while True:
            page = await populated.list_payments(user_id=None, status=None, limit=3, after=after)
            if not page:
                break
            seen.extend(p.id for p in page)
            after = PageCursor(page[-1].created_at, page[-1].id)

        assert seen == ["pay_6", "pay_5", "pay_4", "pay_3", "pay_2", "pay_1", "pay_0"]

    async def test_filters_by_user_and_status(self, populated: AsyncStorage) -> None:
        by_user = await populated.list_payments(user_id="u1", status=None, limit=100, after=None)
        by_status = await populated.list_payments(user_id=None, status=PaymentStatus.PENDING, limit=2, after=None)
        both = await populated.list_payments(user_id="u0", status=PaymentStatus.SUCCEEDED, limit=100, after=None)

        assert [p.id for p in by_user] == ["pay_5", "pay_3", "pay_1"]
        assert [p.id for p in by_status] == ["pay_6", "pay_4"]
        assert both == []

    async def test_user_pages_after_cursor(self, populated: AsyncStorage) -> None:
        page = await populated.list_payments(user_id="u0", status=None, limit=2, after=PageCursor(at(2), "pay_4"))

        assert [p.id for p in page] == ["pay_2", "pay_0"]

    async def test_in_status_updated_before(self, populated: AsyncStorage) -> None:
        stale = await populated.list_payments_in_status(
            [PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION], updated_before=at(2), limit=10
        )

        assert [p.id for p in stale] == ["pay_0", "pay_2"]

    async def test_refunding_lists_only_payments_holding_reservations(self, storage: AsyncStorage) -> None:
        """Reservations are found while held and forgotten once released."""
        held = make_payment("pay_a", status=PaymentStatus.SUCCEEDED, pending_refunds={"re_1": 500})
        await storage.insert_payment(held)
        await storage.insert_payment(make_payment("pay_b", status=PaymentStatus.SUCCEEDED))
        await storage.insert_payment(make_payment("pay_c", when=5, pending_refunds={"re_2": 100}))

        assert ["pay_a"] == [p.id for p in await storage.list_payments_refunding(updated_before=at(1), limit=10)]

        await storage.update_payment(bump(held, pending_refunds={}, updated_at=at(2)), expected_version=0)

        assert ["pay_c"] == [p.id for p in await storage.list_payments_refunding(updated_before=at(9), limit=10)]


class TestRefunds:
    """Refunds: insert, read back, compare-and-set, list per payment oldest first."""

    @staticmethod
    def make_refund(rid: str, *, payment_id: str = "pay_1", when: int = 0) -> Refund:
        return Refund(
            id=rid,
            payment_id=payment_id,
            user_id="u1",
            provider="fake",
            amount=Money.of("1.250", "KWD"),
            reason="requested_by_customer",
            created_at=at(when),
            updated_at=at(when),
        )

    async def test_round_trip_and_list(self, storage: AsyncStorage) -> None:
        refunds = [self.make_refund("re_b", when=0), self.make_refund("re_a", when=1)]
        for refund in refunds:
            await storage.insert_refund(refund)
        await storage.insert_refund(self.make_refund("re_other", payment_id="pay_2"))

        assert refunds[0] == await storage.get_refund("re_b")
        assert refunds == await storage.list_refunds("pay_1")
        assert await storage.get_refund("nope") is None

    async def test_duplicate_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_refund(self.make_refund("re_1"))

        with pytest.raises(DuplicateRecordError):
            await storage.insert_refund(self.make_refund("re_1"))

    async def test_compare_and_set(self, storage: AsyncStorage) -> None:
        refund = self.make_refund("re_1")
        await storage.insert_refund(refund)
        done = refund.model_copy(update={"version": 1, "status": RefundStatus.SUCCEEDED, "provider_ref": "r"})

        assert (
            await storage.update_refund(done, expected_version=0),
            await storage.update_refund(done, expected_version=0),
        ) == (True, False)
        assert done == await storage.get_refund("re_1")

    async def test_succeeded_since(self, storage: AsyncStorage) -> None:
        """Only SUCCEEDED refunds changed at or after the time, oldest change first, up to the limit."""
        succeeded = [
            self.make_refund(f"re_s{i}", when=i).model_copy(update={"status": RefundStatus.SUCCEEDED})
            for i in (3, 1, 2, 0)
        ]
        for refund in [*succeeded, self.make_refund("re_pending", when=5)]:
            await storage.insert_refund(refund)

        found = await storage.list_refunds_succeeded_since(since=at(1), limit=10)

        assert ["re_s1", "re_s2", "re_s3"] == [r.id for r in found]
        assert ["re_s1"] == [r.id for r in await storage.list_refunds_succeeded_since(since=at(1), limit=1)]

    async def test_in_status_oldest_change_first(self, storage: AsyncStorage) -> None:
        """Refunds awaiting approval are found by status (with the approval fields kept), up to the limit."""
        held = [
            self.make_refund(f"re_h{i}", when=i).model_copy(
                update={
                    "status": RefundStatus.AWAITING_APPROVAL,
                    "requested_by": "clerk",
                    "approver_role": "refund_approver",
                    "approval_expires_at": at(100),
                }
            )
            for i in (2, 0, 1)
        ]
        for refund in [*held, self.make_refund("re_pending", when=3)]:
            await storage.insert_refund(refund)

        found = await storage.list_refunds_in_status(RefundStatus.AWAITING_APPROVAL, limit=10)

        assert ["re_h0", "re_h1", "re_h2"] == [r.id for r in found]
        assert held[1] == found[0]
        assert 1 == len(await storage.list_refunds_in_status(RefundStatus.AWAITING_APPROVAL, limit=1))


class TestUsageCounters:
    """add_usage: a counter that a conditional addition never takes past its maximums."""

    async def test_count_stops_at_its_maximum(self, storage: AsyncStorage) -> None:
        added = [
            await storage.add_usage("k", count=1, amount_minor=0, max_count=2, max_amount_minor=None, expires_at=at(60))
            for _ in range(3)
        ]

        assert [True, True, False] == added

    async def test_amount_stops_at_its_maximum_exactly(self, storage: AsyncStorage) -> None:
        async def add(minor: int) -> bool:
            return await storage.add_usage(
                "a", count=0, amount_minor=minor, max_count=None, max_amount_minor=5000, expires_at=at(60)
            )

        assert [True, False, True, False] == [await add(4999), await add(2), await add(1), await add(1)]

    async def test_giving_back_makes_room_and_keys_are_separate(self, storage: AsyncStorage) -> None:
        async def add(key: str, count: int) -> bool:
            return await storage.add_usage(
                key, count=count, amount_minor=0, max_count=1, max_amount_minor=None, expires_at=at(60)
            )

        assert (True, False, True) == (await add("x", 1), await add("x", 1), await add("y", 1))
        assert await add("x", -1)
        assert await add("x", 1)

    async def test_a_single_addition_above_the_maximum_is_refused(self, storage: AsyncStorage) -> None:
        assert not await storage.add_usage(
            "big", count=1, amount_minor=6000, max_count=None, max_amount_minor=5000, expires_at=at(60)
        )
        assert await storage.add_usage(
            "big", count=1, amount_minor=5000, max_count=None, max_amount_minor=5000, expires_at=at(60)
        )


class TestInvoices:
    """Invoices: exact amounts and Decimal tax rates round trip; numbers are unique and sequential."""

    @staticmethod
    def make_invoice(iid: str = "inv_1", number: str = "INV-000001") -> Invoice:
        line = LineItem(
            description="Widget", quantity=3, unit_amount=Money.of("1.005", "KWD"), tax_rate=Decimal("0.05")
        )
        return Invoice(
            id=iid,
            number=number,
            user_id="u1",
            currency="KWD",
            line_items=(line,),
            subtotal=line.subtotal,
            tax=line.tax,
            total=line.total,
            created_at=T0,
            updated_at=T0,
        )

    async def test_round_trip(self, storage: AsyncStorage) -> None:
        invoice = self.make_invoice()
        await storage.insert_invoice(invoice)

        stored = await storage.get_invoice("inv_1")

        assert invoice == stored
        assert Decimal("0.05") == stored.line_items[0].tax_rate  # type: ignore[union-attr]

    async def test_duplicate_number_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_invoice(self.make_invoice("inv_1"))

        with pytest.raises(DuplicateRecordError):
            await storage.insert_invoice(self.make_invoice("inv_2"))

    async def test_compare_and_set(self, storage: AsyncStorage) -> None:
        invoice = self.make_invoice()
        await storage.insert_invoice(invoice)
        sent = invoice.model_copy(update={"version": 1, "sent_at": at(3)})

        assert (
            await storage.update_invoice(sent, expected_version=0),
            await storage.update_invoice(sent, expected_version=0),
        ) == (True, False)
        assert sent == await storage.get_invoice("inv_1")

    async def test_sequences_are_per_series(self, storage: AsyncStorage) -> None:
        numbers = [await storage.next_invoice_sequence("A"), await storage.next_invoice_sequence("A")]
        numbers.append(await storage.next_invoice_sequence("B"))

        assert numbers == [1, 2, 1]


class TestPaymentMethods:
    """Saved methods and customer references."""

    @staticmethod
    def make_method(mid: str, *, when: int = 0, user: str = "u1") -> PaymentMethod:
        return PaymentMethod(
            id=mid,
            user_id=user,
            provider="fake",
            provider_ref=f"pm_{mid}",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2030,
            created_at=at(when),
            updated_at=at(when),
        )

    async def test_list_skips_deleted_oldest_first(self, storage: AsyncStorage) -> None:
        first, second, third = self.make_method("m1"), self.make_method("m2", when=1), self.make_method("m3", when=2)
        for method in (third, first, second):
            await storage.insert_payment_method(method)
        await storage.insert_payment_method(self.make_method("m4", user="u2"))
        deleted = second.model_copy(update={"version": 1, "deleted": True})

        assert await storage.update_payment_method(deleted, expected_version=0)

        assert [first, third] == await storage.list_payment_methods("u1")
        assert deleted == await storage.get_payment_method("m2")

    async def test_duplicate_is_refused(self, storage: AsyncStorage) -> None:
        await storage.insert_payment_method(self.make_method("m1"))

        with pytest.raises(DuplicateRecordError):
            await storage.insert_payment_method(self.make_method("m1"))

    async def test_customer_ref_is_set_once(self, storage: AsyncStorage) -> None:
        assert await storage.get_customer_ref("fake", "u1") is None

        first = await storage.set_customer_ref("fake", "u1", "cus_1")
        second = await storage.set_customer_ref("fake", "u1", "cus_2")

        assert (first, second, await storage.get_customer_ref("fake", "u1")) == ("cus_1", "cus_1", "cus_1")
        assert await storage.get_customer_ref("other", "u1") is None


class TestEffects:
    """Audit entries and notifications written with a change are durable exactly when it is."""

    async def test_insert_effects_are_listed(self, storage: AsyncStorage) -> None:
        audit, note = make_audit("a1"), make_notification("n1")
        await storage.insert_payment(make_payment(), [audit, note])

        assert [audit] == await storage.list_audit("pay_1", limit=10)
        assert [note] == await storage.list_notifications("u1", unread_only=False, limit=10)

    async def test_failed_compare_and_set_writes_no_effect(self, storage: AsyncStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment)

        written = await storage.update_payment(bump(payment), expected_version=7, effects=[make_audit("a1")])

        assert (written, await storage.list_audit("pay_1", limit=10)) == (False, [])

    async def test_duplicate_write_writes_no_effect(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment())

        with pytest.raises(DuplicateRecordError):
            await storage.insert_payment(make_payment(), [make_audit("a-dup"), make_notification("n-dup")])

        assert await storage.list_audit("pay_1", limit=10) == []
        assert await storage.list_notifications("u1", unread_only=False, limit=10) == []

    async def test_effects_of_every_record_kind(self, storage: AsyncStorage) -> None:
        await storage.insert_refund(TestRefunds.make_refund("re_1"), [make_audit("a-re", "re_1", payment_id="pay_1")])
        await storage.insert_invoice(TestInvoices.make_invoice(), [make_audit("a-inv", "inv_1", when=1)])
        await storage.insert_payment_method(TestPaymentMethods.make_method("m1"), [make_audit("a-m", "m1", when=2)])

        assert [e.id for e in await storage.list_audit("pay_1", limit=10)] == ["a-re"]
        assert [e.id for e in await storage.list_audit("re_1", limit=10)] == ["a-re"]
        assert [e.id for e in await storage.list_audit("inv_1", limit=10)] == ["a-inv"]
        assert [e.id for e in await storage.list_audit("m1", limit=10)] == ["a-m"]

    async def test_effect_ids_are_written_once(self, storage: AsyncStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment, [make_audit("a1"), make_notification("n1")])
        await storage.update_payment(
            bump(payment), expected_version=0, effects=[make_audit("a1"), make_notification("n1")]
        )
        await storage.append_audit([make_audit("a1")])
        await storage.insert_notifications([make_notification("n1")])

        assert [e.id for e in await storage.list_audit("pay_1", limit=10)] == ["a1"]
        assert [n.id for n in await storage.list_notifications("u1", unread_only=False, limit=10)] == ["n1"]

    async def test_nothing_pending_flushes_nothing(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment(), [make_audit("a1")])
        await storage.list_audit("pay_1", limit=1)

        assert await storage.flush_pending_effects() == 0


class TestReactions:
    """Reactions ride in a record's write and stay pending until marked done, one or many at a time."""

    @staticmethod
    def make_reaction(rid: str, when: int = 0) -> Reaction:
        return Reaction(id=rid, kind="invoice_paid", target_id="inv_1", payment_id="pay_1", created_at=at(when))

    async def test_many_are_marked_done_in_one_call_even_before_they_are_materialized(
        self, storage: AsyncStorage
    ) -> None:
        reactions = [self.make_reaction(f"r{k}", when=k) for k in range(3)]
        await storage.insert_payment(make_payment(), reactions)

        await storage.complete_reactions(["r0", "r2", "r2"])
        await storage.complete_reactions([])

        assert [r.id for r in await storage.list_pending_reactions(limit=10)] == ["r1"]

    async def test_a_done_copy_carried_by_another_write_wins_in_either_order(self, storage: AsyncStorage) -> None:
        """The write that applies a reaction carries it done: before or after the pending copy is stored."""
        await storage.insert_payment(make_payment(), [self.make_reaction("r0"), self.make_reaction("r1", when=1)])
        await storage.insert_payment(make_payment("pay_2"), [replace(self.make_reaction("r0"), done=True)])
        await storage.insert_payment(make_payment("pay_3"), [replace(self.make_reaction("r2", when=2), done=True)])
        await storage.insert_payment(make_payment("pay_4"), [self.make_reaction("r2", when=2)])

        assert [r.id for r in await storage.list_pending_reactions(limit=10)] == ["r1"]

    async def test_done_in_one_call_or_one_by_one_alike(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(make_payment(), [self.make_reaction("r0"), self.make_reaction("r1", when=1)])
        assert [r.id for r in await storage.list_pending_reactions(limit=10)] == ["r0", "r1"]

        await storage.complete_reaction("r0")
        await storage.complete_reactions(["r0", "r1"])

        assert await storage.list_pending_reactions(limit=10) == []


class TestAudit:
    """The audit trail: by subject or payment, oldest first, limited."""

    async def test_oldest_first_and_limit(self, storage: AsyncStorage) -> None:
        entries = [make_audit(f"a{i}", when=i) for i in range(4)]
        await storage.append_audit(entries[:2])
        await storage.append_audit(entries[2:])

        assert entries == await storage.list_audit("pay_1", limit=10)
        assert entries[:2] == await storage.list_audit("pay_1", limit=2)

    async def test_by_payment_id_includes_other_subjects(self, storage: AsyncStorage) -> None:
        own = make_audit("a1", "pay_1")
        refund = make_audit("a2", "re_1", when=1, payment_id="pay_1")
        await storage.append_audit([own, refund, make_audit("a3", "pay_2")])

        assert [own, refund] == await storage.list_audit("pay_1", limit=10)
        assert [refund] == await storage.list_audit("re_1", limit=10)


class TestWebhookEvents:
    """Webhook de-duplication by (provider, event_id)."""

    async def test_second_record_is_refused(self, storage: AsyncStorage) -> None:
        record = WebhookEventRecord("stripe", "evt_1", "payment_intent.succeeded", "applied", T0, "pay_1")

        first = await storage.record_webhook_event(record)
        second = await storage.record_webhook_event(WebhookEventRecord("stripe", "evt_1", "x", "duplicate", at(1)))
        other = await storage.record_webhook_event(WebhookEventRecord("paypal", "evt_1", "x", "applied", at(1)))

        assert (first, second, other) == (True, False, True)
        assert record == await storage.get_webhook_event("stripe", "evt_1")
        assert await storage.get_webhook_event("knet", "evt_1") is None


class TestNotifications:
    """The notification outbox: leases, delivery state, read flags."""

    async def test_claim_due_pending_earliest_first(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications(
            [make_notification("n2", due=2), make_notification("n1", due=1), make_notification("n9", due=9)]
        )

        claimed = await storage.claim_notifications(now=at(5), lease=timedelta(seconds=30), limit=10)

        assert [n.id for n in claimed] == ["n1", "n2"]
        assert [at(35), at(35)] == [n.lease_until for n in claimed]

    async def test_lease_hides_until_it_expires(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        lease = timedelta(seconds=30)

        first = await storage.claim_notifications(now=at(1), lease=lease, limit=10)
        during = await storage.claim_notifications(now=at(2), lease=lease, limit=10)
        after = await storage.claim_notifications(now=at(40), lease=lease, limit=10)

        assert ([n.id for n in first], [n.id for n in during], [n.id for n in after]) == (["n1"], [], ["n1"])

    async def test_limit(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification(f"n{i}", due=i) for i in range(3)])

        claimed = await storage.claim_notifications(now=at(9), lease=timedelta(seconds=5), limit=2)

        assert [n.id for n in claimed] == ["n0", "n1"]

    async def test_delivered_is_not_claimed_and_read_flag_is_kept(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=1)
        assert await storage.mark_notification_read("n1")
        delivered = released(claimed, delivery="delivered", attempts=1, delivered_to=("log",))

        assert await storage.save_notification_delivery(delivered, claim_token=token(claimed))

        assert await storage.claim_notifications(now=at(100), lease=timedelta(seconds=5), limit=1) == []
        listed = await storage.list_notifications("u1", unread_only=False, limit=10)
        assert [delivered.model_copy(update={"read": True})] == listed

    async def test_retry_schedule_is_honoured(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=1)
        await storage.save_notification_delivery(
            released(claimed, attempts=1, next_attempt_at=at(60), last_error="boom"), claim_token=token(claimed)
        )

        early = await storage.claim_notifications(now=at(30), lease=timedelta(seconds=5), limit=1)
        due = await storage.claim_notifications(now=at(60), lease=timedelta(seconds=5), limit=1)

        assert (early, [(n.attempts, n.last_error) for n in due]) == ([], [(1, "boom")])

    async def test_list_newest_first_unread_only(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications(
            [make_notification("n1", when=1), make_notification("n2", when=2), make_notification("x", user="u2")]
        )
        await storage.mark_notification_read("n2")

        every = await storage.list_notifications("u1", unread_only=False, limit=10)
        unread = await storage.list_notifications("u1", unread_only=True, limit=10)

        assert ([n.id for n in every], [n.id for n in unread]) == (["n2", "n1"], ["n1"])

    async def test_mark_unknown_is_false(self, storage: AsyncStorage) -> None:
        assert await storage.mark_notification_read("nope") is False


class TestFencedClaims:
    """Each claim stores a fresh token; only the holder of the stored token can save delivery state."""

    async def test_each_claim_gets_a_fresh_token(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1"), make_notification("n2")])

        first = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=2)
        again = await storage.claim_notifications(now=at(10), lease=timedelta(seconds=5), limit=1)

        tokens = [token(n) for n in first + again]
        assert 3 == len(set(tokens))
        assert all(len(t) >= 16 for t in tokens)
        assert [n.id for n in again] == ["n1"]

    async def test_holder_saves_progress_and_keeps_the_claim(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=30), limit=1)

        saved = await storage.save_notification_delivery(
            claimed.model_copy(update={"delivered_to": ("a",)}), claim_token=token(claimed)
        )
        hidden = await storage.claim_notifications(now=at(20), lease=timedelta(seconds=30), limit=1)
        saved_again = await storage.save_notification_delivery(
            released(claimed, delivery="delivered", delivered_to=("a", "b")), claim_token=token(claimed)
        )

        assert (saved, hidden, saved_again) == (True, [], True)
        (stored,) = await storage.list_notifications("u1", unread_only=False, limit=10)
        assert ("delivered", ("a", "b"), None, None) == (
            stored.delivery,
            stored.delivered_to,
            stored.claim_token,
            stored.lease_until,
        )

    async def test_old_claimant_cannot_mark_after_a_reclaim(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (old,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=1)
        (new,) = await storage.claim_notifications(now=at(10), lease=timedelta(seconds=5), limit=1)

        stale_progress = await storage.save_notification_delivery(
            old.model_copy(update={"delivered_to": ("a",)}), claim_token=token(old)
        )
        stale_final = await storage.save_notification_delivery(
            released(old, delivery="dead", attempts=8, last_error="late"), claim_token=token(old)
        )

        assert (stale_progress, stale_final) == (False, False)
        (stored,) = await storage.list_notifications("u1", unread_only=False, limit=10)
        assert stored == new
        assert await storage.save_notification_delivery(released(new, delivery="delivered"), claim_token=token(new))

    async def test_a_released_claim_cannot_be_saved_again(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=1)
        assert await storage.save_notification_delivery(
            released(claimed, attempts=1, next_attempt_at=at(2)), claim_token=token(claimed)
        )

        again = await storage.save_notification_delivery(released(claimed, delivery="dead"), claim_token=token(claimed))

        assert again is False
        (stored,) = await storage.list_notifications("u1", unread_only=False, limit=10)
        assert ("pending", 1) == (stored.delivery, stored.attempts)

    async def test_unclaimed_or_unknown_is_not_saved(self, storage: AsyncStorage) -> None:
        never_claimed = make_notification("n1")
        await storage.insert_notifications([never_claimed])

        assert (
            await storage.save_notification_delivery(released(never_claimed, delivery="dead"), claim_token="x" * 22)
            is False
        )
        assert await storage.save_notification_delivery(make_notification("nope"), claim_token="x" * 22) is False
        assert [never_claimed] == await storage.list_notifications("u1", unread_only=False, limit=10)

    async def test_only_delivery_fields_are_written(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(1), lease=timedelta(seconds=5), limit=1)
        tampered = released(claimed, delivery="delivered", payload={"payment_id": "other"}, read=True)

        assert await storage.save_notification_delivery(tampered, claim_token=token(claimed))

        (stored,) = await storage.list_notifications("u1", unread_only=False, limit=10)
        assert ({"payment_id": "pay_1"}, False, "delivered") == (stored.payload, stored.read, stored.delivery)


class TestStats:
    """payment_stats: counts per status, money per currency (never summed across)."""

    async def test_stats(self, storage: AsyncStorage) -> None:
        s = PaymentStatus
        await storage.insert_payment(make_payment("p1", status=s.SUCCEEDED, captured_minor=12500))
        await storage.insert_payment(
            make_payment("p2", status=s.PARTIALLY_REFUNDED, captured_minor=12500, refunded_minor=2000, when=10)
        )
        usd = Money.of("10.00", "USD")
        await storage.insert_payment(
            make_payment("p3", amount=usd, status=s.REFUNDED, captured_minor=1000, refunded_minor=1000)
        )
        await storage.insert_payment(make_payment("p4", amount=usd, when=20))
        await storage.insert_payment(make_payment("p5", amount=Money.of("5", "JPY"), status=s.FAILED, when=30))

        stats = await storage.payment_stats(created_since=at(10))

        assert (stats.count_by_status) == {
            "succeeded": 1,
            "partially_refunded": 1,
            "refunded": 1,
            "pending": 1,
            "failed": 1,
        }
        assert stats.captured_by_currency == {"KWD": 25000, "USD": 1000}
        assert stats.refunded_by_currency == {"KWD": 2000, "USD": 1000}
        assert stats.created_since == 3

    async def test_sums_are_exact_past_64_bits(self, storage: AsyncStorage) -> None:
        """Three payments each at the largest amount one can hold: the sums are exact, not wrapped or rounded."""
        top = 2**63 - 1
        huge = Money.from_minor(top, "KWD")
        for i in range(3):
            await storage.insert_payment(
                make_payment(
                    f"p{i}", amount=huge, status=PaymentStatus.SUCCEEDED, captured_minor=top, refunded_minor=top - i
                )
            )

        stats = await storage.payment_stats(created_since=T0)

        assert ({"KWD": 3 * top}, {"KWD": 3 * top - 3}) == (stats.captured_by_currency, stats.refunded_by_currency)

    async def test_empty(self, storage: AsyncStorage) -> None:
        stats = await storage.payment_stats(created_since=T0)

        assert (
            stats.count_by_status,
            stats.captured_by_currency,
            stats.refunded_by_currency,
            stats.created_since,
        ) == ({}, {}, {}, 0)


class TestWebhookEventsOfAPayment:
    """list_webhook_events: one payment's recorded events, oldest first, effects included."""

    async def test_oldest_first_only_that_payment_and_limited(self, storage: AsyncStorage) -> None:
        late = WebhookEventRecord("fake", "evt_2", "payment.processing", "stale", at(5), "pay_1")
        early = WebhookEventRecord("fake", "evt_1", "payment.succeeded", "applied", at(1), "pay_1")
        await storage.record_webhook_event(late)
        await storage.record_webhook_event(early)
        await storage.record_webhook_event(
            WebhookEventRecord("fake", "evt_3", "payment.succeeded", "applied", at(2), "p2")
        )
        await storage.record_webhook_event(WebhookEventRecord("fake", "evt_4", "ping", "ignored", at(3)))

        assert [early, late] == await storage.list_webhook_events("pay_1", limit=10)
        assert [early] == await storage.list_webhook_events("pay_1", limit=1)
        assert [] == await storage.list_webhook_events("pay_9", limit=10)

    async def test_records_written_as_effects_are_listed(self, storage: AsyncStorage) -> None:
        """A record that rode in the payment's own write is listed (a storage with outboxes flushes first)."""
        payment = make_payment()
        await storage.insert_payment(payment)
        record = WebhookEventRecord("fake", "evt_1", "payment.succeeded", "duplicate", at(1), "pay_1")

        assert await storage.update_payment(bump(payment), expected_version=0, effects=[record])

        assert [record] == await storage.list_webhook_events("pay_1", limit=10)


class TestNotificationsAboutSubjects:
    """list_notifications_for: notifications about given subjects, oldest first, with delivery state."""

    @staticmethod
    def about(nid: str, subject: str, *, when: int, user: str = "u1") -> Notification:
        return make_notification(nid, user=user, when=when).model_copy(update={"subject_id": subject})

    async def test_only_those_subjects_oldest_first_and_limited(self, storage: AsyncStorage) -> None:
        await storage.insert_notifications(
            [
                self.about("n3", "re_1", when=3),
                self.about("n1", "pay_1", when=1),
                self.about("n2", "pay_1", when=2, user="u2"),
                self.about("x", "pay_2", when=0),
            ]
        )

        found = await storage.list_notifications_for(["pay_1", "re_1"], limit=10)

        assert ["n1", "n2", "n3"] == [n.id for n in found]
        assert ["n1", "n2"] == [n.id for n in await storage.list_notifications_for(["pay_1", "re_1"], limit=2)]
        assert [] == await storage.list_notifications_for([], limit=10)

    async def test_delivery_state_and_outboxed_notifications(self, storage: AsyncStorage) -> None:
        """Delivery fields are as last saved; notifications written as effects are listed."""
        await storage.insert_payment(make_payment(), [self.about("n1", "pay_1", when=1)])
        (claimed,) = await storage.claim_notifications(now=at(2), lease=timedelta(seconds=5), limit=1)
        delivered = released(claimed, delivery="delivered", attempts=1, delivered_to=("app",))
        await storage.save_notification_delivery(delivered, claim_token=token(claimed))

        (found,) = await storage.list_notifications_for(["pay_1"], limit=10)

        state = (found.delivery, found.attempts, found.delivered_to, found.last_error)
        assert ("delivered", 1, ("app",), None) == state


class TestNotificationPreferences:
    """A user's notification preferences: stored whole, replaced whole, ``None`` until set."""

    async def test_round_trip_and_replace(self, storage: AsyncStorage) -> None:
        assert await storage.get_notification_preferences("alice") is None
        first = NotificationPreferences(
            user_id="alice",
            channels={NotificationKind.PAYMENT_SUCCEEDED: ("email", "sms"), NotificationKind.INVOICE_SENT: ()},
            locale="ar",
            updated_at=at(1),
        )
        await storage.save_notification_preferences(first)

        assert first == await storage.get_notification_preferences("alice")

        second = NotificationPreferences(user_id="alice", opted_out=True, updated_at=at(2))
        await storage.save_notification_preferences(second)

        assert second == await storage.get_notification_preferences("alice")
        assert await storage.get_notification_preferences("bob") is None

    async def test_given_up_notifiers_are_saved(self, storage: AsyncStorage) -> None:
        """A notifier given up for good (a permanent channel error) is kept with the delivery state."""
        await storage.insert_notifications([make_notification("n1")])
        (claimed,) = await storage.claim_notifications(now=at(2), lease=timedelta(seconds=5), limit=1)
        saved = released(claimed, delivery="delivered", delivered_to=("email",), given_up_by=("sms",))
        assert await storage.save_notification_delivery(saved, claim_token=token(claimed))

        (found,) = await storage.list_notifications("u1", unread_only=False, limit=10)

        assert (("email",), ("sms",)) == (found.delivered_to, found.given_up_by)


def _dispute(did: str = "dsp_1", *, ref: str | None = "dp_1", when: int = 0, **changes: object) -> Dispute:
    fields: dict[str, object] = {
        "id": did,
        "provider": "stripe",
        "provider_dispute_id": ref,
        "payment_id": "pay_1",
        "user_id": "u1",
        "amount": Money.of("12.500", "KWD"),
        "reason": "fraudulent",
        "evidence_due_by": at(86_400),
        "version": 1,
        "created_at": at(when),
        "updated_at": at(when),
    }
    fields.update(changes)
    return Dispute.model_validate(fields)


class TestDisputes:
    """The disputes collection: a newer-version-wins copy, unique by provider dispute id, listed by keyset."""

    async def test_round_trip_and_lookups(self, storage: AsyncStorage) -> None:
        dispute = _dispute(seen_events=("evt_1",), funds_withdrawn=True, reversed_minor=1)

        assert await storage.save_dispute(dispute)

        assert dispute == await storage.get_dispute("dsp_1")
        assert dispute == await storage.find_dispute_by_provider_ref("stripe", "dp_1")
        assert await storage.find_dispute_by_provider_ref("paypal", "dp_1") is None
        assert await storage.get_dispute("dsp_2") is None

    async def test_only_a_newer_version_replaces_the_copy(self, storage: AsyncStorage) -> None:
        newer = _dispute(version=3, status=DisputeStatus.WON)
        await storage.save_dispute(newer)

        wrote_older = await storage.save_dispute(_dispute(version=2, status=DisputeStatus.UNDER_REVIEW))
        wrote_same = await storage.save_dispute(_dispute(version=3, status=DisputeStatus.LOST))
        wrote_newest = await storage.save_dispute(_dispute(version=4, status=DisputeStatus.LOST))

        assert (False, False, True) == (wrote_older, wrote_same, wrote_newest)
        assert DisputeStatus.LOST == (await storage.get_dispute("dsp_1")).status  # type: ignore[union-attr]

    async def test_a_provider_dispute_id_names_one_dispute(self, storage: AsyncStorage) -> None:
        await storage.save_dispute(_dispute())
        await storage.save_dispute(_dispute("dsp_hand_1", ref=None))
        await storage.save_dispute(_dispute("dsp_hand_2", ref=None))

        with pytest.raises(DuplicateRecordError):
            await storage.save_dispute(_dispute("dsp_2"))

        assert {"dsp_1", "dsp_hand_1", "dsp_hand_2"} == {
            d.id for d in await storage.list_disputes(status=None, payment_id=None, limit=10, after=None)
        }

    async def test_listing_newest_first_by_status_and_payment(self, storage: AsyncStorage) -> None:
        for n in range(5):
            await storage.save_dispute(
                _dispute(
                    f"dsp_{n}",
                    ref=f"dp_{n}",
                    when=n,
                    payment_id=f"pay_{n % 2}",
                    status=DisputeStatus.LOST if n == 3 else DisputeStatus.NEEDS_RESPONSE,
                )
            )

        first = await storage.list_disputes(status=None, payment_id=None, limit=2, after=None)
        rest = await storage.list_disputes(
            status=None, payment_id=None, limit=10, after=PageCursor(first[-1].created_at, first[-1].id)
        )
        open_of_pay_1 = await storage.list_disputes(
            status=DisputeStatus.NEEDS_RESPONSE, payment_id="pay_1", limit=10, after=None
        )

        assert ["dsp_4", "dsp_3"] == [d.id for d in first]
        assert ["dsp_2", "dsp_1", "dsp_0"] == [d.id for d in rest]
        assert ["dsp_1"] == [d.id for d in open_of_pay_1]
        assert [] == await storage.list_disputes(status=None, payment_id=None, limit=0, after=None)

    async def test_stats_sum_what_lost_disputes_took_per_currency(self, storage: AsyncStorage) -> None:
        await storage.insert_payment(
            make_payment("pay_1", status=PaymentStatus.SUCCEEDED, captured_minor=12_500, dispute_lost_minor=2_500)
        )
        await storage.insert_payment(
            make_payment(
                "pay_2",
                amount=Money.of("5.00", "USD"),
                status=PaymentStatus.SUCCEEDED,
                captured_minor=500,
                dispute_lost_minor=500,
            )
        )
        await storage.insert_payment(make_payment("pay_3", status=PaymentStatus.SUCCEEDED, captured_minor=12_500))

        stats = await storage.payment_stats(created_since=T0)

        assert {"KWD": 2_500, "USD": 500} == stats.dispute_lost_by_currency
        assert {"KWD": 25_000, "USD": 500} == stats.captured_by_currency
