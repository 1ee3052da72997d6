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
    WebhookVerificationError,
)
from ._models import (
    AuditAction,
    AuditEntry,
    Dunning,
    EventKind,
    Installment,
    InstallmentPlan,
    Invoice,
    InvoiceStatus,
    LineItem,
    Notification,
    NotificationKind,
    Payment,
    PaymentMethod,
    Plan,
    Refund,
    RefundStatus,
    Subscription,
    WebhookEvent,
)
from ._money import CURRENCY_EXPONENTS, Money, currency_exponent
from ._results import BillingReport, Explanation, TimelineEntry
from ._service import HealthReport, MetricsReport, Page, PaymentService, ReconcileReport, WebhookOutcome
from ._status import PaymentStatus, SubscriptionStatus, can_transition
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
    "BillingReport",
    "CallbackNotifier",
    "ConfigurationError",
    "CurrencyMismatchError",
    "DispatchReport",
    "Dunning",
    "DuplicateRecordError",
    "EventKind",
    "Explanation",
    "HealthReport",
    "IdempotencyConflictError",
    "Installment",
    "InstallmentPlan",
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
    "Plan",
    "ProviderError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "ReconcileReport",
    "Refund",
    "RefundStatus",
    "StorageError",
    "Subscription",
    "SubscriptionStatus",
    "TimelineEntry",
    "WebhookEvent",
    "WebhookOutcome",
    "WebhookVerificationError",
    "can_transition",
    "currency_exponent",
    "redact",
]
