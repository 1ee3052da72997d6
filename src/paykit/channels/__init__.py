"""Notification channels: e-mail, SMS, WhatsApp and push, with templates and per-user preferences.

Each channel is a notifier (give it to ``PaymentService(notifiers=[...])``), so the
dispatcher tracks and retries its delivery separately from every other channel.
The channels need the ``channels`` extra (Jinja2, for the templates)::

    pip install "paykit-payments[channels]"

- e-mail: :class:`EmailChannel` / :class:`AsyncEmailChannel`, over SMTP (STARTTLS, AUTH);
- SMS: :class:`TwilioSms` / :class:`AsyncTwilioSms`, through Twilio's Messages API;
- WhatsApp: :class:`TwilioWhatsApp` / :class:`AsyncTwilioWhatsApp`, through Twilio's Messages API;
- push: :class:`FcmPush` / :class:`AsyncFcmPush`, through Firebase Cloud Messaging's HTTP v1 API.

paykit stores no contact details: the application's resolver returns a
:class:`Contact` per user id at send time. See docs/notifications.md.
"""

from __future__ import annotations

from ._async.channels import (
    AsyncChannel,
    AsyncEmailChannel,
    AsyncFcmPush,
    AsyncTwilioSms,
    AsyncTwilioWhatsApp,
)
from ._contacts import (
    AccessTokenProvider,
    AsyncAccessTokenProvider,
    AsyncContactResolver,
    Contact,
    ContactResolver,
    SmtpSettings,
)
from ._sync.channels import DEFAULT_KINDS, Channel, EmailChannel, FcmPush, TwilioSms, TwilioWhatsApp
from ._templates import Message, Templates

__all__ = [
    "DEFAULT_KINDS",
    "AccessTokenProvider",
    "AsyncAccessTokenProvider",
    "AsyncChannel",
    "AsyncContactResolver",
    "AsyncEmailChannel",
    "AsyncFcmPush",
    "AsyncTwilioSms",
    "AsyncTwilioWhatsApp",
    "Channel",
    "Contact",
    "ContactResolver",
    "EmailChannel",
    "FcmPush",
    "Message",
    "SmtpSettings",
    "Templates",
    "TwilioSms",
    "TwilioWhatsApp",
]
