"""Fixtures shared by the whole suite: a manual clock, a fake provider, a service on memory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from paykit import PaymentService
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI configures logging (it is an application); never let that leak into other tests."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock: ManualClock) -> FakeProvider:
    return FakeProvider(clock=clock.unix)


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def service(storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> Iterator[PaymentService]:
    with PaymentService(storage=storage, providers=[fake], clock=clock) as svc:
        yield svc
