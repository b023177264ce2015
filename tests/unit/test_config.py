"""The configuration file: every problem reported with its line, and the sample is valid."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from libs.common.config import ConfigError, load_config, parse_config, parse_duration

ROOT = Path(__file__).parents[2]

VALID = """\
version: 1
calendars:
  la:
    timezone: America/Los_Angeles
    hours: {mon: ["09:00-17:00"]}
queues:
  orders: {calendar: la}
sla_policies:
  fast:
    first_response: {within: 5m, warn_before: [1m, 0.5]}
rules:
  - name: sms
    when: {channel: [sms]}
    then: {queue: orders, sla_policy: fast}
"""


def problems(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return [(p.line, p.message) for p in caught.value.problems]


def test_the_shipped_sample_is_valid() -> None:
    config = load_config(ROOT / "config" / "store.yaml")
    assert {"orders", "returns", "payments", "technical", "vip"} <= set(config.queues)
    assert {c.timezone for c in config.calendars.values()} == {
        "America/Los_Angeles",
        "Europe/Berlin",
    }
    windows = {p.first_response.within for p in config.sla_policies.values() if p.first_response}
    assert windows == {
        timedelta(minutes=5),
        timedelta(hours=1),
        timedelta(hours=8),
        timedelta(hours=24),
    }


def test_valid_text_parses_with_durations_and_fractions() -> None:
    config = parse_config(VALID)
    clock = config.sla_policies["fast"].first_response
    assert clock is not None
    assert clock.within == timedelta(minutes=5)
    assert clock.warn_before == [timedelta(minutes=1), 0.5]


def test_unknown_key_names_its_line() -> None:
    found = problems(
        VALID.replace("  orders: {calendar: la}", "  orders: {calendar: la, colour: red}")
    )
    assert found == [(7, "queues.orders.colour: unknown key 'colour'")]


def test_bad_time_zone_names_its_line() -> None:
    found = problems(VALID.replace("America/Los_Angeles", "Mars/Olympus_Mons"))
    assert len(found) == 1
    assert found[0][0] == 4
    assert "unknown time zone 'Mars/Olympus_Mons'" in found[0][1]


def test_overlapping_hours_are_reported() -> None:
    found = problems(VALID.replace('["09:00-17:00"]', '["09:00-13:00", "12:00-17:00"]'))
    assert len(found) == 1
    assert found[0][0] == 5
    assert "overlap" in found[0][1]


def test_a_rule_naming_a_missing_queue_or_policy() -> None:
    text = VALID.replace(
        "then: {queue: orders, sla_policy: fast}", "then: {queue: ordrs, sla_policy: slow}"
    )
    found = problems(text)
    assert found == [
        (14, "rules.0.then.queue: no queue named 'ordrs'"),
        (14, "rules.0.then.sla_policy: no SLA policy named 'slow'"),
    ]


def test_status_updates_only_on_the_resolution_clock() -> None:
    text = VALID.replace(
        "first_response: {within: 5m, warn_before: [1m, 0.5]}",
        "first_response: {within: 5m, update_customer: [1m]}",
    )
    found = problems(text + "templates:\n  status-update:\n    sms: {en: hi}\n")
    assert found == [
        (
            10,
            "sla_policies.fast.first_response.update_customer: status updates run on the "
            "resolution clock only",
        )
    ]


def test_follow_ups_need_their_templates_for_every_channel_they_use() -> None:
    text = VALID.replace(
        "first_response: {within: 5m, warn_before: [1m, 0.5]}",
        "resolution: {within: 8h, update_customer: [0.5, 1h]}",
    )
    config = parse_config(
        text
        + "templates:\n  status-update:\n    sms: {en: hi}\n  survey:\n    sms: {en: rate us}\n"
        + "surveys: {after: 30m, channels: [sms]}\n"
    )
    resolution = config.sla_policies["fast"].resolution
    assert resolution is not None
    assert resolution.update_customer == [0.5, timedelta(hours=1)]
    assert config.surveys is not None
    assert config.surveys.after == timedelta(minutes=30)
    assert config.surveys.answer_window == timedelta(days=3)
    found = problems(text + "surveys: {channels: [sms, email]}\n")
    assert found == [
        (
            10,
            "sla_policies.fast.resolution.update_customer: no template 'status-update' for "
            "channel 'sms'",
        ),
        (15, "surveys.channels: no template 'survey' for channel 'email'"),
        (15, "surveys.channels: no template 'survey' for channel 'sms'"),
    ]


def test_a_survey_answer_window_is_at_most_a_week() -> None:
    found = problems(VALID + "surveys: {answer_window: 8d}\n")
    assert len(found) == 1
    assert found[0][0] == 15
    assert found[0][1].startswith("surveys.answer_window:")


def test_a_queue_can_ask_nps_instead_of_csat() -> None:
    surveys = "surveys: {channels: [sms], queues: {orders: nps, nowhere: nps}}\n"
    templates = "templates:\n  survey:\n    sms: {en: rate us}\n"
    assert problems(VALID + surveys + templates) == [
        (15, "surveys.channels: no template 'nps-survey' for channel 'sms'"),
        (15, "surveys.queues.nowhere: no queue named 'nowhere'"),
    ]
    nps = "  nps-survey:\n    sms: {en: recommend us}\n"
    config = parse_config(VALID + surveys.replace(", nowhere: nps", "") + templates + nps)
    assert config.surveys is not None
    assert (config.surveys.kind_for("orders"), config.surveys.kind_for("other")) == ("nps", "csat")


def test_an_unreachable_rule_is_reported() -> None:
    text = (
        VALID
        + """\
  - name: everything
    then: {queue: orders}
  - name: sms-again
    when: {channel: [sms, email]}
    then: {queue: orders}
"""
    )
    found = problems(text)
    unreachable = "unreachable: rule 'everything' (rules.1) matches everything this rule matches"
    assert found == [(17, f"rules.2: {unreachable}")]


def test_narrower_rule_after_broader_is_unreachable_but_wider_is_not() -> None:
    narrower = (
        VALID
        + """\
  - name: sms-orders
    when: {channel: [sms], keywords: [order]}
    then: {queue: orders}
"""
    )
    assert "unreachable" in problems(narrower)[0][1]
    wider = (
        VALID
        + """\
  - name: sms-or-email
    when: {channel: [sms, email]}
    then: {queue: orders}
"""
    )
    assert parse_config(wider).rules[1].name == "sms-or-email"


def test_several_problems_are_all_reported_in_line_order() -> None:
    text = VALID.replace("5m", "five minutes").replace("[sms]", "[fax]")
    found = problems(text)
    assert [line for line, _ in found] == [10, 13]
    assert "duration" in found[0][1]
    assert "fax" in found[1][1] or "sms" in found[1][1]


def test_duplicate_keys_and_bad_yaml() -> None:
    assert (15, "duplicate key 'queues'") in problems(VALID + "queues: {}\n")
    _line, message = problems("queues: [unclosed\n")[0]
    assert message.startswith("not valid YAML")


def test_an_invalid_pattern_is_reported() -> None:
    text = VALID + "issue_types:\n  refunds: {patterns: ['(?<=x)refund']}\n"
    line, message = problems(text)[0]
    assert line == 16
    assert "RE2" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        (45, timedelta(seconds=45)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "5 minutes", "m5", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
