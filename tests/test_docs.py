"""Every ```python block of README.md and docs/ runs, so the examples cannot rot.

Blocks of one file run in order in one namespace. A file whose examples need
offline scaffolding (a mocked provider, a local server) has a module
``tests/docs_context/<path with / as _>.py`` whose ``context()`` yields extra globals.
"""

from __future__ import annotations

import contextlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOCS = [doc for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))] if BLOCK.search(doc.read_text())]


def _context(doc: Path) -> contextlib.AbstractContextManager[dict[str, Any]]:
    relative = doc.relative_to(ROOT / "docs") if doc.is_relative_to(ROOT / "docs") else Path(doc.name)
    name = "_".join(relative.with_suffix("").parts)
    path = ROOT / "tests" / "docs_context" / f"{name}.py"
    if not path.exists():
        return contextlib.nullcontext({})
    spec = importlib.util.spec_from_file_location(f"docs_context_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ctx: contextlib.AbstractContextManager[dict[str, Any]] = module.context()
    return ctx


def _blocks(doc: Path) -> list[str]:
    return BLOCK.findall(doc.read_text())


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(doc: Path) -> None:
    """The file's python examples run in order without error."""
    blocks = _blocks(doc)
    with _context(doc) as extra:
        namespace: dict[str, Any] = {"__name__": f"docs_{doc.stem}", **extra}
        for number, block in enumerate(blocks, 1):
            code = compile(block, f"{doc.relative_to(ROOT)} (block {number})", "exec")
            exec(code, namespace)


def test_the_docs_have_examples() -> None:
    """The pages users start from carry runnable examples (so the list above is not silently empty)."""
    names = {str(doc.relative_to(ROOT)) for doc in DOCS}

    assert {"README.md", "docs/quickstart.md", "docs/concepts.md", "docs/storage.md"} <= names


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first code block is exactly the demo command and the check command."""
    first = re.search(r"^```\w*\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)

    assert first is not None
    assert ["python3 scripts/dev.py demo", "python3 scripts/dev.py check"] == first.group(1).strip().splitlines()


def test_ci_runs_the_readme_check_command() -> None:
    """.ci/run runs the README's check command."""
    assert "python3 scripts/dev.py check" in (ROOT / ".ci" / "run").read_text()
