# Written by hand for this API: scripts/unasync.py leaves it alone.
"""The sync storage contract's backends, written by hand: the sync ``storage`` runs every sync storage.

They are the storage suites' own fixtures (memory, mongomock and the suite's
MongoDB-wire server), imported from ``tests/storage/conftest.py``.
"""

from __future__ import annotations

from ...storage.conftest import mongomock_client, mongomock_storage, storage

__all__ = ["mongomock_client", "mongomock_storage", "storage"]
