"""Fitted example models kept by what they were fitted on, so that the same examples are fitted
once.

Fitting the sample configuration's model takes about 11 s of CPU (11,000 examples, their noisy
copies, an SVM per calibration fold), and a router fits it at every start and every reload.
The fit is a pure function of its texts, labels, groups and seed, of the code that fits it
and of the libraries' versions, so a model fitted on the same inputs is the same model.
``ModelCache`` keeps:

- in memory, the last model fitted, so that a reload which changes rules, queues or business
  hours (but not the examples) swaps in at once;
- optionally on disk (``SWITCHBOARD_MODEL_CACHE``), the last few models by the SHA-256 of their
  inputs, so that a restarted router, or several routers sharing the directory, fit a set of
  examples once. A file lock per key makes a second process wait for the first one's fit
  instead of repeating it; a file that cannot be read is fitted and written again. Files are
  pickles, and a pickle runs code when it is loaded: the directory must be the
  service's own, and one that other users can write to, or that another user owns, is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from libs.common.logs import get_logger
from services.router import issue_types
from services.router.issue_types import ExampleModel

log = get_logger(__name__)

# Part of every key: a change to what is pickled, or to how, gives new file names.
_FORMAT: Final = "switchboard-example-model-1"
_FITTING_CODE: Final = Path(issue_types.__file__).read_bytes()
KEPT: Final = 4
"""Models a directory keeps (the sample's is 14 MB): the current examples, and a few earlier
sets to go back to."""


def fit_key(texts: Sequence[str], labels: Sequence[str], groups: Sequence[str], seed: int) -> str:
    """The hex SHA-256 naming a fit: its inputs, the source of the module that fits it (any edit
    there may change the model) and the versions of the libraries whose objects are pickled."""
    import sklearn  # lazily, like the fit itself: a configuration without examples needs neither

    digest = hashlib.sha256()
    for part in (_FORMAT, sklearn.__version__, np.__version__, str(seed)):
        digest.update(part.encode())
        digest.update(b"\x1e")
    digest.update(_FITTING_CODE)
    for text, label, group in zip(texts, labels, groups, strict=True):
        for field in (text, label, group):
            digest.update(field.encode())
            digest.update(b"\x1f")
        digest.update(b"\x1e")
    return digest.hexdigest()


class UnsafeCacheDirectory(ValueError):
    """The cache directory could hold a file somebody else wrote."""


class ModelCache:
    """Fitted ``ExampleModel``s by ``fit_key``: the last one in memory, the last ``KEPT`` in
    ``directory`` when one is given. Safe to share between threads (a reload builds off the
    event loop)."""

    def __init__(self, directory: Path | None = None) -> None:
        if directory is not None:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _check_private(directory)
        self._directory = directory
        self._lock = threading.Lock()
        self._last: tuple[str, ExampleModel] | None = None

    def fitted(
        self, texts: Sequence[str], labels: Sequence[str], groups: Sequence[str], *, seed: int
    ) -> ExampleModel:
        """The model ``ExampleModel.fit`` gives for these arguments, fitted only if no copy is
        kept."""
        key = fit_key(texts, labels, groups, seed)

        def fit() -> ExampleModel:
            return ExampleModel.fit(texts, labels, groups, seed=seed)

        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
            directory = self._directory
            model = _from_directory(directory, key, fit) if directory is not None else fit()
            self._last = (key, model)
            return model


def _from_directory(directory: Path, key: str, fit: Callable[[], ExampleModel]) -> ExampleModel:
    """The model stored under ``key``, or ``fit()`` stored there, one process at a time."""
    path = directory / f"{key}.pickle"
    with open(directory / f"{key}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process fitting the same key: wait for it
        try:
            with open(path, "rb") as handle:  # a private directory: see _check_private
                model: ExampleModel = pickle.load(handle)
        except FileNotFoundError:
            pass
        except Exception as exc:  # a cache never stops a start: fit, and write it anew
            log.warning("cached example model unreadable; fitting", path=str(path), error=repr(exc))
        else:
            _mark_used(path)
            log.info("example model loaded from the cache", path=str(path))
            return model
        model = fit()
        # Written whole under another name, then renamed: a crash leaves no half file.
        handle_fd, temporary = tempfile.mkstemp(dir=directory, suffix=".partial")
        try:
            with os.fdopen(handle_fd, "wb") as handle:
                pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _mark_used(path)
        log.info("example model fitted and cached", path=str(path))
    _prune(directory)
    return model


def _mark_used(path: Path) -> None:
    """Stamp the file as used now, by this process's clock, to the nanosecond. The kernel's
    own stamp on a write ticks every few milliseconds (files used in one tick tie), and under
    libfaketime it disagreed with the shifted stamp ``utime`` gave a loaded file: at -400 days
    ``make test-clock`` pruned the model just loaded instead of the oldest."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _prune(directory: Path) -> None:
    """Delete all but the ``KEPT`` models written or loaded last: each is megabytes, and
    every edit of the examples writes another."""
    used: list[tuple[int, Path]] = []
    for path in directory.glob("*.pickle"):
        with contextlib.suppress(FileNotFoundError):  # pruned by another process meanwhile
            used.append((path.stat().st_mtime_ns, path))
    for _, stale in sorted(used, reverse=True)[KEPT:]:
        stale.unlink(missing_ok=True)


def _check_private(directory: Path) -> None:
    """Refuse a directory another user owns or may write to: its files are unpickled."""
    status = directory.stat()
    if status.st_uid != os.getuid():
        raise UnsafeCacheDirectory(
            f"model cache {directory} belongs to user {status.st_uid}, not to this process's"
        )
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeCacheDirectory(
            f"model cache {directory} is writable by other users (mode "
            f"{stat.S_IMODE(status.st_mode):o}); make it 700"
        )
