"""paykit's loggers: structlog builds the events, the standard library's ``logging`` decides and delivers.

A library logs and the application configures. Every module does::

    from ._log import get_logger

    log = get_logger(__name__)
    log.info("payment initializing", payment_id=payment.id)

and the event goes to ``logging.getLogger(__name__)`` (so under ``paykit.*``):

- nothing is configured: ``paykit``'s ``NullHandler`` keeps it quiet (no stdout, no
  stderr from the last-resort handler);
- plain ``logging`` is configured: the record's message reads
  ``payment initializing payment_id='pay_...'``;
- structlog's :class:`structlog.stdlib.ProcessorFormatter` is on the handler: it gets
  the event dict itself (``event``, ``level``, ``logger`` and the keys), as from the
  application's own structlog loggers.

structlog is never configured here, and an event is not even built when its
stdlib logger is not enabled for its level.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, Processor

__all__ = ["get_logger"]

# The keys the stdlib record already carries; a plain formatter's message leaves them out.
_RECORD_KEYS = frozenset({"event", "level", "logger", "exc_info"})


class _Event(dict[str, Any]):
    """The event dict, which plain ``logging`` formatters print as ``event key=value ...``.

    ``ProcessorFormatter`` recognizes the dict (it copies it into a plain one) and
    renders it with the application's processors.
    """

    def __str__(self) -> str:
        pairs = " ".join(f"{key}={value!r}" for key, value in self.items() if key not in _RECORD_KEYS)
        event = str(self.get("event", ""))
        return f"{event} {pairs}" if pairs else event


def _to_stdlib(logger: Any, method_name: str, event_dict: EventDict) -> tuple[tuple[Any, ...], dict[str, Any]]:
    # What ProcessorFormatter.wrap_for_formatter returns, plus exc_info for plain formatters: a traceback
    # is resolved here, while the exception is being handled, not later in a queued handler.
    exc_info = event_dict.get("exc_info")
    if exc_info is True:
        exc_info = event_dict["exc_info"] = sys.exc_info()
    kwargs: dict[str, Any] = {"extra": {"_logger": logger, "_name": method_name}}
    if exc_info:
        kwargs["exc_info"] = exc_info
    return (_Event(event_dict),), kwargs


_PROCESSORS: list[Processor] = [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, _to_stdlib]


class _LevelCheckedLogger(structlog.stdlib.BoundLogger):
    """A stdlib BoundLogger that asks the stdlib logger for the level before building anything."""

    def debug(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.DEBUG):
            return self._proxy_to_logger("debug", event, *args, **kw)
        return None

    def info(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.INFO):
            return self._proxy_to_logger("info", event, *args, **kw)
        return None

    def warning(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.WARNING):
            return self._proxy_to_logger("warning", event, *args, **kw)
        return None

    warn = warning

    def error(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.ERROR):
            return self._proxy_to_logger("error", event, *args, **kw)
        return None

    def exception(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.ERROR):
            kw.setdefault("exc_info", True)
            return self._proxy_to_logger("error", event, *args, **kw)
        return None

    def critical(self, event: str | None = None, *args: Any, **kw: Any) -> Any:
        if self._logger.isEnabledFor(logging.CRITICAL):
            return self._proxy_to_logger("critical", event, *args, **kw)
        return None


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger that delivers to ``logging.getLogger(name)``, without configuring structlog.

    Args:
        name: The module's ``__name__``, so events land under ``paykit.*``.

    Returns:
        A :class:`structlog.stdlib.BoundLogger` (``bind``, ``debug`` ... ``exception``).
    """
    return _LevelCheckedLogger(logging.getLogger(name), _PROCESSORS, {})
