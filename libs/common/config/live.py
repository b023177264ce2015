"""Live reload: the configuration file and what a service builds from it, swapped only when a
changed file validates and builds, so an invalid edit leaves the service running."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from libs.common.config.line_marks import ConfigError, load_config
from libs.common.config.schema import Config
from libs.common.logs import get_logger

_log = get_logger(__name__)
T = TypeVar("T")


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
