"""Scaffolding for docs/providers/knet.md: the terminal credentials its first block reads.

The doc reads them from the environment, as an application would; here they are
test values, set for the doc's run and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

_ENVIRONMENT = {
    "KNET_TRANPORTAL_ID": "123456",
    "KNET_TRANPORTAL_PASSWORD": "test-password",
    "KNET_RESOURCE_KEY": "ABCDEFGHIJKLMNOP",
}


@contextlib.contextmanager
def context() -> Iterator[dict[str, Any]]:
    saved = {name: os.environ.get(name) for name in _ENVIRONMENT}
    os.environ.update(_ENVIRONMENT)
    try:
        yield {}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
