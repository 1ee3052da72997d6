"""What a pure ``build`` decides: one new version of a record, or nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._models import AuditAction
from ..storage._base import Effect

__all__ = ["Change", "skip"]


@dataclass(frozen=True, slots=True)
class Change:
    """The fields a write sets, the audit entry it leaves, and the effects it carries.

    ``write=False`` means nothing is written; ``outcome`` then tells the caller why
    (``"duplicate"``, ``"stale"``...). The engine adds the version, ``updated_at``,
    the audit entry (when ``action`` is set) and the record's notifications.
    """

    updates: Mapping[str, Any] = field(default_factory=dict)
    action: AuditAction | None = None
    payload: Mapping[str, Any] | None = None
    effects: tuple[Effect, ...] = ()
    outcome: str = ""
    write: bool = True


def skip(outcome: str = "") -> Change:
    """A build's answer when there is nothing to write."""
    return Change(outcome=outcome, write=False)
