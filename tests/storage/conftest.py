"""Storage fixtures: one ``storage`` fixture for memory, mongomock and a real MongoDB-wire server.

The real server is SecantusDB, started once per session on 127.0.0.1 with a
free port; set ``PAYKIT_TEST_MONGODB_URI`` to run against your own server
instead (a mongod replica set, Atlas...). Every test gets a fresh database with
a random name, dropped afterwards. A server that cannot start fails the tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import mongomock
import pymongo
import pytest

from paykit.storage import MemoryStorage, Storage
from paykit.storage.mongo import MongoStorage

try:
    from tests._mongo_server import SecantusServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]

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


def random_database_name() -> str:
    return f"paykit_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mongo_database(mongo_client: pymongo.MongoClient[dict[str, Any]]) -> Iterator[str]:
    """A fresh database name on the real server, dropped after the test."""
    name = random_database_name()
    yield name
    mongo_client.drop_database(name)


@pytest.fixture
def real_mongo_storage(mongo_client: pymongo.MongoClient[dict[str, Any]], mongo_database: str) -> MongoStorage:
    """MongoStorage on the real server, in a database of its own."""
    return MongoStorage(mongo_client, mongo_database)


@pytest.fixture
def mongomock_client() -> mongomock.MongoClient:
    return mongomock.MongoClient(tz_aware=True)


@pytest.fixture
def mongomock_storage(mongomock_client: mongomock.MongoClient) -> MongoStorage:
    """MongoStorage on mongomock's in-process fake."""
    return MongoStorage(mongomock_client, "paykit")


@pytest.fixture(
    params=[
        "memory",
        "mongomock",
        pytest.param("mongo_server", marks=pytest.mark.mongo_server),
    ]
)
def storage(request: pytest.FixtureRequest) -> Storage:
    """Every Storage implementation, for the contract suite."""
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "mongomock":
        return request.getfixturevalue("mongomock_storage")  # type: ignore[no-any-return]
    return request.getfixturevalue("real_mongo_storage")  # type: ignore[no-any-return]
