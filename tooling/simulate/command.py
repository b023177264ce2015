"""``switchboard simulate``: the dev system with simulated customers and agents, summarised live.

    switchboard simulate [--rate 4] [--duration SECONDS]
                         [--mix sms=4,whatsapp=2,email=3,chat=2,social=1]
                         [--agents 4] [--handle-seconds 20] [--spike-at 30]

Without ``--duration`` it runs until Ctrl-C. The exit code is 0 when every message was
accepted and routed, 1 otherwise (so a scripted run can check the whole path works).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from pathlib import Path

from libs.common.config import load_config
from libs.common.topics import Topics
from libs.contracts.agent_access import WS_PATH
from tooling.dev import DevSystem, agent_tokens, dev_system, print_endpoints, until_signalled
from tooling.simulate import HubAccess, SimulationResult, simulate
from tooling.simulate.agents import AgentPlan
from tooling.simulate.customers import TrafficPlan, parse_mix
from tooling.simulate.summary import render

DEFAULT_MIX = "sms=4,whatsapp=2,email=3,chat=2,social=1"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard simulate", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("config/store.yaml"))
    parser.add_argument("--port", type=int, default=8080, help="public port of ingest")
    parser.add_argument("--rate", type=float, default=4.0, help="new messages per second")
    parser.add_argument("--duration", type=float, help="seconds of traffic (default: until ^C)")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX))
    parser.add_argument("--agents", type=int, default=4, help="simulated agents (0: none)")
    parser.add_argument("--handle-seconds", type=float, default=20.0)
    parser.add_argument("--spike-at", type=float, help="seconds in: a broad-impact spike")
    parser.add_argument("--report", type=Path, help="also write the final summary here (JSON)")
    return parser


async def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise SystemExit("switchboard simulate: --rate must be above zero")
    async with dev_system(args.config, args.port) as system:
        print_endpoints(system)
        print("\nSimulating; the summary refreshes every 2 s. Ctrl-C stops.\n", flush=True)
        stop = asyncio.Event()
        signalled = asyncio.create_task(until_signalled())
        signalled.add_done_callback(lambda _: stop.set())
        try:
            result = await simulate(
                system.endpoints(),
                TrafficPlan(
                    rate=args.rate, mix=args.mix, duration=args.duration, spike_at=args.spike_at
                ),
                bootstrap=system.stack.broker.bootstrap_servers,
                topics=Topics.with_prefix(),
                stop=stop,
                agents=AgentPlan(agents=args.agents, handle_seconds=args.handle_seconds)
                if args.agents > 0
                else None,
                hub=_hub_access(system),
            )
        finally:
            signalled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await signalled
        summary = render(result.seconds, result.sent, result.failed, result.outcomes)
        print(f"\nFinal:\n{summary}", flush=True)
        if result.last_error:
            print(f"  last error {result.last_error}", flush=True)
        if args.report:
            args.report.write_text(json.dumps(result.report(), indent=2) + "\n")
        return 0 if _healthy(result) else 1


def _hub_access(system: DevSystem) -> HubAccess:
    queues = tuple(sorted(load_config(system.config).queues))
    url = system.hub().url.replace("http://", "ws://", 1) + WS_PATH
    tokens = agent_tokens()
    return HubAccess(url=url, queues=queues, token_for=tokens.issue)


def _healthy(result: SimulationResult) -> bool:
    sent = sum(result.sent.values())
    return sent > 0 and not result.failed and sum(result.outcomes.routed.values()) >= sent


def main(argv: list[str]) -> int:
    return asyncio.run(run(parser().parse_args(argv)))
