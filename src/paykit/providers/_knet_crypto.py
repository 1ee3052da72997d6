"""KNET's ``trandata`` cipher: AES-128-CBC, key = IV = the terminal resource key.

KNET encrypts both legs with the 16-character *resource key* of the merchant's
terminal, used as the AES key and as the IV, with PKCS#7 padding, and carries the
ciphertext as lowercase hex. Pure functions, no I/O: the sync adapter and a
future async one share them. ``cryptography`` comes with the ``paykit-payments[knet]``
extra; without it, importing this module raises an ImportError naming the extra.
"""

from __future__ import annotations

import binascii
from typing import Final

from .._errors import ConfigurationError, MissingExtraError, WebhookVerificationError

try:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("KnetProvider", extra="knet", package="cryptography") from exc

__all__ = ["RESOURCE_KEY_LENGTH", "decrypt_trandata", "encrypt_trandata"]

RESOURCE_KEY_LENGTH: Final = 16
_BLOCK_BYTES: Final = 16


def _key_bytes(resource_key: str) -> bytes:
    key = resource_key.encode("utf-8")
    if len(key) != RESOURCE_KEY_LENGTH:
        raise ConfigurationError(f"the KNET resource key must be {RESOURCE_KEY_LENGTH} ASCII characters")
    return key


def encrypt_trandata(plain_text: str, resource_key: str) -> str:
    """Encrypt a request's plain text the way KNET expects it.

    Args:
        plain_text: The ``id=...&password=...&action=1...`` string.
        resource_key: The terminal's 16-character resource key.

    Returns:
        Lowercase hex of AES-128-CBC(PKCS#7(plain_text)) with key = IV = resource key.

    Raises:
        ConfigurationError: The key is not 16 bytes.
    """
    key = _key_bytes(resource_key)
    padder = padding.PKCS7(_BLOCK_BYTES * 8).padder()
    padded = padder.update(plain_text.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key)).encryptor()
    return (encryptor.update(padded) + encryptor.finalize()).hex()


def decrypt_trandata(trandata: str, resource_key: str) -> str:
    """Decrypt the ``trandata`` KNET posts back to the response URL.

    Args:
        trandata: Hex ciphertext (either case; surrounding whitespace is ignored).
        resource_key: The terminal's 16-character resource key.

    Returns:
        The decrypted ``paymentid=...&result=...`` text.

    Raises:
        WebhookVerificationError: Not hex, not whole AES blocks, bad padding, or
            not UTF-8 once decrypted (garbage, tampering, or another key).
        ConfigurationError: The key is not 16 bytes.
    """
    key = _key_bytes(resource_key)
    try:
        cipher_bytes = binascii.unhexlify(trandata.strip())
    except (binascii.Error, ValueError):
        raise WebhookVerificationError("KNET trandata is not hexadecimal") from None
    if not cipher_bytes or len(cipher_bytes) % _BLOCK_BYTES:
        raise WebhookVerificationError("KNET trandata is not a whole number of AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key)).decryptor()
    padded = decryptor.update(cipher_bytes) + decryptor.finalize()
    unpadder = padding.PKCS7(_BLOCK_BYTES * 8).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
        return plain.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        # Same message for both: which check failed must not become an oracle.
        raise WebhookVerificationError("KNET trandata does not decrypt with this resource key") from None
