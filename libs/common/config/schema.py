"""The configuration's shape: pydantic models for every section of the YAML file, the
names and units its values use (channels, weekdays, durations, warning points), and the
business calendars built from it."""

from __future__ import annotations

import re
import zoneinfo
from datetime import date, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from libs.common.events import (
    EVENT_TYPES,
    LANGUAGE_CODE,
    SKILL_NAME,
    CommandKind,
    SurveyKind,
)
from libs.domain.calendar import BusinessCalendar, DailyInterval
from libs.domain.text import pattern_error

Channel = Literal["email", "sms", "chat", "social", "whatsapp"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "chat", "social", "whatsapp")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION = re.compile(r"^\s*(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match and any(match.groups()):
            days, hours, minutes, seconds = match.groups()
            return timedelta(
                days=int(days or 0),
                hours=int(hours or 0),
                minutes=int(minutes or 0),
                seconds=float(seconds or 0),
            )
    raise ValueError(f"expected a duration like 30s, 5m, 1h30m or 2d, got {value!r}")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _warning_point(value: Any) -> timedelta | float:
    """A warning point: a duration before the deadline, or a fraction of the window (0.75)."""
    if isinstance(value, float) and 0 < value < 1:
        return value
    return parse_duration(value)


WarningPoint = Annotated[timedelta | float, BeforeValidator(_warning_point)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HolidaySource(_Model):
    country: str = Field(min_length=2, max_length=3)
    subdivision: str | None = None


class CalendarConfig(_Model):
    timezone: str
    hours: dict[Weekday, list[str]]
    holidays: HolidaySource | None = None
    closed_dates: list[date] = []
    special_hours: dict[date, list[str]] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


LanguageCode = Annotated[str, Field(pattern=rf"^{LANGUAGE_CODE.pattern}$")]
"""ISO 639-1, as ingest detects it on ``message.received``."""
SkillName = Annotated[str, Field(pattern=rf"^{SKILL_NAME.pattern}$")]
RequirementName = Literal["skills", "language"]
DEFAULT_ASSIGNMENT_GROUP = "default"


class RelaxStep(_Model):
    """A step of a queue's relaxation ladder: a conversation that has waited ``after`` since
    it opened without an offer is offered without the requirements in ``drop`` (and those
    earlier steps dropped)."""

    after: Duration
    drop: list[RequirementName] = Field(min_length=1)


class QueueConfig(_Model):
    calendar: str | None = None
    description: str = ""
    assignment_group: str = Field(DEFAULT_ASSIGNMENT_GROUP, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    """The queues whose conversations are offered together, to the agents who serve them (a
    TaskRouter workspace): each group's assignment state is one Redis slot, so groups spread
    over a cluster. An agent's queues must all be in one group."""
    relax: list[RelaxStep] = []
    """The relaxation ladder, in order of ``after``. Whatever it says, a conversation whose
    first-response clock warned is offered to anyone online in the queue."""

    @field_validator("relax")
    @classmethod
    def _ascending(cls, value: list[RelaxStep]) -> list[RelaxStep]:
        afters = [step.after for step in value]
        if any(after <= timedelta(0) for after in afters):
            raise ValueError("a step's `after` must be longer than zero")
        if afters != sorted(set(afters)):
            raise ValueError("the steps' `after` must grow from one step to the next")
        return value


class ClockPolicy(_Model):
    within: Duration
    business_hours: bool = True
    warn_before: list[WarningPoint] = []
    update_customer: list[WarningPoint] = []
    """Points (like ``warn_before``) at which the customer gets a ``status-update`` message
    unless an agent answered since the clock started or the previous point; resolution only."""

    @field_validator("within")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("the window must be longer than zero")
        return value


class SlaPolicyConfig(_Model):
    calendar: str | None = None
    first_response: ClockPolicy | None = None
    next_response: ClockPolicy | None = None
    resolution: ClockPolicy | None = None


class IssueTypeConfig(_Model):
    impact: Literal["deep", "broad", "shallow"] = "shallow"
    priority: int | None = Field(default=None, ge=1, le=5)
    phrases: list[str] = []
    patterns: list[str] = []
    examples: list[str] = []
    examples_file: str | list[str] | None = None

    @property
    def examples_files(self) -> list[str]:
        """The CSV files of examples: ``examples_file`` names one or a list of them."""
        if self.examples_file is None:
            return []
        return [self.examples_file] if isinstance(self.examples_file, str) else self.examples_file

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: list[str]) -> list[str]:
        for pattern in value:
            if (problem := pattern_error(pattern)) is not None:
                raise ValueError(problem)
        return value


class RuleConditions(_Model):
    channel: list[Channel] | None = None
    issue_type: list[str] | None = None
    impact: list[Literal["deep", "broad", "shallow"]] | None = None
    tier: list[str] | None = None
    language: list[str] | None = None
    open: bool | None = None
    sender: list[str] | None = None
    keywords: list[str] | None = None


class Requires(_Model):
    """Who can answer the conversations a rule routes: agents holding every skill and speaking
    the language. ``detected`` (the default) is the language ingest detected in the message
    (no language requirement when it could not tell); null asks for no language."""

    skills: list[SkillName] = []
    language: LanguageCode | Literal["detected"] | None = "detected"


class AfterHours(_Model):
    mode: Literal["follow_the_sun", "hold"]
    queue: str | None = None
    notify: str | None = None


class RuleActions(_Model):
    queue: str
    priority: int = Field(default=3, ge=1, le=5)
    sla_policy: str | None = None
    tags: list[str] = []
    auto_reply: str | None = None
    after_hours: AfterHours | None = None
    requires: Requires | None = None
    next_response_policy: str | None = None
    """The policy a next response is held to when this rule routes a customer's follow-up in
    an open conversation; without it, the conversation's own policy (its first response's)."""


class Rule(_Model):
    name: str
    when: RuleConditions = RuleConditions()
    then: RuleActions


class ConversationSettings(_Model):
    reopen_window: Duration = timedelta(days=7)


class CustomerSettings(_Model):
    tiers: dict[str, list[str]] = {}
    """Tier -> senders (an address, ``@domain`` or phone number) that belong to it."""


class IncidentSettings(_Model):
    """Broad impact: ``threshold`` distinct customers with one problem within ``window``."""

    window: Duration = timedelta(minutes=15)
    threshold: int = Field(default=10, ge=2)
    cooldown: Duration = timedelta(hours=1)
    issue_types: list[str] | None = None
    """Types that can form incidents (default: every type, and unknown text by its shape)."""
    queue: str | None = None
    template: str | None = None


class OutboundSettings(_Model):
    """What outbound may send on its own (see the README's outbound section)."""

    sms_max_segments: int = Field(default=3, ge=1, le=10)
    """Templated SMS longer than this many parts are cut (a part is 153 GSM-7 or 67 UCS-2)."""
    social_auto_reply: bool = False
    """Automatic public replies to social mentions; off: only agents answer in public."""


class SurveySettings(_Model):
    """Surveys: sent ``after`` a resolution on ``channels``; a reply with a score (or a click on
    an email's link) within ``answer_window`` of the survey is recorded as the answer. A queue's
    survey is CSAT (1-5, template ``survey``) or NPS (0-10, template ``nps-survey``)."""

    kind: SurveyKind = "csat"
    """The survey of every queue that ``queues`` does not name."""
    queues: dict[str, SurveyKind] = {}
    """Queue -> the kind of its survey, where it is not ``kind``."""

    after: Duration = timedelta(hours=1)
    channels: list[Channel] = ["sms", "chat", "email"]
    answer_window: Duration = Field(default=timedelta(days=3), le=timedelta(days=7))
    """At most 7 days: ingest remembers an answer's id that long, so a second reply within the
    window is recognised as a repeat."""

    @field_validator("after", "answer_window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    def kind_for(self, queue: str) -> SurveyKind:
        return self.queues.get(queue, self.kind)


class WhatsAppTemplate(_Model):
    """An approved WhatsApp template (Twilio Content API) that carries one kind of message
    once the customer-service window has closed."""

    content_sid: dict[str, Annotated[str, Field(pattern=r"^HX[0-9a-f]{32}$")]] = Field(min_length=1)
    """Language code -> the template's Content SID (``HX`` and 32 hex digits)."""
    variables: list[str] = []
    """Command params filling the placeholders in order: ``{{1}}`` is the first, and so on."""


class WhatsAppSettings(_Model):
    """WhatsApp's rule: free-form messages only within ``window`` of the customer's last
    message; after it only the approved template of that kind of message, or nothing."""

    window: Duration = Field(default=timedelta(hours=24), le=timedelta(hours=24))
    """At most WhatsApp's 24 hours; shorter leaves a margin for messages still in flight."""
    templates: dict[CommandKind, WhatsAppTemplate] = {}


STATUS_UPDATE_TEMPLATE = "status-update"
SURVEY_TEMPLATE = "survey"
SURVEY_TEMPLATES: dict[SurveyKind, str] = {"csat": SURVEY_TEMPLATE, "nps": "nps-survey"}


class WebhookConfig(_Model):
    """An integration's subscription: chosen event types POSTed to ``url``, signed with the
    secret in the environment variable ``secret_env`` (never in the YAML)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: str = Field(pattern=r"^https?://")
    events: list[str] = Field(min_length=1)
    """CloudEvents types (``com.switchboard.sla.event.v1``) or short names (``sla.event``)."""
    secret_env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$")


def event_type_named(name: str) -> str | None:
    """The CloudEvents type a webhook's event name stands for, or ``None`` if there is none."""
    for candidate in (name, f"com.switchboard.{name}.v1"):
        if candidate in EVENT_TYPES:
            return candidate
    return None


class ClassifierSettings(_Model):
    threshold: float = Field(default=0.5, ge=0, le=1)
    seed: int = 0
    languages: list[LanguageCode] | None = None
    """The languages the issue types' phrases, patterns and examples are written in. A message
    detected in another one is not classified by them: it gets a type from the few-shot
    ``examples_by_language`` of its language, or ``unknown``. None: every message is."""
    examples_by_language: dict[LanguageCode, dict[str, list[str]]] = {}
    """Few-shot examples in languages outside ``languages``: language -> issue type -> messages
    of that type written in it (two or more types, two or more messages each)."""


Template = dict[str, str]
"""Language code -> template text (Jinja2)."""


class Config(_Model):
    version: Literal[1] = 1
    calendars: dict[str, CalendarConfig] = {}
    queues: dict[str, QueueConfig]
    sla_policies: dict[str, SlaPolicyConfig] = {}
    issue_types: dict[str, IssueTypeConfig] = {}
    rules: list[Rule]
    templates: dict[str, dict[Channel, Template]] = {}
    conversations: ConversationSettings = ConversationSettings()
    customers: CustomerSettings = CustomerSettings()
    incidents: IncidentSettings | None = None
    classifier: ClassifierSettings = ClassifierSettings()
    outbound: OutboundSettings = OutboundSettings()
    webhooks: list[WebhookConfig] = []
    surveys: SurveySettings | None = None
    whatsapp: WhatsAppSettings = WhatsAppSettings()

    def policy_calendar(self, policy: str, queue: str) -> str | None:
        """The calendar an SLA policy counts business hours in: its own, else the queue's."""
        own = self.sla_policies[policy].calendar
        return own if own is not None else self.queues[queue].calendar

    def next_response_policy(self, rule: str) -> str | None:
        """The policy the rule named ``rule`` holds next responses to, if it names one."""
        return next((r.then.next_response_policy for r in self.rules if r.name == rule), None)


def build_calendars(config: Config) -> dict[str, BusinessCalendar]:
    """The business calendars of a validated configuration, by name."""
    built = {}
    for name, spec in config.calendars.items():
        built[name] = BusinessCalendar(
            name=name,
            timezone=spec.timezone,
            weekly_hours={
                WEEKDAYS.index(day): [DailyInterval.parse(s) for s in spans]
                for day, spans in spec.hours.items()
            },
            holiday_country=spec.holidays.country if spec.holidays else None,
            holiday_subdivision=spec.holidays.subdivision if spec.holidays else None,
            closed_dates=spec.closed_dates,
            special_hours={
                day: [DailyInterval.parse(s) for s in spans]
                for day, spans in spec.special_hours.items()
            },
        )
    return built
