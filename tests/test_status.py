"""The payment status table: forward only, with FAILED and CANCELED as exits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paykit import PaymentStatus, can_transition
from paykit._status import FINAL_STATUSES, SETTLED_STATUSES, is_final, predecessors

S = PaymentStatus
FORWARD = [
    S.PENDING,
    S.REQUIRES_ACTION,
    S.PROCESSING,
    S.AUTHORIZED,
    S.SUCCEEDED,
    S.PARTIALLY_REFUNDED,
    S.REFUNDED,
]
UNCAPTURED = [S.PENDING, S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED]
EXITS = {S.FAILED, S.CANCELED}
ALL = list(S)

EXPECTED_TABLE = {
    S.PENDING: {S.REQUIRES_ACTION, S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED},
    S.REQUIRES_ACTION: {S.PROCESSING, S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED},
    S.PROCESSING: {S.AUTHORIZED, S.SUCCEEDED, S.FAILED, S.CANCELED},
    S.AUTHORIZED: {S.SUCCEEDED, S.FAILED, S.CANCELED},
    S.SUCCEEDED: {S.PARTIALLY_REFUNDED, S.REFUNDED},
    S.PARTIALLY_REFUNDED: {S.REFUNDED},
    S.REFUNDED: set(),
    S.FAILED: set(),
    S.CANCELED: set(),
}


def rank(status: PaymentStatus) -> int:
    """Position on the forward path; the exits come after everything."""
    return FORWARD.index(status) if status in FORWARD else len(FORWARD)


class TestStatusValues:
    """Statuses are stable strings, safe to store."""

    def test_values(self) -> None:
        """The stored values never change."""
        expected = [
            "pending",
            "requires_action",
            "processing",
            "authorized",
            "succeeded",
            "partially_refunded",
            "refunded",
            "failed",
            "canceled",
        ]
        assert expected == [s.value for s in PaymentStatus]

    def test_round_trip_from_string(self) -> None:
        """A stored value gives back its status, and the status compares equal to it."""
        for status in PaymentStatus:
            assert status is PaymentStatus(status.value)
            assert status.value == status


class TestTransitionTable:
    """The table DESIGN.md draws, exactly."""

    @pytest.mark.parametrize("current", ALL)
    def test_table(self, current: PaymentStatus) -> None:
        """Each status may move to exactly these statuses."""
        assert EXPECTED_TABLE[current] == {t for t in ALL if can_transition(current, t)}

    @pytest.mark.parametrize(("current", "target"), list(itertools.product(FORWARD, FORWARD)))
    def test_never_backwards_on_the_forward_path(self, current: PaymentStatus, target: PaymentStatus) -> None:
        """Along the forward path a status may only move to a later one."""
        if rank(target) <= rank(current):
            assert not can_transition(current, target)

    @pytest.mark.parametrize("status", ALL)
    def test_no_self_transition(self, status: PaymentStatus) -> None:
        """Repeating a status is not a transition."""
        assert not can_transition(status, status)

    @pytest.mark.parametrize(("current", "exit_"), list(itertools.product(UNCAPTURED, sorted(EXITS))))
    def test_uncaptured_payments_may_fail_or_cancel(self, current: PaymentStatus, exit_: PaymentStatus) -> None:
        """Every state before capture can fail or be canceled."""
        assert can_transition(current, exit_)

    @pytest.mark.parametrize(("current", "exit_"), list(itertools.product(sorted(SETTLED_STATUSES), sorted(EXITS))))
    def test_captured_payments_never_fail_or_cancel(self, current: PaymentStatus, exit_: PaymentStatus) -> None:
        """Once money was captured, only refunds move the payment."""
        assert not can_transition(current, exit_)

    def test_steps_may_be_skipped(self) -> None:
        """A payment may jump forward over intermediate statuses."""
        assert can_transition(S.PENDING, S.SUCCEEDED)
        assert can_transition(S.SUCCEEDED, S.REFUNDED)
        assert can_transition(S.REQUIRES_ACTION, S.AUTHORIZED)


class TestFinalStatuses:
    """REFUNDED, FAILED and CANCELED are never left."""

    def test_final_set(self) -> None:
        """Exactly three statuses are final."""
        assert {S.REFUNDED, S.FAILED, S.CANCELED} == set(FINAL_STATUSES)

    @pytest.mark.parametrize("status", ALL)
    def test_is_final_means_no_way_out(self, status: PaymentStatus) -> None:
        """is_final agrees with the table: a final status has no successor, others have some."""
        assert is_final(status) == (not any(can_transition(status, t) for t in ALL))

    def test_settled_set(self) -> None:
        """Settled statuses are the ones in which money was captured."""
        assert {S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED} == set(SETTLED_STATUSES)


class TestPredecessors:
    """predecessors() is the table read backwards."""

    @pytest.mark.parametrize("target", ALL)
    def test_matches_table(self, target: PaymentStatus) -> None:
        """A status's predecessors are exactly those that can move to it."""
        assert {s for s in ALL if can_transition(s, target)} == set(predecessors(target))

    def test_examples(self) -> None:
        """Nothing leads to PENDING; REFUNDED comes only from captured states."""
        assert frozenset() == predecessors(S.PENDING)
        assert {S.SUCCEEDED, S.PARTIALLY_REFUNDED} == set(predecessors(S.REFUNDED))
        assert set(UNCAPTURED) == set(predecessors(S.CANCELED))

    def test_every_status_is_reachable_from_pending(self) -> None:
        """Every status can be reached from PENDING."""
        seen, frontier = {S.PENDING}, [S.PENDING]
        while frontier:
            current = frontier.pop()
            for target in ALL:
                if can_transition(current, target) and target not in seen:
                    seen.add(target)
                    frontier.append(target)
        assert set(ALL) == seen


class TestWalks:
    """Any sequence of legal transitions moves strictly forward and ends."""

    @given(choices=st.lists(st.integers(min_value=0, max_value=100), max_size=20))
    def test_random_walk_is_strictly_forward(self, choices: list[int]) -> None:
        """Following legal transitions, the rank grows every step; no status repeats."""
        current, visited = S.PENDING, [S.PENDING]
        for choice in choices:
            nexts = sorted(t for t in ALL if can_transition(current, t))
            if not nexts:
                assert is_final(current)
                break
            target = nexts[choice % len(nexts)]
            assert rank(target) > rank(current)
            current = target
            visited.append(current)
        assert len(visited) == len(set(visited))
        assert len(visited) <= len(FORWARD) + 1
