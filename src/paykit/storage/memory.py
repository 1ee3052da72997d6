"""In-memory storage for tests and demos: :class:`MemoryStorage` and its async twin.

Both come from one source (``_async/memory.py``); see ``scripts/unasync.py``.
"""

from __future__ import annotations

from ._async.memory import AsyncMemoryStorage
from ._sync.memory import MemoryStorage

__all__ = ["AsyncMemoryStorage", "MemoryStorage"]
