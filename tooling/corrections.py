"""``switchboard corrections export --out FILE``: agents' corrections of issue types, for the
classifier's tools (``classify-eval --corrections``, ``train --with-corrections``).

Reads the agent-actions topic from its beginning (no consumer group: nothing committed) on the
broker the environment names (``KAFKA_BOOTSTRAP_SERVERS``, ``SWITCHBOARD_TOPIC_PREFIX``),
keeps the changes of issue type and the transfers, and writes one JSON line each. The events
carry the corrected message's id, not its text: the export looks the text up in the hub's
transcript in Redis (``REDIS_URL``, ``SWITCHBOARD_KEY_PREFIX``), which keeps it 30 days after
the conversation's last change. ``--without-text`` writes the ids only, enough for the report;
a correction whose text is gone is written without one and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import msgspec

from libs.common.events import AgentAction, Event
from libs.common.kafka.history import read_history
from libs.common.keys import Keys
from libs.common.redis_client import open_redis
from libs.common.settings import Settings, SettingsError, load_settings
from libs.common.topics import Topics
from services.hub.transcript import Transcripts
from services.router.corrections import KINDS, Correction, write_corrections


def correction_of(event: Event) -> Correction | None:
    """The correction an agent-actions event records, if it is one."""
    action = event.data
    if not isinstance(action, AgentAction) or action.kind not in KINDS:
        return None
    if action.message_id is None:  # published before the hub recorded message ids
        return None
    return Correction(
        action_id=action.action_id,
        kind="transfer" if action.kind == "transfer" else "change_issue_type",
        conversation_id=action.conversation_id,
        message_id=action.message_id,
        agent=action.agent,
        at=action.at,
        previous_issue_type=action.previous_issue_type,
        issue_type=action.issue_type,
        queue=action.queue,
    )


async def export(
    settings: Settings, *, since: datetime | None = None, with_text: bool = True
) -> tuple[list[Correction], int]:
    """The corrections on the topic (acted at or after ``since``) and how many of them lack
    a text (none asked for, or the transcript no longer has it)."""
    topics = Topics.with_prefix(settings.switchboard_topic_prefix)
    events = await read_history(settings.kafka_bootstrap_servers, topics.agent_actions)
    corrections = [
        c
        for c in (correction_of(event) for event in events)
        if c is not None and (since is None or c.at >= since)
    ]
    if not with_text:
        return corrections, len(corrections)
    redis = await open_redis(settings)
    try:
        transcripts = Transcripts(redis, Keys(settings.switchboard_key_prefix))
        texts = [
            await transcripts.message_text(c.conversation_id, c.message_id) for c in corrections
        ]
    finally:
        await redis.aclose()
    found = [
        c if text is None else msgspec.structs.replace(c, text=text)
        for c, text in zip(corrections, texts, strict=True)
    ]
    return found, sum(text is None for text in texts)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="switchboard corrections", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    out = commands.add_parser("export", help="write agents' corrections as JSON lines")
    out.add_argument("--out", type=Path, required=True, help="the JSON-lines file to write")
    out.add_argument("--since", type=datetime.fromisoformat, help="ISO time, inclusive")
    out.add_argument(
        "--without-text",
        action="store_true",
        help="leave the messages' texts out (enough for classify-eval --corrections)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        corrections, textless = asyncio.run(
            export(settings, since=args.since, with_text=not args.without_text)
        )
    except (SettingsError, ValueError, OSError) as exc:
        print(f"switchboard corrections: {exc}", file=sys.stderr)
        return 1
    count = write_corrections(args.out, corrections)
    print(f"{args.out}: {count} corrections, {textless} without a text")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
