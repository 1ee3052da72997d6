"""The saved-method test that only the sync API can run: two threads racing for the first default.

The rest of the suite is written once in ``tests/_async/test_payment_methods.py`` and runs on
both APIs; the asyncio counterpart of this race is in ``tests/test_service_asyncio.py``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from paykit import (
    PaymentMethod,
    PaymentService,
)
from paykit.storage import Effect, MemoryStorage
from paykit.testing import FakeProvider, ManualClock
from tests._sync.test_payment_methods import default_ids


class TestDefault:
    """Exactly one default per user, whatever the threads."""

    def test_concurrent_first_saves_make_one_default(self, fake: FakeProvider, clock: ManualClock) -> None:
        """Two first saves racing for the same user leave exactly one default."""
        storage = _RendezvousStorage(parties=2)
        with PaymentService(storage=storage, providers=[fake], clock=clock) as service:
            errors: list[BaseException] = []

            def save(token: str) -> None:
                try:
                    service.save_payment_method(user_id="u1", provider="fake", token=token)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=save, args=(t,)) for t in ("pm_card_visa", "pm_card_mastercard")]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert [] == errors
            assert 2 == len(service.list_payment_methods("u1"))
            assert 1 == len(default_ids(service, "u1"))


class _RendezvousStorage(MemoryStorage):
    """Holds the first inserts of saved methods until ``parties`` callers arrived, to make a race certain."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self._barrier = threading.Barrier(parties, timeout=2)

    def insert_payment_method(self, method: PaymentMethod, effects: Sequence[Effect] = ()) -> None:
        with contextlib.suppress(threading.BrokenBarrierError):
            self._barrier.wait()
        super().insert_payment_method(method, effects)
