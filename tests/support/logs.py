"""The process's JSON log lines captured in a buffer, for tests of what RecoMind logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from recomind.entrypoints.logs import _HANDLER_MARK, configure_logging


@contextmanager
def captured_json_logs() -> Iterator[io.StringIO]:
    """configure_logging into a buffer; the process's logging setup is put back after."""
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "uvicorn.access")]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    buffer = io.StringIO()
    configure_logging("info", json=True, stream=buffer)
    try:
        yield buffer
    finally:
        for lg, handlers, level, propagate in saved:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate


@contextmanager
def only_our_handler() -> Iterator[None]:
    """The root logger with RecoMind's handler alone, as in a served process: pytest's
    capture handlers set aside meanwhile (they would take every record too)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = [h for h in saved if getattr(h, _HANDLER_MARK, False)]
    try:
        yield
    finally:
        root.handlers[:] = saved


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]
