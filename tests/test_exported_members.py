"""The public façades export exactly what their __all__ says, sorted."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

PUBLIC = ["paykit", "paykit.providers", "paykit.storage", "paykit.webhooks", "paykit.testing", "paykit.channels"]


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

    # "@py_builtins"/"@pytest_ar": pytest rewrites the asserts of every package of a distribution with a pytest11
    # plugin (paykit's own, paykit.testing.pytest_plugin), and these are its helpers, not paykit's names.
    exported = {name for name in dir(paykit) if not name.startswith(("_", "@py"))}
    submodules = {"audit", "notify", "storage", "providers", "webhooks", "testing", "cli", "integrations", "channels"}

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


def test_explain_returns_exported_values() -> None:
    """What service.explain() returns can be imported and annotated from paykit."""
    import paykit

    assert {"Explanation", "TimelineEntry"} <= set(paykit.__all__)
    assert paykit.Explanation.__module__ == "paykit._results"


TWINS = [
    ("StripeProvider", "AsyncStripeProvider"),
    ("PayPalProvider", "AsyncPayPalProvider"),
    ("KnetProvider", "AsyncKnetProvider"),
    ("BaseProvider", "AsyncBaseProvider"),
]


@pytest.mark.parametrize(("sync_name", "async_name"), TWINS)
def test_async_provider_twins_have_the_sync_api(sync_name: str, async_name: str) -> None:
    """Each async adapter has its sync twin's constructor and methods, I/O ones awaited, ``aclose`` for ``close``."""
    import inspect
    import re

    import paykit.providers

    sync_cls = getattr(paykit.providers, sync_name)
    async_cls = getattr(paykit.providers, async_name)

    def public(cls: type) -> set[str]:
        return {name for name in dir(cls) if not name.startswith("_")}

    def text(obj: Any) -> str:
        # Default functions (a clock) are each twin's own copy: compare them by name.
        return re.sub(r" at 0x[0-9a-f]+", "", str(inspect.signature(obj))).replace("AsyncClient", "Client")

    assert public(async_cls) - {"aclose"} == public(sync_cls) - {"close"}
    assert text(async_cls.__init__) == text(sync_cls.__init__)
    for name in sorted(public(sync_cls) - {"close"}):
        sync_member, async_member = getattr(sync_cls, name), getattr(async_cls, name)
        if not inspect.isfunction(sync_member):
            continue
        assert text(async_member) == text(sync_member), name
        assert not inspect.iscoroutinefunction(sync_member), name
        assert inspect.iscoroutinefunction(async_member) is (name != "check_amount"), name
