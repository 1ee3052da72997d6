# Generated from src/paykit/storage/_async/mongo.py by scripts/unasync.py: do not edit.
"""MongoDB storage: the storage protocol on pymongo, single-document atomic operations only.

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
  :meth:`MongoStorage.flush_pending_effects` does it, and every reader of
  effects (and so the notification dispatcher) runs it first; a process that
  dies midway leaves the outbox for the next flush.

:meth:`MongoStorage.write_batch` sends several such single-document writes
as one ordered ``bulkWrite`` command on MongoDB 8.0 and later (one command per
write elsewhere): each stays atomic on its own, as when sent one by one.

pymongo exceptions never leave this module: every operation runs inside
:func:`~paykit.storage._mongo_shared.map_pymongo_errors`, the one place that
translates them. Pure code (indexes, the BSON mapping) lives in
``storage/_mongo_shared.py``, shared with the other twin.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from pydantic import BaseModel

from ..._errors import ConfigurationError, DuplicateRecordError, MissingExtraError, StorageError
from ..._models import (
    AuditEntry,
    Dispute,
    InstallmentPlan,
    Invoice,
    Notification,
    NotificationPreferences,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    Subscription,
)
from ..._status import DisputeStatus, PaymentStatus
from .._base import Effect, KeyClaim, PageCursor, PaymentStats, Reaction, WebhookEventRecord, Write
from .memory import write_each

try:
    import pymongo
    from bson import ObjectId
    from pymongo import ASCENDING, DESCENDING, ReturnDocument
    from pymongo.collection import Collection
    from pymongo.database import Database
    from pymongo.errors import BulkWriteError, ClientBulkWriteException, DuplicateKeyError, InvalidOperation
    from pymongo.operations import InsertOne, UpdateOne

    from .._mongo_shared import (
        CAPTURE_KEY,
        DISPUTE_KEY,
        DUPLICATE_KEY,
        INDEXES,
        KEYS,
        LOST_PIPELINE,
        OUTBOX,
        OUTBOX_COLLECTIONS,
        PROVIDER_KEY,
        REFUNDING,
        SEQ,
        STATS_PIPELINE,
        Doc,
        audit_doc,
        billing_record,
        dispute_doc,
        effect_doc,
        event_doc,
        event_record,
        key_claim_doc,
        load,
        load_preferences,
        load_required,
        lost_from_groups,
        map_pymongo_errors,
        model_doc,
        only_duplicates,
        outbox_of_kind,
        payment_doc,
        preferences_doc,
        provider_key,
        reaction,
        stats_from_groups,
        stored_claim,
        to_ms,
        usage_filter,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("MongoStorage", extra="mongo", package="pymongo") from exc


__all__ = ["MongoStorage"]


def _cas_update(doc: Doc, effects: Sequence[Effect], unset: Sequence[str]) -> Doc:
    """The update of a compare-and-set: ``$set``, not a replace, so effects still pending stay in the outbox."""
    update: Doc = {"$set": doc}
    outbox = [effect_doc(e) for e in effects]
    if outbox:
        update["$push"] = {OUTBOX: {"$each": outbox}}
    if unset:
        update["$unset"] = dict.fromkeys(unset, "")
    return update


def _bad_version(write: Write) -> bool:
    """A compare-and-set whose new version is not the expected one plus one (``write_each`` tells why)."""
    return write.expected_version is not None and write.record.version != write.expected_version + 1


_P = ParamSpec("_P")
_R = TypeVar("_R")
_M = TypeVar("_M", bound=BaseModel)


def _storage_op(
    method: Callable[Concatenate[MongoStorage, _P], _R],
) -> Callable[Concatenate[MongoStorage, _P], _R]:
    """Run a storage operation with its indexes ensured and pymongo errors translated."""

    @functools.wraps(method)
    def wrapper(self: MongoStorage, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with map_pymongo_errors(method.__name__):
            if self._indexes_pending:
                self._create_indexes()
            return method(self, *args, **kwargs)

    return wrapper


class MongoStorage:
    """The :class:`~paykit.storage.Storage` protocol on MongoDB.

    Works on a standalone server, a replica set and Atlas alike: it uses no
    transactions, only single-document atomic operations. Datetimes are stored
    as BSON dates, which keep milliseconds: values read back are UTC-aware and
    truncated to the millisecond.

    Constructing it touches no server. The indexes paykit relies on are
    created by the first operation (once per instance; creating them again is
    a no-op), or up front by :meth:`ensure_indexes`, which deployments that
    want a failing server noticed at start-up call right after construction.

    Args:
        client: A ``pymongo.MongoClient``; the caller keeps owning it.
        database: The database holding paykit's collections.
        ensure_indexes: Create the indexes on first use. ``False`` leaves them
            to you (:meth:`ensure_indexes`, or your own migrations).

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        client: pymongo.MongoClient[Doc],
        database: str = "paykit",
        *,
        ensure_indexes: bool = True,
    ) -> None:
        self._client = client
        self._owns_client = False
        self._db: Database[Doc] = client.get_database(database)
        # Checked by every operation; two callers racing both create the indexes, which is idempotent.
        self._indexes_pending = ensure_indexes
        self._no_bulk = False  # set when the server turns MongoDB 8.0's bulkWrite down

    @classmethod
    def from_uri(cls, uri: str, database: str = "paykit", **client_kwargs: Any) -> MongoStorage:
        """Build a storage on a client of its own for ``uri``; :meth:`close` closes it.

        The client connects in the background; the first operation (or
        :meth:`ensure_indexes`) reports a server it cannot reach.

        Args:
            uri: A MongoDB connection string (``mongodb://`` or ``mongodb+srv://``).
            database: The database holding paykit's collections.
            **client_kwargs: Passed to ``pymongo.MongoClient`` (timeouts, TLS...).

        Returns:
            A storage that creates its indexes on first use.

        Raises:
            ConfigurationError: The URI or an option is invalid.
        """
        client_kwargs.setdefault("tz_aware", True)
        with map_pymongo_errors("connect"):
            try:
                client: pymongo.MongoClient[Doc] = pymongo.MongoClient(uri, **client_kwargs)
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"invalid MongoDB client options: {exc}") from exc
        storage = cls(client, database)
        storage._owns_client = True
        return storage

    def close(self) -> None:
        """Close the client if :meth:`from_uri` created it."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return f"MongoStorage(database={self._db.name!r})"

    def _col(self, name: str) -> Collection[Doc]:
        return self._db.get_collection(name)

    def ensure_indexes(self) -> None:
        """Create every index paykit relies on now; creating them again is a no-op.

        Operations do it on first use anyway; call this to create them (and
        to find out that the server is unreachable) at start-up.

        Raises:
            StorageError: The server failed, or an index of the same name has
                other options.
        """
        with map_pymongo_errors("ensure_indexes"):
            self._create_indexes()

    def _create_indexes(self) -> None:
        for collection, indexes in INDEXES.items():
            self._col(collection).create_indexes(indexes)
        self._indexes_pending = False

    def ping(self) -> None:
        """Raise ``StorageError`` when the server is unreachable (creates no index)."""
        with map_pymongo_errors("ping"):
            self._db.command("ping")

    # -- effects ------------------------------------------------------------
    def _with_outbox(self, doc: Doc, effects: Sequence[Effect]) -> list[Doc]:
        outbox = [effect_doc(e) for e in effects]
        if outbox:
            doc[OUTBOX] = outbox
        return outbox

    def _materialize(self, collection: str, doc_id: Any, outbox: Sequence[Doc], version: Any = None) -> int:
        if not outbox:
            return 0
        self._insert_effects(outbox)
        self._drop_outbox(collection, doc_id, outbox, version)
        return len(outbox)

    def _drop_outbox(self, collection: str, doc_id: Any, outbox: Sequence[Doc], version: Any) -> None:
        """Remove materialized effects from the document's outbox."""
        # Every write that pushes effects also bumps the version: if it has not moved, the outbox
        # holds exactly what was read, and one write drops it whole.
        if version is not None:
            dropped = self._col(collection).update_one({"_id": doc_id, "version": version}, {"$unset": {OUTBOX: ""}})
            if dropped.matched_count:
                return
        self._pull_outbox(collection, doc_id, [e["_id"] for e in outbox])

    def _insert_effects(self, outbox: Sequence[Doc]) -> None:
        self._insert_ignoring_duplicates("audit_log", outbox_of_kind(outbox, "audit", ("_kind",)))
        self._insert_ignoring_duplicates("notifications", outbox_of_kind(outbox, "notification", ("_kind", SEQ)))
        self._insert_ignoring_duplicates("webhook_events", outbox_of_kind(outbox, "webhook_event", ("_kind",)))
        reactions = outbox_of_kind(outbox, "reaction", ("_kind",))
        self._insert_ignoring_duplicates("reactions", [r for r in reactions if not r["done"]])
        self._insert_done([r for r in reactions if r["done"]], stored_first=True)
        for effect in outbox:
            if effect["_kind"] == "refund":
                self._upsert_refund(effect["record"])

    def _upsert_refund(self, record: Doc) -> None:
        """Write a refund carried as an effect, unless the stored one is as new or newer."""
        fields = {k: v for k, v in record.items() if k != "_id"}
        with contextlib.suppress(DuplicateKeyError):  # a newer version is stored already
            self._col("refunds").update_one(
                {"_id": record["_id"], "version": {"$lt": record["version"]}},
                {"$set": fields, "$setOnInsert": {SEQ: ObjectId()}},
                upsert=True,
            )

    def _pull_outbox(self, collection: str, doc_id: Any, effect_ids: Sequence[str]) -> None:
        col = self._col(collection)
        col.update_one({"_id": doc_id}, {"$pull": {OUTBOX: {"_id": {"$in": list(effect_ids)}}}})
        # An empty array would still be indexed; drop the field so the sparse index forgets the doc.
        col.update_one({"_id": doc_id, OUTBOX: {"$size": 0}}, {"$unset": {OUTBOX: ""}})

    def _insert_ignoring_duplicates(self, collection: str, docs: Sequence[Doc]) -> None:
        if not docs:
            return
        try:
            self._col(collection).insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):
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
        for collection in OUTBOX_COLLECTIONS:
            if remaining <= 0:
                break
            pending = self._col(collection).find(
                {f"{OUTBOX}._id": {"$exists": True}}, {OUTBOX: 1, "version": 1}, limit=remaining
            )
            for doc in pending:
                remaining -= 1
                flushed += self._materialize(collection, doc["_id"], doc.get(OUTBOX, []), doc.get("version"))
        return flushed

    # -- reactions and idempotency keys ---------------------------------------
    @_storage_op
    def list_pending_reactions(self, *, limit: int) -> list[Reaction]:
        """Reactions not yet done, oldest first (outboxes are materialized first)."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = self._col("reactions").find({"done": False}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [reaction(doc) for doc in cursor.limit(limit)]

    @_storage_op
    def complete_reaction(self, reaction_id: str) -> None:
        """Mark a reaction done, even before its outbox copy is materialized."""
        self._col("reactions").update_one({"_id": reaction_id}, {"$set": {"done": True}}, upsert=True)

    @_storage_op
    def complete_reactions(self, reaction_ids: Sequence[str]) -> None:
        """Mark several reactions done in one round trip, materialized or not.

        A reaction materialized later keeps its marker, as with ``complete_reaction``.
        """
        self._insert_done([{"_id": rid, "done": True} for rid in dict.fromkeys(reaction_ids)])

    def _insert_done(self, docs: Sequence[Doc], *, stored_first: bool = False) -> None:
        """Store reactions as done, whether their pending copies are stored yet or not.

        ``stored_first``: the pending copies are likely stored already (an outbox flush reaches
        the payment's outbox first), so they are set done first and the rest inserted; else the
        markers are inserted first and the copies found stored set done. One command in the
        likely case either way.
        """
        if not docs:
            return
        reactions = self._col("reactions")
        ids = [doc["_id"] for doc in docs]
        if stored_first:
            result = reactions.update_many({"_id": {"$in": ids}}, {"$set": {"done": True}})
            if result.matched_count == len(ids):
                return
        try:
            reactions.insert_many(list(docs), ordered=False)
        except BulkWriteError as exc:
            if not only_duplicates(exc):
                raise
            if not stored_first:
                stored = [ids[error["index"]] for error in exc.details.get("writeErrors", [])]
                reactions.update_many({"_id": {"$in": stored}}, {"$set": {"done": True}})

    @_storage_op
    def claim_key(self, claim: KeyClaim) -> KeyClaim:
        """Insert the claim under a unique ``(scope, key)`` id; return the stored one."""
        doc = key_claim_doc(claim)
        try:
            self._col("idempotency_keys").insert_one(doc)
        except DuplicateKeyError:
            stored = self._col("idempotency_keys").find_one({"_id": doc["_id"]})
            if stored is None:  # pragma: no cover - claims are never deleted
                raise StorageError("an idempotency key claim vanished") from None
            return stored_claim(claim, stored)
        return claim

    @_storage_op
    def add_usage(
        self,
        key: str,
        *,
        count: int,
        amount_minor: int,
        max_count: int | None,
        max_amount_minor: int | None,
        expires_at: datetime,
    ) -> bool:
        """One conditional ``$inc`` on the counter's document, whose filter holds the maximums."""
        usage = self._col("usage")
        with contextlib.suppress(DuplicateKeyError):  # a concurrent first use created it
            usage.update_one(
                {"_id": key},
                {
                    "$setOnInsert": {"count": 0, "amount": 0, "expires_at": to_ms(expires_at)},
                    # The server's own time: its TTL index drops the counter a while after its last use.
                    "$currentDate": {"touched_at": True},
                },
                upsert=True,
            )
        query = usage_filter(key, count, amount_minor, max_count, max_amount_minor)
        result = usage.update_one(query, {"$inc": {"count": count, "amount": amount_minor}})
        return bool(result.matched_count)

    # -- generic record helpers --------------------------------------------
    def _insert(self, collection: str, doc: Doc, effects: Sequence[Effect]) -> None:
        self._with_outbox(doc, effects)
        self._col(collection).insert_one(doc)

    def _cas(
        self,
        collection: str,
        record: BaseModel,
        doc: Doc,
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
        result = self._col(collection).update_one(
            {"_id": doc_id, "version": expected_version}, _cas_update(doc, effects, unset)
        )
        return result.matched_count == 1

    # -- several records --------------------------------------------------------
    @_storage_op
    def write_batch(self, writes: Sequence[Write]) -> int:
        """One ``bulkWrite`` command (MongoDB 8.0 and later), ordered: the first failure stops it.

        A compare-and-set is sent as an upsert on ``{_id, version}``: when the version moved,
        the upsert's insert hits the ``_id`` index, and that error stops the batch (a miss
        would not). paykit never deletes these records, so the upsert never inserts. Older
        servers and clients without ``bulk_write`` get one command per write.
        """
        if not writes:
            return 0
        # On the class: a stand-in client (mongomock) answers any attribute with a database.
        if not hasattr(type(self._client), "bulk_write") or self._no_bulk or any(_bad_version(w) for w in writes):
            return write_each(self, writes)
        operations = [self._bulk_operation(write) for write in writes]
        try:
            self._client.bulk_write(operations, ordered=True)
        except InvalidOperation:  # the server is older than 8.0: never ask again
            self._no_bulk = True
            return write_each(self, writes)
        except ClientBulkWriteException as exc:
            if exc.error is not None or not exc.write_errors:
                raise
            error = cast("Doc", exc.write_errors[0])  # typed as an exception, sent as the server's document
            index = int(error["idx"])
            if error.get("code") != DUPLICATE_KEY:
                raise
            if writes[index].expected_version is not None and error.get("keyPattern") != {"_id": 1}:
                raise DuplicateRecordError("write_batch: a record with the same unique key exists") from exc
            return index
        return len(writes)

    def _bulk_operation(self, write: Write) -> InsertOne[Doc] | UpdateOne:
        record = write.record
        collection = (
            "payments" if isinstance(record, Payment) else "invoices" if isinstance(record, Invoice) else "billing"
        )
        namespace = f"{self._db.name}.{collection}"
        doc = payment_doc(record) if isinstance(record, Payment) else model_doc(record)
        if write.expected_version is None:
            self._with_outbox(doc, write.effects)
            return InsertOne(doc, namespace=namespace)
        unset = (
            [key for key in (PROVIDER_KEY, REFUNDING, CAPTURE_KEY) if key not in doc]
            if isinstance(record, Payment)
            else []
        )
        doc_id = doc.pop("_id")
        update = _cas_update(doc, write.effects, unset)
        return UpdateOne({"_id": doc_id, "version": write.expected_version}, update, upsert=True, namespace=namespace)

    def _get(self, collection: str, model: type[_M], record_id: str) -> _M | None:
        return load(model, self._col(collection).find_one({"_id": record_id}, {OUTBOX: 0}))

    # -- payments -----------------------------------------------------------
    @_storage_op
    def insert_payment(self, payment: Payment, effects: Sequence[Effect] = ()) -> None:
        """Insert a new payment with its effects.

        Raises:
            DuplicateRecordError: The id, or the provider reference, is taken.
            StorageError: The server failed.
        """
        self._insert("payments", payment_doc(payment), effects)

    @_storage_op
    def get_payment(self, payment_id: str) -> Payment | None:
        """The payment with this id, or ``None``."""
        return self._get("payments", Payment, payment_id)

    @_storage_op
    def find_payment_by_provider_ref(self, provider: str, provider_ref: str) -> Payment | None:
        """The payment a provider knows by ``provider_ref``, or ``None``."""
        doc = self._col("payments").find_one({PROVIDER_KEY: provider_key(provider, provider_ref)}, {OUTBOX: 0})
        return load(Payment, doc)

    @_storage_op
    def find_payment_by_capture_ref(self, provider: str, capture_ref: str) -> Payment | None:
        """The payment whose provider data names this capture (indexed), or ``None``."""
        doc = self._col("payments").find_one({CAPTURE_KEY: provider_key(provider, capture_ref)}, {OUTBOX: 0})
        return load(Payment, doc)

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
        doc = payment_doc(payment)
        unset = [key for key in (PROVIDER_KEY, REFUNDING, CAPTURE_KEY) if key not in doc]
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
        query: Doc = {}
        if user_id is not None:
            query["user_id"] = user_id
        if status is not None:
            query["status"] = status.value
        if after is not None:
            at = to_ms(after.created_at)
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": after.id}}]
        cursor = (
            self._col("payments")
            .find(query, {OUTBOX: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [load_required(Payment, doc) for doc in cursor]

    @_storage_op
    def list_payments_in_status(
        self, statuses: Iterable[PaymentStatus], *, updated_before: datetime, limit: int
    ) -> list[Payment]:
        """Payments in any of ``statuses`` last updated before ``updated_before``, oldest update first."""
        if limit <= 0:
            return []
        query = {
            "status": {"$in": [s.value for s in statuses]},
            "updated_at": {"$lt": to_ms(updated_before)},
        }
        cursor = self._col("payments").find(query, {OUTBOX: 0}).sort([("updated_at", ASCENDING)]).limit(limit)
        return [load_required(Payment, doc) for doc in cursor]

    @_storage_op
    def list_payments_refunding(self, *, updated_before: datetime, limit: int) -> list[Payment]:
        """Payments holding refund reservations, last updated before ``updated_before``, oldest first."""
        if limit <= 0:
            return []
        query = {REFUNDING: True, "updated_at": {"$lt": to_ms(updated_before)}}
        cursor = self._col("payments").find(query, {OUTBOX: 0}).sort([("updated_at", ASCENDING)]).limit(limit)
        return [load_required(Payment, doc) for doc in cursor]

    # -- refunds ------------------------------------------------------------
    @_storage_op
    def insert_refund(self, refund: Refund, effects: Sequence[Effect] = ()) -> None:
        """Insert a new refund with its effects.

        Raises:
            DuplicateRecordError: The id is taken.
            StorageError: The server failed.
        """
        doc = model_doc(refund)
        doc[SEQ] = ObjectId()
        self._insert("refunds", doc, effects)

    @_storage_op
    def get_refund(self, refund_id: str) -> Refund | None:
        """The refund with this id, or ``None`` (refunds still in outboxes included)."""
        self.flush_pending_effects()
        return self._get("refunds", Refund, refund_id)

    @_storage_op
    def update_refund(self, refund: Refund, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas("refunds", refund, model_doc(refund), expected_version=expected_version, effects=effects)

    @_storage_op
    def list_refunds(self, payment_id: str) -> list[Refund]:
        """A payment's refunds, oldest first (refunds still in outboxes included)."""
        self.flush_pending_effects()
        cursor = (
            self._col("refunds")
            .find({"payment_id": payment_id}, {OUTBOX: 0})
            .sort([("created_at", ASCENDING), (SEQ, ASCENDING)])
        )
        return [load_required(Refund, doc) for doc in cursor]

    @_storage_op
    def list_refunds_succeeded_since(self, *, since: datetime, limit: int) -> list[Refund]:
        """Refunds SUCCEEDED whose record changed at or after ``since``, oldest change first."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("refunds")
            .find({"status": "succeeded", "updated_at": {"$gte": to_ms(since)}}, {OUTBOX: 0})
            .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [load_required(Refund, doc) for doc in cursor]

    @_storage_op
    def list_refunds_in_status(self, status: RefundStatus, *, limit: int) -> list[Refund]:
        """Refunds in ``status``, least recently changed first (the ``status_updated`` index)."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("refunds")
            .find({"status": status.value}, {OUTBOX: 0})
            .sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return [load_required(Refund, doc) for doc in cursor]

    # -- invoices -----------------------------------------------------------
    @_storage_op
    def insert_invoice(self, invoice: Invoice, effects: Sequence[Effect] = ()) -> None:
        """Insert a new invoice with its effects.

        Raises:
            DuplicateRecordError: The id or the number is taken.
            StorageError: The server failed.
        """
        self._insert("invoices", model_doc(invoice), effects)

    @_storage_op
    def get_invoice(self, invoice_id: str) -> Invoice | None:
        """The invoice with this id, or ``None``."""
        return self._get("invoices", Invoice, invoice_id)

    @_storage_op
    def update_invoice(self, invoice: Invoice, *, expected_version: int, effects: Sequence[Effect] = ()) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas("invoices", invoice, model_doc(invoice), expected_version=expected_version, effects=effects)

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
        self._insert("payment_methods", model_doc(method), effects)

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
            "payment_methods", method, model_doc(method), expected_version=expected_version, effects=effects
        )

    @_storage_op
    def list_payment_methods(self, user_id: str) -> list[PaymentMethod]:
        """A user's methods that are not deleted, oldest first."""
        cursor = (
            self._col("payment_methods")
            .find({"user_id": user_id, "deleted": False}, {OUTBOX: 0})
            .sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        )
        return [load_required(PaymentMethod, doc) for doc in cursor]

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

    # -- notification preferences ---------------------------------------------
    @_storage_op
    def save_notification_preferences(self, preferences: NotificationPreferences) -> None:
        """Store a user's preferences (one document per user), replacing earlier ones."""
        doc = preferences_doc(preferences)
        self._col("notification_preferences").replace_one({"_id": doc["_id"]}, doc, upsert=True)

    @_storage_op
    def get_notification_preferences(self, user_id: str) -> NotificationPreferences | None:
        """A user's stored preferences, or ``None``."""
        doc = self._col("notification_preferences").find_one({"_id": user_id})
        return None if doc is None else load_preferences(doc)

    # -- subscriptions and installment plans ----------------------------------
    @_storage_op
    def insert_billing(self, record: Subscription | InstallmentPlan, effects: Sequence[Effect] = ()) -> None:
        """Insert a new subscription or installment plan with its effects.

        Raises:
            DuplicateRecordError: The id is taken.
            StorageError: The server failed.
        """
        self._insert("billing", model_doc(record), effects)

    @_storage_op
    def get_billing(self, record_id: str) -> Subscription | InstallmentPlan | None:
        """The subscription or installment plan with this id, or ``None``."""
        doc = self._col("billing").find_one({"_id": record_id}, {OUTBOX: 0})
        return None if doc is None else billing_record(doc)

    @_storage_op
    def update_billing(
        self, record: Subscription | InstallmentPlan, *, expected_version: int, effects: Sequence[Effect] = ()
    ) -> bool:
        """Compare-and-set, as :meth:`update_payment`."""
        return self._cas("billing", record, model_doc(record), expected_version=expected_version, effects=effects)

    @_storage_op
    def list_billing(
        self, *, user_id: str | None, kind: str | None, limit: int
    ) -> list[Subscription | InstallmentPlan]:
        """Records newest first, by user and kind."""
        if limit <= 0:
            return []
        query: Doc = {}
        if user_id is not None:
            query["user_id"] = user_id
        if kind is not None:
            query["kind"] = kind
        cursor = (
            self._col("billing")
            .find(query, {OUTBOX: 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [billing_record(doc) for doc in cursor]

    @_storage_op
    def list_billing_due(self, *, now: datetime, limit: int) -> list[Subscription | InstallmentPlan]:
        """Records due at ``now`` with a free lease, earliest due first (the ``due`` index)."""
        if limit <= 0:
            return []
        at = to_ms(now)
        query = {"due_at": {"$lte": at}, "$or": [{"lease_until": None}, {"lease_until": {"$lte": at}}]}
        cursor = (
            self._col("billing").find(query, {OUTBOX: 0}).sort([("due_at", ASCENDING), ("_id", ASCENDING)]).limit(limit)
        )
        return [billing_record(doc) for doc in cursor]

    @_storage_op
    def claim_billing_due(
        self, *, now: datetime, lease_until: datetime, token: str, exclude: Sequence[str] = ()
    ) -> tuple[Subscription | InstallmentPlan, datetime | None] | None:
        """One ``findAndModify`` on the ``due`` index: the due query and the lease in one round trip."""
        at = to_ms(now)
        query: Doc = {"due_at": {"$lte": at}, "$or": [{"lease_until": None}, {"lease_until": {"$lte": at}}]}
        if exclude:
            query["_id"] = {"$nin": list(exclude)}
        until = to_ms(lease_until)
        doc = self._col("billing").find_one_and_update(
            query,
            {"$set": {"lease_until": until, "lease_token": token, "updated_at": at}, "$inc": {"version": 1}},
            projection={OUTBOX: 0},
            sort=[("due_at", ASCENDING), ("_id", ASCENDING)],
            return_document=ReturnDocument.BEFORE,
        )
        if doc is None:
            return None
        before = billing_record(doc)
        after = before.model_copy(
            update={"lease_until": until, "lease_token": token, "updated_at": at, "version": before.version + 1}
        )
        return after, before.lease_until

    # -- audit --------------------------------------------------------------
    @_storage_op
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """Append entries; an entry whose id is already stored is skipped."""
        self._insert_ignoring_duplicates("audit_log", [audit_doc(e) for e in entries])

    @_storage_op
    def list_audit(self, subject_id: str, *, limit: int) -> list[AuditEntry]:
        """Entries whose ``payment_id`` or ``subject_id`` is ``subject_id``, oldest first."""
        if limit <= 0:
            return []
        self.flush_pending_effects()
        cursor = (
            self._col("audit_log").find({KEYS: subject_id}).sort([("at", ASCENDING), (SEQ, ASCENDING)]).limit(limit)
        )
        return [load_required(AuditEntry, doc) for doc in cursor]

    # -- webhook events -----------------------------------------------------
    @_storage_op
    def record_webhook_event(self, record: WebhookEventRecord) -> bool:
        """Record a processed event; ``False`` if (provider, event_id) was recorded before."""
        try:
            self._col("webhook_events").insert_one(event_doc(record))
        except DuplicateKeyError:
            return False
        return True

    @_storage_op
    def get_webhook_event(self, provider: str, event_id: str) -> WebhookEventRecord | None:
        """The recorded event, or ``None``."""
        doc = self._col("webhook_events").find_one({"provider": provider, "event_id": event_id})
        return None if doc is None else event_record(doc)

    # -- notifications ------------------------------------------------------
    @_storage_op
    def insert_notifications(self, notifications: Sequence[Notification]) -> None:
        """Insert notifications; one whose id is already stored is skipped."""
        self._insert_ignoring_duplicates("notifications", [model_doc(n) for n in notifications])

    @_storage_op
    def claim_notifications(self, *, now: datetime, lease: timedelta, limit: int) -> list[Notification]:
        """Lease up to ``limit`` pending notifications due at ``now``, earliest due first.

        Each claim is one atomic update that stores the lease and a fresh claim
        token, so two dispatchers never hold the same notification, and a
        re-claim after the lease expired fences the earlier claimant off.
        """
        self.flush_pending_effects()
        now = to_ms(now)
        lease_until = to_ms(now + lease)
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
            claimed.append(load_required(Notification, doc))
        return claimed

    @_storage_op
    def save_notification_delivery(self, notification: Notification, *, claim_token: str) -> bool:
        """Store the delivery fields in one update filtered on the stored claim token."""
        doc = model_doc(notification)
        delivery_fields = (
            "delivery",
            "attempts",
            "next_attempt_at",
            "lease_until",
            "claim_token",
            "delivered_to",
            "given_up_by",
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
        query: Doc = {"user_id": user_id}
        if unread_only:
            query["read"] = False
        cursor = (
            self._col("notifications").find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        )
        return [load_required(Notification, doc) for doc in cursor]

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
        rows: list[Doc] = []
        # A loop, not to_list(): mongomock's cursors have no to_list().
        for row in self._col("payments").aggregate(STATS_PIPELINE):
            rows.append(row)
        recent = self._col("payments").count_documents({"created_at": {"$gte": to_ms(created_since)}})
        lost_rows: list[Doc] = []
        for row in self._col("payments").aggregate(LOST_PIPELINE):
            lost_rows.append(row)
        stats = stats_from_groups(rows, recent)
        stats.dispute_lost_by_currency.update(lost_from_groups(lost_rows))
        return stats

    # -- disputes -------------------------------------------------------------
    @_storage_op
    def save_dispute(self, dispute: Dispute) -> bool:
        """Upsert the dispute unless the stored copy's version is as new."""
        doc = dispute_doc(dispute)
        fields = {k: v for k, v in doc.items() if k != "_id"}
        try:
            result = self._col("disputes").update_one(
                {"_id": doc["_id"], "version": {"$lt": dispute.version}}, {"$set": fields}, upsert=True
            )
        except DuplicateKeyError:
            # The upsert met its own id (a copy as new is stored) or another dispute's provider id.
            if self._col("disputes").count_documents({"_id": doc["_id"]}, limit=1):
                return False
            raise
        return result.upserted_id is not None or result.modified_count == 1

    @_storage_op
    def get_dispute(self, dispute_id: str) -> Dispute | None:
        """The dispute with this id, or ``None``."""
        return self._get("disputes", Dispute, dispute_id)

    @_storage_op
    def find_dispute_by_provider_ref(self, provider: str, provider_dispute_id: str) -> Dispute | None:
        """The dispute a provider knows by this id, or ``None``."""
        doc = self._col("disputes").find_one({DISPUTE_KEY: provider_key(provider, provider_dispute_id)})
        return load(Dispute, doc)

    @_storage_op
    def list_disputes(
        self,
        *,
        status: DisputeStatus | None,
        payment_id: str | None,
        limit: int,
        after: PageCursor | None,
    ) -> list[Dispute]:
        """Disputes newest first (``created_at``, then id, descending), after the ``after`` cursor."""
        if limit <= 0:
            return []
        query: Doc = {}
        if status is not None:
            query["status"] = status.value
        if payment_id is not None:
            query["payment_id"] = payment_id
        if after is not None:
            at = to_ms(after.created_at)
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": after.id}}]
        cursor = self._col("disputes").find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [load_required(Dispute, doc) for doc in cursor]

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
        return [event_record(doc) for doc in cursor]

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
        return [load_required(Notification, doc) for doc in cursor]
