"""Bootstrap paykit's virtual environment and run a task in it.

    python3 scripts/dev.py demo     # the demo, on in-memory storage
    python3 scripts/dev.py check    # the sync twin, ruff, mypy --strict, the docs site and the whole test suite
    python3 scripts/dev.py docs     # build the docs site into site/ (mkdocs serve previews it)

Needs only Python 3.11+; creates ``.venv`` beside the project on first use and
reinstalls when pyproject.toml changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".paykit-installed"


def _run(*args: str | Path) -> None:
    result = subprocess.run([str(a) for a in args], cwd=ROOT, check=False)
    if result.returncode:
        sys.exit(result.returncode)


def ensure_venv() -> None:
    """Create the venv and install paykit with its dev extras when needed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may be started by an older python3
        sys.exit(f"paykit needs Python 3.11+, this is {sys.version.split()[0]}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing paykit-payments[dev] (import name: paykit) into .venv ...", flush=True)
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade", "pip")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[dev]")
    STAMP.write_text(wanted)


def _mkdocs(*args: str) -> None:
    # Material prints a banner about its successor on every build; it is not a problem of the docs.
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    _run(PYTHON, "-m", "mkdocs", *args)


def main() -> None:
    """Run the task named on the command line."""
    task = sys.argv[1] if len(sys.argv) > 1 else "check"
    ensure_venv()
    if task == "demo":
        _run(PYTHON, "-m", "paykit", "demo", *sys.argv[2:])
    elif task == "check":
        _run(PYTHON, "scripts/unasync.py", "--check")
        _run(PYTHON, "-m", "ruff", "check", ".")
        _run(PYTHON, "-m", "ruff", "format", "--check", ".")
        _run(PYTHON, "-m", "mypy")
        with tempfile.TemporaryDirectory(prefix="paykit-site-") as site:
            # Not --quiet: it hides warnings from --strict, which then passes anything.
            _mkdocs("build", "--strict", "--site-dir", site)
        _run(PYTHON, "-m", "pytest", *sys.argv[2:])
    elif task == "docs":
        _mkdocs("build", "--strict", *sys.argv[2:])
    elif task == "bench":
        _run(PYTHON, "benchmarks/run.py", *sys.argv[2:])
    else:
        sys.exit(f"unknown task {task!r}; expected demo, check, docs or bench")


if __name__ == "__main__":
    main()
