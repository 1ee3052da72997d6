"""Usage that must type-check under mypy --strict, as users write it (not collected by pytest)."""

from __future__ import annotations

from decimal import Decimal

from paykit import (
    AsyncAuditHook,
    AsyncNotifier,
    AuditEntry,
    DispatchReport,
    InvalidRequestError,
    LineItem,
    MissingExtraError,
    Money,
    Notification,
    Payment,
    PaymentService,
    PaymentStatus,
    Refund,
)
from paykit.notify import AsyncNotificationDispatcher, CallbackNotifier
from paykit.providers import Provider
from paykit.storage import AsyncMemoryStorage, MemoryStorage, Storage
from paykit.testing import FakeProvider, ManualClock, capture_logs
from paykit.webhooks import WebhookResponse, handle_webhook


def build() -> PaymentService:
    storage: Storage = MemoryStorage()
    provider: Provider = FakeProvider()
    inbox: list[Notification] = []
    return PaymentService(
        storage=storage, providers=[provider], notifiers=[CallbackNotifier(inbox.append)], clock=ManualClock()
    )


def lifecycle(service: PaymentService) -> tuple[Payment, Refund]:
    payment: Payment = service.initialize_payment(
        user_id="u1", amount=Money.of("12.500", "KWD"), provider="fake", idempotency_key="order-1"
    )
    payment = service.confirm_payment(payment.id, payment_method="pm_card_visa")
    status: PaymentStatus = payment.status
    refund: Refund = service.refund_payment(payment.id, amount=Money.of(Decimal("2.000"), "KWD"))
    assert status is not None
    return payment, refund


def webhook(service: PaymentService, body: bytes, headers: dict[str, str]) -> int:
    response: WebhookResponse = handle_webhook(service, "fake", body, headers)
    return response.status_code


def invoice(service: PaymentService) -> Money:
    line = LineItem(description="Hour", quantity=2, unit_amount=Money.of("10.00", "USD"), tax_rate=Decimal("0.1"))
    return service.create_invoice(user_id="u1", currency="USD", line_items=[line]).total


def bad_money() -> None:
    try:
        Money.of("1.005", "USD")
    except InvalidRequestError as exc:
        print(exc.message)


def optional_stripe() -> Provider | None:
    try:
        from paykit.providers import StripeProvider
    except MissingExtraError as exc:  # also an ImportError
        print(f"install the {exc.extra!r} extra")
        return None
    return StripeProvider("sk_test_...", webhooks=False)


def captured_events(service: PaymentService) -> list[str]:
    with capture_logs() as logs:
        service.health()
    return [str(event["event"]) for event in logs]


class Webhooks:
    """An async notifier, as users write one."""

    name = "webhooks"

    async def notify(self, notification: Notification) -> None:
        del notification


async def siem(entry: AuditEntry) -> None:
    del entry


async def dispatch_async() -> DispatchReport:
    notifier: AsyncNotifier = Webhooks()
    hook: AsyncAuditHook = siem
    del hook
    dispatcher = AsyncNotificationDispatcher(
        AsyncMemoryStorage(), [notifier, CallbackNotifier(print)], clock=ManualClock(), timeout=2.0
    )
    dispatcher.start(interval=5.0)
    report = await dispatcher.dispatch(limit=10)
    await dispatcher.aclose()
    return report
