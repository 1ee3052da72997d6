"""The architecture's first rule, checked: decisions and wire formats are pure.

``_decisions/`` and each provider's ``_wire`` module decide; they must never
reach storage, a provider's transport, a thread or an event loop. This walks
their imports (and the imports of every paykit module they import) and fails
on any of those.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PURE = sorted(
    [
        *(f"paykit._decisions.{p.stem}" for p in (SRC / "paykit" / "_decisions").glob("*.py")),
        *(f"paykit.providers.{p.stem}" for p in (SRC / "paykit" / "providers").glob("_*_wire.py")),
    ]
)
FORBIDDEN = (
    "asyncio",
    "threading",
    "concurrent",
    "httpx",
    "pymongo",
    "stripe",
    "paykit.storage.memory",
    "paykit.storage.mongo",
    "paykit._sync",
    "paykit.notify",
    "paykit.audit",
    "paykit.providers.stripe",
    "paykit.providers.paypal",
    "paykit.providers.knet",
    "paykit.providers._async",
    "paykit.providers._sync",
    "paykit.providers._stripe_http",
    "paykit.testing",
)


def module_path(name: str) -> Path:
    base = SRC.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def imports_of(name: str) -> set[str]:
    """Absolute names of what module ``name`` imports (each ``from x import y`` also as ``x.y``)."""
    path = module_path(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def reachable(name: str) -> set[str]:
    """Every module name imported from ``name``, following paykit's own modules."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for imported in imports_of(todo.pop()):
            if imported in seen:
                continue
            seen.add(imported)
            if imported.startswith("paykit") and module_path(imported).exists():
                todo.append(imported)
    return seen


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_reach_no_io(module: str) -> None:
    bad = sorted(m for m in reachable(module) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert [] == bad


def test_the_walk_sees_forbidden_imports() -> None:
    """The check itself can fail: the engine reaches storage and threads."""
    names = reachable("paykit._sync.engine")
    assert "paykit.audit" in names
    assert len(PURE) >= 9
