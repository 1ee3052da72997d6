"""paykit: a provider-agnostic payments SDK.

>>> from paykit import Money
>>> Money.of("12.500", "KWD")
Money('12.500', 'KWD')
"""

import logging as _logging

from ._async.service import AsyncPaymentService
from ._errors import (
    AuthenticationError,
    ConfigurationError,
    CurrencyMismatchError,
    DuplicateRecordError,
    IdempotencyConflictError,
    InvalidRequestError,
    InvalidStateError,
    MissingExtraError,
    NotFoundError,
    PaykitError,
    PaymentDeclinedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    StorageError,
    UnsupportedOperationError,
    WebhookVerificationError,
)
from ._models import (
    AuditAction,
    AuditEntry,
    Dispute,
    EventKind,
    Invoice,
    InvoiceStatus,
    LineItem,
    Notification,
    NotificationKind,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from ._money import CURRENCY_EXPONENTS, Money, currency_exponent
from ._results import DisputePage, Explanation, TimelineEntry
from ._service import HealthReport, MetricsReport, Page, PaymentService, ReconcileReport, WebhookOutcome
from ._status import DisputeStatus, PaymentStatus, can_transition
from .audit import AsyncAuditHook, AuditHook, redact
from .notify import AsyncNotifier, CallbackNotifier, DispatchReport, LoggingNotifier, Notifier

__version__ = "0.1.0"

# Libraries log, applications configure: without the application's logging configuration,
# paykit's events go nowhere (not to the last-resort handler's stderr).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "CURRENCY_EXPONENTS",
    "AsyncAuditHook",
    "AsyncNotifier",
    "AsyncPaymentService",
    "AuditAction",
    "AuditEntry",
    "AuditHook",
    "AuthenticationError",
    "CallbackNotifier",
    "ConfigurationError",
    "CurrencyMismatchError",
    "DispatchReport",
    "Dispute",
    "DisputePage",
    "DisputeStatus",
    "DuplicateRecordError",
    "EventKind",
    "Explanation",
    "HealthReport",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "InvalidStateError",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
    "LoggingNotifier",
    "MetricsReport",
    "MissingExtraError",
    "Money",
    "NotFoundError",
    "Notification",
    "NotificationKind",
    "Notifier",
    "Page",
    "PaykitError",
    "Payment",
    "PaymentDeclinedError",
    "PaymentMethod",
    "PaymentService",
    "PaymentStatus",
    "ProviderError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "ReconcileReport",
    "Refund",
    "RefundStatus",
    "StorageError",
    "TimelineEntry",
    "UnsupportedOperationError",
    "WebhookEvent",
    "WebhookOutcome",
    "WebhookVerificationError",
    "can_transition",
    "currency_exponent",
    "redact",
]
