"""What MongoStorage and AsyncMongoStorage share: pure code, no I/O.

Index definitions, the BSON mapping of paykit's records, and the one place that
translates pymongo exceptions into paykit's (:func:`map_pymongo_errors`, a plain
context manager, which works around awaited driver calls as well). Both twins,
``_async/mongo.py`` and its generated ``_sync/mongo.py``, import it; it is
written by hand, once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Final, TypeVar

from bson import Decimal128, ObjectId
from pydantic import BaseModel, SecretStr
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from pymongo.errors import ConfigurationError as MongoConfigurationError

from .._errors import ConfigurationError, DuplicateRecordError, StorageError
from .._log import get_logger
from .._models import AuditEntry, Dispute, InstallmentPlan, NotificationPreferences, Payment, Refund, Subscription
from .._status import SETTLED_STATUSES, PaymentStatus
from ._base import Effect, KeyClaim, PaymentStats, Reaction, WebhookEventRecord

# The name users know from the logging docs, whichever twin logs.
logger = get_logger("paykit.storage.mongo")

Doc = dict[str, Any]
"""A BSON document as pymongo reads and writes it."""

DUPLICATE_KEY: Final = 11000
OUTBOX: Final = "_outbox"
PROVIDER_KEY: Final = "_provider_key"
CAPTURE_KEY: Final = "_capture_key"
REFUNDING: Final = "_refunding"
SEQ: Final = "_seq"
KEYS: Final = "_keys"
DISPUTE_KEY: Final = "_dispute_key"

USAGE_TTL_SECONDS: Final = 32 * 24 * 3600
"""A velocity counter lives this long after its last use: longer than the longest window (31 days)."""

# Every collection whose documents may carry an effects outbox.
OUTBOX_COLLECTIONS: Final = ("payments", "refunds", "invoices", "payment_methods", "billing")

INDEXES: Final[dict[str, list[IndexModel]]] = {
    "payments": [
        # Sparse on a single field: the key exists only once the provider
        # answered, so PENDING payments without a reference never collide.
        # (partialFilterExpression would do too, but mongomock ignores it.)
        IndexModel([(PROVIDER_KEY, ASCENDING)], name="provider_ref_unique", unique=True, sparse=True),
        IndexModel([(CAPTURE_KEY, ASCENDING)], name="capture_ref", sparse=True),
        # Present only while refunds are reserved: reconcile() finds interrupted refunds by it.
        IndexModel([(REFUNDING, ASCENDING), ("updated_at", ASCENDING)], name="refunding", sparse=True),
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
        IndexModel([(f"{OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
        # metrics(): only payments that lost a dispute, read from the index alone.
        IndexModel([("dispute_lost_minor", ASCENDING), ("amount.currency", ASCENDING)], name="dispute_lost"),
    ],
    "refunds": [
        IndexModel([("payment_id", ASCENDING), ("created_at", ASCENDING), (SEQ, ASCENDING)], name="payment_created"),
        IndexModel([("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"),
        IndexModel([(f"{OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "invoices": [
        IndexModel([("number", ASCENDING)], name="number_unique", unique=True),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_created"),
        IndexModel([(f"{OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "payment_methods": [
        IndexModel([("user_id", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)], name="user_created"),
        IndexModel([(f"{OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "disputes": [
        IndexModel([("payment_id", ASCENDING), ("created_at", DESCENDING)], name="payment_created"),
        # Sparse: a dispute recorded by hand may have no provider id.
        IndexModel([(DISPUTE_KEY, ASCENDING)], name="provider_dispute_unique", unique=True, sparse=True),
        IndexModel([("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="status_created"),
        IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)], name="created"),
    ],
    "billing": [
        # bill_due(): records due now, earliest first; records with no due date sort first and are skipped.
        IndexModel([("due_at", ASCENDING), ("_id", ASCENDING)], name="due"),
        IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="user_created"),
        IndexModel([("kind", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)], name="kind_created"),
        IndexModel([(f"{OUTBOX}._id", ASCENDING)], name="outbox_pending", sparse=True),
    ],
    "customers": [
        IndexModel([("provider", ASCENDING), ("user_id", ASCENDING)], name="provider_user_unique", unique=True),
    ],
    "audit_log": [
        # One multikey field holds the subject and its payment, so a trail is one index range,
        # where an $or of two fields makes some servers scan the collection.
        IndexModel([(KEYS, ASCENDING), ("at", ASCENDING), (SEQ, ASCENDING)], name="keys_at"),
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
    # Velocity counters are read and written by _id only. The server drops one USAGE_TTL after its last use
    # (by the server's clock, not the service's: a test clock in the past cannot expire a live counter).
    "usage": [
        IndexModel([("touched_at", ASCENDING)], name="touched_ttl", expireAfterSeconds=USAGE_TTL_SECONDS),
    ],
}


# -- error translation ------------------------------------------------------
@contextlib.contextmanager
def map_pymongo_errors(operation: str) -> Iterator[None]:
    """Translate every pymongo exception into the paykit tree, ``raise ... from exc``.

    Messages name the operation and the failure class, never document contents.
    """
    try:
        yield
    except DuplicateKeyError as exc:
        raise DuplicateRecordError(f"{operation}: a record with the same unique key exists") from exc
    except BulkWriteError as exc:
        codes = {error.get("code") for error in exc.details.get("writeErrors", [])}
        if codes == {DUPLICATE_KEY}:
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


# -- documents ----------------------------------------------------------------
def to_bson(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): to_bson(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_bson(v) for v in value]
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return Decimal128(value)
    if isinstance(value, datetime):
        # BSON dates are UTC milliseconds; make the truncation explicit and the zone sure.
        return to_ms(value)
    return value


def from_bson(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: from_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_bson(v) for v in value]
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def to_ms(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def model_doc(model: BaseModel) -> Doc:
    doc: Doc = to_bson(model.model_dump(mode="python"))
    doc["_id"] = doc.pop("id")
    return doc


_M = TypeVar("_M", bound=BaseModel)


def load(model: type[_M], doc: Mapping[str, Any] | None) -> _M | None:
    if doc is None:
        return None
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    data["id"] = doc["_id"]
    return model.model_validate(from_bson(data))


def preferences_doc(preferences: NotificationPreferences) -> Doc:
    """A user's notification preferences as one document keyed by the user id."""
    doc: Doc = to_bson(preferences.model_dump(mode="python"))
    doc["_id"] = doc.pop("user_id")
    return doc


def load_preferences(doc: Mapping[str, Any]) -> NotificationPreferences:
    """The preferences stored by :func:`preferences_doc`."""
    data = {k: v for k, v in doc.items() if not k.startswith("_")}
    data["user_id"] = doc["_id"]
    return NotificationPreferences.model_validate(from_bson(data))


def provider_key(provider: str, provider_ref: str) -> str:
    # Length-prefixed so that no provider name can make two pairs collide.
    return f"{len(provider)}:{provider}:{provider_ref}"


def event_doc(record: WebhookEventRecord) -> Doc:
    return {
        "provider": record.provider,
        "event_id": record.event_id,
        "type": record.type,
        "outcome": record.outcome,
        "received_at": to_ms(record.received_at),
        "payment_id": record.payment_id,
    }


def reaction_doc(reaction: Reaction) -> Doc:
    return {
        "_id": reaction.id,
        "kind": reaction.kind,
        "target_id": reaction.target_id,
        "payment_id": reaction.payment_id,
        "created_at": to_ms(reaction.created_at),
        "done": reaction.done,
    }


def effect_doc(effect: Effect) -> Doc:
    if isinstance(effect, Reaction):
        return {**reaction_doc(effect), "_kind": "reaction"}
    if isinstance(effect, Refund):
        return {"_id": f"refund:{effect.id}:v{effect.version}", "_kind": "refund", "record": model_doc(effect)}
    if isinstance(effect, WebhookEventRecord):
        doc = event_doc(effect)
        doc["_id"] = f"event:{provider_key(effect.provider, effect.event_id)}"
        doc["_kind"] = "webhook_event"
        return doc
    doc = audit_doc(effect) if isinstance(effect, AuditEntry) else model_doc(effect)
    doc[SEQ] = doc.get(SEQ) or ObjectId()
    doc["_kind"] = "audit" if isinstance(effect, AuditEntry) else "notification"
    return doc


def audit_doc(entry: AuditEntry) -> Doc:
    doc = model_doc(entry)
    doc[SEQ] = ObjectId()
    doc[KEYS] = audit_keys(entry)
    return doc


def audit_keys(entry: AuditEntry) -> list[str]:
    if entry.payment_id and entry.payment_id != entry.subject_id:
        return [entry.subject_id, entry.payment_id]
    return [entry.subject_id]


def load_required(model: type[_M], doc: Mapping[str, Any]) -> _M:
    loaded = load(model, doc)
    assert loaded is not None  # noqa: S101 - a cursor never yields None
    return loaded


def payment_doc(payment: Payment) -> Doc:
    """The payment's document, with the keys its unique and sparse indexes read."""
    doc = model_doc(payment)
    if payment.provider_ref is not None:
        doc[PROVIDER_KEY] = provider_key(payment.provider, payment.provider_ref)
    if payment.pending_refunds:
        doc[REFUNDING] = True
    capture = payment.provider_data.get("capture_id")
    if capture:
        doc[CAPTURE_KEY] = provider_key(payment.provider, capture)
    return doc


def dispute_doc(dispute: Dispute) -> Doc:
    """The dispute's document, with the key its unique sparse index reads."""
    doc = model_doc(dispute)
    if dispute.provider_dispute_id is not None:
        doc[DISPUTE_KEY] = provider_key(dispute.provider, dispute.provider_dispute_id)
    return doc


def outbox_of_kind(outbox: Sequence[Doc], kind: str, drop: tuple[str, ...]) -> list[Doc]:
    """The outbox entries of one kind, as their collection stores them (without ``drop``)."""
    return [{k: v for k, v in e.items() if k not in drop} for e in outbox if e["_kind"] == kind]


def only_duplicates(exc: BulkWriteError) -> bool:
    """Whether every write error of an unordered bulk insert is a duplicate key."""
    return all(error.get("code") == DUPLICATE_KEY for error in exc.details.get("writeErrors", []))


def event_record(doc: Mapping[str, Any]) -> WebhookEventRecord:
    """The webhook event record a ``webhook_events`` document holds."""
    return WebhookEventRecord(
        provider=doc["provider"],
        event_id=doc["event_id"],
        type=doc["type"],
        outcome=doc["outcome"],
        received_at=from_bson(doc["received_at"]),
        payment_id=doc.get("payment_id"),
    )


def reaction(doc: Mapping[str, Any]) -> Reaction:
    """The reaction a ``reactions`` document holds."""
    return Reaction(
        id=doc["_id"],
        kind=doc["kind"],
        target_id=doc["target_id"],
        payment_id=doc["payment_id"],
        created_at=from_bson(doc["created_at"]),
    )


def key_claim_doc(claim: KeyClaim) -> Doc:
    """An idempotency key claim's document, under its unique ``(scope, key)`` id."""
    return {
        "_id": provider_key(claim.scope, claim.key),
        "owner_id": claim.owner_id,
        "fingerprint": claim.fingerprint,
        "claimed_at": to_ms(claim.claimed_at),
    }


def stored_claim(claim: KeyClaim, stored: Mapping[str, Any]) -> KeyClaim:
    """The claim already stored for ``claim``'s scope and key."""
    return KeyClaim(
        scope=claim.scope,
        key=claim.key,
        owner_id=stored["owner_id"],
        fingerprint=stored["fingerprint"],
        claimed_at=from_bson(stored["claimed_at"]),
    )


def stats_from_groups(rows: Iterable[Mapping[str, Any]], created_since: int) -> PaymentStats:
    """Fold the ``$group`` rows of :data:`STATS_PIPELINE` into :class:`PaymentStats`."""
    by_status: dict[str, int] = {}
    captured: dict[str, int] = {}
    refunded: dict[str, int] = {}
    settled = {s.value for s in SETTLED_STATUSES}
    for row in rows:
        status, currency = row["_id"]["status"], row["_id"]["currency"]
        by_status[status] = by_status.get(status, 0) + int(row["count"])
        group_captured, group_refunded = int(from_bson(row["captured"])), int(from_bson(row["refunded"]))
        # Minor units are never negative, so a group sum > 0 means some payment captured.
        if status in settled or group_captured:
            captured[currency] = captured.get(currency, 0) + group_captured
            refunded[currency] = refunded.get(currency, 0) + group_refunded
    return PaymentStats(
        count_by_status=by_status,
        captured_by_currency=captured,
        refunded_by_currency=refunded,
        created_since=created_since,
    )


STATS_PIPELINE: Final[list[Doc]] = [
    # A leading $match on the indexed status lets the server read the status_money index.
    {"$match": {"status": {"$in": [s.value for s in PaymentStatus]}}},
    {
        "$group": {
            "_id": {"status": "$status", "currency": "$amount.currency"},
            "count": {"$sum": 1},
            # Summed as Decimal128: exact far past the 64-bit range one amount is held in.
            "captured": {"$sum": {"$toDecimal": "$captured_minor"}},
            "refunded": {"$sum": {"$toDecimal": "$refunded_minor"}},
        }
    },
]
"""payment_stats(): one ``$group`` per (status, currency) does the sums on the server."""


def usage_filter(key: str, count: int, amount_minor: int, max_count: int | None, max_amount_minor: int | None) -> Doc:
    """The filter of a usage counter's conditional ``$inc``: it matches only while the addition fits."""
    query: Doc = {"_id": key}
    if max_count is not None and count > 0:
        query["count"] = {"$lte": max_count - count}
    if max_amount_minor is not None and amount_minor > 0:
        query["amount"] = {"$lte": max_amount_minor - amount_minor}
    return query


LOST_PIPELINE: Final[list[Doc]] = [
    {"$match": {"dispute_lost_minor": {"$gt": 0}}},
    {"$group": {"_id": "$amount.currency", "lost": {"$sum": {"$toDecimal": "$dispute_lost_minor"}}}},
]
"""payment_stats(): what lost disputes took, per currency, from the ``dispute_lost`` index."""


def lost_from_groups(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Fold the rows of :data:`LOST_PIPELINE` into minor units per currency."""
    return {str(row["_id"]): int(from_bson(row["lost"])) for row in rows if int(from_bson(row["lost"]))}


def billing_record(doc: Mapping[str, Any]) -> Subscription | InstallmentPlan:
    """The subscription or installment plan a ``billing`` document holds (by its ``kind``)."""
    model: type[Subscription | InstallmentPlan] = Subscription if doc.get("kind") == "subscription" else InstallmentPlan
    return load_required(model, doc)
