"""``switchboard simulate`` (what ``make demo`` runs) on the embedded default, as a user runs it."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from tooling.devstack import free_port

pytestmark = pytest.mark.e2e
CHANNELS = {"sms", "whatsapp", "email", "chat", "social"}


async def test_simulated_traffic_is_routed_and_answered_on_every_channel(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tooling.cli", "simulate", "--duration", "12"),
        *("--rate", "5", "--agents", "3", "--handle-seconds", "1", "--spike-at", "4"),
        *("--port", str(free_port()), "--report", str(report)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode == 0, output.decode()[-3000:]
    assert "Final:" in output.decode()  # the live summary was printed
    result = json.loads(report.read_text())
    sent = sum(result["sent"].values())
    assert set(result["sent"]) == CHANNELS
    assert sent >= 20  # 12 s at 5/s plus the spike, give or take the Poisson draw
    assert result["failed"] == {}
    assert sum(result["routed"].values()) >= sent
    assert result["sla"].get("first_response met", 0) > 0  # agents answered through the hub
    assert result["agents"]["replies"] > 0
    assert result["outbound"].get("sent", 0) > 0
    assert {"failed", "dead-lettered"}.isdisjoint(result["outbound"]), result["outbound"]
    assert result["latency_ms"]["count"] == sent  # every message reached an agent
    # the spike of 25 customers with one problem, on the sample configuration: one incident
    assert result["incidents"]["detected"] == 1, result["incidents"]
    assert result["incidents"]["linked"] >= 6  # the messages from the 20th customer on
    assert "incidents 1 (linked messages" in output.decode()
