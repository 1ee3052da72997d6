"""Fixtures shared by the whole suite: a manual clock, a fake provider, a service on memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from paykit import PaymentService
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock


@pytest.fixture(autouse=True)
def _restore_structlog() -> Iterator[None]:
    """The CLI configures structlog (it is an application); never let that leak into other tests."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


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
