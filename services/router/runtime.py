"""What the router builds from one configuration: calendars, rules, issue-type classifier."""

from __future__ import annotations

import csv
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from libs.common.config import Config, build_calendars
from libs.common.logs import get_logger
from libs.domain.calendar import BusinessCalendar
from services.router.issue_types import IssueClassifier, IssueTypeSpec
from services.router.languages import ClassifiersByLanguage
from services.router.model_cache import ModelCache
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
    def build(
        cls, config: Config, path: Path, *, models: ModelCache | None = None
    ) -> RouterRuntime:
        """Everything the router needs from ``config`` (loaded from ``path``); ``models`` keeps
        the fitted issue-type model for the next build on the same examples."""
        started = time.perf_counter()
        calendars = build_calendars(config)
        specs = issue_type_specs(config, path.parent)
        classifier = IssueClassifier.build(
            specs, threshold=config.classifier.threshold, seed=config.classifier.seed, models=models
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


def issue_type_specs(config: Config, base_dir: Path) -> list[IssueTypeSpec]:
    """Every configured issue type with its inline examples plus those of its examples files.

    An examples file is a CSV with ``utterance`` and ``intent`` columns (the shipped
    customer-service sample's shape); the rows whose intent is the type's name are used.
    ``examples_file`` names one file or a list of them; each file is read once, however many
    types name it.
    """
    named = {f for spec in config.issue_types.values() for f in spec.examples_files}
    by_file = {
        examples_file: _examples_by_intent(base_dir / examples_file) for examples_file in named
    }
    return [
        IssueTypeSpec(
            name=name,
            impact=spec.impact,
            priority=spec.priority,
            phrases=tuple(spec.phrases),
            patterns=tuple(spec.patterns),
            examples=tuple(
                itertools.chain(
                    spec.examples,
                    *(
                        by_file[examples_file].get(name, ())
                        for examples_file in spec.examples_files
                    ),
                )
            ),
        )
        for name, spec in config.issue_types.items()
    ]


def _examples_by_intent(path: Path) -> dict[str, list[str]]:
    """An examples file's utterances by their intent."""
    by_intent: dict[str, list[str]] = {}
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            by_intent.setdefault(row["intent"], []).append(row["utterance"])
    return by_intent
