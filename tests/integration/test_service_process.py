"""A service forked from the preloaded server (how the suite starts its services) behaves as
``python -m services.NAME`` does: it reads its own environment, writes to its own log, exits
with the code ``run`` gives, and a signal's number, negated, is its exit code."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tooling.devstack import ServiceProcess

LAUNCHERS = pytest.mark.parametrize("preloaded", [False, True], ids=["python -m", "forked"])


@LAUNCHERS
def test_a_setting_it_cannot_read_ends_it_with_code_2_and_says_which(
    preloaded: bool, service_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**service_env, "SWITCHBOARD_DRAIN_SECONDS": "soon"}
    process = ServiceProcess("sla", env, log_path=tmp_path / "sla.log", preloaded=preloaded)
    process.start()
    assert process.wait() == 2
    assert "SWITCHBOARD_DRAIN_SECONDS" in (tmp_path / "sla.log").read_text()


@LAUNCHERS
async def test_sigterm_drains_it_and_sigkill_ends_it_as_minus_9(
    preloaded: bool, service_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "sla.log"
    drained = ServiceProcess("sla", service_env, log_path=log, preloaded=preloaded)
    drained.start()
    await drained.wait_ready()
    assert drained.stop() == 0
    assert '"service stopped"' in log.read_text()

    killed = ServiceProcess("sla", service_env, log_path=log, preloaded=preloaded)
    killed.start()
    killed.signal(signal.SIGKILL)
    assert killed.wait() == -signal.SIGKILL
