"""Issue types across languages: each message is classified by examples in its own language.

The issue types' phrases, patterns and examples are written in some languages
(``classifier.languages``). A message ingest detected in another language is not scored
against them: a model of English words gives a Spanish message an English type only by the
accident of shared words, and the rules would then send it to a queue that cannot read it.
It is classified by the few-shot examples the configuration gives in its language
(``classifier.examples_by_language``), or comes out ``unknown``; the rules route it by its
language. A message whose language ingest could not tell (a few words, an emoji) is
classified as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from libs.common.config import Config
from services.router.issue_types import (
    UNKNOWN,
    Classification,
    IssueClassifier,
    IssueTypeSpec,
)

FEW_SHOT_FULL_COVERAGE: Final = 1.0
"""A handful of examples knows few words, so a message keeps its full probability only when
the examples know every word of it (the main model: 0.6); one sharing just "I want" with them
is not of their type."""


@dataclass(frozen=True, slots=True)
class ClassifiersByLanguage:
    """The configured classifier for its languages, and one per language of few-shot examples."""

    main: IssueClassifier
    languages: frozenset[str] | None
    """The main classifier's languages; None: it classifies every message."""
    few_shot: Mapping[str, IssueClassifier]

    @classmethod
    def build(cls, config: Config, main: IssueClassifier) -> ClassifiersByLanguage:
        """Raises ``ValueError`` for examples in a language the main classifier covers (they
        belong in the types' ``examples``), of a type not configured, or a single one."""
        settings = config.classifier
        given = settings.examples_by_language
        if settings.languages is not None and (
            overlap := sorted(set(given) & set(settings.languages))
        ):
            raise ValueError(
                f"classifier.examples_by_language.{overlap[0]}: classifier.languages covers "
                f"{overlap[0]}, so its examples go under the issue types' examples"
            )
        few_shot = {}
        for language, by_type in sorted(given.items()):
            specs = []
            for name, examples in by_type.items():
                spec = config.issue_types.get(name)
                if spec is None:
                    raise ValueError(
                        f"classifier.examples_by_language.{language}: no issue type {name!r}"
                    )
                specs.append(
                    IssueTypeSpec(
                        name=name,
                        impact=spec.impact,
                        priority=spec.priority,
                        examples=tuple(examples),
                    )
                )
            few_shot[language] = IssueClassifier.build(
                specs,
                threshold=settings.threshold,
                seed=settings.seed,
                full_coverage=FEW_SHOT_FULL_COVERAGE,
            )
        languages = frozenset(settings.languages) if settings.languages is not None else None
        return cls(main, languages, few_shot)

    def classify(self, text: str, language: str | None) -> Classification:
        """The issue type of a message written in ``language`` (None: not known)."""
        classifier = self._for(language)
        if classifier is None:
            return _no_examples(language)
        return classifier.classify(text)

    def classify_many(self, messages: Sequence[tuple[str, str | None]]) -> list[Classification]:
        """The issue type of each (text, language), each classifier taking its messages in one
        call; every one comes out exactly as ``classify`` gives it."""
        groups: dict[str | None, list[int]] = {}
        for n, (_, language) in enumerate(messages):
            groups.setdefault(self._group(language), []).append(n)
        classified: dict[int, Classification] = {}
        for group, positions in groups.items():
            classifier = self._for(group)
            texts = [messages[n][0] for n in positions]
            results = (
                classifier.classify_many(texts)
                if classifier is not None
                else [_no_examples(group)] * len(texts)
            )
            classified.update(zip(positions, results, strict=True))
        return [classified[n] for n in range(len(messages))]

    def _group(self, language: str | None) -> str | None:
        """None for the messages the main classifier takes, else their language."""
        if language is None or self.languages is None or language in self.languages:
            return None
        return language

    def _for(self, language: str | None) -> IssueClassifier | None:
        """The classifier of a message in ``language``; None when no examples are in it."""
        group = self._group(language)
        return self.main if group is None else self.few_shot.get(group)


def _no_examples(language: str | None) -> Classification:
    return Classification(
        UNKNOWN, 0.0, "none", f"written in {language}: no examples in it", None, None
    )
