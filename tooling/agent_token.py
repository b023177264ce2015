"""``switchboard token``: mint an agent token for the hub (development and scripts)."""

from __future__ import annotations

import argparse
import os
import sys

from libs.common.events import LANGUAGE_CODE, SKILL_NAME
from libs.contracts.agent_access import AgentTokens, Role


def main(argv: list[str]) -> int:
    """``switchboard token AGENT --queue Q [--queue Q] [--skill S] [--language L] [--ttl
    SECONDS] [--supervisor]``: print a token signed with ``AGENT_TOKEN_KEY`` (for development
    and scripts); ``--skill`` and ``--language`` (ISO 639-1, repeatable) say which
    conversations' requirements the agent meets; ``--supervisor`` lets it read the queues'
    figures too."""
    parser = argparse.ArgumentParser(prog="switchboard token", description=main.__doc__)
    parser.add_argument("agent")
    parser.add_argument("--queue", action="append", required=True, dest="queues")
    parser.add_argument("--skill", action="append", default=[], dest="skills")
    parser.add_argument("--language", action="append", default=[], dest="languages")
    parser.add_argument("--ttl", type=float, default=8 * 3600.0)
    parser.add_argument("--supervisor", action="store_true")
    args = parser.parse_args(argv)
    key = os.environ.get("AGENT_TOKEN_KEY", "")
    if len(key.encode()) < 32:
        print("switchboard token: set AGENT_TOKEN_KEY (32+ bytes)", file=sys.stderr)
        return 2
    bad = [s for s in args.skills if not SKILL_NAME.fullmatch(s)] + [
        code for code in args.languages if not LANGUAGE_CODE.fullmatch(code)
    ]
    if bad:
        print(f"switchboard token: not a skill or language code: {bad[0]!r}", file=sys.stderr)
        return 2
    role: Role = "supervisor" if args.supervisor else "agent"
    token = AgentTokens(key).issue(
        args.agent, args.queues, args.ttl, role, skills=args.skills, languages=args.languages
    )
    print(token)
    return 0
