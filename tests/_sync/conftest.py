# Generated from tests/_async/conftest.py by scripts/unasync.py: do not edit.
"""The fixtures of the service suites: a fake provider and a service on memory, in this folder's API.

``clock`` and the MongoDB-wire server fixtures come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from paykit import PaymentService
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, ManualClock


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
