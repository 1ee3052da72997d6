"""FakeProvider and its async twin, from one source (``_async/fake.py``)."""

from __future__ import annotations

from ._async.fake import AsyncFakeProvider
from ._fake_values import FakeBehavior, FakeCall, FakeWebhook, LookupFault
from ._sync.fake import FakeProvider

__all__ = ["AsyncFakeProvider", "FakeBehavior", "FakeCall", "FakeProvider", "FakeWebhook", "LookupFault"]
