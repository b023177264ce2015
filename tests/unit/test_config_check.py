"""``switchboard config check`` reports every problem of a file in one run, each at its line
and column: a schema error does not hide a reference error, and a reference to an entry that is
itself invalid is not reported twice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from libs.common.config import ConfigError, parse_config
from tests.unit.test_config import VALID
from tooling.cli import main


@dataclass(frozen=True)
class Found:
    line: int
    token: str
    """Where on the line the problem points (its column is this text's)."""
    says: str


@dataclass(frozen=True)
class Broken:
    name: str
    edits: tuple[tuple[str, str], ...]
    found: tuple[Found, ...]

    def text(self) -> str:
        text = VALID
        for old, new in self.edits:
            assert old in text
            text = text.replace(old, new, 1)
        return text


THREE_KINDS = Broken(
    "an unknown key, a bad duration and a rule naming a missing queue",
    (
        ("orders: {calendar: la}", "orders: {calendar: la, colour: red}"),
        ("within: 5m", "within: soon"),
        ("queue: orders", "queue: nowhere"),
    ),
    (
        Found(7, "colour", "queues.orders.colour: unknown key 'colour'"),
        Found(10, "soon", "sla_policies.fast.first_response.within"),
        Found(14, "nowhere", "rules.0.then.queue: no queue named 'nowhere'"),
    ),
)
CASES = [
    THREE_KINDS,
    Broken(
        "a bad time zone, a rule naming a missing policy; the queue on that calendar is fine",
        (
            ("America/Los_Angeles", "Mars/Olympus_Mons"),
            ("sla_policy: fast", "sla_policy: slow"),
        ),
        (
            Found(4, "Mars", "unknown time zone 'Mars/Olympus_Mons'"),
            Found(14, "slow", "rules.0.then.sla_policy: no SLA policy named 'slow'"),
        ),
    ),
    Broken(
        "an invalid rule does not move the lines of the rules after it",
        (
            ("    when: {channel: [sms]}", "    when: {channel: [sms], colour: red}"),
            (
                "then: {queue: orders, sla_policy: fast}\n",
                "then: {queue: orders, sla_policy: fast}\n"
                "  - name: email\n"
                "    then: {queue: ordrs}\n",
            ),
        ),
        (
            Found(13, "colour", "rules.0.when.colour: unknown key 'colour'"),
            Found(16, "ordrs", "rules.1.then.queue: no queue named 'ordrs'"),
        ),
    ),
    Broken(
        "an assignment group name that is not a short lower-case slug",
        (("orders: {calendar: la}", "orders: {calendar: la, assignment_group: West Coast}"),),
        (Found(7, "West Coast", "queues.orders.assignment_group"),),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_problem_is_reported_at_once(case: Broken) -> None:
    text = case.text()
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    lines = text.splitlines()
    found = [(p.line, p.column, p.message) for p in caught.value.problems]
    assert [(line, column) for line, column, _ in found] == [
        (f.line, lines[f.line - 1].index(f.token) + 1) for f in case.found
    ], found
    for (_, _, message), expected in zip(found, case.found, strict=True):
        assert expected.says in message


def test_config_check_names_the_three_problems_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "store.yaml"
    path.write_text(THREE_KINDS.text())
    assert main(["config", "check", str(path)]) == 1
    said = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[0] for line in said[:-1]] == [
        f"{path}:7:26",
        f"{path}:10:30",
        f"{path}:14:19",
    ]
    assert said[-1] == f"{path}: 3 problem(s)"
