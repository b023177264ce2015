"""``switchboard simulate`` (what ``make demo`` runs) on the embedded default, as a user runs it:
traffic on every channel, agents on the hub, an incident from the spike, and customers answering
the CSAT and NPS surveys that follow resolutions, whose scores the summary shows per queue as the
system counted them."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from libs.domain.nps import NpsTally
from tooling.devstack import free_port

pytestmark = pytest.mark.e2e
CHANNELS = {"sms", "whatsapp", "email", "chat", "social"}


async def test_simulated_traffic_is_routed_and_answered_on_every_channel(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "tooling.cli", "simulate", "--duration", "12"),
        *("--rate", "5", "--agents", "3", "--handle-seconds", "1", "--spike-at", "4"),
        *("--survey-after", "2", "--port", str(free_port()), "--report", str(report)),
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
    # every message reached an agent
    assert result["latency_ms"]["count"] == sent, output.decode()[-3000:]
    # the spike of 25 customers with one problem, on the sample configuration: one incident
    assert result["incidents"]["detected"] == 1, result["incidents"]
    assert result["incidents"]["linked"] >= 6  # the messages from the 20th customer on
    assert "incidents 1 (linked messages" in output.decode()
    assert_survey_figures(result, output.decode().rpartition("Final:")[2])


def assert_survey_figures(result: dict[str, Any], final: str) -> None:
    """The system's CSAT and NPS per queue add up to exactly what the customers answered, and
    the final summary prints them."""
    given = result["surveys"]["given"]
    figures = result["figures"]
    assert len(given.get("csat", [])) > 0, result["surveys"]
    assert len(given.get("nps", [])) > 0, result["surveys"]
    assert sum(result["surveys"]["answered"].values()) == len(given["csat"]) + len(given["nps"])
    # CSAT: every answer counted once, and the per-queue averages weigh up to the scores given.
    assert sum(q["csat"]["answers"] for q in figures) == len(given["csat"])
    counted = sum(
        q["csat"]["average"] * q["csat"]["answers"] for q in figures if q["csat"]["answers"]
    )
    assert abs(counted - sum(given["csat"])) <= 0.005 * len(given["csat"]), (counted, given)
    # NPS: the queues' promoters, passives and detractors are the answers given, grouped.
    expected = NpsTally()
    for score in given["nps"]:
        expected = expected.add(score)
    total = NpsTally()
    for q in figures:
        total = total + NpsTally(
            q["nps"]["promoters"], q["nps"]["passives"], q["nps"]["detractors"]
        )
    assert total == expected
    for q in figures:
        assert q["open_clocks"] is not None, q  # the SLA service's gauge, per queue
        tally = NpsTally(q["nps"]["promoters"], q["nps"]["passives"], q["nps"]["detractors"])
        assert q["nps"]["score"] == tally.score
        line = next(line for line in final.splitlines() if line.split()[:1] == [q["queue"]])
        if q["nps"]["answers"]:
            assert f"NPS {q['nps']['score']} ({q['nps']['answers']})" in line, line
        if q["csat"]["answers"]:
            assert f"CSAT {q['csat']['average']:g} ({q['csat']['answers']})" in line, line
