"""The routing configuration: one YAML file for calendars, queues, issue types, rules, SLA
policies and reply templates.

Loading validates everything and reports every problem with its line and column, so
``switchboard config check FILE`` and a refused hot reload say exactly what to fix.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from libs.common.events import EVENT_TYPES, CommandKind
from libs.common.logs import get_logger
from libs.domain.calendar import BusinessCalendar, DailyInterval
from libs.domain.text import pattern_error

_log = get_logger(__name__)
T = TypeVar("T")

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


class QueueConfig(_Model):
    calendar: str | None = None
    description: str = ""


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
    """CSAT surveys: sent ``after`` a resolution on ``channels``; a 1-5 reply (or a click on an
    email's link) within ``answer_window`` of the survey is recorded as the answer."""

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


LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2}$")]
"""ISO 639-1, as ingest detects it on ``message.received``."""


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


# --- loading with line numbers --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.message}"


class ConfigError(Exception):
    """The file is not a valid configuration; ``problems`` lists every finding."""

    def __init__(self, path: Path | str, problems: list[Problem]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(str(p) for p in problems))


Path_ = tuple[str | int, ...]


class _Marks:
    """Line/column of every node (and mapping key) of a YAML document, by path."""

    def __init__(self) -> None:
        self.values: dict[Path_, yaml.Mark] = {}
        self.keys: dict[Path_, yaml.Mark] = {}
        self.duplicates: list[Problem] = []

    def walk(self, node: yaml.Node, path: Path_ = ()) -> None:
        self.values[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    mark = key_node.start_mark
                    self.duplicates.append(
                        Problem(mark.line + 1, mark.column + 1, f"duplicate key {key!r}")
                    )
                seen.add(key)
                self.keys[(*path, key)] = key_node.start_mark
                self.walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*path, index))

    def locate(self, path: Path_, *, key: bool = False) -> tuple[int, int]:
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            mark = (self.keys.get(prefix) if key else None) or self.values.get(prefix)
            if mark is not None:
                return mark.line + 1, mark.column + 1
        return 1, 1


def _pydantic_path(loc: tuple[int | str, ...]) -> Path_:
    # dict keys appear as str, list indexes as int; date-keyed maps come back as strings
    # already; drop the union-member names pydantic inserts (e.g. "timedelta").
    return tuple(p for p in loc if not (isinstance(p, str) and p in {"timedelta", "float"}))


def parse_config(text: str, source: Path | str = "<config>") -> Config:
    """Validate YAML text into a :class:`Config` or raise :class:`ConfigError`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ConfigError(source, [Problem(line, column, f"not valid YAML: {exc}")]) from None
    marks = _Marks()
    if root is not None:
        marks.walk(root)
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem(1, 1, "the file must be a mapping at the top")])
    problems = list(marks.duplicates)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = _pydantic_path(err["loc"])
            line, column = marks.locate(path, key=err["type"] == "extra_forbidden")
            message = (
                f"unknown key {path[-1]!r}" if err["type"] == "extra_forbidden" else err["msg"]
            )
            where = ".".join(str(p) for p in path) or "(top)"
            problems.append(Problem(line, column, f"{where}: {message}"))
        raise ConfigError(source, sorted(problems, key=lambda p: (p.line, p.column))) from None
    for path, message in cross_check(config, base_dir=Path(source).parent):
        line, column = marks.locate(path)
        where = ".".join(str(p) for p in path)
        problems.append(Problem(line, column, f"{where}: {message}"))
    if problems:
        raise ConfigError(source, sorted(problems, key=lambda p: (p.line, p.column)))
    return config


def load_config(path: Path | str) -> Config:
    """Read and validate a configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem(1, 1, f"cannot read the file: {exc}")]) from None
    return parse_config(text, path)


def cross_check(config: Config, base_dir: Path) -> list[tuple[Path_, str]]:
    """Problems between sections: names that point nowhere, rules that can never match."""
    found: list[tuple[Path_, str]] = []
    for name, calendar in config.calendars.items():
        found.extend(_calendar_problems(name, calendar))
    for name, queue in config.queues.items():
        if queue.calendar is not None and queue.calendar not in config.calendars:
            found.append((("queues", name, "calendar"), f"no calendar named {queue.calendar!r}"))
    for name, policy in config.sla_policies.items():
        if policy.calendar is not None and policy.calendar not in config.calendars:
            found.append(
                (("sla_policies", name, "calendar"), f"no calendar named {policy.calendar!r}")
            )
    found.extend(_follow_up_problems(config))
    for name, issue_type in config.issue_types.items():
        for examples_file in issue_type.examples_files:
            if not (base_dir / examples_file).is_file():
                found.append((("issue_types", name, "examples_file"), f"no file {examples_file!r}"))
    for index, rule in enumerate(config.rules):
        found.extend(_rule_problems(config, index, rule))
    incidents = config.incidents
    if incidents is not None:
        if incidents.queue is not None and incidents.queue not in config.queues:
            found.append((("incidents", "queue"), f"no queue named {incidents.queue!r}"))
        if incidents.template is not None and incidents.template not in config.templates:
            found.append((("incidents", "template"), f"no template named {incidents.template!r}"))
        for name in incidents.issue_types or ():
            if name not in config.issue_types:
                found.append((("incidents", "issue_types"), f"no issue type named {name!r}"))
    seen_hooks: set[str] = set()
    for index, hook in enumerate(config.webhooks):
        if hook.name in seen_hooks:
            found.append((("webhooks", index, "name"), f"second webhook named {hook.name!r}"))
        seen_hooks.add(hook.name)
        for position, event in enumerate(hook.events):
            if event_type_named(event) is None:
                found.append((("webhooks", index, "events", position), f"no event {event!r}"))
    return found


def _follow_up_problems(config: Config) -> list[tuple[Path_, str]]:
    """Status updates only on resolution clocks, and the templates the follow-ups need for
    every channel they can go out on."""
    found: list[tuple[Path_, str]] = []
    updating: set[str] = set()
    for name, policy in config.sla_policies.items():
        for metric in ("first_response", "next_response", "resolution"):
            clock: ClockPolicy | None = getattr(policy, metric)
            if clock is None or not clock.update_customer:
                continue
            if metric != "resolution":
                found.append(
                    (
                        ("sla_policies", name, metric, "update_customer"),
                        "status updates run on the resolution clock only",
                    )
                )
            else:
                updating.add(name)
    channels: set[Channel] = set()
    for rule in config.rules:
        if rule.then.sla_policy in updating:
            channels.update(rule.when.channel or CHANNELS)
    if not config.outbound.social_auto_reply:
        channels.discard("social")  # outbound never sends automatic public replies then
    if updating:
        at: Path_ = ("sla_policies", min(updating), "resolution", "update_customer")
        found.extend(_template_problems(config, STATUS_UPDATE_TEMPLATE, channels, at))
    if config.surveys is not None:
        wanted = set(config.surveys.channels)
        found.extend(_template_problems(config, SURVEY_TEMPLATE, wanted, ("surveys", "channels")))
    return found


def _template_problems(
    config: Config, name: str, channels: set[Channel], at: Path_
) -> list[tuple[Path_, str]]:
    have = config.templates.get(name, {})
    return [
        (at, f"no template {name!r} for channel {channel!r}")
        for channel in sorted(channels)
        if channel not in have
    ]


def _calendar_problems(name: str, calendar: CalendarConfig) -> list[tuple[Path_, str]]:
    found: list[tuple[Path_, str]] = []
    days: list[tuple[Path_, list[str]]] = [
        (("calendars", name, "hours", day), spans) for day, spans in calendar.hours.items()
    ]
    days += [
        (("calendars", name, "special_hours", str(day)), spans)
        for day, spans in calendar.special_hours.items()
    ]
    for path, spans in days:
        intervals = []
        for index, text in enumerate(spans):
            try:
                intervals.append(DailyInterval.parse(text))
            except ValueError as exc:
                found.append(((*path, index), str(exc)))
        ordered = sorted(intervals, key=lambda i: i.start)
        for first, second in itertools.pairwise(ordered):
            if first.crosses_midnight or second.start < first.end:
                found.append((path, f"opening hours overlap: {first} and {second}"))
    return found


def _rule_problems(config: Config, index: int, rule: Rule) -> list[tuple[Path_, str]]:
    at: Path_ = ("rules", index)
    found: list[tuple[Path_, str]] = []
    if rule.then.queue not in config.queues:
        found.append(((*at, "then", "queue"), f"no queue named {rule.then.queue!r}"))
    if rule.then.sla_policy is not None and rule.then.sla_policy not in config.sla_policies:
        found.append(((*at, "then", "sla_policy"), f"no SLA policy named {rule.then.sla_policy!r}"))
    named = rule.then.next_response_policy
    if named is not None and (
        named not in config.sla_policies or not config.sla_policies[named].next_response
    ):
        found.append(
            ((*at, "then", "next_response_policy"), f"no SLA policy {named!r} with a next_response")
        )
    if rule.then.auto_reply is not None and rule.then.auto_reply not in config.templates:
        found.append(((*at, "then", "auto_reply"), f"no template named {rule.then.auto_reply!r}"))
    after = rule.then.after_hours
    if after is not None:
        if after.mode == "follow_the_sun" and after.queue is None:
            found.append(((*at, "then", "after_hours"), "follow_the_sun needs a queue"))
        if after.queue is not None and after.queue not in config.queues:
            found.append(((*at, "then", "after_hours", "queue"), f"no queue named {after.queue!r}"))
        if after.notify is not None and after.notify not in config.templates:
            found.append(
                ((*at, "then", "after_hours", "notify"), f"no template named {after.notify!r}")
            )
    for issue_type in rule.when.issue_type or ():
        if issue_type != "unknown" and issue_type not in config.issue_types:
            found.append(((*at, "when", "issue_type"), f"no issue type named {issue_type!r}"))
    for earlier_index, earlier in enumerate(config.rules[:index]):
        if _shadows(earlier.when, rule.when):
            found.append(
                (
                    at,
                    f"unreachable: rule {earlier.name!r} (rules.{earlier_index}) matches "
                    "everything this rule matches",
                )
            )
            break
    return found


def _shadows(earlier: RuleConditions, later: RuleConditions) -> bool:
    """True when every message ``later`` matches is already matched by ``earlier``."""
    for name in RuleConditions.model_fields:
        wide = getattr(earlier, name)
        if wide is None:
            continue
        narrow = getattr(later, name)
        if narrow is None:
            return False
        if isinstance(wide, list):
            if not set(narrow) <= set(wide):
                return False
        elif wide != narrow:
            return False
    return True


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


class LiveConfig(Generic[T]):
    """A configuration file and what a service builds from it, reloaded when the file changes.

    A changed file is validated and built off the event loop; only a fully built result
    replaces the current one, so an invalid edit leaves the service running on the old one.
    """

    def __init__(self, path: Path, build: Callable[[Config, Path], T]) -> None:
        self.path = path
        self._build = build
        self._stamp = self._file_stamp()
        self.config = load_config(path)
        self.current: T = build(self.config, path)
        self.generation = 1

    def _file_stamp(self) -> tuple[float, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return stat.st_mtime, stat.st_size

    async def reload_if_changed(self) -> bool:
        """Swap in the new configuration if the file changed, is valid and builds; any failure
        (an :class:`Exception`, not a cancellation) is logged and the running one kept."""
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            config, built = await asyncio.to_thread(self._load_and_build)
        except ConfigError as exc:
            problems = [str(p) for p in exc.problems]
        except Exception as exc:
            # Valid YAML can still fail to build (an examples CSV without its columns): the
            # watcher must outlive it, or hot reload stops for good.
            problems = [f"building it failed: {exc!r}"]
        else:
            self.config, self.current = config, built
            self.generation += 1
            _log.info("configuration reloaded", path=str(self.path), generation=self.generation)
            return True
        _log.error(
            "configuration change refused; keeping the running one",
            path=str(self.path),
            problems=problems,
            generation=self.generation,
        )
        return False

    def _load_and_build(self) -> tuple[Config, T]:
        config = load_config(self.path)
        return config, self._build(config, self.path)

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the file until cancelled (a ConfigMap update replaces it atomically)."""
        while True:
            await asyncio.sleep(interval)
            await self.reload_if_changed()
