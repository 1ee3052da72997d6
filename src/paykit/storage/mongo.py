"""MongoDB storage: :class:`MongoStorage` and its async twin :class:`AsyncMongoStorage`.

Both come from one source (``_async/mongo.py``, on pymongo's ``AsyncMongoClient``);
see ``scripts/unasync.py``. What they share without I/O is in ``_mongo_shared.py``.
"""

from __future__ import annotations

from ._async.mongo import AsyncMongoStorage
from ._sync.mongo import MongoStorage

__all__ = ["AsyncMongoStorage", "MongoStorage"]
