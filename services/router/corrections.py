"""Agents' corrections of the router's issue types, and what the classifier learns from them.

When an agent changes a conversation's issue type in the console, or transfers it, the hub
publishes the correction on the agent-actions topic: the type the conversation had, the type
the agent gave it (a transfer may name none) and the id of the customer message the type was
given to. ``switchboard corrections export`` (tooling/corrections.py) writes those events as
JSON lines, one :class:`Correction` each, with the message's text fetched from the hub's
transcript. This module reads such a file:

- ``switchboard classify-eval --corrections FILE`` reports, per issue type the router gave,
  how many of its messages agents corrected, to which types, and how many were only moved;
- ``switchboard train --with-corrections FILE`` writes the configured examples with the
  corrected texts added under the types agents gave them, as one examples CSV for
  ``examples_file``.

A message corrected twice counts once: the router's type is the first correction's old type,
the agent's final word is the last one's new type (a change back to the router's type is no
correction). Nothing here runs in the router's hot path; a new model comes only from a
configuration reload.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Literal

import msgspec

from libs.domain.text import normalise_text

CorrectionKind = Literal["change_issue_type", "transfer"]
KINDS: Final[frozenset[str]] = frozenset({"change_issue_type", "transfer"})
MAX_LINE_BYTES: Final = 64 * 1024
"""A correction with a message longer than this is not a training example anyway."""
_TOP_TARGETS: Final = 3


class Correction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One line of a corrections file: an agent's action that corrected the router."""

    action_id: str
    kind: CorrectionKind
    conversation_id: str
    message_id: str
    agent: str
    at: datetime
    previous_issue_type: str | None = None
    issue_type: str | None = None
    queue: str | None = None
    text: str | None = None
    """The corrected message (subject and text), when the export could still find it."""


_decode = msgspec.json.Decoder(Correction).decode
_encode = msgspec.json.Encoder().encode


def read_corrections(path: Path) -> list[Correction]:
    """The corrections of a JSON-lines file; ``ValueError`` names the first bad line."""
    corrections = []
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            if len(line) > MAX_LINE_BYTES:
                raise ValueError(f"{path}:{number}: line longer than {MAX_LINE_BYTES} bytes")
            try:
                corrections.append(_decode(line))
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    return corrections


def write_corrections(path: Path, corrections: Iterable[Correction]) -> int:
    """Write ``corrections`` as JSON lines; returns how many."""
    count = 0
    with path.open("wb") as handle:
        for correction in corrections:
            handle.write(_encode(correction) + b"\n")
            count += 1
    return count


@dataclass(frozen=True, slots=True)
class CorrectedMessage:
    """What agents said about one message, all its corrections taken together."""

    message_id: str
    routed_as: str
    """The issue type the router gave the message (``unknown`` when none was recorded)."""
    corrected_to: str | None
    """The type agents finally gave it; None when they only moved it, or changed it back."""
    transferred: bool
    text: str | None


def corrected_messages(corrections: Iterable[Correction]) -> list[CorrectedMessage]:
    """One entry per corrected message, in the order the messages were first corrected."""
    by_message: dict[str, list[Correction]] = {}
    for correction in sorted(corrections, key=lambda c: (c.at, c.action_id)):
        by_message.setdefault(correction.message_id, []).append(correction)
    messages = []
    for message_id, actions in by_message.items():
        routed_as = actions[0].previous_issue_type or "unknown"
        final = next((a.issue_type for a in reversed(actions) if a.issue_type), None)
        messages.append(
            CorrectedMessage(
                message_id=message_id,
                routed_as=routed_as,
                corrected_to=final if final != routed_as else None,
                transferred=any(a.kind == "transfer" for a in actions),
                text=next((a.text for a in reversed(actions) if a.text), None),
            )
        )
    return messages


@dataclass(frozen=True, slots=True)
class TypeCorrections:
    """One row of the report: the messages the router gave ``issue_type`` that agents
    corrected. ``retyped`` got another type (``to`` says which, most often first);
    ``moved_only`` were transferred with the type left as it was."""

    issue_type: str
    corrected: int
    retyped: int
    moved_only: int
    share: float
    """This type's share of all corrected messages."""
    to: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class CorrectionsReport:
    corrections: int
    messages: int
    retyped: int
    moved_only: int
    per_type: tuple[TypeCorrections, ...] = field(default=())
    unconfigured: tuple[str, ...] = ()
    """Types agents gave that the configuration does not know (changed since)."""


def corrections_report(
    corrections: Sequence[Correction], configured: Iterable[str] = ()
) -> CorrectionsReport:
    """How often agents corrected each type the router gave, most corrected first; every
    ``configured`` type gets a row, corrected or not."""
    messages = corrected_messages(corrections)
    rows = []
    known = set(configured)
    for issue_type in sorted(known | {m.routed_as for m in messages}):
        mine = [m for m in messages if m.routed_as == issue_type]
        targets = Counter(m.corrected_to for m in mine if m.corrected_to is not None)
        rows.append(
            TypeCorrections(
                issue_type=issue_type,
                corrected=len(mine),
                retyped=sum(targets.values()),
                moved_only=sum(m.corrected_to is None for m in mine),
                share=len(mine) / len(messages) if messages else 0.0,
                to=tuple(targets.most_common(_TOP_TARGETS)),
            )
        )
    rows.sort(key=lambda row: (-row.corrected, row.issue_type))
    given = {m.corrected_to for m in messages if m.corrected_to is not None}
    return CorrectionsReport(
        corrections=len(corrections),
        messages=len(messages),
        retyped=sum(m.corrected_to is not None for m in messages),
        moved_only=sum(m.corrected_to is None for m in messages),
        per_type=tuple(rows),
        unconfigured=tuple(sorted(given - known)) if known else (),
    )


def format_corrections(report: CorrectionsReport) -> str:
    lines = [
        f"agents' corrections: {report.corrections} actions on {report.messages} messages: "
        f"{report.retyped} given another issue type, {report.moved_only} only transferred",
    ]
    if report.unconfigured:
        lines.append(f"not in the configuration: {', '.join(report.unconfigured)}")
    width = max([len("routed as"), *(len(row.issue_type) for row in report.per_type)])
    lines += [
        "",
        f"{'routed as':<{width}}  corrected  retyped  moved only   share  retyped to",
        "-" * (width + 60),
    ]
    lines.extend(
        f"{row.issue_type:<{width}}  {row.corrected:9d}  {row.retyped:7d}  {row.moved_only:10d}"
        f"  {row.share:6.1%}  {', '.join(f'{t} {n}' for t, n in row.to)}".rstrip()
        for row in report.per_type
    )
    return "\n".join(lines)


def corrections_json(report: CorrectionsReport) -> str:
    return json.dumps(asdict(report), indent=2)


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """The configured examples with the corrected texts added; the counts say what changed."""

    rows: list[tuple[str, str]]
    added: int
    relabelled: int
    """Configured examples dropped because agents gave the same text another type."""
    without_text: int
    unconfigured: int


def with_corrections(
    examples: Sequence[tuple[str, str]],
    corrections: Sequence[Correction],
    configured: Iterable[str],
) -> TrainingSet:
    """``examples`` (utterance, issue type) with every retyped message's text added under its
    new type. A configured example with the same text (after normalisation) and another type
    gives way: the agents' word is the newer one. Corrections to types the configuration no
    longer has, and messages whose text the export could not find, are left out."""
    known = set(configured)
    learned: dict[str, tuple[str, str]] = {}
    without_text = unconfigured = 0
    for message in corrected_messages(corrections):
        if message.corrected_to is None:
            continue
        if message.corrected_to not in known:
            unconfigured += 1
        elif message.text is None or not normalise_text(message.text):
            without_text += 1
        else:
            learned[normalise_text(message.text)] = (message.text, message.corrected_to)
    kept = [(text, label) for text, label in examples if normalise_text(text) not in learned]
    relabelled = sum(
        learned[normalise_text(text)][1] != label
        for text, label in examples
        if normalise_text(text) in learned
    )
    return TrainingSet(
        rows=kept + list(learned.values()),
        added=len(learned),
        relabelled=relabelled,
        without_text=without_text,
        unconfigured=unconfigured,
    )


def write_examples(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """An examples CSV (``utterance``, ``intent``), the shape ``examples_file`` reads."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("utterance", "intent"))
        writer.writerows(rows)
