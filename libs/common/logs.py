"""JSON logs on stdout, each line carrying the current trace id."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from aiohttp.http_exceptions import HttpProcessingError

from libs.common.tracing import current_trace_id


def _add_trace_id(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    trace_id = current_trace_id()
    if trace_id:
        event["trace_id"] = trace_id
    return event


def setup_logging(service: str, level: str = "INFO") -> None:
    """Route stdlib and structlog records through one JSON renderer."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_id,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Chatty libraries: aiokafka logs every reconnect, twilio logs each request with its
    # headers (credentials must never reach the logs), aiosmtpd ("mail.log") every SMTP
    # command of every session with the customers' addresses.
    for noisy in ("aiokafka", "twilio.http_client", "tweepy", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiohttp.server").addFilter(quiet_malformed_requests)
    logging.getLogger("aiohttp.server").addFilter(quiet_client_hangups)
    structlog.contextvars.bind_contextvars(service=service)


def quiet_malformed_requests(record: logging.LogRecord) -> bool:
    """aiohttp logs every request it cannot parse (answered 400) at ERROR with a traceback and
    the start of the offending line, so anyone could flood the logs; one line, no payload."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, HttpProcessingError) and (exc.code or 400) < 500:
        _one_info_line(record, "malformed HTTP request refused (%s)", exc)
    return True


def quiet_client_hangups(record: logging.LogRecord) -> bool:
    """A client that closes its connection mid-request (a slow upload given up on, a phone out
    of signal) fails the handler's read or write, which aiohttp logs at ERROR with a traceback:
    anyone could flood the logs that way, and it is routine. One INFO line instead."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, ConnectionResetError):
        _one_info_line(record, "client hung up mid-request (%s)", exc)
    return True


def _one_info_line(record: logging.LogRecord, message: str, exc: BaseException) -> None:
    """``record`` as INFO ``message`` naming the exception's type, without its traceback."""
    record.levelno, record.levelname = logging.INFO, "INFO"
    record.msg, record.args = message, (type(exc).__name__,)
    record.exc_info = record.exc_text = None


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
