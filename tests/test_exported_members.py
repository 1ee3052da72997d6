"""The public façades export exactly what their __all__ says, sorted."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = ["paykit", "paykit.providers", "paykit.storage", "paykit.webhooks", "paykit.testing"]


@pytest.mark.parametrize("module_name", PUBLIC)
def test_all_is_sorted_and_resolves(module_name: str) -> None:
    """Every name in __all__ resolves, once (ruff's RUF022 keeps it sorted)."""
    module = importlib.import_module(module_name)

    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_paykit_exports_every_public_name() -> None:
    """Every public name defined in paykit's namespace is in __all__."""
    import paykit

    exported = {name for name in dir(paykit) if not name.startswith("_")}
    submodules = {"audit", "notify", "storage", "providers", "webhooks", "testing", "cli", "integrations"}

    assert set(paykit.__all__) == exported - submodules


@pytest.mark.parametrize(
    ("module_name", "names"),
    [
        ("paykit", ["AsyncAuditHook", "AsyncNotifier"]),
        ("paykit.audit", ["AsyncAuditHook"]),
        ("paykit.notify", ["AsyncNotificationDispatcher", "AsyncNotifier"]),
        ("paykit.webhooks", ["ahandle_webhook"]),
    ],
)
def test_async_twins_are_exported(module_name: str, names: list[str]) -> None:
    """The asyncio twins sit beside their sync names, in the same modules' __all__."""
    module = importlib.import_module(module_name)

    assert set(names) <= set(module.__all__)


def test_importing_paykit_needs_no_optional_extra() -> None:
    """`import paykit` loads neither stripe, pymongo nor a web framework."""
    import subprocess
    import sys

    code = (
        "import sys, paykit, paykit.providers, paykit.storage, paykit.webhooks, paykit.testing;"
        "print(sorted(m for m in ('stripe','pymongo','flask','django','starlette','cryptography') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert "[]" == out.strip()
