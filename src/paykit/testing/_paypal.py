"""Sign PayPal webhooks in tests the way PayPal does, with a self-signed test certificate.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from .._errors import MissingExtraError

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("PayPalWebhookSigner", extra="paypal", package="cryptography") from exc

__all__ = ["PayPalWebhookSigner"]

_DEFAULT_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-paykit-test"


class PayPalWebhookSigner:
    """Signs webhook bodies like PayPal and serves the certificate that checks them.

    It makes an RSA key and a self-signed certificate issued to
    ``messageverificationcerts.paypal.com``, signs
    ``transmission_id|transmission_time|webhook_id|crc32(body)`` with
    SHA256withRSA, and answers ``GET cert_url`` through :attr:`transport` (or
    :meth:`handler`, to combine with other mocks).

    The adapter confirms every event that moves money with a GET of its
    resource, so the handler also plays that part of PayPal's API: it answers
    the token request, and a GET of every resource :meth:`event_body` was given
    (by its ``self`` link, or by the event type) or :meth:`serve` was told about::

        signer = PayPalWebhookSigner(webhook_id="WH-1")
        provider = PayPalProvider("id", "secret", "WH-1", http_client=httpx.Client(transport=signer.transport))
        body = signer.event_body("PAYMENT.CAPTURE.COMPLETED", resource)
        event = provider.parse_webhook(body, signer.sign(body))

    Args:
        webhook_id: The webhook id to sign for (the provider's ``webhook_id``).
        cert_url: Where the certificate is served; PayPal's hosts by default.
        common_name: The certificate subject's CN (change it to test rejection).
        not_before: Start of the certificate's validity (default: a day ago).
        not_after: End of the certificate's validity (default: in a year).
        clock: Returns the current aware time, for default transmission times.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        webhook_id: str,
        *,
        cert_url: str = _DEFAULT_CERT_URL,
        common_name: str = "messageverificationcerts.paypal.com",
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.webhook_id = webhook_id
        self.cert_url = cert_url
        self._clock = clock
        now = clock()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "paykit test"),
            ]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - timedelta(days=1))
            .not_valid_after(not_after or now + timedelta(days=365))
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem: bytes = certificate.public_bytes(serialization.Encoding.PEM)
        """The certificate, PEM-encoded, as served at :attr:`cert_url`."""
        self.requests: list[httpx.Request] = []
        """Every request :meth:`handler` received (to assert the certificate cache)."""
        self.resources: dict[str, dict[str, Any]] = {}
        """API path -> the JSON :meth:`handler` answers a GET of it with."""

    def serve(self, path: str, resource: Mapping[str, Any]) -> None:
        """Answer ``GET <path>`` (``/v2/payments/captures/<id>``...) with ``resource``, on any API host.

        .. versionadded:: 0.1.0
        """
        self.resources[path] = dict(resource)

    def sign(
        self,
        body: bytes,
        *,
        transmission_id: str | None = None,
        transmission_time: datetime | str | None = None,
        webhook_id: str | None = None,
    ) -> dict[str, str]:
        """The ``PAYPAL-*`` headers PayPal would send with ``body``.

        Args:
            body: The exact bytes of the request body.
            transmission_id: The delivery's id (random by default).
            transmission_time: When it was sent (the clock's now by default).
            webhook_id: Sign for another webhook id (to test rejection).

        Returns:
            Header names as PayPal sends them, mapped to their values.
        """
        transmission_id = transmission_id or str(uuid.uuid4())
        when = transmission_time or self._clock()
        sent = when if isinstance(when, str) else when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        crc = zlib.crc32(body) & 0xFFFFFFFF
        message = f"{transmission_id}|{sent}|{webhook_id or self.webhook_id}|{crc}".encode()
        signature = self._key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-TRANSMISSION-TIME": sent,
        }

    def handler(self, request: httpx.Request) -> httpx.Response:
        """Answer ``GET cert_url``, the token request and GETs of served resources; anything else 404."""
        self.requests.append(request)
        if request.method == "GET" and str(request.url) == self.cert_url:
            return httpx.Response(200, content=self.cert_pem, headers={"Content-Type": "text/plain"})
        if request.method == "POST" and request.url.path == "/v1/oauth2/token":
            return httpx.Response(200, json={"access_token": "A21AA-paykit-test", "expires_in": 32400})
        resource = self.resources.get(request.url.path)
        if request.method == "GET" and resource is not None:
            return httpx.Response(200, json=resource)
        return httpx.Response(
            404, json={"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."}
        )

    @property
    def transport(self) -> httpx.MockTransport:
        """A mock transport serving the certificate, for ``httpx.Client(transport=...)``."""
        return httpx.MockTransport(self.handler)

    def event_body(
        self,
        event_type: str,
        resource: Mapping[str, Any],
        *,
        event_id: str | None = None,
        create_time: datetime | None = None,
        resource_type: str | None = None,
    ) -> bytes:
        """A webhook event body shaped like PayPal's, as bytes to sign and send.

        Args:
            event_type: Such as ``"PAYMENT.CAPTURE.COMPLETED"``.
            resource: The event's resource (an order, capture, refund...).
            event_id: The event id (``WH-`` plus random by default).
            create_time: When the event happened (the clock's now by default).
            resource_type: Such as ``"refund"`` (by default from ``event_type``).

        The resource is also served to the adapter's confirming GET (see :meth:`serve`).
        A refund's capture is not known here: serve it too.
        """
        path = _resource_path(event_type, resource)
        if path is not None:
            self.serve(path, resource)
        event = {
            "id": event_id or f"WH-{uuid.uuid4().hex[:17].upper()}",
            "event_version": "1.0",
            "create_time": (create_time or self._clock()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "resource_type": resource_type or event_type.split(".")[1].lower(),
            "event_type": event_type,
            "summary": f"paykit test {event_type}",
            "resource": dict(resource),
        }
        return json.dumps(event, separators=(",", ":")).encode()


_PATHS_BY_EVENT = (
    ("CHECKOUT.ORDER.", "/v2/checkout/orders/"),
    ("PAYMENT.CAPTURE.REFUNDED", "/v2/payments/refunds/"),
    ("PAYMENT.CAPTURE.REVERSED", "/v2/payments/refunds/"),
    ("PAYMENT.CAPTURE.", "/v2/payments/captures/"),
    ("PAYMENT.AUTHORIZATION.", "/v2/payments/authorizations/"),
)


def _resource_path(event_type: str, resource: Mapping[str, Any]) -> str | None:
    """Where PayPal's API serves ``resource``: its ``self`` link, else by the event type."""
    for link in resource.get("links") or ():
        if isinstance(link, Mapping) and link.get("rel") == "self" and isinstance(link.get("href"), str):
            return str(httpx.URL(link["href"]).path)
    resource_id = resource.get("id")
    if not isinstance(resource_id, str):
        return None
    return next((base + resource_id for prefix, base in _PATHS_BY_EVENT if event_type.startswith(prefix)), None)
