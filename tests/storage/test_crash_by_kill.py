"""Crash injection with a real death: the process running paykit is killed after a write, on the MongoDB-wire server.

The scenario of ``test_crash_safety`` runs in a child process whose storage
calls ``os._exit`` right after its N-th successful write: no ``finally``, no
flush, no cleanup, exactly what a killed worker leaves. The provider outlives
it (the fake's state is saved as the provider would keep it). A new process
(this one) then reconciles and replays the scenario with the same keys, and
everything must match a run that never died.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from paykit import PaymentService
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider, ManualClock

from .._sync.storage.test_crash_safety import outcome, run, scenario

ROOT = Path(__file__).resolve().parents[2]
_UNSAVED = ("_lock", "_refund_lock", "_clock")


def save_provider(fake: FakeProvider, path: Path) -> None:
    """What the provider knows, as it would keep it after the client died."""
    path.write_bytes(pickle.dumps({k: v for k, v in vars(fake).items() if k not in _UNSAVED}))


def load_provider(path: Path, clock: ManualClock) -> FakeProvider:
    fake = FakeProvider(clock=clock.unix)
    vars(fake).update(pickle.loads(path.read_bytes()))
    return fake


CHILD = """
import os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
import pymongo
from paykit import PaymentService
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider, ManualClock
from tests._sync.storage.test_crash_safety import WRITES, DiesAfterWrite, scenario
from tests.storage.test_crash_by_kill import save_provider

clock = ManualClock()
fake = FakeProvider(clock=clock.unix)
state = Path({state!r})


class KilledAfterWrite(DiesAfterWrite):
    def __getattr__(self, name):
        attribute = getattr(self.inner, name)
        if name not in WRITES:
            return attribute

        def write(*args, **kwargs):
            result = attribute(*args, **kwargs)
            self.writes.append(name)
            if len(self.writes) == self.die_at:
                save_provider(fake, state)  # the provider outlives the client
                os._exit(17)  # killed: no finally, no flush, no cleanup
            return result

        return write


client = pymongo.MongoClient({uri!r}, tz_aware=True)
storage = KilledAfterWrite(MongoStorage(client, {database!r}), {die_at})
scenario(PaymentService(storage=storage, providers=[fake], clock=clock), fake)
save_provider(fake, state)
os._exit(0)
"""


@pytest.mark.mongo_server
class TestKilledAfterEveryWrite:
    """A killed process loses nothing and duplicates nothing: payments, refunds, charges, audit, notifications."""

    def test_every_write(self, mongo_uri: str, mongo_client: Any, tmp_path: Path) -> None:
        from paykit.storage import MemoryStorage

        expected, writes = run(MemoryStorage, 0)
        for die_at in range(1, len(writes) + 1):
            database = f"paykit_kill_{die_at}_{os.getpid()}"
            state = tmp_path / f"provider_{die_at}.pickle"
            code = CHILD.format(root=str(ROOT), uri=mongo_uri, database=database, die_at=die_at, state=str(state))
            child = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
            )
            assert (die_at, 17) == (die_at, child.returncode), child.stderr[-2000:]

            clock = ManualClock()
            clock.advance(minutes=2)  # the restart takes a while; the dead process's leases expire
            fake = load_provider(state, clock)
            restarted = PaymentService(storage=MongoStorage(mongo_client, database), providers=[fake], clock=clock)
            restarted.reconcile(older_than=timedelta(0))
            payment_id = scenario(restarted, fake)
            restarted.reconcile(older_than=timedelta(0))
            try:
                assert (die_at, writes[die_at - 1], outcome(restarted, fake, payment_id)) == (
                    die_at,
                    writes[die_at - 1],
                    expected,
                )
            finally:
                mongo_client.drop_database(database)
