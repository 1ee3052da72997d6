"""Fixtures shared by the whole suite: a manual clock, a fake provider, a service on memory.

Also the real MongoDB-wire server: SecantusDB, started once per session on
127.0.0.1 with a free port; set ``PAYKIT_TEST_MONGODB_URI`` to run against your
own server instead (a mongod replica set, Atlas...). Every test that uses it
gets a fresh database with a random name, dropped afterwards. A server that
cannot start fails the tests.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from paykit import PaymentService
from paykit.storage import MemoryStorage
from paykit.storage.mongo import MongoStorage
from paykit.testing import FakeProvider, ManualClock

try:
    from tests._mongo_server import SecantusServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]


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


URI_VARIABLE = "PAYKIT_TEST_MONGODB_URI"


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """The URI of the real server: ``PAYKIT_TEST_MONGODB_URI`` or a SecantusDB started here."""
    configured = os.environ.get(URI_VARIABLE)
    if configured:
        yield configured
        return
    with SecantusServer() as server:
        yield server.uri


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    """One client for the session, pooled and shared by the tests' threads."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    yield client
    client.close()


def _random_database_name() -> str:
    return f"paykit_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_database(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> Iterator[str]:
    """A fresh database name on the real server, dropped after the test."""
    name = _random_database_name()
    yield name
    mongo_client.drop_database(name)


@pytest.fixture
def real_mongo_storage(mongo_client: pymongo.MongoClient[dict[str, Any]], mongo_database: str) -> MongoStorage:
    """MongoStorage on the real server, in a database of its own."""
    return MongoStorage(mongo_client, mongo_database)


@pytest.fixture
def anyio_backend() -> str:
    """Tests marked ``anyio`` (the async twins' sources) run on asyncio."""
    return "asyncio"
