"""Offline verification of PayPal webhook signatures, free of I/O.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(body)`` with
SHA256withRSA and names the signing certificate in ``PAYPAL-CERT-URL``. The
adapter fetches that certificate (only from an https URL on a paypal.com host,
so TLS vouches for where it came from); these functions decide everything else.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from .._errors import MissingExtraError, WebhookVerificationError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("PayPal webhook verification", extra="paypal", package="cryptography") from exc

__all__ = [
    "AUTH_ALGO",
    "TransmissionHeaders",
    "check_cert_url",
    "check_certificate",
    "check_transmission_time",
    "load_certificates",
    "signed_message",
    "verify_signature",
]

AUTH_ALGO: Final = "SHA256withRSA"
_MAX_CERT_URL: Final = 2048
_CERT_URL: Final = re.compile(
    r"https://(?P<host>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})(?::443)?"
    r"(?P<path>/[A-Za-z0-9._~/-]*)?",
    re.ASCII,
)
# Header values paykit reads: printable ASCII, bounded (PayPal's are ids, ISO times, base64, URLs).
_HEADER_VALUE: Final = re.compile(r"[\x21-\x7e]{1,4096}", re.ASCII)
_SUBJECT_CN: Final = re.compile(r"^messageverificationcerts(\.[a-z0-9-]+)*\.paypal\.com$")


@dataclass(frozen=True, slots=True)
class TransmissionHeaders:
    """The ``PAYPAL-*`` headers of one webhook delivery."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> TransmissionHeaders:
        """Read the headers (any case).

        Raises:
            WebhookVerificationError: A header is missing, empty, or not 1-4096
                printable ASCII characters (no spaces, controls or CR/LF).
        """
        lower = {key.lower(): value for key, value in headers.items()}
        values: dict[str, str] = {}
        for field in ("transmission_id", "transmission_time", "transmission_sig", "cert_url", "auth_algo"):
            header = "paypal-" + field.replace("_", "-")
            value = lower.get(header, "").strip()
            if not value:
                raise WebhookVerificationError(f"PayPal webhook lacks the {header.upper()} header")
            if not _HEADER_VALUE.fullmatch(value):
                raise WebhookVerificationError(f"PayPal webhook's {header.upper()} header is malformed")
            values[field] = value
        return cls(**values)


def signed_message(transmission_id: str, transmission_time: str, webhook_id: str, body: bytes) -> bytes:
    """The bytes PayPal signs for one delivery of ``body`` to ``webhook_id``."""
    return f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body) & 0xFFFFFFFF}".encode()


def check_transmission_time(value: str, *, now: datetime, tolerance: timedelta) -> datetime:
    """Parse ``PAYPAL-TRANSMISSION-TIME`` and reject it if too far from ``now``.

    PayPal signs every retry afresh, so an old transmission time means a replay.

    Raises:
        WebhookVerificationError: The time is malformed, naive, or more than
            ``tolerance`` away from ``now`` (either way).
    """
    try:
        sent = datetime.fromisoformat(value)
    except ValueError:
        raise WebhookVerificationError("PayPal webhook transmission time is malformed") from None
    if sent.tzinfo is None:
        raise WebhookVerificationError("PayPal webhook transmission time has no time zone")
    if abs(now - sent) > tolerance:
        raise WebhookVerificationError("PayPal webhook transmission time is outside the tolerance")
    return sent


def check_cert_url(url: str) -> str:
    """Accept only ``https://<host>.paypal.com/<path>`` URLs, parsed strictly, before any request.

    The whole URL must be printable ASCII without spaces; the authority must be a
    host name of letters, digits and hyphens ending in ``.paypal.com`` (optionally
    with ``:443``), with no user info; the path plain, with no query or fragment.
    A lenient parse let a tab inside the host pass the host check and then crash
    the HTTP client.

    Returns:
        The URL, unchanged, to fetch.

    Raises:
        WebhookVerificationError: Anything else.
    """
    match = _CERT_URL.fullmatch(url) if len(url) <= _MAX_CERT_URL else None
    if match is None or not match.group("host").lower().endswith(".paypal.com"):
        raise WebhookVerificationError("PayPal certificate URL is not an https URL on a paypal.com host")
    return url


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    """The certificates in a PEM document, leaf first.

    Raises:
        WebhookVerificationError: The document holds no readable certificate.
    """
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise WebhookVerificationError("PayPal certificate is not a PEM certificate") from None
    return certificates


def check_certificate(certificates: list[x509.Certificate], *, now: datetime) -> rsa.RSAPublicKey:
    """Check PayPal's signing certificate and return its RSA public key.

    The leaf must be valid at ``now`` and issued to
    ``messageverificationcerts[.<env>].paypal.com``; any certificates after it
    must each have issued the one before and be valid too.

    Raises:
        WebhookVerificationError: A check failed.
    """
    if not certificates:
        raise WebhookVerificationError("PayPal certificate document is empty")
    for certificate in certificates:
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise WebhookVerificationError("PayPal certificate is expired or not yet valid")
    for child, issuer in itertools.pairwise(certificates):
        try:
            child.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise WebhookVerificationError("PayPal certificate chain is broken") from None
    leaf = certificates[0]
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = names[0].value if names else ""
    if not isinstance(common_name, str) or not _SUBJECT_CN.match(common_name.lower()):
        raise WebhookVerificationError("PayPal certificate was not issued for message verification")
    key = leaf.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise WebhookVerificationError("PayPal certificate does not hold an RSA key")
    return key


def verify_signature(key: rsa.RSAPublicKey, message: bytes, signature: str, *, auth_algo: str) -> None:
    """Check the base64 ``PAYPAL-TRANSMISSION-SIG`` over ``message``.

    Raises:
        WebhookVerificationError: Unknown algorithm, malformed or wrong signature.
    """
    if auth_algo != AUTH_ALGO:
        raise WebhookVerificationError("PayPal webhook uses an unsupported signature algorithm")
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("PayPal webhook signature is not base64") from None
    if base64.b64encode(raw).decode("ascii") != signature:
        # Unused low bits before the padding would let two header values carry one signature.
        raise WebhookVerificationError("PayPal webhook signature is not canonical base64")
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise WebhookVerificationError("PayPal webhook signature does not match") from None
