"""Notification channels: a real e-mail to a real SMTP server, Twilio and FCM requests as documented, preferences.

The e-mail server is aiosmtpd on 127.0.0.1 requiring STARTTLS (a self-signed certificate the
client verifies) and AUTH; Twilio's and FCM's APIs are mocked with respx in their documented
request and answer shapes, errors included.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx

from paykit import (
    ConfigurationError,
    InvalidRequestError,
    Money,
    NotificationKind,
    PaymentService,
    PaymentStatus,
    PermanentChannelError,
)
from paykit.channels import (
    Contact,
    EmailChannel,
    FcmPush,
    SmtpSettings,
    Templates,
    TwilioSms,
    TwilioWhatsApp,
)
from paykit.notify import Notifier
from paykit.storage import MemoryStorage, Storage
from paykit.testing import FakeProvider, ManualClock, capture_logs

try:
    from tests._smtp import PASSWORD, USERNAME, SmtpServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _smtp import PASSWORD, USERNAME, SmtpServer  # type: ignore[no-redef,import-not-found]

ACCOUNT = "AC" + "1" * 32
AUTH_TOKEN = "twilio-auth-token-do-not-log"
SENDER = "+15005550006"
TWILIO_URL = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
FCM_URL = "https://fcm.googleapis.com/v1/projects/shop-app/messages:send"
FCM_TOKEN = "ya29.fcm-access-token-do-not-log"

CONTACTS = {
    "alice": Contact(email="alice@example.com", phone="+96550000001", device_tokens=("device-token-a",)),
    "layla": Contact(email="layla@example.com", phone="+96550000002", whatsapp="+96560000002"),
}


def resolve(user_id: str) -> Contact | None:
    return CONTACTS.get(user_id)


def twilio_created(request: httpx.Request) -> httpx.Response:
    """Twilio's 201 answer to a created message."""
    form = parse_qs(request.content.decode())
    return httpx.Response(
        201,
        json={"sid": "SM" + "a" * 32, "status": "queued", "to": form["To"][0], "from": form["From"][0], "body": "x"},
    )


def twilio_error(status: int, code: int, message: str) -> httpx.Response:
    """Twilio's documented error answer."""
    return httpx.Response(
        status,
        json={
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def fcm_error(status: int, state: str, code: str) -> httpx.Response:
    """FCM HTTP v1's documented error answer."""
    return httpx.Response(
        status,
        json={
            "error": {
                "code": status,
                "message": "Requested entity was not found." if status == 404 else "error",
                "status": state,
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}],
            }
        },
    )


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    inbox = smtp_server.inbox
    inbox.messages.clear()
    inbox.recipients.clear()
    inbox.logins.clear()
    inbox.refuse.clear()
    inbox.temporary_failures = 0
    return smtp_server


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def fake(clock: ManualClock) -> FakeProvider:
    return FakeProvider(clock=clock.unix)


def email(storage: Storage, server: SmtpServer, **options: Any) -> EmailChannel:
    settings = SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        sender="shop@example.com",
        username=USERNAME,
        password=PASSWORD,
        tls_context=server.client_context(),
        timeout=5,
    )
    return EmailChannel(settings, storage=storage, contacts=resolve, **options)


def sms(storage: Storage, **options: Any) -> TwilioSms:
    return TwilioSms(
        account_sid=ACCOUNT, auth_token=AUTH_TOKEN, sender=SENDER, storage=storage, contacts=resolve, **options
    )


def push(storage: Storage) -> FcmPush:
    return FcmPush(project_id="shop-app", access_token=lambda: FCM_TOKEN, storage=storage, contacts=resolve)


def service_with(storage: Storage, fake: FakeProvider, clock: ManualClock, notifiers: list[Notifier]) -> PaymentService:
    return PaymentService(storage=storage, providers=[fake], notifiers=notifiers, clock=clock)


def pay(service: PaymentService, user_id: str, amount: str = "12.5", currency: str = "KWD") -> str:
    payment = service.initialize_payment(user_id=user_id, amount=Money.of(amount, currency), provider="fake")
    assert PaymentStatus.SUCCEEDED == service.confirm_payment(payment.id).status
    return payment.id


def succeeded(storage: Storage, user_id: str) -> Any:
    [found] = [
        n for n in storage.list_notifications(user_id, unread_only=False, limit=10) if n.kind == "payment_succeeded"
    ]
    return found


class TestEmail:
    """A succeeded payment sends a real e-mail, over STARTTLS with AUTH, in the user's language."""

    def test_english_multipart_email_with_kwd_amount(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        payment_id = pay(service, "alice")

        report = service.dispatch_notifications()

        assert 2 == report.delivered  # status_changed passes over the channel, payment_succeeded is sent
        [message] = smtp.inbox.messages
        assert [["alice@example.com"]] == smtp.inbox.recipients
        assert ["shop"] == smtp.inbox.logins  # AUTH, which the server allows only after STARTTLS
        assert "Payment received: 12.500 KWD" == message["Subject"]
        assert "shop@example.com" == message["From"]
        assert "en" == message["Content-Language"]
        assert "multipart/alternative" == message.get_content_type()
        text, html = message.iter_parts()
        assert "text/plain" == text.get_content_type()
        assert "text/html" == html.get_content_type()
        assert "12.500 KWD" in text.get_content()
        assert payment_id in text.get_content()
        assert '<html lang="en" dir="ltr">' in html.get_content()
        assert "12.500 KWD" in html.get_content()

    def test_arabic_email_is_right_to_left(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        service.set_notification_preferences("layla", locale="ar")
        pay(service, "layla", amount="7.25")

        service.dispatch_notifications()

        [message] = smtp.inbox.messages
        assert "تم استلام دفعتك: 7.250 KWD" == message["Subject"]
        assert "ar" == message["Content-Language"]
        text, html = message.iter_parts()
        assert "استلمنا دفعتك بمبلغ 7.250 KWD" in text.get_content()
        assert '<html lang="ar" dir="rtl">' in html.get_content()
        assert '<bdi dir="ltr">7.250 KWD</bdi>' in html.get_content()

    def test_amount_in_the_currency_s_own_decimals(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        pay(service, "alice", amount="1500", currency="JPY")

        service.dispatch_notifications()

        assert "Payment received: 1500 JPY" == smtp.inbox.messages[0]["Subject"]

    def test_refused_recipient_is_permanent_and_not_retried(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        smtp.inbox.refuse.add("alice@example.com")
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        pay(service, "alice")

        first = service.dispatch_notifications()
        clock.advance(timedelta(hours=2))
        second = service.dispatch_notifications()

        assert 1 == first.dead
        assert 0 == second.delivered + second.retrying + second.dead
        notification = succeeded(storage, "alice")
        assert ("email",) == notification.given_up_by
        assert "email: PermanentChannelError 550 (permanent)" == notification.last_error
        assert [] == smtp.inbox.messages

    def test_temporary_refusal_is_retried_after_backoff(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        smtp.inbox.temporary_failures = 1
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        pay(service, "alice")

        assert 1 == service.dispatch_notifications().retrying
        assert "email: TemporaryChannelError" == succeeded(storage, "alice").last_error
        assert 0 == service.dispatch_notifications().delivered  # not due before its backoff
        clock.advance(timedelta(seconds=3))
        assert 1 == service.dispatch_notifications().delivered

        assert 1 == len(smtp.inbox.messages)
        assert 2 == succeeded(storage, "alice").attempts

    def test_unreachable_server_is_temporary(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        settings = SmtpSettings(host="127.0.0.1", port=1, sender="shop@example.com", timeout=1)
        service = service_with(storage, fake, clock, [EmailChannel(settings, storage=storage, contacts=resolve)])
        pay(service, "alice")

        assert 1 == service.dispatch_notifications().retrying
        assert "email: TemporaryChannelError" == succeeded(storage, "alice").last_error


class TestTwilio:
    """SMS and WhatsApp go to Twilio's Messages API as documented; its error answers are typed."""

    def test_sms_request_as_documented(self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> None:
        service = service_with(storage, fake, clock, [sms(storage)])
        payment_id = pay(service, "alice")
        with respx.mock(assert_all_called=True) as api:
            route = api.post(TWILIO_URL).mock(side_effect=twilio_created)
            assert 2 == service.dispatch_notifications().delivered

        [call] = route.calls
        request = call.request
        assert "application/x-www-form-urlencoded" == request.headers["Content-Type"]
        expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{AUTH_TOKEN}".encode()).decode()
        assert expected_auth == request.headers["Authorization"]
        form = parse_qs(request.content.decode())
        assert ["+96550000001"] == form["To"]
        assert [SENDER] == form["From"]
        assert [f"Payment of 12.500 KWD received. Ref {payment_id}"] == form["Body"]

    def test_whatsapp_addresses_carry_the_prefix(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        channel = TwilioWhatsApp(
            account_sid=ACCOUNT, auth_token=AUTH_TOKEN, sender="+14155238886", storage=storage, contacts=resolve
        )
        service = service_with(storage, fake, clock, [channel])
        service.set_notification_preferences("layla", locale="ar")
        pay(service, "layla")
        with respx.mock(assert_all_called=True) as api:
            route = api.post(TWILIO_URL).mock(side_effect=twilio_created)
            service.dispatch_notifications()

        form = parse_qs(route.calls.last.request.content.decode())
        assert ["whatsapp:+96560000002"] == form["To"]
        assert ["whatsapp:+14155238886"] == form["From"]
        assert "استلمنا دفعتك بمبلغ 12.500 KWD" in form["Body"][0]
        assert "whatsapp" == channel.name

    @pytest.mark.parametrize(
        ("status", "code", "text"),
        [
            (400, 21211, "The 'To' number +96550000001 is not a valid phone number."),
            (400, 21610, "Attempt to send to unsubscribed recipient"),
        ],
    )
    def test_recipient_errors_are_permanent_and_not_retried(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock, status: int, code: int, text: str
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage)])
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(TWILIO_URL).mock(return_value=twilio_error(status, code, text))
            assert 1 == service.dispatch_notifications().dead
            clock.advance(timedelta(hours=2))
            service.dispatch_notifications()

        assert 1 == route.call_count
        notification = succeeded(storage, "alice")
        assert ("sms",) == notification.given_up_by
        assert f"sms: PermanentChannelError {code} (permanent)" == notification.last_error

    @pytest.mark.parametrize(
        "answer",
        [
            twilio_error(429, 20429, "Too Many Requests"),
            twilio_error(503, 20500, "Service unavailable"),
        ],
    )
    def test_rate_limit_and_outage_are_retried(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock, answer: httpx.Response
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage)])
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(TWILIO_URL).mock(side_effect=[answer, twilio_created])
            assert 1 == service.dispatch_notifications().retrying
            clock.advance(timedelta(seconds=3))
            assert 1 == service.dispatch_notifications().delivered

        assert 2 == route.call_count
        assert () == succeeded(storage, "alice").given_up_by

    def test_connection_failure_is_temporary(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage)])
        pay(service, "alice")
        with respx.mock() as api:
            api.post(TWILIO_URL).mock(side_effect=httpx.ConnectError("refused"))
            assert 1 == service.dispatch_notifications().retrying

        assert "sms: TemporaryChannelError" == succeeded(storage, "alice").last_error


class TestFcm:
    """Push goes to FCM HTTP v1 as documented, to every device; unregistered devices are given up."""

    def test_push_request_as_documented(self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> None:
        service = service_with(storage, fake, clock, [push(storage)])
        payment_id = pay(service, "alice")
        with respx.mock(assert_all_called=True) as api:
            route = api.post(FCM_URL).mock(
                return_value=httpx.Response(
                    200, json={"name": "projects/shop-app/messages/0:1500415314455276%31bd1c96"}
                )
            )
            assert 2 == service.dispatch_notifications().delivered

        request = route.calls.last.request
        assert f"Bearer {FCM_TOKEN}" == request.headers["Authorization"]
        notification = succeeded(storage, "alice")
        assert {
            "message": {
                "token": "device-token-a",
                "notification": {"title": "Payment received", "body": f"12.500 KWD paid. Ref {payment_id}"},
                "data": {"kind": "payment_succeeded", "notification_id": notification.id},
            }
        } == json.loads(request.content)

    def test_unregistered_token_is_permanent(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [push(storage)])
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(FCM_URL).mock(return_value=fcm_error(404, "NOT_FOUND", "UNREGISTERED"))
            assert 1 == service.dispatch_notifications().dead
            clock.advance(timedelta(hours=2))
            service.dispatch_notifications()

        assert 1 == route.call_count
        assert "push: PermanentChannelError UNREGISTERED (permanent)" == succeeded(storage, "alice").last_error

    def test_unavailable_is_retried(self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> None:
        service = service_with(storage, fake, clock, [push(storage)])
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(FCM_URL).mock(
                side_effect=[fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"), httpx.Response(200, json={"name": "m/1"})]
            )
            assert 1 == service.dispatch_notifications().retrying
            clock.advance(timedelta(seconds=3))
            assert 1 == service.dispatch_notifications().delivered

        assert 2 == route.call_count

    def test_one_device_reached_is_enough(self, storage: MemoryStorage, clock: ManualClock) -> None:
        contacts = {"u": Contact(device_tokens=("gone", "live"))}
        channel = FcmPush(project_id="shop-app", access_token=lambda: FCM_TOKEN, storage=storage, contacts=contacts.get)
        notification = _notification(clock)
        with respx.mock() as api:
            api.post(FCM_URL).mock(
                side_effect=[
                    fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
                    httpx.Response(200, json={"name": "m/2"}),
                ]
            )
            channel.notify(notification)  # no error: one device took it


def _notification(clock: ManualClock) -> Any:
    from paykit._decisions.channels import sample_notification

    return sample_notification(NotificationKind.PAYMENT_SUCCEEDED, at=clock()).model_copy(update={"user_id": "u"})


class TestSeparateChannels:
    """Each channel is tracked on its own: one failing never blocks or repeats another."""

    def test_failing_sms_does_not_block_or_repeat_the_email(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage), email(storage, smtp)])
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(TWILIO_URL).mock(side_effect=[twilio_error(500, 20500, "down"), twilio_created])
            assert 1 == service.dispatch_notifications().retrying
            assert 1 == len(smtp.inbox.messages)  # e-mail went out though SMS failed before it
            clock.advance(timedelta(seconds=3))
            assert 1 == service.dispatch_notifications().delivered

        assert 2 == route.call_count
        assert 1 == len(smtp.inbox.messages)  # the retry did not send the e-mail again
        assert ("sms", "email") == tuple(sorted(succeeded(storage, "alice").delivered_to, reverse=True))

    def test_permanent_sms_error_leaves_the_email_delivered(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage), email(storage, smtp)])
        pay(service, "alice")
        with respx.mock() as api:
            api.post(TWILIO_URL).mock(return_value=twilio_error(400, 21610, "unsubscribed"))
            service.dispatch_notifications()

        notification = succeeded(storage, "alice")
        assert "delivered" == notification.delivery
        assert ("email",) == notification.delivered_to
        assert ("sms",) == notification.given_up_by
        assert 1 == len(smtp.inbox.messages)


class TestPreferences:
    """Stored preferences choose channels per kind, opt a user out, and set the locale."""

    def test_opted_out_user_gets_nothing(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage), email(storage, smtp)])
        service.set_notification_preferences("alice", opted_out=True)
        pay(service, "alice")
        with respx.mock(assert_all_called=False) as api:
            route = api.post(TWILIO_URL).mock(side_effect=twilio_created)
            assert 2 == service.dispatch_notifications().delivered

        assert 0 == route.call_count
        assert [] == smtp.inbox.messages

    def test_channels_per_kind(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [sms(storage), email(storage, smtp)])
        service.set_notification_preferences("alice", channels={NotificationKind.PAYMENT_SUCCEEDED: ["sms"]})
        pay(service, "alice")
        with respx.mock() as api:
            route = api.post(TWILIO_URL).mock(side_effect=twilio_created)
            service.dispatch_notifications()

        assert 1 == route.call_count
        assert [] == smtp.inbox.messages

    def test_unknown_locale_falls_back_to_default(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        service.set_notification_preferences("alice", locale="fr")
        pay(service, "alice")
        service.dispatch_notifications()

        assert "en" == smtp.inbox.messages[0]["Content-Language"]

    def test_regional_locale_uses_its_language(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        service.set_notification_preferences("alice", locale="ar-KW")
        pay(service, "alice")
        service.dispatch_notifications()

        assert "ar" == smtp.inbox.messages[0]["Content-Language"]

    def test_user_without_contact_is_passed_over(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp)])
        pay(service, "nobody")

        assert 2 == service.dispatch_notifications().delivered
        assert [] == smtp.inbox.messages


class TestTemplates:
    """Templates are checked when a channel is built; HTML is autoescaped; the application overrides any file."""

    def test_missing_variable_fails_at_startup(self, storage: MemoryStorage) -> None:
        broken = Templates({"en/payment_failed.txt": "{% block sms %}{{ no_such_variable }}{% endblock %}"})
        with pytest.raises(ConfigurationError, match="no_such_variable"):
            sms(storage, templates=broken)

    def test_missing_block_fails_at_startup(self, storage: MemoryStorage) -> None:
        broken = Templates({"en/invoice_sent.txt": "{% block subject %}x{% endblock %}"})
        with pytest.raises(ConfigurationError, match="no block 'sms'"):
            sms(storage, templates=broken)

    def test_missing_locale_fails_at_startup(self, storage: MemoryStorage) -> None:
        with pytest.raises(ConfigurationError, match="fr/"):
            sms(storage, locales=("en", "fr"))

    def test_bad_syntax_fails_at_startup(self, storage: MemoryStorage) -> None:
        with pytest.raises(ConfigurationError, match="line 1"):
            sms(storage, templates=Templates({"en/payment_succeeded.txt": "{% block sms %}{{ amount }"}))

    def test_override_and_autoescape(self, storage: MemoryStorage, clock: ManualClock) -> None:
        templates = Templates(
            {
                "en/payment_succeeded.txt": "{% block subject %}Paid {{ amount }}{% endblock %}"
                "{% block text %}Thanks from {{ provider }}{% endblock %}",
                "en/payment_succeeded.html": "<p>Thanks from {{ provider }}</p>",
            }
        )
        notification = _notification(clock)
        notification = notification.model_copy(update={"payload": {**notification.payload, "provider": "<b>x</b>"}})

        message = templates.render(notification, channel="email", locale="en")

        assert "Paid 12.500" == message.subject
        assert "Thanks from <b>x</b>" == message.text
        assert "<p>Thanks from &lt;b&gt;x&lt;/b&gt;</p>" == message.html

    def test_override_directory(self, tmp_path: Any, clock: ManualClock) -> None:
        (tmp_path / "en").mkdir()
        (tmp_path / "en" / "payment_succeeded.txt").write_text(
            "{% block sms %}Got {{ amount }} {{ currency }}{% endblock %}"
        )

        message = Templates(tmp_path).render(_notification(clock), channel="sms", locale="en")

        assert "Got 12.500 KWD" == message.text

    def test_every_builtin_template_renders(self) -> None:
        templates = Templates()
        for channel in ("email", "sms", "whatsapp", "push"):
            templates.check(channel=channel, kinds=list(NotificationKind), locales=("en", "ar"))

    @pytest.mark.parametrize(
        ("status", "locale", "says"),
        [
            ("lost", "en", "the disputed 12.500 KWD is returned to you"),
            ("won", "en", "the payment of 12.500 KWD stands"),
            ("lost", "ar", "يُعاد إليك المبلغ المعترض عليه 12.500 KWD"),
        ],
    )
    def test_a_closed_dispute_says_how_it_ended(self, status: str, locale: str, says: str) -> None:
        from paykit._decisions.channels import sample_notification

        sample = sample_notification(NotificationKind.DISPUTE_CLOSED, at=ManualClock()())
        closed = sample.model_copy(update={"payload": {**sample.payload, "status": status}})

        message = Templates().render(closed, channel="sms", locale=locale)

        assert says in message.text

    def test_billing_messages_carry_their_dates_and_link(self) -> None:
        from paykit._decisions.channels import sample_notification

        base = sample_notification(NotificationKind.RETRY_SCHEDULED, at=ManualClock()())
        retry = base.model_copy(update={"payload": {**base.payload, "retry_at": "2026-12-03T00:00:00+00:00"}})
        link = "https://pay.example/checkout?id=1&x=<2>"
        action = base.model_copy(
            update={"kind": NotificationKind.PAYMENT_ACTION_REQUIRED, "payload": {**base.payload, "pay_url": link}}
        )

        retry_text = Templates().render(retry, channel="sms", locale="en").text
        action_html = Templates().render(action, channel="email", locale="ar").html or ""

        assert "12.500 KWD" in retry_text
        assert "2026-12-03" in retry_text
        assert 'href="https://pay.example/checkout?id=1&amp;x=&lt;2&gt;"' in action_html

    def test_bad_channel_name_is_a_configuration_error(self, storage: MemoryStorage) -> None:
        with pytest.raises(ConfigurationError):
            sms(storage, name="SMS channel")


class TestNothingSensitiveIsLogged:
    """No contact detail, message body or credential reaches a log line or an audit entry."""

    def test_logs_and_audit_are_clean(
        self, smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
    ) -> None:
        service = service_with(storage, fake, clock, [email(storage, smtp), sms(storage), push(storage)])
        service.set_notification_preferences("alice", locale="en", actor="support")
        with capture_logs() as logs:
            payment_id = pay(service, "alice")
            with respx.mock() as api:
                api.post(TWILIO_URL).mock(side_effect=[twilio_error(400, 21211, "The 'To' number +96550000001 is bad")])
                api.post(FCM_URL).mock(return_value=fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"))
                service.dispatch_notifications()

        logged = json.dumps(logs, default=str)
        audit = json.dumps([e.model_dump(mode="json") for e in service.audit_trail(payment_id)])
        audit += json.dumps([e.model_dump(mode="json") for e in storage.list_audit("alice", limit=10)])
        stored = json.dumps(
            [n.model_dump(mode="json") for n in storage.list_notifications("alice", unread_only=False, limit=10)]
        )
        for secret in (
            "alice@example.com",
            "+96550000001",
            "device-token-a",
            AUTH_TOKEN,
            PASSWORD,
            FCM_TOKEN,
            "Payment received",
            "Payment of 12.500 KWD received",
        ):
            assert secret not in logged, secret
            assert secret not in audit, secret
            assert secret not in stored, secret
        assert any(log["event"] == "notification sent" and log["channel"] == "email" for log in logs)
        assert "NOTIFICATION_PREFERENCES_SET" in audit

    def test_contact_repr_hides_details(self) -> None:
        assert "alice@example.com" not in repr(CONTACTS["alice"])
        assert "+965" not in repr(CONTACTS["alice"])

    def test_error_messages_do_not_name_the_recipient(self, storage: MemoryStorage, clock: ManualClock) -> None:
        with respx.mock() as api:
            api.post(TWILIO_URL).mock(return_value=twilio_error(400, 21211, "The 'To' number +96550000001 is bad"))
            with pytest.raises(PermanentChannelError) as caught:
                sms(storage).notify(_notification(clock).model_copy(update={"user_id": "alice"}))

        assert "+965" not in str(caught.value)
        assert "21211" == caught.value.code


class TestServicePreferences:
    """set/get_notification_preferences validate, store and audit."""

    def test_round_trip_and_audit(self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> None:
        service = service_with(storage, fake, clock, [])
        assert service.get_notification_preferences("alice") is None

        stored = service.set_notification_preferences(
            "alice", channels={"payment_failed": ["sms", "email"]}, locale="ar", actor="alice"
        )

        assert stored == service.get_notification_preferences("alice")
        assert {NotificationKind.PAYMENT_FAILED: ("sms", "email")} == stored.channels
        [entry] = storage.list_audit("alice", limit=10)
        assert "alice" == entry.actor
        assert {"channels": {"payment_failed": ["sms", "email"]}, "opted_out": False, "locale": "ar"} == entry.payload

    @pytest.mark.parametrize(
        "arguments",
        [
            {"channels": {"no_such_kind": ["sms"]}},
            {"channels": {"payment_failed": "sms"}},
            {"channels": {"payment_failed": ["SMS!"]}},
            {"locale": "arabic please"},
        ],
    )
    def test_bad_input_is_refused(
        self, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock, arguments: dict[str, Any]
    ) -> None:
        service = service_with(storage, fake, clock, [])
        with pytest.raises(InvalidRequestError):
            service.set_notification_preferences("alice", **arguments)
        assert service.get_notification_preferences("alice") is None


def test_missing_jinja2_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None\n"
        "from paykit import MissingExtraError\n"
        "from paykit.channels import Templates\n"
        "try:\n    Templates()\n"
        "except MissingExtraError as exc:\n    print(exc.extra)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    assert 0 == result.returncode, result.stderr
    assert "channels" == result.stdout.strip()


@pytest.mark.mongo_server
def test_preferences_on_the_mongodb_wire_server(
    smtp: SmtpServer, real_mongo_storage: Storage, fake: FakeProvider, clock: ManualClock
) -> None:
    """The channel reads the preferences the service stored in MongoDB: Arabic for one user, nothing for another."""
    service = service_with(real_mongo_storage, fake, clock, [email(real_mongo_storage, smtp)])
    service.set_notification_preferences("layla", locale="ar")
    service.set_notification_preferences("alice", opted_out=True)
    pay(service, "layla")
    pay(service, "alice")

    assert 4 == service.dispatch_notifications().delivered

    [message] = smtp.inbox.messages
    assert "layla@example.com" == message["To"]
    assert "ar" == message["Content-Language"]


def test_malformed_address_is_permanent_without_a_connection(
    smtp: SmtpServer, storage: MemoryStorage, fake: FakeProvider, clock: ManualClock
) -> None:
    contacts = {"u": Contact(email="fatima@example.com\r\nBcc: everyone@example.com")}
    channel = EmailChannel(
        SmtpSettings(host="127.0.0.1", port=smtp.port, sender="shop@example.com", tls_context=smtp.client_context()),
        storage=storage,
        contacts=contacts.get,
    )
    service = service_with(storage, fake, clock, [channel])
    pay(service, "u")

    assert 1 == service.dispatch_notifications().dead
    assert [] == smtp.inbox.messages
    assert ("email",) == succeeded(storage, "u").given_up_by


def test_status_in_the_user_s_words(storage: MemoryStorage, fake: FakeProvider, clock: ManualClock) -> None:
    channel = FcmPush(
        project_id="shop-app",
        access_token=lambda: FCM_TOKEN,
        storage=storage,
        contacts=resolve,
        kinds=[NotificationKind.STATUS_CHANGED],
    )
    service = service_with(storage, fake, clock, [channel])
    service.set_notification_preferences("alice", locale="ar")
    payment_id = pay(service, "alice")
    with respx.mock() as api:
        route = api.post(FCM_URL).mock(return_value=httpx.Response(200, json={"name": "m/3"}))
        service.dispatch_notifications()

    [sent] = [json.loads(call.request.content)["message"]["notification"] for call in route.calls]
    assert {"title": "تحديث الدفعة", "body": f"أصبحت حالة الدفعة {payment_id}: مدفوعة."} == sent


def test_subject_is_one_line(clock: ManualClock) -> None:
    templates = Templates(
        {
            "en/payment_succeeded.txt": "{% block subject %}Paid\n  {{ amount }}\n{% endblock %}"
            "{% block text %}x{% endblock %}"
        }
    )
    from paykit.channels._wire import email_message

    message = templates.render(_notification(clock), channel="email", locale="en")
    mail = email_message(message, sender="shop@example.com", to="a@example.com", locale="en")

    assert "Paid 12.500" == mail["Subject"]
