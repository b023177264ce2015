"""A client that hangs up mid-upload is routine: one INFO line each, no traceback.

Issue 16: 200 slow uploads given up on gave 201 ERROR lines of traceback in ingest's log. Here
the uploads go to the ingest process over TCP, and its own JSON log is read back.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from services.ingest.sms import PATH
from tests.support.harness import Launch
from tests.support.kafka import wait_until

pytestmark = pytest.mark.e2e

ABORTS = 20
HANG_UP = "hung up"


def log_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


async def abort_mid_body(host: str, port: int) -> None:
    """Headers promising 4 KiB, a few bytes once the server asks for the body, then close."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "Content-Length: 4096\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 100")  # the handler is reading
    writer.write(b"MessageSid=SM")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_uploads_abandoned_mid_body_log_one_info_line_each_without_traceback(
    service_env: dict[str, str], launch: Launch
) -> None:
    [ingest] = await launch(["ingest"], service_env)
    assert ingest.log_path is not None
    log_path = ingest.log_path
    url = urlsplit(service_env["SWITCHBOARD_PUBLIC_URL"])
    assert url.hostname
    assert url.port
    for _ in range(ABORTS):
        await abort_mid_body(url.hostname, url.port)

    def about_requests() -> list[dict[str, Any]]:
        return [
            line
            for line in log_lines(log_path)
            if line.get("level") == "error" or HANG_UP in str(line.get("event"))
        ]

    await wait_until(lambda: len(about_requests()) >= ABORTS, message=lambda: f"{about_requests()}")
    lines = about_requests()
    assert [line["level"] for line in lines] == ["info"] * ABORTS, lines
    assert not [line for line in lines if "exception" in line or "exc_info" in line]
    assert "Traceback" not in log_path.read_text()
