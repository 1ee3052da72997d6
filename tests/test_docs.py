"""Every ```python block of README.md and docs/ runs as the page shows it, so the examples cannot rot.

Blocks of one page run in order in one namespace, with nothing added: what a page
needs beyond paykit (a mocked provider API, test credentials, a Django settings
call) is on the page itself, in a block marked "Test setup" (a collapsed
``??? example`` block on the site), so a reader sees everything the example uses.
Blocks inside such admonitions are indented; they run dedented.

The only thing the suite supplies is what a page says it reads from the
environment and cannot fake: ``MONGODB_URI``, a MongoDB-wire server started here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import respx

try:
    from tests._mongo_server import SecantusServer
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from _mongo_server import SecantusServer  # type: ignore[no-redef,import-not-found]

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^(?P<indent>[ ]*)```python[^\n]*\n(?P<code>.*?)^(?P=indent)```", re.MULTILINE | re.DOTALL)
DOCS = [doc for doc in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))] if BLOCK.search(doc.read_text())]
NEEDS_MONGODB = {"docs/storage.md"}


def _blocks(doc: Path) -> list[str]:
    return [textwrap.dedent(match["code"]) for match in BLOCK.finditer(doc.read_text())]


def _name(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


@pytest.fixture
def mongodb_uri() -> Iterator[str]:
    """``PAYKIT_TEST_MONGODB_URI`` or a SecantusDB started for the page."""
    configured = os.environ.get("PAYKIT_TEST_MONGODB_URI")
    if configured:
        yield configured
        return
    with SecantusServer() as server:
        yield server.uri


@pytest.fixture
def isolated() -> Iterator[None]:
    """Pages set environment variables and logging levels in their setup blocks; undo that afterwards."""
    environment = dict(os.environ)
    paykit_level = logging.getLogger("paykit").level
    yield
    os.environ.clear()
    os.environ.update(environment)
    logging.getLogger("paykit").setLevel(paykit_level)


@pytest.mark.usefixtures("isolated")
@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_examples_run(doc: Path, request: pytest.FixtureRequest) -> None:
    """The page's python examples, setup blocks included, run in order without error."""
    if _name(doc) in NEEDS_MONGODB:
        os.environ["MONGODB_URI"] = request.getfixturevalue("mongodb_uri")
    namespace: dict[str, Any] = {"__name__": f"docs_{doc.stem}"}
    try:
        for number, block in enumerate(_blocks(doc), 1):
            code = compile(block, f"{_name(doc)} (block {number})", "exec")
            exec(code, namespace)
    finally:
        # A page that failed before its teardown block must not leave its API mock on for other tests.
        for value in namespace.values():
            if isinstance(value, respx.MockRouter):
                with contextlib.suppress(Exception):
                    value.stop(quiet=True)


def test_no_hidden_context() -> None:
    """The suite supplies no globals a page does not show: there are no context modules any more."""
    assert not (ROOT / "tests" / "docs_context").exists()


def test_setup_blocks_say_so() -> None:
    """A block that fakes something for the suite (respx, a test credential) is marked as test setup on the page."""
    for doc in DOCS:
        for block in _blocks(doc):
            if "respx" in block or "os.environ.setdefault" in block:
                assert "test setup" in block.lower(), f"{_name(doc)}: mark this block as test setup:\n{block}"


def test_the_docs_have_examples() -> None:
    """The pages users start from carry runnable examples (so the list above is not silently empty)."""
    names = {_name(doc) for doc in DOCS}

    assert {"README.md", "docs/quickstart.md", "docs/concepts.md", "docs/storage.md"} <= names


def test_readme_opens_with_the_two_commands() -> None:
    """The README's first code block is exactly the demo command and the check command."""
    first = re.search(r"^```\w*\n(.*?)^```", (ROOT / "README.md").read_text(), re.MULTILINE | re.DOTALL)

    assert first is not None
    assert ["python3 scripts/dev.py demo", "python3 scripts/dev.py check"] == first.group(1).strip().splitlines()


def test_ci_runs_the_readme_check_command() -> None:
    """.ci/run runs the README's check command."""
    assert "python3 scripts/dev.py check" in (ROOT / ".ci" / "run").read_text()
