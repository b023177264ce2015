"""Fitted models kept by what they were fitted on: the same examples give back the model a fit
would give, other examples or another seed fit again, and the directory must be private."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from services.router.issue_types import ExampleModel, IssueClassifier, IssueTypeSpec
from services.router.model_cache import KEPT, ModelCache, UnsafeCacheDirectory, fit_key
from tests.support.kafka import wait_until

SPECS = (
    IssueTypeSpec(
        name="refund",
        impact="shallow",
        priority=None,
        examples=("i want my money back", "refund my order please", "give me a refund now"),
    ),
    IssueTypeSpec(
        name="delivery",
        impact="shallow",
        priority=None,
        examples=("where is my parcel", "my package has not arrived", "track my delivery"),
    ),
)
TEXTS = ("can i get my money back", "the parcel never came", "hello")

Fit = Callable[..., ExampleModel]


@pytest.fixture
def fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the fits that really run."""
    counted: list[int] = []
    fit: Fit = ExampleModel.fit

    def counting(*args: object, **kwargs: object) -> ExampleModel:
        counted.append(1)
        return fit(*args, **kwargs)

    monkeypatch.setattr(ExampleModel, "fit", counting)
    return counted


def probabilities(classifier: IssueClassifier) -> list[tuple[str, float]]:
    return [(c.issue_type, c.confidence) for c in classifier.classify_many(TEXTS)]


def test_a_model_loaded_from_the_directory_scores_as_a_fresh_fit(
    tmp_path: Path, fits: list[int]
) -> None:
    fresh = IssueClassifier.build(SPECS)
    IssueClassifier.build(SPECS, models=ModelCache(tmp_path))
    assert len(fits) == 2
    loaded = IssueClassifier.build(SPECS, models=ModelCache(tmp_path))  # a new process's cache
    assert len(fits) == 2
    assert probabilities(loaded) == probabilities(fresh)
    assert loaded.model is not None
    assert fresh.model is not None
    assert np.array_equal(
        loaded.model.probabilities("my money back"), fresh.model.probabilities("my money back")
    )
    assert [path.suffix for path in tmp_path.iterdir()].count(".pickle") == 1


def test_a_reload_on_the_same_examples_keeps_the_model_in_memory(fits: list[int]) -> None:
    models = ModelCache()
    first = IssueClassifier.build(SPECS, models=models, threshold=0.3)
    second = IssueClassifier.build(SPECS, models=models, threshold=0.6)  # rules changed only
    assert len(fits) == 1
    assert second.model is first.model


def test_other_examples_or_another_seed_fit_again(tmp_path: Path, fits: list[int]) -> None:
    models = ModelCache(tmp_path)
    IssueClassifier.build(SPECS, models=models)
    IssueClassifier.build(SPECS, models=models, seed=1)
    longer = (*SPECS[1].examples, "my parcel is late")
    more = (SPECS[0], IssueTypeSpec("delivery", "shallow", None, examples=longer))
    IssueClassifier.build(more, models=models)
    assert len(fits) == 3
    assert [path.suffix for path in tmp_path.iterdir()].count(".pickle") == 3


def test_the_directory_keeps_the_models_used_last(tmp_path: Path, fits: list[int]) -> None:
    models = ModelCache(tmp_path)
    for seed in range(KEPT + 2):
        IssueClassifier.build(SPECS, models=models, seed=seed)
    assert len(list(tmp_path.glob("*.pickle"))) == KEPT
    # Seed 2 is loaded again (from the directory, by another cache), so it outlives 3.
    IssueClassifier.build(SPECS, models=ModelCache(tmp_path), seed=2)
    IssueClassifier.build(SPECS, models=models, seed=KEPT + 2)
    assert len(fits) == KEPT + 3
    IssueClassifier.build(SPECS, models=ModelCache(tmp_path), seed=2)
    assert len(fits) == KEPT + 3
    IssueClassifier.build(SPECS, models=ModelCache(tmp_path), seed=3)
    assert len(fits) == KEPT + 4


def test_an_unreadable_file_is_fitted_and_written_again(tmp_path: Path, fits: list[int]) -> None:
    fresh = IssueClassifier.build(SPECS, models=ModelCache(tmp_path))
    (cached,) = tmp_path.glob("*.pickle")
    cached.write_bytes(b"not a pickle")
    again = IssueClassifier.build(SPECS, models=ModelCache(tmp_path))
    assert len(fits) == 2
    assert probabilities(again) == probabilities(fresh)
    IssueClassifier.build(SPECS, models=ModelCache(tmp_path))
    assert len(fits) == 2  # the file written again is read


def test_the_key_names_every_input() -> None:
    texts, labels, groups = ["a b", "c d"], ["x", "y"], ["a b", "c d"]
    key = fit_key(texts, labels, groups, 0)
    assert fit_key(list(texts), list(labels), list(groups), 0) == key
    assert fit_key(texts, labels, groups, 1) != key
    assert fit_key(["a b", "c e"], labels, groups, 0) != key
    assert fit_key(texts, ["x", "x"], groups, 0) != key
    assert fit_key(texts, labels, ["a b", "a b"], 0) != key
    # Fields are delimited: moving text from one field into the next is another input.
    assert fit_key(["a", "b"], ["x", "y"], ["a", "b"], 0) != fit_key(
        ["a", "b"], ["x", "y"], ["ab", ""], 0
    )


async def test_a_second_process_waits_for_the_first_ones_fit_instead_of_repeating_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fitting, release = threading.Event(), threading.Event()
    fitted: list[int] = []
    fit: Fit = ExampleModel.fit

    def slow(*args: object, **kwargs: object) -> ExampleModel:
        fitted.append(1)
        fitting.set()
        release.wait(30)
        return fit(*args, **kwargs)

    monkeypatch.setattr(ExampleModel, "fit", slow)
    results: list[IssueClassifier] = []

    def build(models: ModelCache) -> None:
        results.append(IssueClassifier.build(SPECS, models=models))

    first = threading.Thread(target=build, args=(ModelCache(tmp_path),))
    first.start()
    assert fitting.wait(30)
    # Two caches in one process lock as two processes do (flock locks open files).
    second = threading.Thread(target=build, args=(ModelCache(tmp_path),))
    second.start()
    await wait_until(_waiting_for_a_lock, message="the second build waiting for the lock")
    release.set()
    first.join(30)
    second.join(30)
    assert len(fitted) == 1
    assert len(results) == 2
    assert probabilities(results[0]) == probabilities(results[1])


def _waiting_for_a_lock() -> bool:
    """A blocked flock shows in /proc/locks as a line with ``->``, naming the waiting pid."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and f" {os.getpid()} " in line for line in lines)


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_a_directory_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(UnsafeCacheDirectory, match="writable by other users"):
        ModelCache(shared)


def test_a_new_directory_is_made_private(tmp_path: Path) -> None:
    ModelCache(tmp_path / "a" / "models")
    assert (tmp_path / "a" / "models").stat().st_mode & 0o777 == 0o700
