"""Usage that must type-check under mypy --strict, as users write it (not collected by pytest)."""

from __future__ import annotations

from decimal import Decimal

from paykit import (
    AsyncAuditHook,
    AsyncNotifier,
    AuditEntry,
    DispatchReport,
    Explanation,
    InvalidRequestError,
    LineItem,
    MissingExtraError,
    Money,
    Notification,
    Payment,
    PaymentService,
    PaymentStatus,
    Refund,
    TimelineEntry,
)
from paykit.notify import AsyncNotificationDispatcher, CallbackNotifier
from paykit.providers import AsyncProvider, Provider
from paykit.storage import AsyncMemoryStorage, AsyncMongoStorage, AsyncStorage, MemoryStorage, MongoStorage, Storage
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


async def async_adapters() -> list[AsyncProvider]:
    """Each async adapter is an AsyncProvider, built from the sync one's arguments and an httpx.AsyncClient."""
    import httpx

    from paykit.providers import AsyncKnetProvider, AsyncPayPalProvider, AsyncStripeProvider

    http = httpx.AsyncClient()
    stripe = AsyncStripeProvider("sk_test_...", webhooks=False, http_client=http)
    paypal = AsyncPayPalProvider("id", "secret", None, webhooks=False, http_client=http)
    knet = AsyncKnetProvider(
        "id",
        "password",
        "0123456789abcdef",
        response_url="https://shop.example/knet/response",
        error_url="https://shop.example/knet/error",
        receipt_url="https://shop.example/knet/receipt",
        http_client=http,
    )
    await stripe.aclose()
    return [stripe, paypal, knet]


def captured_events(service: PaymentService) -> list[str]:
    with capture_logs() as logs:
        service.health()
    return [str(event["event"]) for event in logs]


def explained(service: PaymentService, payment_id: str) -> list[str]:
    explanation: Explanation = service.explain(payment_id, live=True)
    first: TimelineEntry = explanation.timeline[0]
    differences: tuple[str, ...] = explanation.differences
    return [first.summary, explanation.render(), *differences, *explanation.as_dict()["differences"]]


async def mongo_storages(uri: str) -> tuple[Storage, AsyncStorage]:
    """Both Mongo twins satisfy their protocol; the async one's index creation is awaited."""
    storage: Storage = MongoStorage.from_uri(uri)
    async_storage = AsyncMongoStorage.from_uri(uri)
    await async_storage.ensure_indexes()
    protocol: AsyncStorage = async_storage
    return storage, protocol


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
