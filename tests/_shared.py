"""Where the suite finds the files it reads from the steering repository's ``shared/`` at run time.

Specs and genuine samples stay in ``../shared`` (next to the repository root); the
project never copies them in. Tests that need them skip, saying why, only when that
folder is absent (CI checks it out).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared").resolve()
"""The steering repository's shared folder, beside the repository root."""


def shared_path(*parts: str) -> Path:
    """The path of ``shared/<parts>``; skips the calling module when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"{path} is absent: check out the steering repository's shared/ beside this one", allow_module_level=True
        )
    return path
