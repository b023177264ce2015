"""Log hygiene that does not need a running service."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from libs.common.logs import quiet_malformed_requests


def record_of(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except type(exc):
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("203.0.113.9",),
        exc_info,
    )


def test_malformed_requests_become_one_line_without_their_bytes() -> None:
    record = record_of(LineTooLong(b"GET /" + b"A" * 200, "8190"))
    assert quiet_malformed_requests(record)
    assert record.levelno == logging.INFO
    assert record.exc_info is None
    assert "AAAA" not in record.getMessage()
    assert "LineTooLong" in record.getMessage()


def test_server_errors_keep_their_traceback() -> None:
    record = record_of(RuntimeError("handler bug"))
    assert quiet_malformed_requests(record)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    bad = record_of(BadHttpMessage("bad"))
    assert quiet_malformed_requests(bad)
    assert bad.levelno == logging.INFO
