"""JSON log lines: the fields, the request id from the context, access fields, errors."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from recomind.entrypoints.logs import DirectLines, configure_logging, request_id
from tests.support.logs import captured_json_logs, log_lines, only_our_handler


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """configure_logging into a buffer; the process's logging setup is put back after."""
    with captured_json_logs() as buffer:
        yield buffer


read = log_lines


def test_one_json_object_per_line_with_the_request_id_of_the_context(lines: io.StringIO) -> None:
    log = logging.getLogger("recomind.test")
    log.info("outside %s", "a request")
    token = request_id.set("req-1")
    try:
        log.warning("inside")
    finally:
        request_id.reset(token)
    log.debug("below the level")
    first, second = read(lines)
    assert first["message"] == "outside a request" and first["request_id"] is None
    assert (second["level"], second["logger"], second["request_id"]) == (
        "WARNING",
        "recomind.test",
        "req-1",
    )
    assert first["ts"].endswith("+00:00") and "T" in first["ts"]


def test_access_fields_and_tracebacks_are_fields_of_the_line(lines: io.StringIO) -> None:
    log = logging.getLogger("recomind.access")
    access = {"method": "GET", "route": "/trending", "status": 200, "duration_ms": 0.4}
    log.info("GET /trending 200", extra=access)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    ok, failed = read(lines)
    assert {k: ok[k] for k in access} == access
    assert "ValueError: boom" in failed["exc"] and failed["level"] == "ERROR"
    assert "status" not in failed


def test_configuring_again_replaces_the_handler(lines: io.StringIO) -> None:
    other = io.StringIO()
    configure_logging("warning", json=False, stream=other)
    logging.getLogger("recomind.test").warning("once")
    assert lines.getvalue() == ""
    assert other.getvalue().rstrip().endswith("WARNING recomind.test [-] once")


def test_json_timestamps_match_isoformat_across_seconds() -> None:
    import random
    from datetime import UTC, datetime

    from recomind.entrypoints.logs import JsonFormatter

    formatter = JsonFormatter()
    rng = random.Random(4)
    base = 1_790_000_000.0
    stamps = [base + rng.random() * 5 for _ in range(500)] + [base, base + 0.9999, base + 1]
    for created in sorted(stamps) + stamps:  # in order, and jumping back and forth
        expected = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
        assert formatter._timestamp(created) == expected


def test_direct_access_lines_are_the_formatters_lines(lines: io.StringIO) -> None:
    log = logging.getLogger("recomind.access")
    direct = DirectLines(log)
    access = {"method": "GET", "path": "/x", "route": "/x", "status": 200, "duration_ms": 0.4}
    token = request_id.set("req-9")
    try:
        with only_our_handler():
            handler = direct.handler()
            assert handler is not None
            log.info("GET /x 200", extra=access)
            direct.write(handler, logging.INFO, "GET /x 200", access)
            direct.write(handler, logging.ERROR, "GET /x 500", {**access, "status": 500})
    finally:
        request_id.reset(token)
    via_logging, via_direct, error = read(lines)
    assert via_logging.pop("ts")[:16] == via_direct.pop("ts")[:16]
    assert list(via_direct) == list(via_logging) and via_direct == via_logging
    assert (error["level"], error["status"]) == ("ERROR", 500)


def test_direct_lines_step_aside_when_records_go_anywhere_else(lines: io.StringIO) -> None:
    log = logging.getLogger("recomind.access")
    direct = DirectLines(log)
    assert direct.handler() is None  # pytest's capture handlers are on the root logger
    with only_our_handler():
        assert direct.handler() is not None
        extra = logging.Handler()
        for owner in (logging.getLogger(), log, logging.getLogger("recomind")):
            owner.addHandler(extra)
            try:
                assert direct.handler() is None
            finally:
                owner.removeHandler(extra)
        log.propagate = False
        try:
            assert direct.handler() is None
        finally:
            log.propagate = True
        configure_logging("info", json=False, stream=io.StringIO())
        assert direct.handler() is None  # text lines are the formatter's business
