"""``switchboard simulate``: the dev system with simulated customers and agents, summarised live.

    switchboard simulate [--rate 4] [--duration SECONDS]
                         [--mix sms=4,whatsapp=2,email=3,chat=2,social=1]
                         [--agents 4] [--handle-seconds 20] [--spike-at 30]
                         [--survey-after 5]

Without ``--duration`` it runs until Ctrl-C. The exit code is 0 when every message was
accepted and routed, 1 otherwise (so a scripted run can check the whole path works).
Customers answer the CSAT and NPS surveys that follow resolutions; so that a short run sees
them, the system runs on a copy of the configuration whose ``surveys.after`` is
``--survey-after`` seconds (the copy sits in a temporary folder beside links to the
configuration's neighbours, so its relative paths still resolve; edits to the original are
not followed during the run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from libs.common.config import load_config
from libs.common.topics import Topics
from libs.contracts.agent_access import WS_PATH
from tooling.dev import DevSystem, agent_tokens, dev_system, print_endpoints, until_signalled
from tooling.simulate import HubAccess, SimulationResult, SurveyTaking, simulate
from tooling.simulate.agents import AgentPlan
from tooling.simulate.customers import TrafficPlan, parse_mix
from tooling.simulate.summary import FigureSource, render
from tooling.simulate.surveys import SurveyPlan

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
    parser.add_argument(
        "--redis",
        choices=("node", "cluster"),
        default="node",
        help="one Redis, or a local six-node Redis Cluster (default: %(default)s)",
    )
    parser.add_argument(
        "--survey-after",
        type=float,
        default=5.0,
        help="seconds from a resolution to its survey in this run (the config's surveys.after "
        "is for real customers: hours)",
    )
    return parser


@contextlib.contextmanager
def survey_delay(config: Path, seconds: float) -> Iterator[Path]:
    """``config`` with ``surveys.after`` set to ``seconds`` (``config`` itself without a
    ``surveys`` section), for as long as the block runs."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("surveys"), dict):
        yield config
        return
    data["surveys"]["after"] = f"{seconds:g}s"
    with tempfile.TemporaryDirectory(prefix="switchboard-simulate-") as folder:
        for neighbour in config.resolve().parent.iterdir():
            if neighbour.name != config.name:
                (Path(folder) / neighbour.name).symlink_to(neighbour)
        copy = Path(folder) / config.name
        copy.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
        yield copy


async def run(args: argparse.Namespace) -> int:
    if args.rate <= 0:
        raise SystemExit("switchboard simulate: --rate must be above zero")
    if args.survey_after <= 0:
        raise SystemExit("switchboard simulate: --survey-after must be above zero")
    with survey_delay(args.config, args.survey_after) as config:
        return await _simulate(args, config)


async def _simulate(args: argparse.Namespace, config: Path) -> int:
    async with dev_system(config, args.port, args.redis) as system:
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
                surveys=_survey_taking(system),
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
    sla = next(p for p in system.processes if p.name == "sla")
    figures = FigureSource(
        hub_url=url,
        supervisor_token=tokens.issue("simulated-supervisor", queues, role="supervisor"),
        sla_url=sla.url,
    )
    return HubAccess(url=url, queues=queues, token_for=tokens.issue, figures=figures)


def _survey_taking(system: DevSystem) -> SurveyTaking:
    surveys = load_config(system.config).surveys
    after = surveys.after.total_seconds() if surveys is not None else 0.0
    return SurveyTaking(plan=SurveyPlan(), mail=system.mail.received, after=after)


def _healthy(result: SimulationResult) -> bool:
    sent = sum(result.sent.values())
    return sent > 0 and not result.failed and sum(result.outcomes.routed.values()) >= sent


def main(argv: list[str]) -> int:
    return asyncio.run(run(parser().parse_args(argv)))
