"""The routing configuration: one YAML file for calendars, queues, issue types, rules, SLA
policies and reply templates.

Loading validates everything and reports every problem with its line and column, so
``switchboard config check FILE`` and a refused hot reload say exactly what to fix.

The package is split along what each part does: :mod:`~libs.common.config.schema` (the models),
:mod:`~libs.common.config.line_marks` (loading, with the line of every problem),
:mod:`~libs.common.config.checks` (cross-checks between sections) and
:mod:`~libs.common.config.live` (reload without restart). Import from the package.
"""

from __future__ import annotations

from libs.common.config.checks import cross_check
from libs.common.config.line_marks import ConfigError, Problem, load_config, parse_config
from libs.common.config.live import LiveConfig
from libs.common.config.schema import (
    CHANNELS,
    STATUS_UPDATE_TEMPLATE,
    SURVEY_TEMPLATE,
    SURVEY_TEMPLATES,
    WEEKDAYS,
    AfterHours,
    CalendarConfig,
    Channel,
    ClassifierSettings,
    ClockPolicy,
    Config,
    ConversationSettings,
    CustomerSettings,
    Duration,
    HolidaySource,
    IncidentSettings,
    IssueTypeConfig,
    LanguageCode,
    OutboundSettings,
    QueueConfig,
    Rule,
    RuleActions,
    RuleConditions,
    SlaPolicyConfig,
    SurveySettings,
    Template,
    WarningPoint,
    WebhookConfig,
    Weekday,
    WhatsAppSettings,
    WhatsAppTemplate,
    build_calendars,
    event_type_named,
    parse_duration,
)

__all__ = [
    "CHANNELS",
    "STATUS_UPDATE_TEMPLATE",
    "SURVEY_TEMPLATE",
    "SURVEY_TEMPLATES",
    "WEEKDAYS",
    "AfterHours",
    "CalendarConfig",
    "Channel",
    "ClassifierSettings",
    "ClockPolicy",
    "Config",
    "ConfigError",
    "ConversationSettings",
    "CustomerSettings",
    "Duration",
    "HolidaySource",
    "IncidentSettings",
    "IssueTypeConfig",
    "LanguageCode",
    "LiveConfig",
    "OutboundSettings",
    "Problem",
    "QueueConfig",
    "Rule",
    "RuleActions",
    "RuleConditions",
    "SlaPolicyConfig",
    "SurveySettings",
    "Template",
    "WarningPoint",
    "WebhookConfig",
    "Weekday",
    "WhatsAppSettings",
    "WhatsAppTemplate",
    "build_calendars",
    "cross_check",
    "event_type_named",
    "load_config",
    "parse_config",
    "parse_duration",
]
