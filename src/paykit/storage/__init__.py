"""Storage backends: the :class:`Storage` protocol and its async twin, memory and MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._async.protocol import AsyncStorage
from ._base import Effect, PageCursor, PaymentStats, WebhookEventRecord
from ._sync.protocol import Storage
from .memory import AsyncMemoryStorage, MemoryStorage

if TYPE_CHECKING:
    from .mongo import MongoStorage

__all__ = [
    "AsyncMemoryStorage",
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
    # pymongo is an optional extra: import it only when MongoStorage is asked for.
    if name == "MongoStorage":
        from .mongo import MongoStorage  # noqa: PLC0415

        return MongoStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
