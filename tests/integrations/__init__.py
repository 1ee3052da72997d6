"""Shared scenery for the framework integration tests: a shop with one payment in flight."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from paykit import AuditAction, Money, Payment, PaymentService, PaymentStatus, StorageError
from paykit.storage import MemoryStorage
from paykit.testing import FakeProvider, FakeWebhook, ManualClock

ADMIN_TOKEN = "let-me-in"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN_TOKEN}"}
MAX_BODY_BYTES = 2048
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def bearer_ok(authorization: str | None) -> bool:
    """The test apps' authorize(): a fixed bearer token."""
    return authorization == f"Bearer {ADMIN_TOKEN}"


class DownStorage(MemoryStorage):
    """A storage whose server is gone: every call fails like a lost MongoDB connection."""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            raise StorageError("storage unreachable")
        return super().__getattribute__(name)


@dataclass
class Shop:
    """A service on memory with one fake provider, and helpers to move a payment along."""

    clock: ManualClock = field(default_factory=ManualClock)
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    fake: FakeProvider = field(init=False)
    service: PaymentService = field(init=False)

    def __post_init__(self) -> None:
        self.fake = FakeProvider(clock=self.clock.unix)
        self.service = PaymentService(storage=self.storage, providers=[self.fake], clock=self.clock)

    def processing_payment(self) -> Payment:
        """A payment the provider is still settling: a webhook will say how it ended."""
        self.fake.behavior = "processing"
        payment = self.service.initialize_payment(user_id="u1", amount=Money.of("12.50", "USD"), provider="fake")
        return self.service.confirm_payment(payment.id, payment_method="pm_card_visa")

    def succeeded(self, payment: Payment, event_id: str = "evt_1") -> FakeWebhook:
        """The provider's signed 'payment succeeded' webhook."""
        return self.fake.webhook(payment, PaymentStatus.SUCCEEDED, event_id=event_id)

    def trail(self, payment_id: str) -> list[AuditAction]:
        """The payment's audit trail as action names."""
        return [entry.action for entry in self.service.audit_trail(payment_id)]

    def close(self) -> None:
        self.service.close()


def forged(hook: FakeWebhook) -> bytes:
    """The hook's body with the status rewritten, keeping the original signature."""
    return hook.body.replace(b"succeeded", b"failed")


def load_example(name: str) -> ModuleType:
    """Import examples/<name>.py (examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"paykit_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def modules_after(code: str, prefixes: Sequence[str]) -> list[str]:
    """Run ``code`` in a fresh interpreter; the loaded modules whose names start with ``prefixes``."""
    probe = (
        f"{code}\nimport sys\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith({tuple(prefixes)!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return result.stdout.split()
