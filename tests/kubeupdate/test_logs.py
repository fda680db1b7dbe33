"""Log lines: JSON objects with the request id, or text; no request data beyond it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from gateway.resources import request_id as gateway_request_id
from kubeupdate import logs
from kubeupdate.status import request_id as service_request_id


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


def test_the_request_id_comes_from_the_service_or_the_gateway(logger: logging.Logger) -> None:
    output = lines(logger, "json")
    gateway_token = gateway_request_id.set("from-gateway")
    try:
        logger.info("in the gateway")
        service_token = service_request_id.set("from-service")
        try:
            logger.info("in the service")
        finally:
            service_request_id.reset(service_token)
    finally:
        gateway_request_id.reset(gateway_token)
    logger.info("outside")
    first, second, third = (json.loads(line) for line in output.getvalue().splitlines())
    assert first["request_id"] == "from-gateway"
    assert second["request_id"] == "from-service"
    assert "request_id" not in third


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
    token = service_request_id.set("abc123")
    try:
        logger.warning("careful")
    finally:
        service_request_id.reset(token)
    assert output.getvalue().rstrip().endswith("WARNING tests.logs [abc123]: careful")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        logs.handler("xml")
