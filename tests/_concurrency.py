"""Run one call many times at once: with tasks for async twins, with threads for sync ones.

Written twice by hand, as what cannot be renamed is: a test source calls
``_concurrency.run_together_async(...)`` and ``scripts/unasync.py`` makes it
``_concurrency.run_together(...)`` in the generated sync test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


async def run_together_async(times: int, call: Callable[[], Awaitable[T]]) -> list[T]:
    """Start ``call()`` ``times`` times as concurrent tasks and wait for them all."""
    return list(await asyncio.gather(*(call() for _ in range(times))))


def run_together(times: int, call: Callable[[], T]) -> list[T]:
    """Run ``call()`` ``times`` times on as many threads and wait for them all."""
    with ThreadPoolExecutor(max_workers=times) as pool:
        return list(pool.map(lambda _: call(), range(times)))
