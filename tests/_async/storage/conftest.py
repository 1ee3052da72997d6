# Written by hand for this API: scripts/unasync.py leaves it alone.
"""The async storage contract's backends, written by hand: what differs between the two APIs is which backends exist.

The async ``storage`` runs every async storage: ``AsyncMemoryStorage`` and
``AsyncMongoStorage`` over an ``AsyncMongoClient`` to the suite's MongoDB-wire
server, in a fresh database dropped afterwards (mongomock has no async API).
Tests run on asyncio through anyio's pytest plugin.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pymongo
import pytest

from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.storage.mongo import AsyncMongoStorage


@pytest.fixture(params=["memory", pytest.param("mongo_server", marks=pytest.mark.mongo_server)])
async def storage(request: pytest.FixtureRequest) -> AsyncIterator[AsyncStorage]:
    """Every AsyncStorage implementation, for the contract suite."""
    if request.param == "memory":
        yield AsyncMemoryStorage()
        return
    uri: str = request.getfixturevalue("mongo_uri")
    client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    name = f"paykit_test_{uuid.uuid4().hex[:12]}"
    try:
        yield AsyncMongoStorage(client, name)
    finally:
        await client.drop_database(name)
        await client.close()
