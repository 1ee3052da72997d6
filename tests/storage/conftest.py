"""Storage fixtures: one ``storage`` fixture for memory, mongomock and a real MongoDB-wire server.

The real server and its fixtures (``mongo_uri``, ``mongo_client``,
``mongo_database``, ``real_mongo_storage``) live in ``tests/conftest.py``, so
the provider fault models share the one server the session starts.
"""

from __future__ import annotations

import uuid

import mongomock
import pytest

from paykit.storage import MemoryStorage, Storage
from paykit.storage.mongo import MongoStorage


def random_database_name() -> str:
    return f"paykit_test_{uuid.uuid4().hex[:12]}"


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
