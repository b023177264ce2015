"""What the router builds from one configuration: calendars, rules, issue-type classifier."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from libs.common.config import Config, IssueTypeConfig, build_calendars
from libs.common.logs import get_logger
from libs.domain.calendar import BusinessCalendar
from services.router.issue_types import IssueClassifier, IssueTypeSpec
from services.router.languages import ClassifiersByLanguage
from services.router.rules import RoutingTable

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RouterRuntime:
    config: Config
    calendars: dict[str, BusinessCalendar]
    table: RoutingTable
    classifier: IssueClassifier
    by_language: ClassifiersByLanguage
    """What classifies a message: ``classifier``, or few-shot examples in the message's
    language when the classifier's languages do not include it."""

    @classmethod
    def build(cls, config: Config, path: Path) -> RouterRuntime:
        started = time.perf_counter()
        calendars = build_calendars(config)
        specs = [
            issue_type_spec(name, spec, path.parent) for name, spec in config.issue_types.items()
        ]
        classifier = IssueClassifier.build(
            specs, threshold=config.classifier.threshold, seed=config.classifier.seed
        )
        log.info(
            "router configuration built",
            seconds=round(time.perf_counter() - started, 3),
            issue_types=len(specs),
            rules=len(config.rules),
            classifier_seconds=round(classifier.stats.seconds, 3),
            examples=classifier.stats.examples,
            vocabulary=classifier.stats.vocabulary,
        )
        return cls(
            config=config,
            calendars=calendars,
            table=RoutingTable(config, calendars),
            classifier=classifier,
            by_language=ClassifiersByLanguage.build(config, classifier),
        )


def issue_type_spec(name: str, spec: IssueTypeConfig, base_dir: Path) -> IssueTypeSpec:
    """An issue type with its inline examples plus those of its examples file.

    An examples file is a CSV with ``utterance`` and ``intent`` columns (the shipped
    customer-service sample's shape); the rows whose intent is this type's name are used.
    ``examples_file`` names one file or a list of them.
    """
    examples = list(spec.examples)
    for examples_file in spec.examples_files:
        with open(base_dir / examples_file, encoding="utf-8-sig", newline="") as handle:
            examples += [
                row["utterance"] for row in csv.DictReader(handle) if row["intent"] == name
            ]
    return IssueTypeSpec(
        name=name,
        impact=spec.impact,
        priority=spec.priority,
        phrases=tuple(spec.phrases),
        patterns=tuple(spec.patterns),
        examples=tuple(examples),
    )
