"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to.

`configure_logging(level, json=True)` installs one handler on the root logger. The request id
travels in a context variable that the HTTP middleware sets for the lifetime of a request
(FastAPI copies the context into the thread that runs a sync endpoint), and `RequestIdFilter`
copies it onto every record that reaches the handler, whichever logger wrote it. Lines written
outside a request (consumers, the retrain schedule) have `"request_id": null`.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

request_id: ContextVar[str | None] = ContextVar("recomind_request_id", default=None)

# Fields an access log record carries (`extra=` of the middleware's log call).
ACCESS_FIELDS = ("method", "path", "route", "status", "duration_ms")


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """ts, level, logger, message, request_id; the access fields when present; exc on errors."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._prefix = ""

    def _timestamp(self, created: float) -> str:
        # One access line per request: the date part is formatted once a second, not per line.
        second = int(created)
        micros = round((created - second) * 1_000_000)  # as datetime.fromtimestamp rounds
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        if second != self._second:
            stamp = datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
            self._prefix, self._second = stamp[:-6], second  # without "+00:00"
        return f"{self._prefix}.{micros // 1000:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in ACCESS_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The same records for a human at a terminal: `time LEVEL logger [request id] message`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(rid)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.rid = getattr(record, "request_id", None) or "-"
        return super().format(record)


_HANDLER_MARK = "_recomind_handler"


def configure_logging(level: str | int, json: bool = True, stream: TextIO | None = None) -> None:
    """Send every log record (RecoMind's, uvicorn's, libraries') through one handler on stderr
    (or `stream`), as JSON lines or as text. Calling it again replaces the handler it installed.

    uvicorn configures its own loggers unless it is started with `log_config=None`; with that,
    its records propagate here too.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # Neither formatter prints the thread or the process, which every LogRecord otherwise
    # looks up (the process id is a system call): one record per request for the access log.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        server_log = logging.getLogger(name)
        server_log.handlers.clear()
        server_log.propagate = True


class DirectLines:
    """Lines of one logger written straight into the JSON handler, without a `LogRecord`.

    The access log writes a line per request. Through `logging` (record, filters, handler,
    formatter) that line cost about 23 us of a cached feed page's CPU in-process, 14 us made
    here (most of it the write and flush), in back-to-back runs on this project's machine;
    it is the same JSON line (the fields of `JsonFormatter.format`, in its order). It is
    used only while the line would reach exactly that handler and nothing else: the logger
    has no handlers or filters of its own, propagates, and the root logger's only handler is
    the one `configure_logging` installed with JSON lines. Otherwise `handler()` is None and
    the caller logs as usual (a test capturing records, another handler added later).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._root = logging.getLogger()

    def handler(self) -> logging.StreamHandler[TextIO] | None:
        root_handlers = self._root.handlers
        if len(root_handlers) != 1:
            return None
        handler = root_handlers[0]
        logger = self.logger
        if (
            not getattr(handler, _HANDLER_MARK, False)
            or not isinstance(handler.formatter, JsonFormatter)
            or handler.level > logging.NOTSET
            or logger.handlers
            or logger.filters
            or not logger.propagate
            or not isinstance(handler, logging.StreamHandler)
        ):
            return None
        parent = logger.parent
        while parent is not None and parent is not self._root:
            if parent.handlers or parent.filters or not parent.propagate:
                return None
            parent = parent.parent
        return handler

    def write(
        self,
        handler: logging.StreamHandler[TextIO],
        level: int,
        message: str,
        fields: dict[str, Any],
    ) -> None:
        """One line as the handler's formatter would make it from a record with `fields`
        as its `extra` (only `ACCESS_FIELDS` that are not None are printed)."""
        formatter = handler.formatter
        assert isinstance(formatter, JsonFormatter)
        line: dict[str, Any] = {
            "ts": formatter._timestamp(time.time()),
            "level": logging.getLevelName(level),
            "logger": self.logger.name,
            "message": message,
            "request_id": request_id.get(),
        }
        for name in ACCESS_FIELDS:
            value = fields.get(name)
            if value is not None:
                line[name] = value
        text = orjson.dumps(line, default=str).decode() + handler.terminator
        handler.acquire()
        try:
            handler.stream.write(text)
            handler.flush()
        except Exception:
            handler.handleError(logging.makeLogRecord({"msg": message, "levelno": level}))
        finally:
            handler.release()
