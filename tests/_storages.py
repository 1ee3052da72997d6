"""Which storages the generated storage suites run on, per API: the one place where the two APIs differ.

A suite under ``tests/_async`` asks with the async protocol, its generated twin with
the sync one (``AsyncStorage`` becomes ``Storage``), so both are written once::

    @pytest.fixture(params=storage_params(AsyncStorage))
    def store(request: pytest.FixtureRequest) -> AsyncStorage:
        if request.param == "memory":
            return AsyncMemoryStorage()
        return request.getfixturevalue(mongo_server_fixture(AsyncStorage, "real_mongo_storage"))

Both APIs run on memory and on the MongoDB-wire server (the async one through
``async_``-named twins of the server fixtures of ``tests/conftest.py``).
"""

from __future__ import annotations

from typing import Any

import pytest

from paykit.storage import AsyncStorage, Storage

MONGO_SERVER = pytest.param("mongo_server", marks=pytest.mark.mongo_server)
"""The MongoDB-wire server the suite starts, as a storage parameter."""

ASYNC_MONGO_SERVER: list[Any] = [MONGO_SERVER]
"""The async API's MongoDB-wire server parameter: ``AsyncMongoStorage`` through the
``async_real_mongo_storage`` and ``async_mongo_storage_factory`` fixtures of ``tests/conftest.py``."""


def storage_params(api: type) -> list[Any]:
    """The ``params`` of a suite's storage fixture for ``api`` (``Storage`` or ``AsyncStorage``)."""
    if api is Storage:
        return ["memory", MONGO_SERVER]
    if api is AsyncStorage:
        return ["memory", *ASYNC_MONGO_SERVER]
    raise TypeError(f"not a storage protocol: {api!r}")


def mongo_server_fixture(api: type, name: str) -> str:
    """The fixture giving ``api``'s twin of the sync server fixture ``name``: ``async_`` + ``name`` for async."""
    if api is Storage:
        return name
    if api is AsyncStorage:
        return f"async_{name}"
    raise TypeError(f"not a storage protocol: {api!r}")
