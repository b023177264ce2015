"""The ``switchboard`` command: run a service, the dev stack, or check a configuration."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import signal
import sys
from pathlib import Path

from libs.common.config import ConfigError, load_config
from tooling.devstack import SERVICES

TOOLS = {
    "replay": "services.router.replay",
    "classify-eval": "services.router.classify_eval",
    "train": "services.router.train",
    "corrections": "tooling.corrections",
    "token": "tooling.agent_token",
    "simulate": "tooling.simulate.command",
}
RUNNABLE = (*SERVICES, "hub")
"""Services ``switchboard run`` starts: the dev stack's, and the hub (which needs
AGENT_TOKEN_KEY, so the stack starts it with a dev key of its own)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run one service in the foreground")
    run.add_argument("service", choices=RUNNABLE, help="the service to run")

    dev = commands.add_parser(
        "dev",
        help="run everything on an embedded broker and Redis",
        description="Start the embedded broker, Redis, provider sandboxes and every service; "
        "print where they are and a live line per event; restart a service that dies.",
    )
    dev.add_argument(
        "--config",
        type=Path,
        default=Path("config/store.yaml"),
        help="the configuration file the services load (default: %(default)s)",
    )
    dev.add_argument(
        "--port",
        type=int,
        default=8080,
        help="loopback port of ingest: webhooks, chat widget, SMTP aside (default: %(default)s)",
    )
    dev.add_argument(
        "--redis",
        choices=("node", "cluster"),
        default="node",
        help="one Redis, or a local six-node Redis Cluster (default: %(default)s)",
    )
    dev_commands = dev.add_subparsers(dest="dev_command", metavar="{sms}")
    sms = dev_commands.add_parser(
        "sms",
        help="send TEXT to the running dev stack as a Twilio-signed SMS webhook",
        description="Sign and post the webhook Twilio would send for an inbound SMS.",
    )
    sms.add_argument("text", help="the message the customer writes")
    sms.add_argument(
        "--port",
        type=int,
        default=argparse.SUPPRESS,  # else it would hide a --port given before "sms"
        help="the dev stack's --port (default: 8080)",
    )
    sms.add_argument(
        "--from", dest="sender", help="the customer's number, E.164 (default: +14155550100)"
    )

    config = commands.add_parser("config", help="configuration tools")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    check = config_commands.add_parser("check", help="validate a configuration file")
    check.add_argument("file", type=Path, help="the YAML file to check")

    # Tools with their own argument parsers: everything after the name is theirs.
    commands.add_parser("replay", help="compare routing of past traffic under a new config")
    commands.add_parser("classify-eval", help="measure issue-type classification")
    commands.add_parser("train", help="a new examples file with agents' corrections")
    commands.add_parser("corrections", help="export agents' corrections of issue types")
    commands.add_parser("token", help="mint an agent token for the hub (AGENT_TOKEN_KEY)")
    commands.add_parser("simulate", help="the dev system with simulated customers and agents")

    schema = commands.add_parser("schema", help="print the JSON Schema of every event type")
    schema.add_argument(
        "--out", type=Path, help="write one file per event type here, and the AsyncAPI document"
    )
    schema.add_argument(
        "--asyncapi", type=Path, help="where to write it (docs/events/asyncapi.yaml)"
    )

    openapi = commands.add_parser("openapi", help="write the OpenAPI document of each service")
    openapi.add_argument("--out", type=Path, help="the folder (docs/openapi)")

    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] in TOOLS:
        module = importlib.import_module(TOOLS[arguments[0]])
        return int(module.main(arguments[1:]))
    args = parser.parse_args(arguments)
    if args.command == "run":
        module = importlib.import_module(f"services.{args.service}.app")
        from libs.common.service import run as run_service

        run_service(args.service, module.build)
        return 0
    if args.command == "dev":
        from tooling.dev import run_dev, send_sms

        if args.dev_command == "sms":
            return 0 if asyncio.run(send_sms(args.text, args.port, args.sender)) == 200 else 1
        return asyncio.run(run_dev(args.config, args.port, args.redis))
    if args.command == "config":
        return _check(args.file)
    if args.command == "schema":
        return _schema(args.out, args.asyncapi)
    if args.command == "openapi":
        from tooling.openapi import DEFAULT_DIRECTORY, write_all

        for path in write_all(args.out or DEFAULT_DIRECTORY):
            print(path)
        return 0
    return 2


def _check(path: Path) -> int:
    try:
        config = load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}:{problem.line}:{problem.column}: {problem.message}", file=sys.stderr)
        print(f"{path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    print(
        f"{path}: ok ({len(config.queues)} queues, {len(config.rules)} rules, "
        f"{len(config.issue_types)} issue types, {len(config.sla_policies)} SLA policies)"
    )
    return 0


def _schema(out: Path | None, asyncapi: Path | None) -> int:
    from libs.common.events import json_schemas
    from tooling.asyncapi import DEFAULT_PATH, write

    schemas = json_schemas()
    if out is None:
        json.dump(schemas, sys.stdout, indent=2)
        print()
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for name, schema in schemas.items():
        (out / f"{name}.json").write_text(json.dumps(schema, indent=2) + "\n")
    print(write(asyncapi or DEFAULT_PATH))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    raise SystemExit(main())
