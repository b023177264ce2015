"""The router's issue-type step: what kind of problem a customer message is about.

Two layers, tried in this order for every message (email subject and body, SMS, chat, tweet):

1. Explicit rules. The phrases and regular expressions of every configured issue type are
   compiled once, at configuration load, into one RE2 set. RE2 runs an automaton, so a message
   costs time linear in its length whatever the number of rules, and a badly written pattern
   cannot backtrack catastrophically on hostile input (Python's ``re`` gives neither
   guarantee). A hit is final: confidence 1.0, with the matched text as evidence.
2. An example model. TF-IDF over word 1-2-grams and character 2-5-grams inside word boundaries
   (misspellings and run-on words still share most of their character n-grams with the correct
   spelling), a linear SVM, and temperature scaling fitted on cross-validated decisions, so the
   probability is calibrated. A coverage gate then scales the probability down when few of the
   message's words occur in any example: a language or a topic the examples do not cover comes
   out ``unknown`` with low confidence instead of as a confident wrong label. The folds keep
   each example with its noisy copy and its exact repeats: a fold that has seen a copy of the
   text it scores would make the calibration too sure of itself. An answer on which the word
   and the character n-grams disagree is never called confident (``SPLIT_VIEWS_CONFIDENCE``).

The model reads the message's core (``wording.message_core``: no greeting, sign-off, signature,
quoted history or @mention) and trains on each type's examples plus noisy copies of half of them
(``wording.noisy_variants``: typos, vowel-less and SMS shorthand); the rules read the whole text.

Messages are scored by a lean path (dictionary look-ups and a few numpy operations per batch of
messages) that gives the same probabilities as the fitted scikit-learn pipeline at a fraction of
its per-call overhead. The pipeline is kept beside it so that the equivalence can be checked (see
the unit tests). ``classify_many`` scores many messages in one pass; every sum in it runs within
one message, so a message gets exactly the same classification alone as in any batch.

Building is CPU-bound and takes seconds on a few thousand examples: on a hot reload, build the
new classifier off the event loop and swap it in once it is ready.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import re2

from libs.domain.text import (
    MAX_INPUT_CHARS,
    fold_marks,
    normalise_text,
    pattern_error,
    re2_options,
)
from services.router.wording import message_core, noisy_variants

if TYPE_CHECKING:
    from services.router.model_cache import ModelCache

__all__ = [
    "IMPACTS",
    "MAX_INPUT_CHARS",
    "MAX_MODEL_CHARS",
    "SPLIT_VIEWS_CONFIDENCE",
    "UNKNOWN",
    "BuildStats",
    "Classification",
    "ExampleModel",
    "Impact",
    "IssueClassifier",
    "IssueTypeSpec",
    "MatchedBy",
    "normalise_text",
    "pattern_error",
]

Impact: TypeAlias = Literal["deep", "broad", "shallow"]
MatchedBy: TypeAlias = Literal["pattern", "phrase", "model", "none"]
FloatArray: TypeAlias = npt.NDArray[np.float64]

UNKNOWN: Final = "unknown"
IMPACTS: Final[tuple[Impact, ...]] = ("deep", "broad", "shallow")

# The model sees the start only: customers state the problem early, and the cost of scoring
# grows with the length (quoted replies and signatures further down are mostly noise anyway).
MAX_MODEL_CHARS: Final = 1_000

# This share of each type's examples is trained on a second time as typed in a hurry (typos,
# shorthand): the examples are written with care, the messages are not.
_NOISY_SHARE: Final = 0.5

# Fewer examples than this for a type leaves nothing to cross-validate the calibration on.
MIN_EXAMPLES_PER_TYPE: Final = 2
_MAX_FOLDS: Final = 3
_SVM_C: Final = 0.5
_SVM_MAX_ITER: Final = 10_000
# Within one typo: single deletions on both sides find insertions, deletions, substitutions
# and transpositions. Shorter words would match too many unrelated words.
_FUZZY_MIN_LEN: Final = 5
# A run-on word ("cancelmy") counts as known when it splits into two known words.
_SPLIT_MIN_LEN: Final = 6
# A model answer whose word and character views favour different types (or whose words give no
# evidence at all) keeps its type but at most this confidence. The temperature is fitted on the
# examples' own folds, whose wording is easier than customers': on a written set held out whole,
# the confident answers the views split on were wrong three to four times as often as the rest.
SPLIT_VIEWS_CONFIDENCE: Final = 0.8

# The same token pattern as scikit-learn's default, passed to the vectorizer explicitly so that
# the lean path and the pipeline cannot drift apart.
_TOKEN: Final = re.compile(r"(?u)\b\w\w+\b")
_DIGIT: Final = re.compile(r"\d")
# Messages whose weighted features are summed at once: bounds the temporary matrix (features
# times classes) a large batch would otherwise need in one piece.
_SCORE_CHUNK: Final = 64


@dataclass(frozen=True, slots=True)
class IssueTypeSpec:
    """One configured issue type, as the configuration loader hands it over.

    ``phrases`` match on word boundaries after both sides are normalised (see
    ``normalise_text``). ``patterns`` are RE2 regular expressions (no look-around, no
    back-references) matched case-insensitively against the normalised text; their accents are
    stripped the same way. ``examples`` are customer messages of this type for the model.
    ``priority`` runs from 1 (most urgent) to 5.
    """

    name: str
    impact: Impact
    priority: int | None
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an issue type needs a name")
        if self.name == UNKNOWN:
            raise ValueError(f"{UNKNOWN!r} is what the router answers when no type fits")
        if self.impact not in IMPACTS:
            raise ValueError(f"issue type {self.name!r}: impact must be one of {IMPACTS}")
        if self.priority is not None and (
            isinstance(self.priority, bool) or not 1 <= self.priority <= 5
        ):
            raise ValueError(f"issue type {self.name!r}: priority must be 1 (urgent) to 5")
        for field_name in ("phrases", "patterns", "examples"):
            value: Any = getattr(self, field_name)
            # A lone string would otherwise turn into a tuple of its characters; a list from a
            # loader becomes a tuple, so that the spec stays hashable and immutable.
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise TypeError(f"issue type {self.name!r}: {field_name} must be strings")
            object.__setattr__(self, field_name, tuple(value))
        for phrase in self.phrases:
            if not normalise_text(phrase):
                raise ValueError(f"issue type {self.name!r}: empty phrase {phrase!r}")


@dataclass(frozen=True, slots=True)
class Classification:
    """The issue type the router decided for one message, and why.

    ``confidence`` is 1.0 for an explicit hit; for the model it is the calibrated probability,
    scaled down when the examples cover few of the message's words and capped at
    ``SPLIT_VIEWS_CONFIDENCE`` when its word and character n-grams favour different types.
    ``evidence`` is the matched text for a phrase or pattern, the word n-gram that counted
    most for a model decision, and for ``unknown`` the model's best guess with its probability
    and word coverage (for explanations and for tuning the threshold). ``impact`` and
    ``priority`` are the type's, ``None`` for ``unknown``.
    """

    issue_type: str
    confidence: float
    matched_by: MatchedBy
    evidence: str | None
    impact: Impact | None
    priority: int | None


@dataclass(frozen=True, slots=True)
class _ToScore:
    """A message the rules left to the model: its normalised core, tokens and word coverage."""

    text: str
    tokens: list[str]
    coverage: float


@dataclass(frozen=True, slots=True)
class BuildStats:
    """What a build cost and produced, for the log line at configuration load and hot reload."""

    seconds: float
    issue_types: int
    model_types: int
    examples: int
    noisy_examples: int
    vocabulary: int
    word_features: int
    char_features: int
    known_words: int
    phrases: int
    patterns: int
    cv_folds: int
    temperature: float | None


@dataclass(frozen=True, slots=True)
class _Rule:
    issue_type: str
    kind: Literal["pattern", "phrase"]
    source: str
    regex: Any  # a compiled re2 regex; the binding ships no type information


def _rule_order(spec_index: int, spec: IssueTypeSpec) -> tuple[int, int]:
    # The most urgent type wins when several match, then the one listed first.
    return (spec.priority if spec.priority is not None else 6, spec_index)


class _ExplicitMatcher:
    """Every phrase and pattern of every type in one RE2 set, searched in one pass.

    The set only says which rules matched; the evidence comes from running the single winning
    rule's own regex, so the cost per message stays independent of the number of rules.
    """

    def __init__(self, specs: Sequence[IssueTypeSpec]) -> None:
        options = re2_options()
        ordered = sorted(enumerate(specs), key=lambda item: _rule_order(*item))
        self._rules: list[_Rule] = []
        self._set: Any = re2.Set.SearchSet(options)
        for _, spec in ordered:
            for pattern in spec.patterns:
                problem = pattern_error(pattern)
                if problem is not None:
                    raise ValueError(f"issue type {spec.name!r}: {problem}")
                self._add(spec.name, "pattern", pattern, fold_marks(pattern))
            for phrase in spec.phrases:
                body = re2.escape(normalise_text(phrase))
                # RE2 has no look-behind, so the neighbours are consumed and the phrase is a
                # group; \pL and \pN keep the boundary right for every script, unlike \b.
                self._add(
                    spec.name, "phrase", phrase, f"(?:^|[^\\pL\\pN_])({body})(?:[^\\pL\\pN_]|$)"
                )
        if self._rules:
            self._set.Compile()

    def _add(
        self, issue_type: str, kind: Literal["pattern", "phrase"], written: str, source: str
    ) -> None:
        regex = re2.compile(source, re2_options())
        index = self._set.Add(source)
        assert index == len(self._rules), "the set numbers rules in the order they are added"
        self._rules.append(_Rule(issue_type, kind, written, regex))

    @property
    def counts(self) -> tuple[int, int]:
        """(phrases, patterns) compiled into the set."""
        phrases = sum(rule.kind == "phrase" for rule in self._rules)
        return phrases, len(self._rules) - phrases

    def match(self, text: str) -> tuple[_Rule, str] | None:
        """The winning rule and the text it matched, or ``None``."""
        if not self._rules:
            return None
        hits = self._set.Match(text)
        if not hits:
            return None
        rule = self._rules[min(hits)]
        found = rule.regex.search(text)
        if found is None:  # pragma: no cover - the set and the regex agree by construction
            return rule, rule.source
        return rule, found.group(1 if rule.kind == "phrase" else 0)


def _char_wb_ngrams(text: str, low: int, high: int) -> Iterable[str]:
    """The n-grams scikit-learn's ``char_wb`` analyzer yields, in the same way.

    A word shorter than n yields itself padded once, and no longer n-grams.
    """
    for word in text.split():
        padded = f" {word} "
        length = len(padded)
        for n in range(low, high + 1):
            if length <= n:
                yield padded
                break
            for offset in range(length - n + 1):
                yield padded[offset : offset + n]


def _word_ngrams(tokens: Sequence[str]) -> Iterable[str]:
    yield from tokens
    for left, right in itertools.pairwise(tokens):
        yield f"{left} {right}"


def _single_deletions(word: str) -> Iterable[str]:
    return (word[:i] + word[i + 1 :] for i in range(len(word)))


@dataclass(frozen=True, slots=True)
class _Rows:
    """One block's tf-idf features of several texts, laid out as a sparse matrix of the texts
    that have any (``filled``): the ``k``-th of them owns ``lengths[k]`` entries of
    ``columns`` and ``values`` from ``starts[k]`` on."""

    filled: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]
    lengths: npt.NDArray[np.intp]
    columns: npt.NDArray[np.intp]
    values: FloatArray


class _Block:
    """One vectorizer's share of the linear model, laid out for scoring a few messages."""

    def __init__(self, vectorizer: Any, coef: FloatArray) -> None:
        self.index: dict[str, int] = vectorizer.vocabulary_
        self.idf: FloatArray = np.asarray(vectorizer.idf_, dtype=np.float64)
        # One row per feature: fancy indexing by the messages' features gives a small matrix.
        self.weights: FloatArray = np.ascontiguousarray(coef.T, dtype=np.float64)
        self.names: list[str] = [""] * len(self.index)
        for name, column in self.index.items():
            self.names[column] = name

    def rows(self, texts: Iterable[Iterable[str]]) -> _Rows:
        """The features of each text's n-grams.

        Mirrors TfidfVectorizer(sublinear_tf=True, norm="l2"): 1 + log(count), times idf,
        scaled to unit length over the features the vocabulary knows.
        """
        index = self.index
        filled: list[int] = []
        starts: list[int] = []
        lengths: list[int] = []
        columns: list[int] = []
        counts: list[int] = []
        for n, grams in enumerate(texts):
            row: dict[int, int] = {}
            for gram in grams:
                column = index.get(gram)
                if column is not None:
                    row[column] = row.get(column, 0) + 1
            if row:
                filled.append(n)
                starts.append(len(columns))
                lengths.append(len(row))
                columns.extend(row)
                counts.extend(row.values())
        rows = _Rows(
            filled=np.array(filled, dtype=np.intp),
            starts=np.array(starts, dtype=np.intp),
            lengths=np.array(lengths, dtype=np.intp),
            columns=np.array(columns, dtype=np.intp),
            values=np.array(counts, dtype=np.float64),
        )
        if filled:
            values = (np.log(rows.values) + 1.0) * self.idf[rows.columns]
            # Each text's sum is reduced on its own: a text scores the same in any batch.
            norms = np.sqrt(np.add.reduceat(values * values, rows.starts))
            rows.values[:] = values / np.repeat(norms, rows.lengths)
        return rows

    def add_scores(self, rows: _Rows, scores: FloatArray) -> None:
        """Add the decision values of ``rows`` into ``scores`` (a row per text)."""
        for first in range(0, len(rows.filled), _SCORE_CHUNK):
            last = min(first + _SCORE_CHUNK, len(rows.filled)) - 1
            start, stop = rows.starts[first], rows.starts[last] + rows.lengths[last]
            weighted = rows.values[start:stop, None] * self.weights[rows.columns[start:stop]]
            starts = rows.starts[first : last + 1] - start
            scores[rows.filled[first : last + 1]] += np.add.reduceat(weighted, starts, axis=0)


def _grouped_folds(
    keys: Sequence[tuple[str, str]], *, folds: int, seed: int
) -> list[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """Stratified cross-validation folds that never split a group: the (label, group) keys are
    dealt into folds by their label, and each text follows its key."""
    from sklearn.model_selection import StratifiedKFold  # lazily: see ExampleModel.fit

    names = list(dict.fromkeys(keys))
    dealt = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(
        np.zeros(len(names)), [label for label, _ in names]
    )
    fold_of: dict[tuple[str, str], int] = {}
    for fold, (_, held) in enumerate(dealt):
        for index in held:
            fold_of[names[index]] = fold
    assigned = np.fromiter((fold_of[key] for key in keys), dtype=np.intp, count=len(keys))
    return [
        (np.flatnonzero(assigned != fold), np.flatnonzero(assigned == fold))
        for fold in range(folds)
    ]


class ExampleModel:
    """The fitted example model: the scikit-learn pipeline and its lean scoring path.

    ``probabilities`` is what the router calls per message; ``reference_probabilities`` runs
    the scikit-learn pipeline itself and exists to check that both agree.
    """

    def __init__(self, features: Any, calibrated: Any, *, cv_folds: int) -> None:
        self.cv_folds = cv_folds
        self._features = features
        self._calibrated = calibrated
        pair = calibrated.calibrated_classifiers_[0]
        svm = pair.estimator
        self.temperature: float = 1.0 / float(pair.calibrators[0].beta_)
        self._beta = float(pair.calibrators[0].beta_)
        self.classes: tuple[str, ...] = tuple(str(label) for label in calibrated.classes_)
        word, char = (transformer for _, transformer in features.transformer_list)
        coef = np.asarray(svm.coef_, dtype=np.float64)
        n_word = len(word.vocabulary_)
        self._word = _Block(word, coef[:, :n_word])
        self._char = _Block(char, coef[:, n_word:])
        self._char_range: tuple[int, int] = char.ngram_range
        self._intercept: FloatArray = np.asarray(svm.intercept_, dtype=np.float64)
        self.known_words: frozenset[str] = frozenset(
            term for term in word.vocabulary_ if " " not in term
        )
        self._near_known: frozenset[str] = frozenset(
            deletion
            for term in self.known_words
            if len(term) >= _FUZZY_MIN_LEN - 1
            for deletion in _single_deletions(term)
        )

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as the fitted scikit-learn objects; the lean scoring path is rebuilt from
        them (``services.router.model_cache`` keeps fitted models on disk)."""
        return (_restored_model, (self._features, self._calibrated, self.cv_folds))

    @classmethod
    def fit(
        cls, texts: Sequence[str], labels: Sequence[str], groups: Sequence[str], *, seed: int
    ) -> ExampleModel:
        """Fit on normalised ``texts``; at least two labels, each with two or more groups.

        Texts of one group (an example, its repeats and its noisy copy) fall into the same
        calibration fold. scikit-learn is imported here, not with the module: importing it
        costs about a second of CPU, and a configuration without examples never fits a model.
        """
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion
        from sklearn.svm import LinearSVC

        keys = list(zip(labels, groups, strict=True))
        counts: dict[str, int] = {}
        for label, _ in set(keys):
            counts[label] = counts.get(label, 0) + 1
        folds = min(_MAX_FOLDS, *counts.values())
        features = FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(
                        lowercase=False,
                        token_pattern=_TOKEN.pattern,
                        ngram_range=(1, 2),
                        sublinear_tf=True,
                    ),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        lowercase=False, analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True
                    ),
                ),
            ]
        )
        matrix = features.fit_transform(list(texts))
        calibrated = CalibratedClassifierCV(
            LinearSVC(C=_SVM_C, random_state=seed, max_iter=_SVM_MAX_ITER),
            method="temperature",
            cv=_grouped_folds(keys, folds=folds, seed=seed),
            ensemble=False,
        )
        calibrated.fit(matrix, np.asarray(labels))
        return cls(features, calibrated, cv_folds=folds)

    @property
    def word_features(self) -> int:
        return len(self._word.index)

    @property
    def char_features(self) -> int:
        return len(self._char.index)

    def coverage(self, tokens: Sequence[str]) -> float:
        """The share of the message's words that the examples know, allowing one typo.

        Tokens with digits (order numbers, dates) are left out. A message with no words left
        has coverage 0: there is nothing the examples could vouch for.
        """
        words = [token for token in tokens if not _DIGIT.search(token)]
        if not words:
            return 0.0
        # Each distinct word is looked up once: junk tends to repeat itself.
        known = {word for word in set(words) if self._is_known(word)}
        return sum(word in known for word in words) / len(words)

    def _is_known(self, word: str) -> bool:
        known = self.known_words
        if word in known:
            return True
        if len(word) >= _FUZZY_MIN_LEN:
            if word in self._near_known:
                return True
            near = self._near_known
            if any(d in known or d in near for d in _single_deletions(word)):
                return True
        if len(word) >= _SPLIT_MIN_LEN:
            return any(word[:i] in known and word[i:] in known for i in range(2, len(word) - 1))
        return False

    def scores_many(
        self, messages: Sequence[tuple[str, Sequence[str]]]
    ) -> tuple[FloatArray, list[str | None], npt.NDArray[np.bool_]]:
        """Probabilities per class, a row per message (a normalised text and its tokens), each
        message's evidence (the word n-gram that added most to its winning class) and whether
        its views split: the word and character n-grams favour different types, or no word
        n-gram is known.

        Every sum runs within one message, so a message scores the same alone as in any batch.
        """
        low, high = self._char_range
        words = self._word.rows(_word_ngrams(tokens) for _, tokens in messages)
        chars = self._char.rows(_char_wb_ngrams(text, low, high) for text, _ in messages)
        by_words = np.zeros((len(messages), len(self._intercept)))
        by_chars = np.zeros_like(by_words)
        self._word.add_scores(words, by_words)
        self._char.add_scores(chars, by_chars)
        decision = self._intercept + by_words
        decision += by_chars
        split = _favoured(by_words) != _favoured(by_chars)
        wordless = np.ones(len(messages), dtype=np.bool_)
        wordless[words.filled] = False
        probabilities = self._softmax(decision)
        return probabilities, self._evidence(words, probabilities), split | wordless

    def scores(self, text: str, tokens: Sequence[str]) -> tuple[FloatArray, str | None]:
        """Probabilities per class for normalised ``text`` (and its tokens), and evidence."""
        probabilities, evidence, _ = self.scores_many([(text, tokens)])
        return probabilities[0], evidence[0]

    def probabilities(self, text: str) -> FloatArray:
        """Class probabilities for one normalised text by the lean path."""
        return self.scores(text, _TOKEN.findall(text))[0]

    def reference_probabilities(self, texts: Sequence[str]) -> FloatArray:
        """Class probabilities for normalised texts by the scikit-learn pipeline itself."""
        result: FloatArray = self._calibrated.predict_proba(self._features.transform(list(texts)))
        return result

    def _softmax(self, decision: FloatArray) -> FloatArray:
        # With two classes the SVM has one decision value, which calibration reads as (-d, d).
        logits = (
            np.concatenate([-decision, decision], axis=1) if decision.shape[1] == 1 else decision
        )
        logits = logits * self._beta
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        result: FloatArray = exp / exp.sum(axis=1, keepdims=True)
        return result

    def _evidence(self, words: _Rows, probabilities: FloatArray) -> list[str | None]:
        """Per message, the word n-gram that pulled most towards its winning class, if any."""
        evidence: list[str | None] = [None] * len(probabilities)
        if not len(words.filled):
            return evidence
        # A text without word features has no entries, so this lines up with every entry.
        best = np.repeat(probabilities[words.filled].argmax(axis=1), words.lengths)
        weights = self._word.weights
        if weights.shape[1] == 1:  # two classes: the weight pulls towards class 1
            pull = words.values * weights[words.columns, 0] * np.where(best == 1, 1.0, -1.0)
        else:
            pull = words.values * weights[words.columns, best]
        texts, starts = words.filled.tolist(), words.starts.tolist()
        for text, start, length in zip(texts, starts, words.lengths.tolist(), strict=True):
            strongest = start + int(np.argmax(pull[start : start + length]))
            if pull[strongest] > 0.0:
                evidence[text] = self._word.names[int(words.columns[strongest])]
        return evidence


def _favoured(decision: FloatArray) -> npt.NDArray[np.intp]:
    """The class each row of decision values favours (with two classes, one column: 1 when
    it pulls towards the second)."""
    if decision.shape[1] == 1:
        return (decision[:, 0] > 0).astype(np.intp)
    favoured: npt.NDArray[np.intp] = decision.argmax(axis=1)
    return favoured


def _restored_model(features: Any, calibrated: Any, cv_folds: int) -> ExampleModel:
    return ExampleModel(features, calibrated, cv_folds=cv_folds)


class IssueClassifier:
    """Decides the issue type of a message. Immutable once built; safe to share across tasks.

    Build a new one on every configuration load (``build``) and replace the old one whole.
    When several types' phrases or patterns match one message, the most urgent type (lowest
    priority number, no priority last) wins, then the type listed first.
    """

    def __init__(
        self,
        specs: Sequence[IssueTypeSpec],
        *,
        matcher: _ExplicitMatcher,
        model: ExampleModel | None,
        threshold: float,
        full_coverage: float,
        stats: BuildStats,
    ) -> None:
        self._specs = {spec.name: spec for spec in specs}
        self._matcher = matcher
        self._model = model
        self.threshold = threshold
        self.full_coverage = full_coverage
        self.stats = stats

    @classmethod
    def build(
        cls,
        specs: Sequence[IssueTypeSpec],
        *,
        threshold: float = 0.5,
        seed: int = 0,
        full_coverage: float = 0.6,
        models: ModelCache | None = None,
    ) -> IssueClassifier:
        """Compile the rules and fit the model from the specs' examples.

        Below ``threshold`` confidence the answer is ``unknown``. A model answer keeps its full
        probability when at least ``full_coverage`` of the message's words are known to the
        examples, and loses it in proportion below that. ``seed`` makes the build
        deterministic. The model needs two or more types with examples, each with at least
        two; with fewer, only phrases and patterns decide. ``models`` keeps fitted models for
        the next build on the same examples. Raises ``ValueError`` naming the type
        for a bad spec (duplicate name, invalid pattern, a single example).
        """
        if not 0.0 <= threshold <= 1.0:
            raise ValueError("threshold must be between 0 and 1")
        if not 0.0 < full_coverage <= 1.0:
            raise ValueError("full_coverage must be above 0 and at most 1")
        started = time.perf_counter()
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ValueError(f"issue type {spec.name!r} is defined twice")
            seen.add(spec.name)
        matcher = _ExplicitMatcher(specs)
        texts: list[str] = []
        labels: list[str] = []
        groups: list[str] = []
        noisy = 0
        for spec in specs:
            normalised = [text for text in map(normalise_text, spec.examples) if text]
            distinct = len(set(normalised))
            if 0 < distinct < MIN_EXAMPLES_PER_TYPE:
                raise ValueError(
                    f"issue type {spec.name!r} has {distinct} usable example; give at least "
                    f"{MIN_EXAMPLES_PER_TYPE} different ones, or none for a type decided by "
                    "phrases and patterns only"
                )
            variants = noisy_variants(normalised, share=_NOISY_SHARE, seed=seed)
            noisy += len(variants)
            groups.extend(normalised)
            groups.extend(original for original, _ in variants)
            normalised += [copy for _, copy in variants]
            texts.extend(text[:MAX_MODEL_CHARS] for text in normalised)
            labels.extend([spec.name] * len(normalised))
        model_types = len(set(labels))
        fit = models.fitted if models is not None else ExampleModel.fit
        model = fit(texts, labels, groups, seed=seed) if model_types >= 2 else None
        phrases, patterns = matcher.counts
        stats = BuildStats(
            seconds=time.perf_counter() - started,
            issue_types=len(specs),
            model_types=model_types if model else 0,
            examples=len(texts) - noisy if model else 0,
            noisy_examples=noisy if model else 0,
            vocabulary=(model.word_features + model.char_features) if model else 0,
            word_features=model.word_features if model else 0,
            char_features=model.char_features if model else 0,
            known_words=len(model.known_words) if model else 0,
            phrases=phrases,
            patterns=patterns,
            cv_folds=model.cv_folds if model else 0,
            temperature=model.temperature if model else None,
        )
        return cls(
            specs,
            matcher=matcher,
            model=model,
            threshold=threshold,
            full_coverage=full_coverage,
            stats=stats,
        )

    @property
    def specs(self) -> tuple[IssueTypeSpec, ...]:
        return tuple(self._specs.values())

    @property
    def model(self) -> ExampleModel | None:
        return self._model

    def classify(self, text: str) -> Classification:
        """The issue type of one message. Never raises for any string, however odd."""
        return self.classify_many([text])[0]

    def classify_many(self, texts: Sequence[str]) -> list[Classification]:
        """The issue type of each message, the model scoring together those the rules leave
        to it; each comes out exactly as ``classify`` gives it alone (this, for one text)."""
        first = [self._before_scoring(text) for text in texts]
        pending = [(n, item) for n, item in enumerate(first) if isinstance(item, _ToScore)]
        scored: dict[int, Classification] = {}
        if pending:
            assert self._model is not None  # only the model leaves a message to score
            probabilities, evidence, split = self._model.scores_many(
                [(item.text, item.tokens) for _, item in pending]
            )
            for (n, item), row, why, views_split in zip(
                pending, probabilities, evidence, split, strict=True
            ):
                scored[n] = self._from_scores(
                    self._model, item.coverage, row, why, views_split=bool(views_split)
                )
        return [
            item if isinstance(item, Classification) else scored[n] for n, item in enumerate(first)
        ]

    def _before_scoring(self, text: str) -> Classification | _ToScore:
        """The rules' answer, an answer without scoring, or what the model is to score."""
        normalised = normalise_text(text)
        if not normalised:
            return self._unknown(0.0, None)
        hit = self._matcher.match(normalised)
        if hit is not None:
            rule, matched_text = hit
            return self._decided(rule.issue_type, 1.0, rule.kind, matched_text)
        model = self._model
        if model is None:
            return self._unknown(0.0, None)
        normalised = normalise_text(message_core(text), MAX_MODEL_CHARS)
        tokens = _TOKEN.findall(normalised)
        coverage = model.coverage(tokens)
        if coverage == 0.0:
            # Nothing the examples know (another script, emoji, junk): skip the scoring.
            return self._unknown(0.0, "no word the examples know")
        return _ToScore(normalised, tokens, coverage)

    def _from_scores(
        self,
        model: ExampleModel,
        coverage: float,
        probabilities: FloatArray,
        evidence: str | None,
        *,
        views_split: bool,
    ) -> Classification:
        best = int(np.argmax(probabilities))
        probability = float(probabilities[best])
        confidence = probability * min(1.0, coverage / self.full_coverage)
        if views_split:
            confidence = min(confidence, SPLIT_VIEWS_CONFIDENCE)
        issue_type = model.classes[best]
        if confidence < self.threshold:
            return self._unknown(
                confidence,
                f"best guess {issue_type} at {probability:.2f}, {coverage:.0%} of words known",
            )
        return self._decided(issue_type, confidence, "model", evidence)

    def _decided(
        self, issue_type: str, confidence: float, matched_by: MatchedBy, evidence: str | None
    ) -> Classification:
        spec = self._specs[issue_type]
        return Classification(
            issue_type, confidence, matched_by, evidence, spec.impact, spec.priority
        )

    @staticmethod
    def _unknown(confidence: float, evidence: str | None) -> Classification:
        return Classification(UNKNOWN, confidence, "none", evidence, None, None)
