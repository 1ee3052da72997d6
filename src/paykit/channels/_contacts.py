"""Contact details, which paykit never stores: the application resolves them at send time."""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["AccessTokenProvider", "AsyncAccessTokenProvider", "AsyncContactResolver", "Contact", "ContactResolver"]


@dataclass(frozen=True, slots=True, repr=False)
class Contact:
    """Where to reach one user; its ``repr`` hides every detail, so it is safe in a log line.

    Attributes:
        email: The e-mail address.
        phone: The phone number for SMS, in E.164 form (``"+96550000000"``).
        whatsapp: The WhatsApp number, E.164; ``None`` uses ``phone``.
        device_tokens: FCM registration tokens of the user's devices.

    .. versionadded:: 0.2.0
    """

    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    device_tokens: tuple[str, ...] = ()

    def __repr__(self) -> str:
        present = [name for name in ("email", "phone", "whatsapp") if getattr(self, name)]
        return f"Contact({', '.join(present)}, {len(self.device_tokens)} device tokens)"


ContactResolver = Callable[[str], "Contact | None"]
"""The application's lookup: a user id to the user's :class:`Contact` (``None``: nothing to send to)."""

AsyncContactResolver = Callable[[str], Awaitable["Contact | None"]]
"""The asyncio flavour of :data:`ContactResolver`: ``async def resolve(user_id) -> Contact | None``."""

AccessTokenProvider = Callable[[], str]
"""Returns a current OAuth 2.0 access token for FCM (``google.auth`` credentials' ``token``, say)."""

AsyncAccessTokenProvider = Callable[[], Awaitable[str]]
"""The asyncio flavour of :data:`AccessTokenProvider`."""


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """How to reach an SMTP server.

    Attributes:
        host: The server's host name.
        port: 587 for STARTTLS (the default), 465 for implicit TLS (``implicit_tls=True``), 25 for neither.
        sender: The ``From`` address.
        username: Log in with these credentials after STARTTLS (``None``: no AUTH).
        password: The password (hidden from ``repr``).
        starttls: Upgrade the connection with STARTTLS before anything else is sent.
        implicit_tls: Connect with implicit TLS (SMTPS) instead.
        tls_context: The TLS context (certificate checks); ``None``: the system's default, verifying.
        timeout: Seconds for connecting and each SMTP reply.

    .. versionadded:: 0.2.0
    """

    host: str
    port: int = 587
    sender: str = ""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = True
    implicit_tls: bool = False
    tls_context: ssl.SSLContext | None = field(default=None, repr=False)
    timeout: float = 10.0
