"""AsyncMongoStorage specifics on the suite's server: lazy indexes, error translation, owned clients, concurrency.

The storage contract runs on it too (``tests/_async/storage/test_contract.py``);
these are the async counterparts of ``test_mongo.py``'s checks that mongomock
cannot run, since it has no async API.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError, PyMongoError

from paykit._errors import ConfigurationError, DuplicateRecordError, StorageError
from paykit._status import PaymentStatus
from paykit.storage import AsyncMongoStorage, AsyncStorage

from .records import bump, make_payment
from .test_mongo import EXPECTED_INDEXES

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(mongo_uri: str) -> AsyncIterator[pymongo.AsyncMongoClient[dict[str, Any]]]:
    async_client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
        mongo_uri, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    yield async_client
    await async_client.close()


@pytest.fixture
async def storage(client: pymongo.AsyncMongoClient[dict[str, Any]]) -> AsyncIterator[AsyncMongoStorage]:
    name = f"paykit_test_{uuid.uuid4().hex[:12]}"
    yield AsyncMongoStorage(client, name)
    await client.drop_database(name)


async def indexes(storage: AsyncMongoStorage) -> dict[str, set[str]]:
    return {name: set(await storage._col(name).index_information()) for name in EXPECTED_INDEXES}


@pytest.mark.mongo_server
class TestAsyncMongoStorage:
    async def test_is_an_async_storage(self, storage: AsyncMongoStorage) -> None:
        assert isinstance(storage, AsyncStorage)
        assert "AsyncMongoStorage(database='paykit_test_" in repr(storage)

    async def test_the_first_operation_creates_the_indexes_once(self, storage: AsyncMongoStorage) -> None:
        before = await storage._col("payments").index_information()

        assert await storage.get_payment("pay_1") is None
        await storage.ensure_indexes()

        assert ({}, EXPECTED_INDEXES) == (before, await indexes(storage))

    async def test_ensure_indexes_false_creates_none(self, storage: AsyncMongoStorage) -> None:
        manual = AsyncMongoStorage(storage._client, storage._db.name, ensure_indexes=False)

        await manual.insert_payment(make_payment())

        assert {"_id_"} == set(await manual._col("payments").index_information())

    async def test_duplicate_key_keeps_its_cause(self, storage: AsyncMongoStorage) -> None:
        await storage.insert_payment(make_payment())

        with pytest.raises(DuplicateRecordError) as caught:
            await storage.insert_payment(make_payment())

        assert isinstance(caught.value.__cause__, DuplicateKeyError)

    async def test_concurrent_compare_and_set_has_one_winner(self, storage: AsyncMongoStorage) -> None:
        payment = make_payment()
        await storage.insert_payment(payment)
        attempts = [bump(payment, status=PaymentStatus.SUCCEEDED, metadata={"n": str(i)}) for i in range(50)]

        won = await asyncio.gather(*(storage.update_payment(a, expected_version=0) for a in attempts))

        assert 1 == sum(won)

    async def test_from_uri_owns_its_client(self, mongo_uri: str) -> None:
        name = f"paykit_test_{uuid.uuid4().hex[:12]}"
        storage = AsyncMongoStorage.from_uri(mongo_uri, name)
        try:
            await storage.insert_payment(make_payment())
            assert (await storage.get_payment("pay_1")) == make_payment()
        finally:
            await storage._client.drop_database(name)
            await storage.close()


class TestAsyncErrorTranslation:
    # pymongo's async monitor leaves the socket of a refused connection to the garbage collector.
    @pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
    async def test_unreachable_server_is_storage_error(self) -> None:
        client: pymongo.AsyncMongoClient[dict[str, Any]] = pymongo.AsyncMongoClient(
            "mongodb://127.0.0.1:1/?directConnection=true", serverSelectionTimeoutMS=100, connectTimeoutMS=100
        )
        storage = AsyncMongoStorage(client)

        with pytest.raises(StorageError) as caught:
            await storage.ping()
        with pytest.raises(StorageError):
            await storage.get_payment("pay_1")  # the lazy index creation fails the same way
        with pytest.raises(StorageError):
            await storage.ensure_indexes()
        await client.close()
        gc.collect()  # here, where the filter above applies, not at the end of the session

        assert isinstance(caught.value.__cause__, PyMongoError)
        assert type(caught.value) is StorageError

    @pytest.mark.parametrize("uri", ["mongodb://a:b@c@host", "mongodb://127.0.0.1:99999", "http://x"])
    async def test_invalid_uri_is_configuration_error(self, uri: str) -> None:
        with pytest.raises(ConfigurationError):
            AsyncMongoStorage.from_uri(uri)
