# Generated from src/paykit/channels/_async/channels.py by scripts/unasync.py: do not edit.
"""Channels: notifiers that send each notification to its user by e-mail, SMS, WhatsApp or push.

Each channel is a notifier of its own, so the dispatcher tracks its delivery
separately: one channel failing is retried without sending again on the
others. A channel reads the user's preferences (storage), skips the kinds the
user does not want on it, resolves the user's contact through the application,
renders the message in the user's locale and sends it. Its errors are typed:
a :class:`~paykit.PermanentChannelError` gives the channel up for that
notification; anything else is retried under the dispatcher's backoff.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import httpx

from ..._decisions import channels as dc
from ..._errors import ChannelError, ConfigurationError, PermanentChannelError, TemporaryChannelError
from ..._log import get_logger
from ..._models import Notification, NotificationKind
from ...storage._sync.protocol import Storage
from .. import _smtp, _wire
from .._contacts import AccessTokenProvider, Contact, ContactResolver, SmtpSettings
from .._templates import Message, Templates

log = get_logger("paykit.channels")

DEFAULT_KINDS: Final = (
    NotificationKind.PAYMENT_SUCCEEDED,
    NotificationKind.PAYMENT_FAILED,
    NotificationKind.INVOICE_SENT,
    NotificationKind.REFUND_FAILED,
)
"""What a channel sends unless told otherwise: ``status_changed`` would repeat the others."""


class Channel:
    """What every channel does before it sends: preferences, contact, locale, template.

    Args:
        storage: Where the users' notification preferences are (the service's storage).
        contacts: The application's resolver from a user id to a :class:`~paykit.channels.Contact`.
        templates: The message templates; every one this channel needs is rendered once here,
            so a missing template or variable fails now, not at send time.
        name: The notifier's name: delivery is tracked under it, and preferences name channels by it.
        kinds: The notification kinds this channel sends; others are passed over.
        locales: The locales it can write in; a user's other locale falls back to ``default_locale``.
        default_locale: The locale of users without one.

    Raises:
        ConfigurationError: A template, block or variable is missing, or an argument is wrong.

    .. versionadded:: 0.2.0
    """

    template_channel: ClassVar[str] = ""

    def __init__(
        self,
        *,
        storage: Storage,
        contacts: ContactResolver,
        templates: Templates | None = None,
        name: str | None = None,
        kinds: Iterable[NotificationKind] = DEFAULT_KINDS,
        locales: Iterable[str] = ("en", "ar"),
        default_locale: str = "en",
    ) -> None:
        try:
            self._name = dc.check_channel_name(name or self.template_channel)
            self._locales = tuple(dc.check_locale(locale) for locale in locales)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if default_locale not in self._locales:
            raise ConfigurationError(f"default_locale {default_locale!r} is not one of locales {self._locales}")
        self._storage = storage
        self._contacts = contacts
        self._templates = templates or Templates()
        self._kinds = frozenset(NotificationKind(kind) for kind in kinds)
        self._default_locale = default_locale
        self._templates.check(channel=self.template_channel, kinds=self._kinds, locales=self._locales)

    @property
    def name(self) -> str:
        """The channel's notifier name (``"email"``, ``"sms"``, ``"whatsapp"``, ``"push"`` by default)."""
        return self._name

    def notify(self, notification: Notification) -> None:
        """Send ``notification`` to its user on this channel, if the user wants it here.

        Raises:
            PermanentChannelError: Sending again cannot help (not retried).
            TemporaryChannelError: Retried under the dispatcher's backoff.
        """
        if notification.kind not in self._kinds:
            return
        prefs = self._storage.get_notification_preferences(notification.user_id)
        if not dc.wants(prefs, notification.kind, self._name):
            log.info("notification not wanted on channel", channel=self._name, notification_id=notification.id)
            return
        contact = self._contacts(notification.user_id)
        if contact is None:
            log.info("no contact for notification", channel=self._name, notification_id=notification.id)
            return
        locale = dc.locale_for(prefs, default=self._default_locale, available=self._locales)
        message = self._templates.render(notification, channel=self.template_channel, locale=locale)
        if self._send(notification, message, contact):
            log.info("notification sent", channel=self._name, notification_id=notification.id, locale=locale)
        else:
            log.info("no address for notification", channel=self._name, notification_id=notification.id)

    def _send(self, notification: Notification, message: Message, contact: Contact) -> bool:
        """Send the rendered message; ``False`` when the contact has no address for this channel."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the channel's connections (an HTTP client it created)."""


class EmailChannel(Channel):
    """E-mail over SMTP (STARTTLS, AUTH): a plain-text and an HTML part, in the user's locale.

    The SMTP exchange is the standard library's ``smtplib``, run on a worker thread so the
    event loop never blocks; ``SmtpSettings.timeout`` bounds every step of it.

    Args:
        smtp: The server, credentials and ``From`` address.
        **options: See :class:`Channel` (``storage``, ``contacts``, ``templates``, ``name``...).

    .. versionadded:: 0.2.0
    """

    template_channel: ClassVar[str] = "email"

    def __init__(self, smtp: SmtpSettings, **options: Any) -> None:
        if not smtp.sender:
            raise ConfigurationError("SmtpSettings.sender (the From address) is required")
        self._smtp = smtp
        super().__init__(**options)

    def _send(self, notification: Notification, message: Message, contact: Contact) -> bool:
        if not contact.email:
            return False
        if not _wire.valid_email(contact.email):
            raise PermanentChannelError("the contact's e-mail address is not valid", channel=self._name)
        mail = _wire.email_message(message, sender=self._smtp.sender, to=contact.email, locale=message.locale)
        _smtp.send(self._smtp, mail, channel=self._name)
        return True


class _HttpChannel(Channel):
    """A channel that speaks HTTP through httpx; it closes only a client it created."""

    def __init__(self, *, http_client: httpx.Client | None = None, timeout: float = 10.0, **options: Any) -> None:
        self._own_client = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        super().__init__(**options)

    def _post(
        self,
        url: str,
        *,
        data: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        try:
            return self._http.post(url, data=data, json=json, headers=headers, auth=auth or httpx.USE_CLIENT_DEFAULT)
        except httpx.HTTPError as exc:
            raise TemporaryChannelError(f"HTTP request failed: {type(exc).__name__}", channel=self._name) from None

    def close(self) -> None:
        """Close the HTTP client, if the channel created it."""
        if self._own_client:
            self._http.close()


class TwilioSms(_HttpChannel):
    """SMS through Twilio's Messages API.

    Args:
        account_sid: The Twilio account (``AC...``).
        auth_token: Its auth token (never logged).
        sender: The sending number (E.164) or alphanumeric sender id.
        http_client: An httpx client to use (the channel makes its own otherwise).
        **options: See :class:`Channel`.

    Twilio's answers map to typed errors: 21211 (invalid number), 21610 (the recipient
    replied STOP) and the other recipient errors are permanent; 429/20429, 5xx and
    network failures are temporary.

    .. versionadded:: 0.2.0
    """

    template_channel: ClassVar[str] = "sms"
    _whatsapp: ClassVar[bool] = False

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        sender: str,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        if not (account_sid and auth_token and sender):
            raise ConfigurationError("Twilio needs account_sid, auth_token and sender")
        self._account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self._sender = sender
        super().__init__(http_client=http_client, **options)

    def _address(self, contact: Contact) -> str | None:
        return contact.phone

    def _send(self, notification: Notification, message: Message, contact: Contact) -> bool:
        to = self._address(contact)
        if not to:
            return False
        form = _wire.twilio_form(to=to, sender=self._sender, body=message.text, whatsapp=self._whatsapp)
        response = self._post(_wire.twilio_url(self._account_sid), data=form, auth=self._auth)
        error = _wire.twilio_error(self._name, response.status_code, response.content)
        if error is not None:
            raise error
        return True


class TwilioWhatsApp(TwilioSms):
    """WhatsApp through Twilio's Messages API (addresses prefixed ``whatsapp:``).

    Takes the same arguments as :class:`TwilioSms`; the user's ``Contact.whatsapp``
    number is used, or ``Contact.phone`` when it has none.

    .. versionadded:: 0.2.0
    """

    template_channel: ClassVar[str] = "whatsapp"
    _whatsapp: ClassVar[bool] = True

    def _address(self, contact: Contact) -> str | None:
        return contact.whatsapp or contact.phone


class FcmPush(_HttpChannel):
    """Push notifications through Firebase Cloud Messaging's HTTP v1 API, to each of the user's devices.

    Args:
        project_id: The Firebase project.
        access_token: Returns a current OAuth 2.0 access token with the
            ``firebase.messaging`` scope (from ``google.auth`` service-account credentials, say).
        http_client: An httpx client to use (the channel makes its own otherwise).
        **options: See :class:`Channel`.

    A device whose token FCM reports ``UNREGISTERED`` or ``INVALID_ARGUMENT`` is
    skipped. The notification counts as delivered once one device took it (devices
    already reached are never sent it twice); with none reached, a temporary error
    (429, 5xx, network) is raised to retry, else a permanent one.

    .. versionadded:: 0.2.0
    """

    template_channel: ClassVar[str] = "push"

    def __init__(
        self,
        *,
        project_id: str,
        access_token: AccessTokenProvider,
        http_client: httpx.Client | None = None,
        **options: Any,
    ) -> None:
        if not project_id:
            raise ConfigurationError("FCM needs a project_id")
        self._url = _wire.fcm_url(project_id)
        self._access_token = access_token
        super().__init__(http_client=http_client, **options)

    def _send(self, notification: Notification, message: Message, contact: Contact) -> bool:
        if not contact.device_tokens:
            return False
        headers = {"Authorization": f"Bearer {self._access_token()}"}
        data = {"kind": notification.kind.value, "notification_id": notification.id}
        errors: list[ChannelError] = []
        reached = 0
        for token in dict.fromkeys(contact.device_tokens):
            body = _wire.fcm_body(token=token, title=message.title or "", body=message.text, data=data)
            response = self._post(self._url, json=body, headers=headers)
            error = _wire.fcm_error(self._name, response.status_code, response.content)
            if error is None:
                reached += 1
            else:
                errors.append(error)
        if reached:
            if errors:
                log.info("push not taken by every device", notification_id=notification.id, failed=len(errors))
            return True
        temporary = [e for e in errors if not e.permanent]
        raise (temporary or errors)[0]
