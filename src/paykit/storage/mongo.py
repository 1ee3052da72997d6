"""MongoDB storage: the Storage protocol on pymongo, single-document atomic operations only.

Every write is one atomic single-document operation, so the same code runs on a
standalone ``mongod``, a replica set and Atlas, without sessions or
transactions:

* compare-and-set updates filter on ``{_id, version: expected}``;
* unique indexes turn a second insert of the same key into
  :class:`~paykit.DuplicateRecordError` (payment id, provider reference, webhook
  event, invoice number);
* effects (audit entries, notifications, webhook event records) ride in the
  written document as an ``_outbox`` array, in the same write, so a state change
  costs one round trip. They are materialized later, off the write path: copied
  to ``audit_log`` / ``notifications`` / ``webhook_events`` under their
  deterministic ids (a second copy is a no-op), then pulled from the outbox.
  :meth:`MongoStorage.flush_pending_effects` does it, and every reader of effects
  (and so the notification dispatcher) runs it first; a process that dies midway
  leaves the outbox for the next flush.

pymongo exceptions never leave this module: :func:`_map_pymongo_errors` is the
one place that translates them.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Concatenate, Final, ParamSpec, TypeVar

from pydantic import BaseModel, SecretStr

from .._errors import ConfigurationError, DuplicateRecordError, MissingExtraError, StorageError
from .._log import get_logger
from .._models import AuditEntry, Invoice, Notification, Payment, PaymentMethod, Refund
from .._status import SETTLED_STATUSES, PaymentStatus
from ._base import Effect, KeyClaim, PageCursor, PaymentStats, Reaction, WebhookEventRecord

try:
    import pymongo
    from bson import Decimal128, ObjectId
    from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
    from pymongo.collection import Collection
    from pymongo.database import Database
    from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
    from pymongo.errors import ConfigurationError as MongoConfigurationError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("MongoStorage", extra="mongo", package="pymongo") from exc


__all__ = ["MongoStorage"]

logger = get_logger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
_Doc = dict[str, Any]

_DUPLICATE_KEY: Final = 11000
_OUTBOX: Final = "_outbox"
_PROVIDER_KEY: Final = "_provider_key"
_CAPTURE_KEY: Final = "_capture_key"
_REFUNDING: Final = "_refunding"
_SEQ: Final = "_seq"
_KEYS: Final = "_keys"

# Every collection whose documents may carry an effects outbox.
_OUTBOX_COLLECTIONS: Final = ("payments", "refunds", "invoices", "payment_methods")

_INDEXES: Final[dict[str, list[IndexModel]]] = {
    "payments": [
        # Sparse on a single field: the key exists only once the provider
        # answered, so PENDING payments without a reference never collide.
        # (partialFilterExpression would do too, but mongomock ignores it.)
        IndexModel([(_PROVIDER_KEY, ASCENDING)], name="provider_ref_unique", unique=True, sparse=True),
        IndexModel([(_CAPTURE_KEY, ASCENDING)], name="capture_ref", sparse=True),
        # Present only while refunds are reserved: reconcile() finds interrupted refunds by it.
        IndexModel([(_REFUNDING, ASCENDING), ("updated_at", ASCENDING)], name="refunding", sparse=True),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="user_created"),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created"),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"),
        # Covers metrics(): the $group reads only these fields.
        IndexModel(
            [
                ("status", ASCENDING),
                ("amount.currency", ASCENDING),
                ("captured_minor", ASCENDING),
                ("refunded_minor", ASCENDING),
            ],
            name="status_money",
        ),
        IndexModel([(f"{_OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "refunds": [
        IndexModel([("payment_id", ASCENDING), ("created_at", ASCENDING), (_SEQ, ASCENDING)], name="payment_created"),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"),
        IndexModel([(f"{_OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "invoices": [
        IndexModel([("number", ASCENDING)], name="number_unique", unique=True),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_created"),
        IndexModel([(f"{_OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "payment_methods": [
        IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="user_created"),
        IndexModel([(f"{_OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "customers": [
        IndexModel([("provider", ASCENDING), ("user_id", ASCENDING)], name="provider_user_unique", unique=True),
    ],
    "audit_log": [
        # One multikey field holds the subject and its payment, so a trail is one index range,
        # where an $or of two fields makes some servers scan the collection.
        IndexModel([(_KEYS, ASCENDING), ("at", ASCENDING), (_SEQ, ASCENDING)], name="keys_at"),
    ],
    "webhook_events": [
        IndexModel([("provider", ASCENDING), ("event_id", ASCENDING)], name="provider_event_unique", unique=True),
        # explain(): every event recorded about one payment.
        IndexModel([("payment_id", ASCENDING), ("received_at", ASCENDING)], name="payment_received"),
    ],
    "reactions": [
        IndexModel([("done", ASCENDING), ("created_at", ASCENDING)], name="pending"),
    ],
    "notifications": [
        IndexModel([("delivery", ASCENDING), ("next_attempt_at", ASCENDING)], name="delivery_due"),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="user_created"),
        # explain(): the notifications about one payment and its refunds.
        IndexModel([("subject_id", ASCENDING), ("created_at", ASCENDING)], name="subject_created"),
    ],
}


# -- error translation ------------------------------------------------------
@contextlib.contextmanager
def _map_pymongo_errors(operation: str) -> Iterator[None]:
    """Translate every pymongo exception into the paykit tree, ``raise ... from exc``.

    Messages name the operation and the failure class, never document contents.
    """
    try:
        yield
    except DuplicateKeyError as exc:
        raise DuplicateRecordError(f"{operation}: a record with the same unique key exists") from exc
    except BulkWriteError as exc:
        codes = {error.get("code") for error in exc.details.get("writeErrors", [])}
        if codes == {_DUPLICATE_KEY}:
            raise DuplicateRecordError(f"{operation}: a record with the same unique key exists") from exc
        raise StorageError(f"{operation} failed: {type(exc).__name__}") from exc
    except MongoConfigurationError as exc:
        # A bad URI or option: retrying cannot help, so it is not a StorageError.
        raise ConfigurationError(f"{operation}: invalid MongoDB configuration ({exc})") from exc
    except PyMongoError as exc:
        code = getattr(exc, "code", None)
        detail = f" (code {code})" if code is not None else ""
        logger.warning("mongo_operation_failed", operation=operation, error=type(exc).__name__, code=code)
        raise StorageError(f"{operation} failed: {type(exc).__name__}{detail}") from exc


def _storage_op(
    method: Callable[Concatenate[MongoStorage, _P], _R],
) -> Callable[Concatenate[MongoStorage, _P], _R]:
    @functools.wraps(method)
    def wrapper(self: MongoStorage, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with _map_pymongo_errors(method.__name__):
            return method(self, *args, **kwargs)

    return wrapper


# -- documents ----------------------------------------------------------------
def _to_bson(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_bson(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, datetime):
        # BSON dates are UTC milliseconds; make the truncation explicit and the zone sure.
        return _to_ms(value)
    return value


def _from_bson(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _from_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_bson(v) for v in value]
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _to_ms(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _model_doc(model: BaseModel) -> _Doc:
    doc: _Doc = _to_bson(model.model_dump(mode="python"))
    doc["_id"] = doc.pop("id")
    return doc


_M = TypeVar("_M", bound=BaseModel)


def _load(model: type[_M], doc: Mapping[str, Any] | None) -> _M | None:
    if doc is None:
        return None
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    data["id"] = doc["_id"]
    return model.model_validate(_from_bson(data))


def _provider_key(provider: str, provider_ref: str) -> str:
    # Length-prefixed so that no provider name can make two pairs collide.
    return f"{len(provider)}:{provider}:{provider_ref}"


def _event_doc(record: WebhookEventRecord) -> _Doc:
    return {
        "provider": record.provider,
        "event_id": record.event_id,
        "type": record.type,
        "outcome": record.outcome,
        "received_at": _to_ms(record.received_at),
        "payment_id": record.payment_id,
    }


def _reaction_doc(reaction: Reaction) -> _Doc:
    return {
        "_id": reaction.id,
        "kind": reaction.kind,
        "target_id": reaction.target_id,
        "payment_id": reaction.payment_id,
        "created_at": _to_ms(reaction.created_at),
        "done": reaction.done,
    }


def _effect_doc(effect: Effect) -> _Doc:
    if isinstance(effect, Reaction):
        return {**_reaction_doc(effect), "_kind": "reaction"}
    if isinstance(effect, Refund):
        return {"_id": f"refund:{effect.id}:v{effect.version}", "_kind": "refund", "record": _model_doc(effect)}
    if isinstance(effect, WebhookEventRecord):
        doc = _event_doc(effect)
        doc["_id"] = f"event:{_provider_key(effect.provider, effect.event_id)}"
        doc["_kind"] = "webhook_event"
        return doc
    doc = _audit_doc(effect) if isinstance(effect, AuditEntry) else _model_doc(effect)
    doc[_SEQ] = doc.get(_SEQ) or ObjectId()
    doc["_kind"] = "audit" if isinstance(effect, AuditEntry) else "notification"
    return doc


def _audit_doc(entry: AuditEntry) -> _Doc:
    doc = _model_doc(entry)
    doc[_SEQ] = ObjectId()
    doc[_KEYS] = _audit_keys(entry)
    return doc


def _audit_keys(entry: AuditEntry) -> list[str]:
    if entry.payment_id and entry.payment_id != entry.subject_id:
        return [entry.subject_id, entry.payment_id]
    return [entry.subject_id]


class MongoStorage:
    """The :class:`~paykit.storage.Storage` protocol on MongoDB.

    Works on a standalone server, a replica set and Atlas alike: it uses no
    transactions, only single-document atomic operations. Datetimes are stored
    as BSON dates, which keep milliseconds: values read back are UTC-aware and
    truncated to the millisecond.

    Args:
        client: A ``pymongo.MongoClient``; the caller keeps owning it.
        database: The database holding paykit's collections.
        ensure_indexes: Create the indexes on construction (idempotent).

    Raises:
        StorageError: ``ensure_indexes`` could not reach the server.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: pymongo.MongoClient[_Doc],
        database: str = "paykit",
        *,
        ensure_indexes: bool = True,
    ) -> None:
        self._client = client
        self._owns_client = False
        self._db: Database[_Doc] = client.get_database(database)
        if ensure_indexes:
            self.ensure_indexes()

    @classmethod
    def from_uri(cls, uri: str, database: str = "paykit", **client_kwargs: Any) -> MongoStorage:
        """Connect to ``uri`` and build a storage that owns (and closes) the client.

        Args:
            uri: A MongoDB connection string (``mongodb://`` or ``mongodb+srv://``).
            database: The database holding paykit's collections.
            **client_kwargs: Passed to ``pymongo.MongoClient`` (timeouts, TLS...).

        Returns:
            A storage with its indexes ensured.

        Raises:
            ConfigurationError: The URI or an option is invalid.
            StorageError: The server cannot be reached.
        """
        client_kwargs.setdefault("tz_aware", True)
        with _map_pymongo_errors("connect"):
            try:
                client: pymongo.MongoClient[_Doc] = pymongo.MongoClient(uri, **client_kwargs)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"invalid MongoDB client options: {exc}") from exc
        try:
            storage = cls(client, database)
        except BaseException:
            client.close()
            raise
        storage._owns_client = True
        return storage

    def close(self) -> None:
        """Close the client if :meth:`from_uri` created it."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"MongoStorage(database={self._db.name!r})"

    def _col(self, name: str) -> Collection[_Doc]:
        return self._db.get_collection(name)

    @_storage_op
    def ensure_indexes(self) -> None:
        """Create every index paykit relies on; creating them again is a no-op.

        Raises:
            StorageError: The server failed, or an index of the same name has
                other options.
        """
        for collection, indexes in _INDEXES.items():
            self._col(collection).create_indexes(indexes)

    @_storage_op
    def ping(self) -> None:
        """Raise ``StorageError`` when the server is unreachable."""
        self._db.command("ping")

    # -- effects ------------------------------------------------------------
    def _with_outbox(self, doc: _Doc, effects: Sequence[Effect]) -> list[_Doc]:
        outbox = [_effect_doc(e) for e in effects]
        if outbox:
            doc[_OUTBOX] = outbox
        return outbox

    def _materialize(self, collection: str, doc_id: Any, outbox: Sequence[_Doc], version: Any = None) -> int:
        if not outbox:
            return 0
        self._insert_effects(outbox)
        self._drop_outbox(collection, doc_id, outbox, version)
        return len(outbox)

    def _drop_outbox(self, collection: str, doc_id: Any, outbox: Sequence[_Doc], version: Any) -> None:
        """Remove materialized effects from the document's outbox."""
        # Every write that pushes effects also bumps the version: if it has not moved, the outbox
        # holds exactly what was read, and one write drops it whole.
        if version is not None:
            dropped = self._col(collection).update_one({"_id": doc_id, "version": version}, {"$unset": {_OUTBOX: ""}})
            if dropped.matched_count:
                return
        self._pull_outbox(collection, doc_id, [e["_id"] for e in outbox])

    def _insert_effects(self, outbox: Sequence[_Doc]) -> None:
        def kind(name: str, drop: tuple[str, ...]) -> list[_Doc]:
            return [{k: v for k, v in e.items() if k not in drop} for e in outbox if e["_kind"] == name]

        self._insert_ignoring_duplicates("audit_log", kind("audit", ("_kind",)))
        self._insert_ignoring_duplicates("notifications", kind("notification", ("_kind", _SEQ)))
        self._insert_ignoring_duplicates("webhook_events", kind("webhook_event", ("_kind",)))
        self._insert_ignoring_duplicates("reactions", kind("reaction", ("_kind",)))
        for effect in outbox:
            if effect["_kind"] == "refund":
                self._upsert_refund(effect["record"])

    def _upsert_refund(self, record: _Doc) -> None:
        """Write a refund carried as an effect, unless the stored one is as new or newer."""
        fields = {k: v for k, v in record.items() if k != "_id"}
        with contextlib.suppress(DuplicateKeyError):  # a newer version is stored already
            self._col("refunds").update_one(
                {"_id": record["_id"], "version": {"$lt": record["version"]}},
                {"$set": fields, "$setOnInsert": {_SEQ: ObjectId()}},
                upsert=True,
            )

    def _pull_outbox(self, collection: str, doc_id: Any, effect_ids: Sequence[str]) -> None:
        col = self._col(collection)
        col.update_one({"_id": doc_id}, {"$pull": {_OUTBOX: {"_id": {"$in": list(effect_ids)}}}})
        # An empty array would still be indexed; drop the field so the sparse index forgets the doc.
        col.update_one({"_id": doc_id, _OUTBOX: {"$size": 0}}, {"$unset": {_OUTBOX: ""}})

    def _insert_ignoring_duplicates(self, collection: str, docs: Sequence[_Doc]) -> None:
        if not docs:
            return
        try:
            self._col(collection).insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(error.get("code") != _DUPLICATE_KEY for error in errors):
                raise

    @_storage_op
    def flush_pending_effects(self, *, limit: int = 1000) -> int:
        """Materialize effects still held in outboxes (left by a process that died mid-write).

        Args:
            limit: At most this many documents are visited.

        Returns:
            How many effects were moved out of outboxes.
        """
        flushed = 0
        remaining = limit
        for collection in _OUTBOX_COLLECTIONS:
            if remaining <= 0:
                break
            pending = self._col(collection).find(
                {f"{_OUTBOX}._id": {"$exists": True}}, {_OUTBOX: 1, "version": 1}, limit=remaining
            )
            for doc in pending:
                remaining -= 1
                flushed += self._materialize(collection, doc["_id"], doc.get(_OUTBOX, []), doc.get("version"))
        return flushed

    # -- reactions and idempotency keys ---------------------------------------
    @_storage_op
    def list_pending_reactions(self, *, limit: int) -> list[Reaction]:
        """Reactions not yet done, oldest first (outboxes are materialized first)."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = self._col("reactions").find({"done": False}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [
            Reaction(
                id=doc["_id"],
                kind=doc["kind"],
                target_id=doc["target_id"],
                payment_id=doc["payment_id"],
                created_at=_from_bson(doc["created_at"]),
            )
            for doc in cursor.limit(limit)
        ]

    @_storage_op
    def complete_reaction(self, reaction_id: str) -> None:
        """Mark a reaction done, even before its outbox copy is materialized."""
        self._col("reactions").update_one({"_id": reaction_id}, {"$set": {"done": True}}, upsert=True)

    @_storage_op
    def claim_key(self, claim: KeyClaim) -> KeyClaim:
        """Insert the claim under a unique ``(scope, key)`` id; return the stored one."""
        doc_id = _provider_key(claim.scope, claim.key)
        doc = {
            "_id": doc_id,
            "owner_id": claim.owner_id,
            "fingerprint": claim.fingerprint,
            "claimed_at": _to_ms(claim.claimed_at),
        }
        try:
            self._col("idempotency_keys").insert_one(doc)
        except DuplicateKeyError:
            stored = self._col("idempotency_keys").find_one({"_id": doc_id})
            if stored is None:  # pragma: no cover - claims are never deleted
                raise StorageError("an idempotency key claim vanished") from None
            return KeyClaim(
                scope=claim.scope,
                key=claim.key,
                owner_id=stored["owner_id"],
                fingerprint=stored["fingerprint"],
                claimed_at=_from_bson(stored["claimed_at"]),
            )
        return claim

    # -- generic record helpers --------------------------------------------
    def _insert(self, collection: str, doc: _Doc, effects: Sequence[Effect]) -> None:
        self._with_outbox(doc, effects)
        self._col(collection).insert_one(doc)

    def _cas(
        self,
        collection: str,
        record: BaseModel,
        doc: _Doc,
        *,
        expected_version: int,
        effects: Sequence[Effect],
        unset: Sequence[str] = (),
    ) -> bool:
        doc_id = doc.pop("_id")
        if getattr(record, "version", None) != expected_version + 1:
            # As in memory: a stale write is just a lost race; a bad version is a bug.
            if self._col(collection).count_documents({"_id": doc_id, "version": expected_version}, limit=1):
                raise ValueError("the new version must be expected_version + 1")
            return False
        outbox = [_effect_doc(e) for e in effects]
        # $set, not a replace: effects still pending from an earlier write stay in the outbox.
        update: _Doc = {"$set": doc}
        if outbox:
            update["$push"] = {_OUTBOX: {"$each": outbox}}
        if unset:
            update["$unset"] = dict.fromkeys(unset, "")
        result = self._col(collection).update_one({"_id": doc_id, "version": expected_version}, update)
        return result.matched_count == 1

    def _get(self, collection: str, model: type[_M], record_id: str) -> _M | None:
        return _load(model, self._col(collection).find_one({"_id": record_id}, {_OUTBOX: 0}))

    # -- payments -----------------------------------------------------------
    @staticmethod
    def _payment_doc(payment: Payment) -> _Doc:
        doc = _model_doc(payment)
        if payment.provider_ref is not None:
            doc[_PROVIDER_KEY] = _provider_key(payment.provider, payment.provider_ref)
        if payment.pending_refunds:
            doc[_REFUNDING] = True
        capture = payment.provider_data.get("capture_id")
        if capture:
            doc[_CAPTURE_KEY] = _provider_key(payment.provider, capture)
        return doc

    @_storage_op
    def insert_payment(self, payment: Payment, effects: Sequence[Effect] = ()) -> None:
        """Insert a new payment with its effects.

        Raises:
            DuplicateRecordError: The id, or the provider reference, is taken.
            StorageError: The server failed.
        """
        self._insert("payments", self._payment_doc(payment), effects)

    @_storage_op
    def get_payment(self, payment_id: str) -> Payment | None:
        """The payment with this id, or ``None``."""
        return self._get("payments", Payment, payment_id)

    @_storage_op
    def find_payment_by_provider_ref(self, provider: str, provider_ref: str) -> Payment | None:
        """The payment a provider knows by ``provider_ref``, or ``None``."""
        doc = self._col("payments").find_one({_PROVIDER_KEY: _provider_key(provider, provider_ref)}, {_OUTBOX: 0})
        return _load(Payment, doc)

    @_storage_op
    def find_payment_by_capture_ref(self, provider: str, capture_ref: str) -> Payment | None:
        """The payment whose provider data names this capture (indexed), or ``None``."""
        doc = self._col("payments").find_one({_CAPTURE_KEY: _provider_key(provider, capture_ref)}, {_OUTBOX: 0})
        return _load(Payment, doc)

    @_storage_op
    def update_payment(self, payment: Payment, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set: write ``payment`` if the stored version is ``expected_version``.

        Returns:
            ``False`` (nothing written) when another writer got there first.

        Raises:
            DuplicateRecordError: The new provider reference belongs to another payment.
            ValueError: ``payment.version`` is not ``expected_version + 1``.
            StorageError: The server failed.
        """
        doc = self._payment_doc(payment)
        unset = [key for key in (_PROVIDER_KEY, _REFUNDING, _CAPTURE_KEY) if key not in doc]
        return self._cas("payments", payment, doc, expected_version=expected_version, effects=effects, unset=unset)

    @_storage_op
    def list_payments(
        self,
        *,
        user_id: str | None,
        status: PaymentStatus | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Payment]:
        """Payments newest first (``created_at``, then id, descending), after the ``after`` cursor."""
        if limit <= 0:
            return []
        query: _Doc = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status"] = status.value
        if after is not None:
            at = _to_ms(after.created_at)
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": after.id}}]
        cursor = (
            self._col("payments")
            .find(query, {_OUTBOX: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_load_required(Payment, doc) for doc in cursor]

    @_storage_op
    def list_payments_in_status(
        self, statuses: Iterable[PaymentStatus], *, updated_before: datetime, limit: int
    ) -> list[Payment]:
        """Payments in any of ``statuses`` last updated before ``updated_before``, oldest update first."""
        if limit <= 0:
            return []
        query = {
            "status": {"$in": [s.value for s in statuses]},
            "updated_at": {"$lt": _to_ms(updated_before)},
        }
        cursor = self._col("payments").find(query, {_OUTBOX: 0}).sort([("updated_at", ASCENDING)]).limit(limit)
        return [_load_required(Payment, doc) for doc in cursor]

    @_storage_op
    def list_payments_refunding(self, *, updated_before: datetime, limit: int) -> list[Payment]:
        """Payments holding refund reservations, last updated before ``updated_before``, oldest first."""
        if limit <= 0:
            return []
        query = {_REFUNDING: True, "updated_at": {"$lt": _to_ms(updated_before)}}
        cursor = self._col("payments").find(query, {_OUTBOX: 0}).sort([("updated_at", ASCENDING)]).limit(limit)
        return [_load_required(Payment, doc) for doc in cursor]

    # -- refunds ------------------------------------------------------------
    @_storage_op
    def insert_refund(self, refund: Refund, effects: Sequence[Effect] = ()) -> None:
        """Insert a new refund with its effects.

        Raises:
            DuplicateRecordError: The id is taken.
            StorageError: The server failed.
        """
        doc = _model_doc(refund)
        doc[_SEQ] = ObjectId()
        self._insert("refunds", doc, effects)

    @_storage_op
    def get_refund(self, refund_id: str) -> Refund | None:
        """The refund with this id, or ``None`` (refunds still in outboxes included)."""
        self.flush_pending_effects()
        return self._get("refunds", Refund, refund_id)

    @_storage_op
    def update_refund(self, refund: Refund, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas("refunds", refund, _model_doc(refund), expected_version=expected_version, effects=effects)

    @_storage_op
    def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first (refunds still in outboxes included)."""
        self.flush_pending_effects()
        cursor = (
            self._col("refunds")
            .find({"payment_id": payment_id}, {_OUTBOX: 0})
            .sort([("created_at", ASCENDING), (_SEQ, ASCENDING)])
        )
        return [_load_required(Refund, doc) for doc in cursor]

    @_storage_op
    def list_refunds_succeeded_since(self, *, since: datetime, limit: int) -> list[Refund]:
        """Refunds SUCCEEDED whose record changed at or after ``since``, oldest change first."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("refunds")
            .find({"status": "succeeded", "updated_at": {"$gte": _to_ms(since)}}, {_OUTBOX: 0})
            .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_load_required(Refund, doc) for doc in cursor]

    # -- invoices -----------------------------------------------------------
    @_storage_op
    def insert_invoice(self, invoice: Invoice, effects: Sequence[Effect] = ()) -> None:
        """Insert a new invoice with its effects.

        Raises:
            DuplicateRecordError: The id or the number is taken.
            StorageError: The server failed.
        """
        self._insert("invoices", _model_doc(invoice), effects)

    @_storage_op
    def get_invoice(self, invoice_id: str) -> Invoice | None:
        """The invoice with this id, or ``None``."""
        return self._get("invoices", Invoice, invoice_id)

    @_storage_op
    def update_invoice(self, invoice: Invoice, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas("invoices", invoice, _model_doc(invoice), expected_version=expected_version, effects=effects)

    @_storage_op
    def next_invoice_sequence(self, series: str) -> int:
        """Atomically allocate the next number (1, 2, ...) in ``series``."""
        counters = self._col("counters")
        for _ in range(2):
            try:
                doc = counters.find_one_and_update(
                    {"_id": f"invoice:{series}"},
                    {"$inc": {"value": 1}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                # Two first allocations raced on the upsert; the loser retries as an update.
                continue
            if doc is not None:
                return int(doc["value"])
        raise StorageError("next_invoice_sequence: could not allocate a number")

    # -- payment methods ----------------------------------------------------
    @_storage_op
    def insert_payment_method(self, method: PaymentMethod, effects: Sequence[Effect] = ()) -> None:
        """Insert a new saved method with its effects.

        Raises:
            DuplicateRecordError: The id is taken.
            StorageError: The server failed.
        """
        self._insert("payment_methods", _model_doc(method), effects)

    @_storage_op
    def get_payment_method(self, method_id: str) -> PaymentMethod | None:
        """The saved method with this id (deleted ones included), or ``None``."""
        return self._get("payment_methods", PaymentMethod, method_id)

    @_storage_op
    def update_payment_method(
        self, method: PaymentMethod, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas(
            "payment_methods", method, _model_doc(method), expected_version=expected_version, effects=effects
        )

    @_storage_op
    def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """A user's methods that are not deleted, oldest first."""
        cursor = (
            self._col("payment_methods")
            .find({"user_id": user_id, "deleted": False}, {_OUTBOX: 0})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        )
        return [_load_required(PaymentMethod, doc) for doc in cursor]

    @_storage_op
    def get_customer_ref(self, provider: str, user_id: str) -> str | None:
        """The provider's customer id for this user, if one was stored."""
        doc = self._col("customers").find_one({"provider": provider, "user_id": user_id})
        return None if doc is None else str(doc["customer_ref"])

    @_storage_op
    def set_customer_ref(self, provider: str, user_id: str, customer_ref: str) -> str:
        """Store the customer id unless one exists; return the stored one."""
        customers = self._col("customers")
        query = {"provider": provider, "user_id": user_id}
        for _ in range(2):
            try:
                doc = customers.find_one_and_update(
                    query,
                    {"$setOnInsert": {"customer_ref": customer_ref}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if doc is not None:
                return str(doc["customer_ref"])
        raise StorageError("set_customer_ref: could not store the customer reference")

    # -- audit --------------------------------------------------------------
    @_storage_op
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries; an entry whose id is already stored is skipped."""
        self._insert_ignoring_duplicates("audit_log", [_audit_doc(e) for e in entries])

    @_storage_op
    def list_audit(self, subject_id: str, *, limit: int) -> list[AuditEntry]:
        """Entries whose ``payment_id`` or ``subject_id`` is ``subject_id``, oldest first."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("audit_log").find({_KEYS: subject_id}).sort([("at", ASCENDING), (_SEQ, ASCENDING)]).limit(limit)
        )
        return [_load_required(AuditEntry, doc) for doc in cursor]

    # -- webhook events -----------------------------------------------------
    @_storage_op
    def record_webhook_event(self, record: WebhookEventRecord) -> bool:
        """Record a processed event; ``False`` if (provider, event_id) was recorded before."""
        try:
            self._col("webhook_events").insert_one(_event_doc(record))
        except DuplicateKeyError:
            return False
        return True

    @_storage_op
    def get_webhook_event(self, provider: str, event_id: str) -> WebhookEventRecord | None:
        """The recorded event, or ``None``."""
        doc = self._col("webhook_events").find_one({"provider": provider, "event_id": event_id})
        if doc is None:
            return None
        return WebhookEventRecord(
            provider=doc["provider"],
            event_id=doc["event_id"],
            type=doc["type"],
            outcome=doc["outcome"],
            received_at=_from_bson(doc["received_at"]),
            payment_id=doc.get("payment_id"),
        )

    # -- notifications ------------------------------------------------------
    @_storage_op
    def insert_notifications(self, notifications: Sequence[Notification]) -> None:
        """Insert notifications; one whose id is already stored is skipped."""
        self._insert_ignoring_duplicates("notifications", [_model_doc(n) for n in notifications])

    @_storage_op
    def claim_notifications(self, *, now: datetime, lease: timedelta, limit: int) -> list[Notification]:
        """Lease up to ``limit`` pending notifications due at ``now``, earliest due first.

        Each claim is one atomic update that stores the lease and a fresh claim
        token, so two dispatchers never hold the same notification, and a
        re-claim after the lease expired fences the earlier claimant off.
        """
        self.flush_pending_effects()
        now = _to_ms(now)
        lease_until = _to_ms(now + lease)
        notifications = self._col("notifications")
        claimed: list[Notification] = []
        while len(claimed) < limit:
            doc = notifications.find_one_and_update(
                {
                    "delivery": "pending",
                    "next_attempt_at": {"$lte": now},
                    "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
                },
                {"$set": {"lease_until": lease_until, "claim_token": secrets.token_urlsafe(16)}},
                sort=[("next_attempt_at", ASCENDING), ("_id", ASCENDING)],
                return_document=ReturnDocument.AFTER,
            )
            if doc is None:
                break
            claimed.append(_load_required(Notification, doc))
        return claimed

    @_storage_op
    def save_notification_delivery(self, notification: Notification, *, claim_token: str) -> bool:
        """Store the delivery fields in one update filtered on the stored claim token."""
        doc = _model_doc(notification)
        delivery_fields = (
            "delivery",
            "attempts",
            "next_attempt_at",
            "lease_until",
            "claim_token",
            "delivered_to",
            "last_error",
        )
        result = self._col("notifications").update_one(
            {"_id": doc["_id"], "claim_token": claim_token}, {"$set": {f: doc[f] for f in delivery_fields}}
        )
        return result.matched_count == 1

    @_storage_op
    def list_notifications(self, user_id: str, *, unread_only: bool, limit: int) -> list[Notification]:
        """A user's notifications, newest first."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        query: _Doc = {"user_id": user_id}
        if unread_only:
            query["read"] = False
        cursor = (
            self._col("notifications").find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        )
        return [_load_required(Notification, doc) for doc in cursor]

    @_storage_op
    def mark_notification_read(self, notification_id: str) -> bool:
        """Mark as read; ``False`` if no such notification."""
        self.flush_pending_effects()
        result = self._col("notifications").update_one({"_id": notification_id}, {"$set": {"read": True}})
        return result.matched_count == 1

    # -- aggregates ---------------------------------------------------------
    @_storage_op
    def payment_stats(self, *, created_since: datetime) -> PaymentStats:
        """Counts per status, captured and refunded minor units per currency, recent count.

        One ``$group`` per (status, currency) does the sums on the server;
        currencies are never added together.
        """
        pipeline: list[_Doc] = [
            # A leading $match on the indexed status lets the server read the status_money index.
            {"$match": {"status": {"$in": [s.value for s in PaymentStatus]}}},
            {
                "$group": {
                    "_id": {"status": "$status", "currency": "$amount.currency"},
                    "count": {"$sum": 1},
                    "captured": {"$sum": "$captured_minor"},
                    "refunded": {"$sum": "$refunded_minor"},
                }
            },
        ]
        by_status: dict[str, int] = {}
        captured: dict[str, int] = {}
        refunded: dict[str, int] = {}
        settled = {s.value for s in SETTLED_STATUSES}
        for row in self._col("payments").aggregate(pipeline):
            status, currency = row["_id"]["status"], row["_id"]["currency"]
            by_status[status] = by_status.get(status, 0) + int(row["count"])
            # Minor units are never negative, so a group sum > 0 means some payment captured.
            if status in settled or row["captured"]:
                captured[currency] = captured.get(currency, 0) + int(row["captured"])
                refunded[currency] = refunded.get(currency, 0) + int(row["refunded"])
        recent = self._col("payments").count_documents({"created_at": {"$gte": _to_ms(created_since)}})
        return PaymentStats(
            count_by_status=by_status,
            captured_by_currency=captured,
            refunded_by_currency=refunded,
            created_since=recent,
        )

    # -- explaining one payment -------------------------------------------------
    @_storage_op
    def list_webhook_events(self, payment_id: str, *, limit: int) -> list[WebhookEventRecord]:
        """The provider events recorded about a payment, oldest first (records still in outboxes included)."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("webhook_events")
            .find({"payment_id": payment_id})
            .sort([("received_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_event_record(doc) for doc in cursor]

    @_storage_op
    def list_notifications_for(self, subject_ids: Sequence[str], *, limit: int) -> list[Notification]:
        """Notifications about any of ``subject_ids``, oldest first (those still in outboxes included)."""
        if limit <= 0 or not subject_ids:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("notifications")
            .find({"subject_id": {"$in": list(subject_ids)}})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [_load_required(Notification, doc) for doc in cursor]


def _load_required(model: type[_M], doc: Mapping[str, Any]) -> _M:
    loaded = _load(model, doc)
    assert loaded is not None  # noqa: S101 - a cursor never yields None
    return loaded


def _event_record(doc: Mapping[str, Any]) -> WebhookEventRecord:
    return WebhookEventRecord(
        provider=doc["provider"],
        event_id=doc["event_id"],
        type=doc["type"],
        outcome=doc["outcome"],
        received_at=_from_bson(doc["received_at"]),
        payment_id=doc.get("payment_id"),
    )
