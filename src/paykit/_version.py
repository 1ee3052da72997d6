"""The distribution's name on the package index, which differs from the import name ``paykit``."""

from __future__ import annotations

from typing import Final

__all__ = ["DISTRIBUTION"]

#: ``pip install paykit-payments`` installs the ``paykit`` package; ``paykit`` on the index is another project.
DISTRIBUTION: Final = "paykit-payments"
