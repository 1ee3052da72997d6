"""The paykit exception tree.

Every error paykit raises is a :class:`PaykitError`; exceptions of ``stripe``,
``httpx`` and ``pymongo`` are translated at each adapter's edge, never leaked::

    PaykitError
    ├── ConfigurationError            bad constructor arguments, webhook secrets missing
    │   └── MissingExtraError         also an ImportError: an optional extra is not installed
    ├── InvalidRequestError           also a ValueError: bad amount, currency, id...
    │   └── CurrencyMismatchError     arithmetic across two currencies
    ├── InvalidStateError             illegal transition, refund over captured
    │   └── UnsupportedOperationError the provider has no API for it (disputes)
    ├── IdempotencyConflictError      same key, different parameters
    ├── PolicyDeniedError             a policy refused the operation (limit, velocity, bad proof)
    ├── StepUpRequiredError           the operation needs a second factor (``methods`` says which)
    ├── NotFoundError                 also a LookupError: no such payment, invoice...
    ├── WebhookVerificationError      forged, stale or malformed webhook
    ├── ChannelError                  a notification channel (e-mail, SMS, push) could not send
    │   ├── PermanentChannelError     invalid address, opted out, unregistered: never retried
    │   └── TemporaryChannelError     rate limited, 5xx, connection: retried with backoff
    ├── StorageError                  the database failed or is unreachable
    │   └── DuplicateRecordError      a unique insert found its key taken
    └── ProviderError                 the provider answered with an error
        ├── AuthenticationError       bad API credentials
        ├── PaymentDeclinedError      the card or payer was declined
        ├── ProviderRequestError      also an InvalidRequestError: the provider refused the request
        └── ProviderUnavailableError  network failure, timeout, 5xx, rate limit

Provider errors keep what a caller needs to act: ``provider``, ``http_status``,
``code``, ``request_id`` and the provider's ``body``, plus ``should_retry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._version import DISTRIBUTION

__all__ = [
    "AuthenticationError",
    "ChannelError",
    "ConfigurationError",
    "CurrencyMismatchError",
    "DuplicateRecordError",
    "IdempotencyConflictError",
    "InvalidRequestError",
    "InvalidStateError",
    "MissingExtraError",
    "NotFoundError",
    "PaykitError",
    "PaymentDeclinedError",
    "PermanentChannelError",
    "PolicyDeniedError",
    "ProviderError",
    "ProviderRequestError",
    "ProviderUnavailableError",
    "StepUpRequiredError",
    "StorageError",
    "TemporaryChannelError",
    "UnsupportedOperationError",
    "WebhookVerificationError",
]


class PaykitError(Exception):
    """Base class of every error raised by paykit.

    ``payment_id`` names the paykit payment the error concerns, when there is one
    (a declined payment is stored as FAILED under that id).
    """

    payment_id: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(PaykitError):
    """paykit was configured wrongly (bad arguments, missing optional extra)."""


class MissingExtraError(ConfigurationError, ImportError):
    """An optional dependency is missing; the message names the extra that installs it.

    Also an :class:`ImportError`, so code that guards an optional import with
    ``except ImportError`` keeps working.

    Attributes:
        extra: The extra to install, as in ``pip install "paykit-payments[extra]"``.
        package: The missing package (``"stripe"``, ``"pymongo"``, ``"cryptography"``...).

    .. versionadded:: 0.2.0
    """

    def __init__(self, feature: str, *, extra: str, package: str) -> None:
        super().__init__(f'{feature} needs {package}: pip install "{DISTRIBUTION}[{extra}]"')
        self.extra = extra
        self.package = package


class InvalidRequestError(PaykitError, ValueError):
    """The caller passed a value paykit cannot accept."""


class CurrencyMismatchError(InvalidRequestError):
    """Two amounts of different currencies were combined."""


class InvalidStateError(PaykitError):
    """The operation is not allowed in the resource's current state."""


class UnsupportedOperationError(InvalidStateError):
    """The payment's provider has no API for the operation (answering a dispute at KNET).

    .. versionadded:: 0.3.0
    """


class IdempotencyConflictError(PaykitError):
    """An idempotency key was reused with different parameters."""


class PolicyDeniedError(PaykitError):
    """A policy refused the operation; nothing was written but the audit entry of the refusal.

    Attributes:
        reasons: Why, one line per refusing policy (``"AmountLimit: ..."``).
    """

    def __init__(self, message: str, *, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons or (message,)


class StepUpRequiredError(PaykitError):
    """The operation needs a verified second factor: call again with ``step_up=StepUpProof(...)``.

    Attributes:
        methods: The proof methods that would do (``("totp",)``).
    """

    def __init__(self, message: str, *, methods: tuple[str, ...]) -> None:
        super().__init__(message)
        self.methods = methods


class NotFoundError(PaykitError, LookupError):
    """The requested resource does not exist."""


class WebhookVerificationError(PaykitError):
    """A webhook request could not be verified or parsed.

    The message is for logs; never echo it to the sender.
    """


class StorageError(PaykitError):
    """The storage backend failed; the operation may be retried."""


class DuplicateRecordError(StorageError):
    """A unique insert found its key already taken."""


class ProviderError(PaykitError):
    """A payment provider answered with an error.

    Attributes:
        provider: The provider's name (``"stripe"``, ``"paypal"``, ``"knet"``...).
        http_status: The HTTP status of the provider's answer, if any.
        code: The provider's error code (Stripe ``code``, PayPal ``name``...).
        request_id: The provider's request id (Stripe ``Request-Id``, PayPal ``debug_id``).
        body: The provider's error body, as parsed JSON or text.
        should_retry: Whether retrying the same request may succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        http_status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | str | None = None,
        should_retry: bool = False,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.http_status = http_status
        self.code = code
        self.request_id = request_id
        self.body = body
        self.should_retry = should_retry

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"http_status={self.http_status!r}, code={self.code!r}, request_id={self.request_id!r})"
        )


class AuthenticationError(ProviderError):
    """The provider rejected paykit's credentials."""


class PaymentDeclinedError(ProviderError):
    """The payment was declined; ``decline_code`` says why when the provider tells."""

    def __init__(self, message: str, *, decline_code: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.decline_code = decline_code


class ProviderRequestError(ProviderError, InvalidRequestError):
    """The provider refused the request as invalid (a 4xx other than a decline or bad credentials).

    Also an :class:`InvalidRequestError`, so one ``except`` catches bad input
    whether paykit or the provider noticed it.
    """


class ProviderUnavailableError(ProviderError):
    """The provider could not be reached or failed on its side (network, 5xx, 429)."""

    def __init__(self, message: str, *, should_retry: bool = True, **kwargs: Any) -> None:
        super().__init__(message, should_retry=should_retry, **kwargs)


class ChannelError(PaykitError):
    """A notification channel (email, SMS, WhatsApp, push) could not send a message.

    The message never names the recipient or repeats the message body.

    Attributes:
        channel: The channel's notifier name (``"email"``, ``"sms"``...).
        code: The service's error code (``"21211"``, ``"UNREGISTERED"``, an SMTP reply code...), if any.
        permanent: ``True`` when sending again cannot help: the dispatcher gives this channel up for
            the notification instead of retrying it.

    .. versionadded:: 0.2.0
    """

    permanent: bool = False

    def __init__(self, message: str, *, channel: str, code: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel
        self.code = code


class PermanentChannelError(ChannelError):
    """Sending again cannot help (invalid address, recipient opted out, device unregistered): not retried.

    .. versionadded:: 0.2.0
    """

    permanent = True


class TemporaryChannelError(ChannelError):
    """The service was unreachable, failed or rate limited: retried under the dispatcher's backoff.

    .. versionadded:: 0.2.0
    """
