"""paykit's data: immutable pydantic models shared by the service, storages and adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ._cards import contains_card_number
from ._errors import InvalidRequestError
from ._money import Money
from ._status import DisputeStatus, PaymentStatus, SubscriptionStatus

__all__ = [
    "AuditAction",
    "AuditEntry",
    "CaptureMethod",
    "Dispute",
    "Dunning",
    "EventKind",
    "Installment",
    "InstallmentPlan",
    "Invoice",
    "InvoiceStatus",
    "LineItem",
    "Notification",
    "NotificationKind",
    "NotificationPreferences",
    "Payment",
    "PaymentMethod",
    "Plan",
    "Refund",
    "RefundStatus",
    "Subscription",
    "WebhookEvent",
]

CaptureMethod = Literal["automatic", "manual"]
Interval = Literal["day", "week", "month", "year"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=False)

    def __init__(self, /, **data: Any) -> None:
        """Validate ``data``; a value it refuses is an :class:`InvalidRequestError`, as everywhere in paykit.

        ``Model.model_validate(...)`` (what FastAPI and other frameworks call) still raises
        pydantic's ``ValidationError``; both are ``ValueError``.
        """
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InvalidRequestError(f"invalid {type(self).__name__}: {where}: {first['msg']}") from None


class RefundStatus(StrEnum):
    """Where a refund stands."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    AWAITING_APPROVAL = "awaiting_approval"
    """Held for a second person's approval (:class:`~paykit.RefundApproval`): reserved, not sent."""


class InvoiceStatus(StrEnum):
    """Invoice lifecycle: draft -> open (sent) -> paid, or void."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"


class AuditAction(StrEnum):
    """What an audit entry records."""

    PAYMENT_INIT = "PAYMENT_INIT"
    PAYMENT_CONFIRM = "PAYMENT_CONFIRM"
    PAYMENT_CAPTURE = "PAYMENT_CAPTURE"
    PAYMENT_CANCEL = "PAYMENT_CANCEL"
    PAYMENT_REFUND = "PAYMENT_REFUND"
    PAYMENT_STATUS_UPDATE = "PAYMENT_STATUS_UPDATE"
    PAYMENT_EVENT_IGNORED = "PAYMENT_EVENT_IGNORED"
    PAYMENT_DISPUTE = "PAYMENT_DISPUTE"
    INVOICE_CREATE = "INVOICE_CREATE"
    INVOICE_SEND = "INVOICE_SEND"
    INVOICE_PAYMENT = "INVOICE_PAYMENT"
    INVOICE_PAID = "INVOICE_PAID"
    INVOICE_VOID = "INVOICE_VOID"
    PAYMENT_METHOD_SAVE = "PAYMENT_METHOD_SAVE"
    PAYMENT_METHOD_DEFAULT = "PAYMENT_METHOD_DEFAULT"
    PAYMENT_METHOD_DELETE = "PAYMENT_METHOD_DELETE"
    POLICY_DENIED = "POLICY_DENIED"
    POLICY_STEP_UP_REQUIRED = "POLICY_STEP_UP_REQUIRED"
    POLICY_STEPPED_UP = "POLICY_STEPPED_UP"
    REFUND_APPROVAL_REQUESTED = "REFUND_APPROVAL_REQUESTED"
    REFUND_APPROVED = "REFUND_APPROVED"
    REFUND_REJECTED = "REFUND_REJECTED"
    REFUND_APPROVAL_EXPIRED = "REFUND_APPROVAL_EXPIRED"
    NOTIFICATION_PREFERENCES_SET = "NOTIFICATION_PREFERENCES_SET"
    DISPUTE_OPEN = "DISPUTE_OPEN"
    DISPUTE_UPDATE = "DISPUTE_UPDATE"
    DISPUTE_CLOSE = "DISPUTE_CLOSE"
    DISPUTE_EVIDENCE = "DISPUTE_EVIDENCE"
    DISPUTE_ACCEPT = "DISPUTE_ACCEPT"
    SUBSCRIPTION_CREATE = "SUBSCRIPTION_CREATE"
    SUBSCRIPTION_CANCEL = "SUBSCRIPTION_CANCEL"
    SUBSCRIPTION_PAUSE = "SUBSCRIPTION_PAUSE"
    SUBSCRIPTION_RESUME = "SUBSCRIPTION_RESUME"
    SUBSCRIPTION_CHANGE_PLAN = "SUBSCRIPTION_CHANGE_PLAN"
    SUBSCRIPTION_CHANGE_METHOD = "SUBSCRIPTION_CHANGE_METHOD"
    INSTALLMENT_PLAN_CREATE = "INSTALLMENT_PLAN_CREATE"
    INSTALLMENT_PLAN_CANCEL = "INSTALLMENT_PLAN_CANCEL"
    INSTALLMENT_PLAN_PAY_OFF = "INSTALLMENT_PLAN_PAY_OFF"
    BILLING_REMINDER = "BILLING_REMINDER"
    """A renewal (or installment) reminder was sent."""
    BILLING_PERIOD_PAID = "BILLING_PERIOD_PAID"
    """A period's (or installment's) payment succeeded; the record moved to the next one."""
    BILLING_PAYMENT_FAILED = "BILLING_PAYMENT_FAILED"
    """A period's payment failed: a retry is scheduled, or the dunning schedule ended."""
    BILLING_AWAITING_PAYMENT = "BILLING_AWAITING_PAYMENT"
    """A period's payment waits for the customer (3-D Secure, a payment link)."""
    BILLING_ENDED = "BILLING_ENDED"
    """Ended by the billing tick: canceled at period end."""


class NotificationKind(StrEnum):
    """What a notification tells the application."""

    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    INVOICE_SENT = "invoice_sent"
    STATUS_CHANGED = "status_changed"
    REFUND_FAILED = "refund_failed"
    """A refund failed at the provider after it had been reported as succeeded."""
    DISPUTE_OPENED = "dispute_opened"
    """A payer disputed a payment (a chargeback or an inquiry was opened)."""
    DISPUTE_CLOSED = "dispute_closed"
    """A dispute ended: won, lost or closed."""
    RENEWAL_UPCOMING = "renewal_upcoming"
    """A subscription renews (or an installment is charged) soon."""
    PAYMENT_ACTION_REQUIRED = "payment_action_required"
    """A subscription or installment payment needs the customer: authenticate, or pay by the link."""
    RETRY_SCHEDULED = "retry_scheduled"
    """A failed subscription or installment payment will be retried at ``payload["retry_at"]``."""
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    """A subscription or installment plan was canceled (by request, or after its last retry)."""
    SUBSCRIPTION_UNPAID = "subscription_unpaid"
    """Every retry failed; the subscription or installment plan is ``unpaid`` and no longer charged."""


class EventKind(StrEnum):
    """What a normalized provider event is about."""

    PAYMENT = "payment"
    """The payment's status (and maybe captured amount) changed."""
    REFUND = "refund"
    """A refund was created or changed at the provider."""
    DISPUTE = "dispute"
    """A dispute (chargeback) was opened, updated or closed."""
    IGNORED = "ignored"
    """An event type paykit does not act on; acknowledged and dropped."""
    UNVERIFIED = "unverified"
    """An unauthenticated notice about a payment (KNET's error POST): paykit believes none of
    it, records nothing, and asks the provider itself, at most once a minute per unsettled
    payment it knows."""


class Dispute(_Frozen):
    """A payer's dispute of a payment (a chargeback, or an inquiry before one).

    The payment embeds its disputes and moves them in its own atomic write, with
    the amount they hold; the ``disputes`` collection keeps a copy of each, kept
    current by an outbox reaction, for listing and lookups.

    .. versionadded:: 0.3.0
    """

    id: str
    provider: str
    provider_dispute_id: str | None = None
    """The provider's id of the dispute; ``None`` for one recorded by hand."""
    payment_id: str
    user_id: str
    amount: Money
    reason: str | None = None
    status: DisputeStatus = DisputeStatus.NEEDS_RESPONSE
    provider_status: str | None = None
    """The provider's own status word (``warning_needs_response``, ``WAITING_FOR_SELLER_RESPONSE``...)."""
    outcome: str | None = None
    """How it ended, in the provider's words (``RESOLVED_BUYER_FAVOUR``, ``won``, ``accepted``...)."""
    evidence_due_by: datetime | None = None
    evidence_submitted_at: datetime | None = None
    funds_withdrawn: bool = False
    """The provider took the disputed money from the merchant's balance."""
    funds_reinstated: bool = False
    """The provider gave the disputed money back."""
    reversed_minor: int = 0
    """Of the disputed amount, what the provider already took back as a capture reversal
    (PayPal's ``PAYMENT.CAPTURE.REVERSED``), recorded as a refund: not held or lost twice."""
    provider_updated_at: datetime | None = None
    """When the provider's newest applied event about it happened."""
    closed_at: datetime | None = None
    seen_events: tuple[str, ...] = ()
    """Ids of the provider events applied to it (at most 50)."""
    version: int = 0
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """Whether it may still change (not won, lost or closed)."""
        return self.status not in (DisputeStatus.WON, DisputeStatus.LOST, DisputeStatus.WARNING_CLOSED)

    @property
    def exposure(self) -> Money:
        """The disputed amount not yet counted as refunded by a capture reversal."""
        return Money(max(self.amount.minor_units - self.reversed_minor, 0), self.amount.currency)


class Payment(_Frozen):
    """One payment, as paykit stores it.

    Amounts captured and refunded are kept in the payment's currency as integer
    minor units; use the ``amount_*`` properties for :class:`Money` values.
    ``pending_refunds`` maps refunds under way to the amount each reserves, so
    concurrent refunds can never add up to more than was captured.
    """

    id: str
    user_id: str
    provider: str
    amount: Money
    status: PaymentStatus = PaymentStatus.PENDING
    capture_method: CaptureMethod = "automatic"
    provider_ref: str | None = None
    client_secret: SecretStr | None = None
    redirect_url: str | None = None
    next_action: dict[str, Any] | None = None
    payment_method_ref: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    provider_data: dict[str, str] = Field(default_factory=dict)
    invoice_id: str | None = None
    billing_id: str | None = None
    """The subscription or installment plan this payment charges a period of."""
    off_session: bool = False
    """Charged on a saved method without the customer (a renewal), confirmed at creation."""
    captured_minor: int = 0
    refunded_minor: int = 0
    pending_refunds: dict[str, int] = Field(default_factory=dict)
    settled_refunds: dict[str, int] = Field(default_factory=dict)
    """Refunds counted in ``refunded_minor``, by refund id: a refund event or answer is
    applied to the money once, whichever arrives first."""
    closed_refunds: dict[str, str] = Field(default_factory=dict)
    """Refunds that ended without money, by id: ``"failed"`` or ``"canceled"`` (the provider
    said so: a later success report of the same refund is stale) or ``"abandoned"`` (paykit
    gave up without a clear answer: a later success found at the provider is counted)."""
    approval_refunds: dict[str, str] = Field(default_factory=dict)
    """Refunds held for approval (also in ``pending_refunds``), by id: who asked for each."""
    failure_code: str | None = None
    failure_message: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    operation_keys: dict[str, str] = Field(default_factory=dict)
    seen_events: tuple[str, ...] = ()
    """Ids of the latest provider events applied or recorded on this payment (at most 100):
    a redelivery is found here by the same compare-and-set that would apply it."""
    call_lease_until: datetime | None = None
    """While set and in the future, one caller is registering the payment with its provider."""
    checked_at: datetime | None = None
    """When paykit last asked the provider about this payment because of an unverified notice."""
    disputes: dict[str, Dispute] = Field(default_factory=dict)
    """Its disputes by paykit id: moved in the payment's own write with what they hold."""
    disputed_minor: int = 0
    """What open chargebacks hold: not refundable while they are open."""
    dispute_lost_minor: int = 0
    """What lost disputes took back (beyond reversals already counted as refunds): out of net revenue."""
    version: int = 0
    created_at: datetime
    updated_at: datetime

    @property
    def currency(self) -> str:
        """The payment's currency code."""
        return self.amount.currency

    @property
    def amount_captured(self) -> Money:
        """What the provider captured."""
        return Money(self.captured_minor, self.amount.currency)

    @property
    def amount_refunded(self) -> Money:
        """What was refunded successfully."""
        return Money(self.refunded_minor, self.amount.currency)

    @property
    def amount_disputed(self) -> Money:
        """What disputes keep from being refunded: held by open ones plus taken by lost ones."""
        return Money(self.disputed_minor + self.dispute_lost_minor, self.amount.currency)

    @property
    def amount_refundable(self) -> Money:
        """What may still be refunded: captured minus refunds succeeded or under way."""
        reserved = self.refunded_minor + sum(self.pending_refunds.values())
        return Money(self.captured_minor - reserved, self.amount.currency)


class Refund(_Frozen):
    """A refund of (part of) a captured payment."""

    id: str
    payment_id: str
    user_id: str
    provider: str
    amount: Money
    status: RefundStatus = RefundStatus.PENDING
    provider_ref: str | None = None
    reason: str | None = None
    failure_message: str | None = None
    attempts: int = 0
    """How many times paykit sent the refund to the provider. A PENDING refund with attempts
    but no ``provider_ref`` had no clear answer: it is looked up before it is sent again."""
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    requested_by: str | None = None
    """Who asked for a refund that needed approval."""
    approver_role: str | None = None
    """The role its approver must hold."""
    approval_expires_at: datetime | None = None
    """When a refund awaiting approval expires, releasing its amount."""
    decided_by: str | None = None
    """Who approved or rejected it."""
    version: int = 0
    created_at: datetime
    updated_at: datetime


class LineItem(_Frozen):
    """One invoice line: ``quantity`` x ``unit_amount``, plus optional tax.

    ``tax_rate`` is a fraction (``Decimal("0.05")`` for 5 %); the line's tax is
    rounded half-up to the currency's minor unit, once per line.
    """

    description: str = Field(min_length=1, max_length=500)
    quantity: int = Field(gt=0, strict=True)
    unit_amount: Money
    tax_rate: Decimal | None = None

    @field_validator("description")
    @classmethod
    def _no_card_number(cls, value: str) -> str:
        if contains_card_number(value):
            raise InvalidRequestError("description looks like a card number; paykit never stores card numbers")
        return value

    @field_validator("tax_rate", mode="before")
    @classmethod
    def _no_float_rate(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("tax_rate must be a Decimal or str, not a float")
        return value

    @field_validator("tax_rate")
    @classmethod
    def _rate_in_range(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not (0 <= value <= 1):
            raise ValueError("tax_rate must be a fraction between 0 and 1")
        return value

    @field_validator("unit_amount")
    @classmethod
    def _positive_unit(cls, value: Money) -> Money:
        if value.minor_units < 0:
            raise ValueError("unit_amount must not be negative")
        return value

    @property
    def subtotal(self) -> Money:
        """``quantity`` x ``unit_amount``."""
        return self.unit_amount * self.quantity

    @property
    def tax(self) -> Money:
        """The line's tax, rounded half-up to a minor unit."""
        if self.tax_rate is None:
            return Money.zero(self.unit_amount.currency)
        exact = Decimal(self.subtotal.minor_units) * self.tax_rate
        return Money(int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP)), self.unit_amount.currency)

    @property
    def total(self) -> Money:
        """Subtotal plus tax."""
        return self.subtotal + self.tax


class Invoice(_Frozen):
    """An invoice with line items and exact totals in one currency."""

    id: str
    number: str
    user_id: str
    currency: str
    line_items: tuple[LineItem, ...]
    subtotal: Money
    tax: Money
    total: Money
    status: InvoiceStatus = InvoiceStatus.DRAFT
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    payment_id: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    operation_keys: dict[str, str] = Field(default_factory=dict)
    version: int = 0
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None = None
    paid_at: datetime | None = None


class PaymentMethod(_Frozen):
    """A payment method saved for a user (a provider token, never card data)."""

    id: str
    user_id: str
    provider: str
    provider_ref: str
    type: str = "card"
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    is_default: bool = False
    deleted: bool = False
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    version: int = 0
    created_at: datetime
    updated_at: datetime


class AuditEntry(_Frozen):
    """One line of the audit trail. ``payload`` is always redacted."""

    id: str
    action: AuditAction
    subject_type: Literal[
        "payment",
        "refund",
        "invoice",
        "payment_method",
        "policy",
        "user",
        "dispute",
        "subscription",
        "installment_plan",
    ]
    subject_id: str
    payment_id: str | None = None
    user_id: str | None = None
    actor: str
    at: datetime
    status_before: str | None = None
    status_after: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)


class Notification(_Frozen):
    """A message for the application about a user's payment or invoice.

    Persisted per user (``read``), and delivered to every registered notifier
    by the dispatcher; ``delivered_to`` keeps delivery once per notifier.

    While a dispatcher holds a notification, ``lease_until`` and ``claim_token``
    say until when and under which claim: a storage saves delivery state only
    for the claim whose token is still stored, so a dispatcher whose lease
    expired and was taken over cannot overwrite the new claimant's progress.
    """

    id: str
    user_id: str
    kind: NotificationKind
    subject_id: str
    payload: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    read: bool = False
    delivery: Literal["pending", "delivered", "dead"] = "pending"
    attempts: int = 0
    next_attempt_at: datetime
    lease_until: datetime | None = None
    claim_token: str | None = None
    delivered_to: tuple[str, ...] = ()
    given_up_by: tuple[str, ...] = ()
    """Notifiers that failed permanently for this notification (a :class:`~paykit.PermanentChannelError`):
    never called again for it."""
    last_error: str | None = None


class WebhookEvent(_Frozen):
    """A verified provider event, normalized to what paykit acts on.

    Adapters build it in ``parse_webhook``; the service applies it once.
    """

    provider: str
    event_id: str
    type: str
    kind: EventKind
    provider_ref: str | None = None
    payment_id: str | None = None
    status: PaymentStatus | None = None
    amount: Money | None = None
    amount_captured: Money | None = None
    amount_refunded: Money | None = None
    refund_ref: str | None = None
    refund_id: str | None = None
    """paykit's refund id, where the provider echoes it back (Stripe refund metadata)."""
    refund_status: RefundStatus | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    occurred_at: datetime | None = None
    provider_data: dict[str, str] = Field(default_factory=dict)
    reply_body: str | None = None
    reply_content_type: str | None = None
    delivery_id: str | None = None
    """The provider's id of this delivery (PayPal's transmission id), when it signs one.

    ``handle_webhook`` remembers it with :attr:`delivery_digest` and refuses the same
    delivery id with another body. .. versionadded:: 0.1.0
    """
    delivery_digest: str | None = None
    """SHA-256 (hex) of the delivery's raw body, recorded with :attr:`delivery_id`."""
    dispute_ref: str | None = None
    """The provider's dispute id, on a dispute event that paykit turns into a :class:`Dispute`."""
    dispute_status: DisputeStatus | None = None
    dispute_provider_status: str | None = None
    dispute_amount: Money | None = None
    dispute_reason: str | None = None
    dispute_outcome: str | None = None
    dispute_evidence_due_by: datetime | None = None
    dispute_funds: Literal["withdrawn", "reinstated"] | None = None
    """Set by a funds event (Stripe's ``charge.dispute.funds_withdrawn`` / ``funds_reinstated``)."""


class NotificationPreferences(_Frozen):
    """What one user wants to hear about, and how: stored by paykit, free of contact details.

    Contact details (e-mail address, phone number, device tokens) stay with the
    application, which hands them to the channels through a resolver at send time.

    Attributes:
        user_id: Whose preferences these are.
        channels: Per notification kind, the channel names (``"email"``, ``"sms"``,
            ``"whatsapp"``, ``"push"``...) the user wants it on; a kind not listed
            goes to every configured channel. An empty tuple silences that kind.
        opted_out: ``True`` silences every channel for every kind.
        locale: The language of the user's messages (``"en"``, ``"ar"``); ``None`` takes the channel's default.
        updated_at: When they were last set.

    .. versionadded:: 0.2.0
    """

    user_id: str
    channels: dict[NotificationKind, tuple[str, ...]] = Field(default_factory=dict)
    opted_out: bool = False
    locale: str | None = None
    updated_at: datetime


class Plan(_Frozen):
    """What a subscription charges: ``amount`` every ``interval_count`` intervals, after a trial.

    Months and years are calendar steps anchored on the subscription's first day:
    a subscription anchored on Jan 31 renews Feb 28 (29 in a leap year), then Mar 31.
    """

    amount: Money
    interval: Interval = "month"
    interval_count: int = Field(default=1, ge=1, le=366, strict=True)
    trial_days: int = Field(default=0, ge=0, le=730, strict=True)
    name: str | None = Field(default=None, max_length=200)

    @field_validator("amount")
    @classmethod
    def _positive(cls, value: Money) -> Money:
        if value.minor_units <= 0:
            raise ValueError("a plan's amount must be positive")
        return value


class Dunning(_Frozen):
    """What happens after a failed subscription or installment payment.

    The record is ``past_due`` after the first failure and retried ``retry_days``
    after the period's due date (default: 1, 3, 5 and 7 days); after the last retry
    fails it becomes ``final_status``. ``remind_days`` before a renewal the user is
    notified (``None``: no reminder).
    """

    retry_days: tuple[int, ...] = (1, 3, 5, 7)
    final_status: Literal["canceled", "unpaid"] = "canceled"
    remind_days: int | None = Field(default=3, ge=1, le=60)

    @field_validator("retry_days")
    @classmethod
    def _increasing(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) > 20 or any(d < 1 for d in value) or any(b <= a for a, b in pairwise(value)):
            raise ValueError("retry_days must be at most 20 strictly increasing whole days, each at least 1")
        return value


class _Billed(_Frozen):
    """What subscriptions and installment plans share: who pays, how, and the billing tick's state.

    ``period`` is the index of the next period (or installment) to charge and
    ``attempt`` the dunning attempt for it (0 = the first charge). ``due_at`` is
    when ``bill_due()`` next looks at the record (its indexed due date);
    ``lease_until``/``lease_token`` are set while one tick works on it.
    ``payment_id`` names the payment of the current attempt while it waits for the
    customer. ``customer_ref`` is the user's customer at the provider when one was
    stored at creation (it never changes once stored): charges then need not look it up.
    ``payment_method_saved`` says whether ``payment_method`` is a saved method's id
    (checked at every charge: it may have been deleted) or a provider token (passed
    as it is, unread); ``None`` on records stored before paykit kept it.
    """

    id: str
    user_id: str
    provider: str
    payment_method: str | None = None
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    dunning: Dunning = Field(default_factory=Dunning)
    period: int = 0
    attempt: int = 0
    renews_at: datetime | None = None
    due_at: datetime | None = None
    reminded_period: int = -1
    lease_until: datetime | None = None
    lease_token: str | None = None
    payment_id: str | None = None
    last_payment_id: str | None = None
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    return_url: str | None = None
    cancel_url: str | None = None
    canceled_at: datetime | None = None
    idempotency_key: str | None = None
    request_fingerprint: str = ""
    version: int = 0
    created_at: datetime
    updated_at: datetime
    customer_ref: str | None = None
    payment_method_saved: bool | None = None


class Subscription(_Billed):
    """A user's subscription to a :class:`Plan`, charged at the start of each period.

    ``current_period_start``/``current_period_end`` bound the last paid period.
    ``next_plan`` (from :meth:`~paykit.PaymentService.change_subscription_plan`)
    takes over at the next period.
    """

    kind: Literal["subscription"] = "subscription"
    plan: Plan
    next_plan: Plan | None = None
    anchor: datetime
    anchor_period: int = 0
    trial_end: datetime | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    cancel_at_period_end: bool = False
    paused_at: datetime | None = None


class Installment(_Frozen):
    """One installment of an :class:`InstallmentPlan`."""

    number: int
    amount: Money
    due_at: datetime
    payment_id: str | None = None
    paid_at: datetime | None = None


class InstallmentPlan(_Billed):
    """A total split into installments charged on a schedule; they always sum to ``total``."""

    kind: Literal["installment_plan"] = "installment_plan"
    total: Money
    installments: tuple[Installment, ...]

    @property
    def amount_paid(self) -> Money:
        """What the paid installments add up to."""
        return Money(sum(i.amount.minor_units for i in self.installments if i.paid_at), self.total.currency)

    @property
    def amount_remaining(self) -> Money:
        """What is still to be paid."""
        return self.total - self.amount_paid


# -- the hot path's shortcuts (tests/test_hot_path.py proves each equal to the general path) ------------------
# pydantic's own ``model_construct`` is slower than validating (it loops over the fields in Python) and
# ``model_copy`` copies through ``copy.copy`` three times; these do what both do, for paykit's frozen
# records without private attributes or extras, in a fraction of the time.

_M = TypeVar("_M", bound=_Frozen)
_set_attr = object.__setattr__


class _Layout:
    """A record class's fields in declaration order, with the defaults validation would fill in."""

    __slots__ = ("factories", "template")

    def __init__(self, cls: type[_Frozen]) -> None:
        # Required fields hold None here: ``trusted`` callers give them all (tests check each caller).
        self.template: dict[str, Any] = {
            name: None if field.default_factory is not None or field.is_required() else field.default
            for name, field in cls.model_fields.items()
        }
        self.factories: tuple[tuple[str, Callable[[], Any]], ...] = tuple(
            (name, field.default_factory)  # type: ignore[misc]
            for name, field in cls.model_fields.items()
            if field.default_factory is not None
        )


_LAYOUTS: dict[type[_Frozen], _Layout] = {}
_FIELD_SETS: dict[frozenset[str], set[str]] = {}
_FIELD_SETS_MAX: Final = 4096


def _fields_set(names: Iterable[str]) -> set[str]:
    """One shared set per combination of fields set, as every record's ``__pydantic_fields_set__``.

    A set per record is an object with an entry per field that the cyclic garbage collector walks
    for as long as the record is kept (a store holds hundreds of thousands); the combinations are
    few. Frozen models never change their set: pydantic copies it before adding to it.
    """
    key = frozenset(names)
    shared = _FIELD_SETS.get(key)
    if shared is None:
        shared = set(key)
        if len(_FIELD_SETS) < _FIELD_SETS_MAX:
            _FIELD_SETS[key] = shared
    return shared


def trusted(cls: type[_M], **values: Any) -> _M:
    """A record of ``values`` paykit built itself from values already typed, without validating them again.

    Only for records whose every field has no validator and whose values are of the field's type
    already (enums as enums, aware datetimes, ``Money``, fresh dicts the record may own): what validation
    would return unchanged. Fields not given take their defaults, as validation gives them; the
    fields set are the ones given, as ``cls(**values)`` sets them.
    """
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = _Layout(cls)
    data = layout.template.copy()
    data.update(values)  # existing keys keep their place: the field order validation gives
    for name, factory in layout.factories:
        if name not in values:
            data[name] = factory()
    record = cls.__new__(cls)
    _set_attr(record, "__dict__", data)
    _set_attr(record, "__pydantic_fields_set__", _fields_set(values.keys()))
    _set_attr(record, "__pydantic_extra__", None)
    _set_attr(record, "__pydantic_private__", None)
    return record


def copy_with(record: _M, updates: dict[str, Any]) -> _M:
    """``record.model_copy(update=updates)``: a shallow copy with ``updates`` set, unvalidated as there."""
    cls = type(record)
    copied = cls.__new__(cls)
    data = record.__dict__.copy()
    data.update(updates)
    _set_attr(copied, "__dict__", data)
    _set_attr(copied, "__pydantic_fields_set__", _fields_set(record.__pydantic_fields_set__ | updates.keys()))
    _set_attr(copied, "__pydantic_extra__", None)
    _set_attr(copied, "__pydantic_private__", None)
    return copied
