"""Sending one e-mail over SMTP with the standard library, for both APIs (the async one runs it on a thread)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from . import _wire
from ._contacts import SmtpSettings


def send(settings: SmtpSettings, mail: EmailMessage, *, channel: str) -> None:
    """Deliver ``mail``: connect, STARTTLS, AUTH, send; raise a typed channel error on failure.

    Raises:
        PermanentChannelError: The server refused the recipient or the message for good (5xx).
        TemporaryChannelError: Connection, TLS, authentication or a temporary (4xx) refusal.
    """
    context = settings.tls_context or ssl.create_default_context()
    try:
        smtp = (
            smtplib.SMTP_SSL(settings.host, settings.port, timeout=settings.timeout, context=context)
            if settings.implicit_tls
            else smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        )
        with smtp:
            if settings.starttls and not settings.implicit_tls:
                smtp.starttls(context=context)
            if settings.username is not None:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(mail)
    except (smtplib.SMTPException, OSError) as exc:
        raise _wire.smtp_error(channel, exc) from None
