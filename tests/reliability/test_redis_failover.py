"""Redis Cluster failover under the fault-drill load (issue 22, point 4), audited like the
other drills.

The five services run as processes on a six-node local Redis Cluster while customers write
SMS, email and chat at a steady rate and an agent answers every other conversation (the
traffic, agent and audit of :mod:`tests.reliability.test_fault_drills`). The drill SIGKILLs
the primary serving the reference sequence (``{seq}``: every new conversation claims its
number there); the cluster's own failover promotes its replica; every service carries on
without a restart and without dead-lettering anything; the old primary comes back as a replica.

What Redis's asynchronous replication can lose here, and how the design absorbs it: a write
the old primary acknowledged but had not yet sent to its replica is gone after the promotion
(Redis Cluster does not wait for replicas; WAIT would narrow the window, not close it).

- Placement (its steps in ``services/router/conversation_state.py``): a lost seen marker or
  thread mapping makes a redelivered message be placed again. Conversation ids are derived from
  the inbound event id, so the same message lands in the same conversation (with the reference
  claimed for it, unless the claim was lost too). A lost increment of the reference sequence
  would hand a later conversation a number already shown to a customer; each number's owner
  is written after its claim in another slot (``conv:number:<n>``), so the later conversation
  finds the number owned and claims the next (``test_router_state.py`` sets the sequence
  back). Not absorbed: an owner marker that lived on the same primary and was lost with it.
- Idempotency markers (ingest's accepted marker, outbound's send record, the hub's action
  marker): a lost marker lets a retried webhook, command or action through once more. The ids
  are deterministic (the provider's id, the command id), so consumers dedupe the repeat; a
  lost send record can re-send an SMS: the provider's idempotency is the last line.
- SLA clocks and timers: the Kafka log is the source; a lost clock write is recomputed when
  the keeper reprocesses the record it failed on (the offset is committed only after Redis
  answered), but one acknowledged and then lost is not recomputed until the next event of that
  conversation.

The audit after the drill counts what happened: every acknowledged message routed once, every
routed conversation acknowledged once, no dead letters, no second send.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from libs.common.keys import Keys
from tests.reliability.test_fault_drills import SERVICES, drill_under_load
from tests.support.audit import Findings
from tests.support.harness import Isolation, Launch, TwilioFake
from tests.support.kafka import wait_until_async
from tooling.devstack import DevStack, LocalRedisCluster, wait_until_replica

pytestmark = pytest.mark.e2e

FAILOVER_TIMEOUT: Final = 30.0
"""The node timeout is 2 s; the election follows within a second or two."""


@contextlib.asynccontextmanager
async def own_cluster() -> AsyncIterator[LocalRedisCluster]:
    """This test kills a node, so it has its own cluster."""
    cluster = LocalRedisCluster()
    await cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(cluster.directory, ignore_errors=True)


async def test_a_primary_killed_under_load_fails_over_and_loses_nothing(
    stack: DevStack,
    isolation: Isolation,
    service_env: dict[str, str],
    launch: Launch,
    twilio: TwilioFake,
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    reports: list[Findings] = []
    async with (
        own_cluster() as cluster,
        drill_under_load(
            cluster.url,
            stack,
            isolation,
            service_env,
            launch,
            twilio,
            http,
            tmp_path / "drills.yaml",
        ) as drill,
    ):
        system, audit, under_load = drill.system, drill.audit, drill.under_load

        async def audited(name: str) -> Findings:
            findings = await audit.judge(audit.checkpoint(name, datetime.now(UTC)))
            print(findings.summary(findings.problems), flush=True)
            reports.append(findings)
            return findings

        router_slot_key = Keys(service_env["SWITCHBOARD_KEY_PREFIX"]).conversation_sequence()
        try:
            await under_load()
            await audited("warm-up")
            victim = await cluster.primary_of(router_slot_key)
            assert victim is not None
            assert victim.process is not None
            victim.process.kill()  # SIGKILL: no shutdown, no last replication
            victim.process.wait()

            async def promoted() -> bool:
                return (await cluster.primary_of(router_slot_key)) not in (None, victim)

            await wait_until_async(
                promoted, timeout=FAILOVER_TIMEOUT, message="a replica took over"
            )
            await cluster.wait_until_serving(FAILOVER_TIMEOUT)
            await under_load()
            await victim.start()  # same port and nodes.conf: it rejoins as a replica
            await wait_until_replica(victim.port, FAILOVER_TIMEOUT)
            await under_load()
            after = await audited("primary SIGKILLed, replica promoted, old primary back")
        finally:
            await drill.stop_load()
        findings = await audit.judge(
            audit.checkpoint("final", datetime.now(UTC) + timedelta(seconds=5))
        )
        print(findings.summary(findings.problems), flush=True)

    exited = [n for n, p in system.processes.items() if p.process and p.process.poll() is not None]
    report = "\n".join(f.summary(f.problems) for f in [*reports, findings])
    assert not exited, f"services that did not ride out the failover: {exited}\n{report}"
    assert not drill.traffic.abandoned, f"never accepted: {drill.traffic.abandoned[:5]}\n{report}"
    assert after.settled, report
    assert findings.settled, report
    assert not findings.problems, report
    assert findings.counts["deadletter records"] == 0, report
    assert findings.counts["acknowledged"] == len(drill.ledger.accepted), report
    assert not drill.agent.refused, drill.agent.refused[:5]
    assert set(SERVICES) == set(system.processes)
