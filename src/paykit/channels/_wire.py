"""The channels' wire formats and error answers, as pure functions both APIs use (no I/O).

Twilio Messages API: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``,
form-encoded ``To``/``From``/``Body``, HTTP basic auth; an error answers JSON
``{"code": 21211, "message": ..., "more_info": ..., "status": 400}``.
Firebase Cloud Messaging HTTP v1: ``POST /v1/projects/{project}/messages:send``
with a bearer token and ``{"message": {"token": ..., "notification": {...}}}``; an
error answers ``{"error": {"code": 404, "status": "NOT_FOUND", "details":
[{"@type": "...FcmError", "errorCode": "UNREGISTERED"}]}}``.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Final

from .._errors import ChannelError, PermanentChannelError, TemporaryChannelError
from ._templates import Message

TWILIO_API: Final = "https://api.twilio.com"
FCM_API: Final = "https://fcm.googleapis.com"

TWILIO_PERMANENT: Final = frozenset(
    {
        21211,  # invalid 'To' phone number
        21214,  # 'To' phone number cannot be reached
        21217,  # 'To' is not a valid phone number
        21610,  # the recipient replied STOP: unsubscribed from this sender
        21612,  # 'To' is not reachable (unroutable)
        21614,  # 'To' is not a mobile number
        63014,  # WhatsApp: blocked by the recipient
        63024,  # WhatsApp: invalid recipient
    }
)
"""Twilio error codes about the recipient: sending the same message again cannot help."""
TWILIO_RATE_LIMITED: Final = 20429

FCM_PERMANENT: Final = frozenset({"UNREGISTERED", "INVALID_ARGUMENT", "SENDER_ID_MISMATCH"})
"""FCM error codes about the device token or message: sending the same message again cannot help."""


def twilio_url(account_sid: str) -> str:
    """The Messages resource of a Twilio account."""
    return f"{TWILIO_API}/2010-04-01/Accounts/{account_sid}/Messages.json"


def twilio_form(*, to: str, sender: str, body: str, whatsapp: bool) -> dict[str, str]:
    """The form fields of one message; WhatsApp addresses carry the ``whatsapp:`` prefix."""
    if whatsapp:
        to = to if to.startswith("whatsapp:") else f"whatsapp:{to}"
        sender = sender if sender.startswith("whatsapp:") else f"whatsapp:{sender}"
    return {"To": to, "From": sender, "Body": body}


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def twilio_error(channel: str, status: int, body: bytes) -> ChannelError | None:
    """The typed error of a Twilio answer, or ``None`` for a success (2xx).

    The message names the code only, never the number or the text sent.
    """
    if 200 <= status < 300:
        return None
    answer = _json(body)
    code = answer.get("code") if isinstance(answer, Mapping) else None
    code_text = str(code) if isinstance(code, int) else None
    detail = f"Twilio answered HTTP {status}" + (f", error {code}" if code_text else "")
    if code in TWILIO_PERMANENT:
        return PermanentChannelError(detail, channel=channel, code=code_text)
    if status == 429 or code == TWILIO_RATE_LIMITED or status >= 500 or status in (401, 403):
        # Bad credentials are the application's to fix; the messages go out once it has.
        return TemporaryChannelError(detail, channel=channel, code=code_text)
    return PermanentChannelError(detail, channel=channel, code=code_text)


def fcm_url(project_id: str) -> str:
    """The send method of a Firebase project."""
    return f"{FCM_API}/v1/projects/{project_id}/messages:send"


def fcm_body(*, token: str, title: str, body: str, data: Mapping[str, str]) -> dict[str, Any]:
    """One message to one device token: a notification with a title and body, plus string data."""
    return {"message": {"token": token, "notification": {"title": title, "body": body}, "data": dict(data)}}


def fcm_error(channel: str, status: int, body: bytes) -> ChannelError | None:
    """The typed error of an FCM answer, or ``None`` for a success (2xx)."""
    if 200 <= status < 300:
        return None
    answer = _json(body)
    error = answer.get("error") if isinstance(answer, Mapping) else None
    code: str | None = None
    if isinstance(error, Mapping):
        for detail in error.get("details") or ():
            if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("FcmError"):
                code = str(detail.get("errorCode") or "") or None
        if code is None and isinstance(error.get("status"), str):
            code = error["status"]
    detail = f"FCM answered HTTP {status}" + (f", {code}" if code else "")
    if code in FCM_PERMANENT or status == 404:
        return PermanentChannelError(detail, channel=channel, code=code)
    if status == 429 or status >= 500 or status in (401, 403) or code in ("QUOTA_EXCEEDED", "UNAVAILABLE", "INTERNAL"):
        return TemporaryChannelError(detail, channel=channel, code=code)
    return PermanentChannelError(detail, channel=channel, code=code)


def email_message(message: Message, *, sender: str, to: str, locale: str) -> EmailMessage:
    """A multipart/alternative e-mail: the plain text first, then the HTML (mail readers show the last they can)."""
    mail = EmailMessage()
    mail["Subject"] = " ".join((message.subject or "").split())  # one line, whatever the template left in it
    mail["From"] = sender
    mail["To"] = to
    mail["Date"] = formatdate(localtime=False)
    mail["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    mail.set_content(message.text)
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html")
    mail["Content-Language"] = locale  # after the content: setting it clears the Content-* headers
    return mail


def valid_email(address: str) -> bool:
    """Whether ``address`` can be put in a ``To`` header and an SMTP envelope: one ``@``, no spaces or controls."""
    local, at, domain = address.rpartition("@")
    return bool(at and local and "." in domain) and not any(c.isspace() or ord(c) < 32 for c in address)


def smtp_error(channel: str, error: Exception) -> ChannelError:
    """The typed error of an SMTP failure: a 5xx refusal of the recipient or message is permanent.

    Its message carries the reply code only: smtplib's exceptions name the recipients.
    """
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in error.recipients.values()})
        code = codes[0] if codes else 0
        kind = PermanentChannelError if codes and all(c >= 500 for c in codes) else TemporaryChannelError
        return kind(f"the SMTP server refused the recipient ({code})", channel=channel, code=str(code))
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return TemporaryChannelError(
            f"SMTP authentication failed ({error.smtp_code})", channel=channel, code=str(error.smtp_code)
        )
    if isinstance(error, smtplib.SMTPResponseException):
        code = error.smtp_code
        kind = PermanentChannelError if 500 <= code < 600 and code not in (530, 535) else TemporaryChannelError
        return kind(f"the SMTP server answered {code}", channel=channel, code=str(code))
    return TemporaryChannelError(f"SMTP delivery failed: {type(error).__name__}", channel=channel)
