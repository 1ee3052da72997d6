"""Scaffolding for docs/storage.md: a local SecantusDB standing in for your MongoDB."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

try:
    from tests._mongo_server import SecantusServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]


@contextlib.contextmanager
def context() -> Iterator[dict[str, Any]]:
    """Yield ``MONGODB_URI`` for the doc: ``PAYKIT_TEST_MONGODB_URI`` or a fresh SecantusDB."""
    configured = os.environ.get("PAYKIT_TEST_MONGODB_URI")
    if configured:
        yield {"MONGODB_URI": configured}
        return
    with SecantusServer() as server:
        yield {"MONGODB_URI": server.uri}
