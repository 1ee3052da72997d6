"""The pure billing rules: calendar steps, exact installment splits, dunning schedules, the status table."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paykit import Dunning, Money, Plan, Subscription, SubscriptionStatus
from paykit._decisions import billing as db
from paykit._errors import InvalidRequestError, InvalidStateError
from paykit._money import CURRENCY_EXPONENTS
from paykit._status import BILLING_FINAL_STATUSES, can_bill_transition

UTC_MOMENTS = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 12, 31), timezones=st.just(UTC))


def subscription(**changes: object) -> Subscription:
    at = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "id": "sub_1",
        "user_id": "u1",
        "provider": "fake",
        "plan": Plan(amount=Money.of("9.99", "USD")),
        "anchor": at,
        "renews_at": at,
        "due_at": at,
        "created_at": at,
        "updated_at": at,
    }
    values.update(changes)
    return Subscription.model_validate(values)


class TestCalendar:
    """Months clamp to the month's last day and come back to the anchor day; all in UTC."""

    def test_jan_31_renews_feb_28_then_mar_31(self) -> None:
        sub = subscription()
        ends = [db.period_bounds(sub, k)[1].date().isoformat() for k in range(4)]
        assert ends == ["2027-02-28", "2027-03-31", "2027-04-30", "2027-05-31"]

    def test_leap_year_february_has_29(self) -> None:
        sub = subscription(anchor=datetime(2028, 1, 31, tzinfo=UTC))
        assert db.period_bounds(sub, 0)[1] == datetime(2028, 2, 29, tzinfo=UTC)

    def test_yearly_on_feb_29_comes_back_in_leap_years(self) -> None:
        anchor = datetime(2024, 2, 29, 8, tzinfo=UTC)
        years = [db.add_interval(anchor, "year", k).date().isoformat() for k in range(5)]
        assert years == ["2024-02-29", "2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]

    def test_other_time_zones_are_read_as_utc(self) -> None:
        """Feb 1, 01:30 in Kuwait is Jan 31 in UTC: the UTC day is the anchor day."""
        kuwait = datetime(2027, 2, 1, 1, 30, tzinfo=timezone(timedelta(hours=3)))
        assert db.add_interval(kuwait, "month", 1) == datetime(2027, 2, 28, 22, 30, tzinfo=UTC)

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(InvalidRequestError):
            db.add_interval(datetime(2027, 1, 1), "month", 1)

    @settings(max_examples=200, deadline=None)
    @given(anchor=UTC_MOMENTS, count=st.integers(1, 3), interval=st.sampled_from(["day", "week", "month", "year"]))
    def test_ten_years_of_periods_follow_the_anchor(self, anchor: datetime, count: int, interval: str) -> None:
        """Over 10 years: strictly increasing, each month boundary on the anchor day or the month's last day."""
        steps = {"day": 3650, "week": 522, "month": 120, "year": 10}[interval] // count
        bounds = [db.add_interval(anchor, interval, count * k) for k in range(steps + 1)]  # type: ignore[arg-type]
        assert db.schedule_is_increasing(bounds)
        assert all(b.time() == anchor.time() and b.tzinfo == UTC for b in bounds)
        if interval in ("month", "year"):
            for b in bounds:
                last = calendar.monthrange(b.year, b.month)[1]
                assert b.day == min(anchor.day, last)
        else:
            days = (1 if interval == "day" else 7) * count
            assert all(b - a == timedelta(days=days) for a, b in pairwise(bounds))

    @settings(max_examples=100, deadline=None)
    @given(anchor=UTC_MOMENTS)
    def test_a_boundary_is_computed_from_the_anchor_not_the_previous_boundary(self, anchor: datetime) -> None:
        """Stepping month by month from a clamped date would drift (Jan 31 -> Feb 28 -> Mar 28); the rule does not."""
        sub = subscription(anchor=anchor, renews_at=anchor)
        for k in range(24):
            start, end = db.period_bounds(sub, k)
            assert end == db.period_bounds(sub, k + 1)[0]
            assert start == db.add_interval(anchor, "month", k)


class TestInstallmentSplit:
    """Installments are exact minor units that sum to the total; the first ones take the remainder."""

    @settings(max_examples=300, deadline=None)
    @given(
        currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
        minor=st.integers(1, 10**15),
        count=st.integers(1, 120),
    )
    def test_installments_sum_to_the_total_in_every_currency(self, currency: str, minor: int, count: int) -> None:
        total = Money(minor, currency)
        if minor < count:
            with pytest.raises(InvalidRequestError):
                db.split_installments(total, count)
            return
        parts = db.split_installments(total, count)
        assert len(parts) == count
        assert sum(p.minor_units for p in parts) == minor
        assert {p.currency for p in parts} == {total.currency}
        assert max(p.minor_units for p in parts) - min(p.minor_units for p in parts) <= 1
        assert [p.minor_units for p in parts] == sorted((p.minor_units for p in parts), reverse=True)

    def test_kwd_and_jpy_examples(self) -> None:
        assert [str(m) for m in db.split_installments(Money.of("100.000", "KWD"), 3)] == [
            "33.334 KWD",
            "33.333 KWD",
            "33.333 KWD",
        ]
        assert [m.minor_units for m in db.split_installments(Money.of("1000", "JPY"), 6)] == [
            167,
            167,
            167,
            167,
            166,
            166,
        ]

    @pytest.mark.parametrize("count", [0, 121, True])
    def test_bad_counts_are_refused(self, count: int) -> None:
        with pytest.raises(InvalidRequestError):
            db.split_installments(Money.of("10.00", "USD"), count)

    @settings(max_examples=100, deadline=None)
    @given(start=UTC_MOMENTS, count=st.integers(1, 120), every=st.integers(1, 4))
    def test_schedules_are_strictly_increasing(self, start: datetime, count: int, every: int) -> None:
        dates = db.installment_schedule(start, "month", every, count)
        assert dates[0] == start
        assert len(dates) == count
        assert db.schedule_is_increasing(dates)


class TestDunning:
    """Retries after 1, 3, 5 and 7 days by default; then the final status."""

    def test_default_schedule(self) -> None:
        due = datetime(2027, 3, 1, tzinfo=UTC)
        retries = [db.retry_at(due, Dunning(), n) for n in range(1, 6)]
        assert retries == [due + timedelta(days=d) for d in (1, 3, 5, 7)] + [None]

    @given(days=st.lists(st.integers(1, 60), min_size=0, max_size=20, unique=True))
    def test_any_valid_schedule_is_strictly_increasing(self, days: list[int]) -> None:
        dunning = Dunning(retry_days=tuple(sorted(days)))
        due = datetime(2027, 3, 1, tzinfo=UTC)
        moments = [due, *(db.retry_at(due, dunning, n) for n in range(1, len(days) + 1))]
        assert db.schedule_is_increasing([m for m in moments if m is not None])
        assert db.retry_at(due, dunning, len(days) + 1) is None

    @pytest.mark.parametrize("days", [(3, 1), (1, 1), (0, 2), tuple(range(1, 23))])
    def test_bad_schedules_are_refused(self, days: tuple[int, ...]) -> None:
        with pytest.raises(ValueError, match="retry_days"):
            Dunning(retry_days=days)

    def test_failures_walk_the_schedule_then_cancel(self) -> None:
        now = datetime(2027, 1, 31, 9, 30, tzinfo=UTC)
        sub = subscription(dunning=Dunning(retry_days=(1, 3)))
        seen = []
        for _ in range(3):
            change = db.failed(sub, db.current_payment_id(sub), code="card_declined", now=now)
            sub = sub.model_copy(update={**change.updates, "version": sub.version + 1})
            seen.append((sub.status, sub.attempt, sub.due_at))
        assert seen == [
            (SubscriptionStatus.PAST_DUE, 1, now + timedelta(days=1)),
            (SubscriptionStatus.PAST_DUE, 2, now + timedelta(days=3)),
            (SubscriptionStatus.CANCELED, 3, None),
        ]

    def test_a_stale_payment_changes_nothing(self) -> None:
        sub = subscription()
        now = datetime(2027, 2, 1, tzinfo=UTC)
        assert not db.failed(sub, "pay_other", code=None, now=now).write
        assert not db.paid(sub, db.payment_id_for(sub.id, 0, 1), now=now).write

    def test_payment_ids_are_derived_from_record_period_and_attempt(self) -> None:
        ids = {db.payment_id_for("sub_1", p, a) for p in range(5) for a in range(5)}
        assert len(ids) == 25
        assert db.payment_id_for("sub_1", 2, 1) == db.payment_id_for("sub_1", 2, 1)


class TestStatusTable:
    """Final statuses are never left; paused comes back only through resume."""

    @pytest.mark.parametrize("final", sorted(BILLING_FINAL_STATUSES))
    def test_final_statuses_are_final(self, final: SubscriptionStatus) -> None:
        assert not any(can_bill_transition(final, target) for target in SubscriptionStatus)

    def test_pause_and_resume(self) -> None:
        now = datetime(2027, 2, 10, tzinfo=UTC)
        sub = subscription()
        paused = sub.model_copy(update={**db.pause(sub, now=now).updates, "version": 1})
        assert (paused.status, paused.due_at) == (SubscriptionStatus.PAUSED, None)
        resumed = paused.model_copy(update=db.resume(paused, now=now).updates)
        # Periods that passed while paused are skipped: the next charge is the next period start.
        assert (resumed.status, resumed.period, resumed.renews_at) == (
            SubscriptionStatus.ACTIVE,
            1,
            datetime(2027, 2, 28, 9, 30, tzinfo=UTC),
        )

    def test_a_canceled_subscription_cannot_be_paused_or_resumed(self) -> None:
        now = datetime(2027, 2, 10, tzinfo=UTC)
        sub = subscription(status=SubscriptionStatus.CANCELED)
        with pytest.raises(InvalidStateError):
            db.pause(sub, now=now)
        with pytest.raises(InvalidStateError):
            db.resume(sub, now=now)
