"""Stripe webhook helpers for tests: sign a payload exactly as Stripe does."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["sign_stripe_webhook", "stripe_event"]


def sign_stripe_webhook(payload: bytes | str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Sign ``payload`` the way Stripe signs webhook deliveries.

    .. versionadded:: 0.1.0

    Examples:
        >>> headers = sign_stripe_webhook(b'{"id": "evt_1"}', "whsec_test", timestamp=1700000000)
        >>> headers["stripe-signature"][:15]
        't=1700000000,v1'

    Args:
        payload: The exact request body that will be sent.
        secret: The endpoint's signing secret (``whsec_...``).
        timestamp: Unix time to sign with; now when ``None``.

    Returns:
        Request headers (lower-case names): ``stripe-signature`` and ``content-type``.
    """
    body = payload.encode() if isinstance(payload, str) else payload
    signed_at = int(time.time()) if timestamp is None else timestamp
    signature = hmac.new(secret.encode(), b"%d.%s" % (signed_at, body), hashlib.sha256).hexdigest()
    return {
        "stripe-signature": f"t={signed_at},v1={signature}",
        "content-type": "application/json; charset=utf-8",
    }


def stripe_event(
    event_type: str,
    data_object: Mapping[str, Any],
    *,
    event_id: str = "evt_test_1",
    created: int | None = None,
) -> bytes:
    """Build a Stripe Event body around ``data_object``, ready to sign.

    .. versionadded:: 0.1.0

    Args:
        event_type: The event type, e.g. ``"payment_intent.succeeded"``.
        data_object: The event's ``data.object`` (a PaymentIntent, Refund...).
        event_id: The event id (paykit de-duplicates deliveries by it).
        created: The event's Unix creation time; now when ``None``.

    Returns:
        The JSON body, as bytes.
    """
    event = {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()) if created is None else created,
        "data": {"object": dict(data_object)},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    return json.dumps(event).encode()
