"""Storage backends: the :class:`Storage` protocol and its async twin, memory and MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._async.protocol import AsyncStorage
from ._base import Effect, PageCursor, PaymentStats, WebhookEventRecord
from ._sync.protocol import Storage
from .memory import AsyncMemoryStorage, MemoryStorage

if TYPE_CHECKING:
    from .mongo import AsyncMongoStorage, MongoStorage

__all__ = [
    "AsyncMemoryStorage",
    "AsyncMongoStorage",
    "AsyncStorage",
    "Effect",
    "MemoryStorage",
    "MongoStorage",
    "PageCursor",
    "PaymentStats",
    "Storage",
    "WebhookEventRecord",
]


def __getattr__(name: str) -> Any:
    # pymongo is an optional extra: import it only when a Mongo storage is asked for.
    if name == "MongoStorage":
        from ._sync.mongo import MongoStorage  # noqa: PLC0415

        return MongoStorage
    if name == "AsyncMongoStorage":
        from ._async.mongo import AsyncMongoStorage  # noqa: PLC0415

        return AsyncMongoStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
