"""Storage backends: the :class:`Storage` protocol, memory and MongoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._base import Effect, PageCursor, PaymentStats, Storage, WebhookEventRecord
from .memory import MemoryStorage

if TYPE_CHECKING:
    from .mongo import MongoStorage

__all__ = [
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
