"""The asyncio channels: the same e-mail, Twilio and FCM exchanges through AsyncPaymentService."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from paykit import AsyncPaymentService, Money, PaymentStatus
from paykit.channels import (
    AsyncEmailChannel,
    AsyncFcmPush,
    AsyncTwilioSms,
    AsyncTwilioWhatsApp,
    Contact,
    SmtpSettings,
)
from paykit.notify import AsyncNotifier
from paykit.storage import AsyncMemoryStorage, AsyncStorage
from paykit.testing import AsyncFakeProvider, ManualClock, capture_logs

try:
    from tests._smtp import PASSWORD, USERNAME, SmtpServer
    from tests.test_channels import (
        ACCOUNT,
        AUTH_TOKEN,
        FCM_TOKEN,
        FCM_URL,
        SENDER,
        TWILIO_URL,
        fcm_error,
        twilio_created,
        twilio_error,
    )
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _smtp import PASSWORD, USERNAME, SmtpServer  # type: ignore[no-redef,import-not-found]
    from test_channels import (  # type: ignore[no-redef,import-not-found]
        ACCOUNT,
        AUTH_TOKEN,
        FCM_TOKEN,
        FCM_URL,
        SENDER,
        TWILIO_URL,
        fcm_error,
        twilio_created,
        twilio_error,
    )

pytestmark = pytest.mark.anyio

CONTACTS = {
    "alice": Contact(email="alice@example.com", phone="+96550000001", device_tokens=("device-token-a",)),
    "layla": Contact(email="layla@example.com"),
}


async def resolve(user_id: str) -> Contact | None:
    return CONTACTS.get(user_id)


async def access_token() -> str:
    return FCM_TOKEN


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def fake(clock: ManualClock) -> AsyncFakeProvider:
    return AsyncFakeProvider(clock=clock.unix)


def email(storage: AsyncStorage, server: SmtpServer) -> AsyncEmailChannel:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        sender="shop@example.com",
        username=USERNAME,
        password=PASSWORD,
        tls_context=server.client_context(),
        timeout=5,
    )
    return AsyncEmailChannel(settings, storage=storage, contacts=resolve)


def sms(storage: AsyncStorage) -> AsyncTwilioSms:
    return AsyncTwilioSms(account_sid=ACCOUNT, auth_token=AUTH_TOKEN, sender=SENDER, storage=storage, contacts=resolve)


async def pay(service: AsyncPaymentService, user_id: str) -> str:
    payment = await service.initialize_payment(user_id=user_id, amount=Money.of("12.5", "KWD"), provider="fake")
    assert PaymentStatus.SUCCEEDED == (await service.confirm_payment(payment.id)).status
    return payment.id


def service_with(
    storage: AsyncStorage, fake: AsyncFakeProvider, clock: ManualClock, notifiers: list[AsyncNotifier]
) -> AsyncPaymentService:
    return AsyncPaymentService(storage=storage, providers=[fake], notifiers=notifiers, clock=clock)


async def succeeded(storage: AsyncStorage, user_id: str) -> Any:
    found = await storage.list_notifications(user_id, unread_only=False, limit=10)
    [notification] = [n for n in found if n.kind == "payment_succeeded"]
    return notification


async def test_real_email_in_arabic_and_english(smtp: SmtpServer, fake: AsyncFakeProvider, clock: ManualClock) -> None:
    smtp.inbox.messages.clear()
    storage = AsyncMemoryStorage()
    service = service_with(storage, fake, clock, [email(storage, smtp)])
    await service.set_notification_preferences("layla", locale="ar")
    await pay(service, "layla")
    await pay(service, "alice")

    assert 4 == (await service.dispatch_notifications()).delivered

    by_recipient = {message["To"]: message for message in smtp.inbox.messages}
    arabic, english = by_recipient["layla@example.com"], by_recipient["alice@example.com"]
    assert "تم استلام دفعتك: 12.500 KWD" == arabic["Subject"]
    assert "Payment received: 12.500 KWD" == english["Subject"]
    assert '<html lang="ar" dir="rtl">' in arabic.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "12.500 KWD" in english.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_twilio_and_fcm_tracked_apart(fake: AsyncFakeProvider, clock: ManualClock) -> None:
    storage = AsyncMemoryStorage()
    whatsapp = AsyncTwilioWhatsApp(
        account_sid=ACCOUNT, auth_token=AUTH_TOKEN, sender="+14155238886", storage=storage, contacts=resolve
    )
    push = AsyncFcmPush(project_id="shop-app", access_token=access_token, storage=storage, contacts=resolve)
    service = service_with(storage, fake, clock, [sms(storage), whatsapp, push])
    await pay(service, "alice")
    with respx.mock() as api:
        twilio = api.post(TWILIO_URL).mock(
            side_effect=[twilio_error(429, 20429, "Too Many Requests"), twilio_created, twilio_created]
        )
        fcm = api.post(FCM_URL).mock(return_value=fcm_error(404, "NOT_FOUND", "UNREGISTERED"))
        with capture_logs() as logs:
            assert 1 == (await service.dispatch_notifications()).retrying
        clock.advance(timedelta(seconds=3))
        assert 1 == (await service.dispatch_notifications()).delivered

    forms = [parse_qs(call.request.content.decode()) for call in twilio.calls]
    # SMS rate limited then retried; WhatsApp sent once, never repeated; FCM given up after one call.
    assert [["+96550000001"], ["whatsapp:+96550000001"], ["+96550000001"]] == [form["To"] for form in forms]
    assert 1 == fcm.call_count
    assert f"Bearer {FCM_TOKEN}" == fcm.calls.last.request.headers["Authorization"]
    assert "device-token-a" == json.loads(fcm.calls.last.request.content)["message"]["token"]
    notification = await succeeded(storage, "alice")
    assert "delivered" == notification.delivery
    assert {"sms", "whatsapp"} == set(notification.delivered_to)
    assert ("push",) == notification.given_up_by
    assert "+965" not in json.dumps(logs, default=str)
    await whatsapp.aclose()
    await push.aclose()


async def test_async_channel_closes_only_its_own_client() -> None:
    storage = AsyncMemoryStorage()
    async with httpx.AsyncClient() as client:
        channel = AsyncTwilioSms(
            account_sid=ACCOUNT,
            auth_token=AUTH_TOKEN,
            sender=SENDER,
            storage=storage,
            contacts=resolve,
            http_client=client,
        )
        await channel.aclose()
        assert not client.is_closed
