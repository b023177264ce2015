"""``switchboard token``: mint an agent token for the hub (development and scripts)."""

from __future__ import annotations

import argparse
import os
import sys

from libs.contracts.agent_access import AgentTokens, Role


def main(argv: list[str]) -> int:
    """``switchboard token AGENT --queue Q [--queue Q] [--ttl SECONDS] [--supervisor]``: print
    a token signed with ``AGENT_TOKEN_KEY`` (for development and scripts); ``--supervisor``
    lets it read the queues' figures too."""
    parser = argparse.ArgumentParser(prog="switchboard token", description=main.__doc__)
    parser.add_argument("agent")
    parser.add_argument("--queue", action="append", required=True, dest="queues")
    parser.add_argument("--ttl", type=float, default=8 * 3600.0)
    parser.add_argument("--supervisor", action="store_true")
    args = parser.parse_args(argv)
    key = os.environ.get("AGENT_TOKEN_KEY", "")
    if len(key.encode()) < 32:
        print("switchboard token: set AGENT_TOKEN_KEY (32+ bytes)", file=sys.stderr)
        return 2
    role: Role = "supervisor" if args.supervisor else "agent"
    print(AgentTokens(key).issue(args.agent, args.queues, args.ttl, role))
    return 0
