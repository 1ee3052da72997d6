"""paykit: a provider-agnostic payments SDK.

>>> from paykit import Money
>>> Money.of("12.500", "KWD")
Money('12.500', 'KWD')
"""

import logging as _logging

from ._async.service import AsyncPaymentService
from ._decisions.policy import (
    Actor,
    Allow,
    AmountLimit,
    Decision,
    Deny,
    Policy,
    PolicyContext,
    RefundApproval,
    RequireApproval,
    RequireStepUp,
    StepUp,
    StepUpProof,
    StepUpVerifier,
    Usage,
    VelocityLimit,
)
from ._errors import (
    AuthenticationError,
    ChannelError,
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
    PermanentChannelError,
    PolicyDeniedError,
    ProviderError,
    ProviderRequestError,
    ProviderUnavailableError,
    StepUpRequiredError,
    StorageError,
    TemporaryChannelError,
    WebhookVerificationError,
)
from ._models import (
    AuditAction,
    AuditEntry,
    EventKind,
    Invoice,
    InvoiceStatus,
    LineItem,
    Notification,
    NotificationKind,
    NotificationPreferences,
    Payment,
    PaymentMethod,
    Refund,
    RefundStatus,
    WebhookEvent,
)
from ._money import CURRENCY_EXPONENTS, Money, currency_exponent
from ._results import Explanation, TimelineEntry
from ._service import HealthReport, MetricsReport, Page, PaymentService, ReconcileReport, WebhookOutcome
from ._status import PaymentStatus, can_transition
from ._totp import TotpVerifier
from .audit import AsyncAuditHook, AuditHook, redact
from .notify import AsyncNotifier, CallbackNotifier, DispatchReport, LoggingNotifier, Notifier

__version__ = "0.1.0"

# Libraries log, applications configure: without the application's logging configuration,
# paykit's events go nowhere (not to the last-resort handler's stderr).
_logging.getLogger(__name__).addHandler(_logging.NullHandler())

__all__ = [
    "CURRENCY_EXPONENTS",
    "Actor",
    "Allow",
    "AmountLimit",
    "AsyncAuditHook",
    "AsyncNotifier",
    "AsyncPaymentService",
    "AuditAction",
    "AuditEntry",
    "AuditHook",
    "AuthenticationError",
    "CallbackNotifier",
    "ChannelError",
    "ConfigurationError",
    "CurrencyMismatchError",
    "Decision",
    "Deny",
    "DispatchReport",
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
    "NotificationPreferences",
    "Notifier",
    "Page",
    "PaykitError",
    "Payment",
    "PaymentDeclinedError",
    "PaymentMethod",
    "PaymentService",
    "PaymentStatus",
    "PermanentChannelError",
    "Policy",
    "PolicyContext",
    "PolicyDeniedError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "ReconcileReport",
    "Refund",
    "RefundApproval",
    "RefundStatus",
    "RequireApproval",
    "RequireStepUp",
    "StepUp",
    "StepUpProof",
    "StepUpRequiredError",
    "StepUpVerifier",
    "StorageError",
    "TemporaryChannelError",
    "TimelineEntry",
    "TotpVerifier",
    "Usage",
    "VelocityLimit",
    "WebhookEvent",
    "WebhookOutcome",
    "WebhookVerificationError",
    "can_transition",
    "currency_exponent",
    "redact",
]
