"""docs/integrations/django.md runs as part of a minimal Django project: settings without apps or database."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import django
from django.conf import settings


@contextlib.contextmanager
def context() -> Iterator[dict[str, Any]]:
    """Configure Django once (what a project's settings.py does); the page adds its own URLs."""
    if not settings.configured:
        settings.configure(SECRET_KEY="paykit-docs", ALLOWED_HOSTS=["testserver"], USE_TZ=True)
        django.setup()
    yield {}
