# Source of the generated sync twin (scripts/unasync.py): edit here.
"""The fixtures of the service suites: a fake provider and a service on memory, in this folder's API.

``clock`` and the MongoDB-wire server fixtures come from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from paykit import AsyncPaymentService
from paykit.storage import AsyncMemoryStorage
from paykit.testing import AsyncFakeProvider, ManualClock


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


@pytest.fixture
def storage() -> AsyncMemoryStorage:
    return AsyncMemoryStorage()


@pytest.fixture
async def service(
    storage: AsyncMemoryStorage, fake: AsyncFakeProvider, clock: ManualClock
) -> AsyncIterator[AsyncPaymentService]:
    async with AsyncPaymentService(storage=storage, providers=[fake], clock=clock) as svc:
        yield svc
