"""Log lines: JSON objects with the request id, or text; no request data beyond it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import pytest

from kubeupdate import logs, request_ids


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("tests.logs")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)


def lines(log: logging.Logger, log_format: str) -> io.StringIO:
    output = io.StringIO()
    log.addHandler(logs.handler(log_format, output))
    return output


def test_json_lines_hold_time_level_logger_message(logger: logging.Logger) -> None:
    output = lines(logger, "json")
    logger.info("hello %s", "world", extra={"status": 200, "route": "/x", "obj": object()})
    (line,) = output.getvalue().splitlines()
    record = json.loads(line)
    assert record.pop("time").endswith("Z")
    # Plain extras are kept; others (not JSON values) are left out.
    assert record == {
        "level": "INFO",
        "logger": "tests.logs",
        "message": "hello world",
        "status": 200,
        "route": "/x",
    }


def test_lines_inside_a_request_carry_its_id(logger: logging.Logger) -> None:
    output = lines(logger, "json")
    token = request_ids.current.set("r-1")
    try:
        logger.info("inside")
    finally:
        request_ids.current.reset(token)
    logger.info("outside")
    first, second = (json.loads(line) for line in output.getvalue().splitlines())
    assert first["request_id"] == "r-1"
    assert "request_id" not in second


async def test_requests_in_their_own_tasks_keep_their_own_ids(logger: logging.Logger) -> None:
    # `kubeupdate serve` runs the gateway and the service in one process: one variable,
    # one value per task.
    output = lines(logger, "json")
    both_set = asyncio.Barrier(2)

    async def handle(rid: str) -> None:
        request_ids.current.set(rid)
        await both_set.wait()
        logger.info("handling")

    await asyncio.gather(handle("from-gateway"), handle("from-service"))
    seen = sorted(json.loads(line)["request_id"] for line in output.getvalue().splitlines())
    assert seen == ["from-gateway", "from-service"]


def test_exceptions_stay_inside_one_json_line(logger: logging.Logger) -> None:
    output = lines(logger, "json")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("failed")
    (line,) = output.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "ERROR"
    assert "ValueError: bad\nvalue" in record["exception"]


def test_text_lines_show_the_request_id(logger: logging.Logger) -> None:
    output = lines(logger, "text")
    token = request_ids.current.set("abc123")
    try:
        logger.warning("careful")
    finally:
        request_ids.current.reset(token)
    assert output.getvalue().rstrip().endswith("WARNING tests.logs [abc123]: careful")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        logs.handler("xml")


FORGED = "2026-01-01 00:00:00,000 INFO kubeupdate.auth.audit [-]: allowed"


def test_a_text_line_cannot_be_split_by_what_it_quotes(logger: logging.Logger) -> None:
    output = lines(logger, "text")
    logger.info("GET %s 404", f"/deployment/a\n{FORGED}\r\x1b[2J\u2028/app")
    (line,) = output.getvalue().splitlines()
    assert line.endswith("GET /deployment/a\\n" + FORGED + "\\r\\x1b[2J\\u2028/app 404")


def test_traceback_lines_are_indented_under_their_record(logger: logging.Logger) -> None:
    output = lines(logger, "text")
    try:
        raise ValueError(f"bad\n{FORGED}")
    except ValueError:
        logger.exception("failed")
    first, *rest = output.getvalue().splitlines()
    assert first.endswith("failed")
    assert rest
    assert all(line.startswith("    ") for line in rest)
