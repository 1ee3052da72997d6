"""Webhook handling for any web framework: raw bytes and headers in, an HTTP answer out.

Pass the request body exactly as received (``request.get_data()`` in Flask,
``await request.body()`` in Starlette/FastAPI, ``request.body`` in Django).
Never parse and re-serialize JSON first: the signature covers the exact bytes.
``handle_webhook`` is generated from ``ahandle_webhook`` (``_async/webhooks.py``): they answer alike.
"""

from __future__ import annotations

from ._async.webhooks import ahandle_webhook
from ._results import WebhookOutcome
from ._sync.webhooks import handle_webhook
from ._webhook_answers import DEFAULT_MAX_BODY_BYTES, WebhookResponse

__all__ = ["DEFAULT_MAX_BODY_BYTES", "WebhookOutcome", "WebhookResponse", "ahandle_webhook", "handle_webhook"]
