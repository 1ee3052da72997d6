"""Capture paykit's log events in tests, as dicts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

__all__ = ["capture_logs"]


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, dict):
            event = dict(record.msg)
        else:  # a record paykit did not build: keep its text
            event = {"event": record.getMessage(), "logger": record.name}
        event.setdefault("level", record.levelname.lower())
        event.pop("exc_info", None)
        self.events.append(event)


@contextlib.contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[list[dict[str, Any]]]:
    """Collect every event paykit logs at ``level`` or above while the block runs.

    paykit logs through the standard library (see docs/logging.md), so
    ``structlog.testing.capture_logs`` does not see its events; this does, whatever
    the application configured::

        with capture_logs() as logs:
            handle_webhook(service, "stripe", body, headers)
        assert "webhook handled" == logs[-1]["event"]

    Yields:
        A list that fills with one dict per event: ``event``, ``level``, ``logger`` and the event's keys.

    .. versionadded:: 0.2.0
    """
    logger = logging.getLogger("paykit")
    collector = _Collector()
    saved = logger.level
    logger.addHandler(collector)
    logger.setLevel(level)
    try:
        yield collector.events
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved)
