"""Hot reload survives a rebuild that fails in a way validation could not foresee."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs

from libs.common.config import LiveConfig
from services.router.runtime import RouterRuntime
from tests.support.kafka import wait_until

WATCH_INTERVAL = 0.02

CONFIG = """\
version: 1
queues:
  orders: {}
  returns: {}
issue_types:
  refund:
    phrases: [refund]
    examples_file: EXAMPLES
rules:
  - name: sms
    when: {channel: [sms]}
    then: {queue: QUEUE}
"""


def write_config(path: Path, *, examples: str, queue: str) -> None:
    path.write_text(CONFIG.replace("EXAMPLES", examples).replace("QUEUE", queue))


async def test_a_rebuild_raising_key_error_keeps_the_running_config_and_the_watcher(
    tmp_path: Path,
) -> None:
    rows = "I want my money back,refund\nplease refund my order,refund\n"
    (tmp_path / "good.csv").write_text("utterance,intent\n" + rows)
    (tmp_path / "broken.csv").write_text("text,intent\n" + rows)
    path = tmp_path / "live.yaml"
    write_config(path, examples="good.csv", queue="orders")
    live = LiveConfig(path, RouterRuntime.build)
    watcher = asyncio.create_task(live.watch(interval=WATCH_INTERVAL))
    try:
        with capture_logs() as logs:
            # Valid YAML naming a file that exists: only the build finds the missing column.
            write_config(path, examples="broken.csv", queue="returns")
            await wait_until(
                lambda: any(e["event"].startswith("configuration change refused") for e in logs),
                message=lambda: f"the failed rebuild logged ({watcher!r})",
            )
        refused = next(e for e in logs if e["event"].startswith("configuration change refused"))
        assert refused["log_level"] == "error"
        assert "KeyError('utterance')" in " ".join(refused["problems"])
        assert live.generation == 1
        assert live.current.config.rules[0].then.queue == "orders"

        write_config(path, examples="good.csv", queue="returns")
        await wait_until(
            lambda: live.generation == 2 or watcher.done(),
            message="the valid change picked up",
        )
        assert not watcher.done(), watcher
        assert live.current.config.rules[0].then.queue == "returns"
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
