"""Loading with line numbers: the YAML file is composed once to mark where every node and
key sits, so each problem pydantic or the cross-checks find is reported at its line and
column (``switchboard config check FILE``, a refused reload).

Every problem is reported in one run: when some entries fail validation, the cross-checks
still run on the rest (:class:`_Pruned`), so a rule naming a missing queue shows beside a bad
duration, not after it is fixed. A cross-check finding that names a left-out entry is dropped:
that entry's own problem is already reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin

import yaml
from pydantic import ValidationError

from libs.common.config.checks import Path_, cross_check
from libs.common.config.schema import Config


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


MAX_PRUNING_ROUNDS = 3
"""Validations of what is left after leaving out the failing entries (leaving one out can
make its section fail, e.g. a required one left empty) before giving up the cross-checks."""


@dataclass
class _Pruned:
    """What was left out of the data to validate the rest: a failing entry of a collection
    (a queue, a rule), or a whole section whose fields go together (``surveys``); the names of
    the entries left out, and for each top-level list the original index of every item kept."""

    names: set[str] = field(default_factory=set)
    origins: dict[str, list[int]] = field(default_factory=dict)

    def without(self, data: dict[str, Any], paths: list[Path_]) -> dict[str, Any]:
        """``data`` without the entries (or whole sections) that ``paths`` point into."""
        data = dict(data)
        entries: dict[str, set[object]] = {}
        for path in paths:
            if len(path) >= 2 and _is_collection(str(path[0])):
                entries.setdefault(str(path[0]), set()).add(path[1])
            elif path:
                data.pop(str(path[0]), None)
        for section, doomed in entries.items():
            value = data.get(section)
            if isinstance(value, dict):
                data[section] = {k: v for k, v in value.items() if k not in doomed}
                self.names.update(str(name) for name in doomed)
            elif isinstance(value, list):
                origins = self.origins.get(section, list(range(len(value))))
                kept = [i for i in range(len(value)) if i not in doomed]
                data[section] = [value[i] for i in kept]
                self.origins[section] = [origins[i] for i in kept]
        return data

    def origin(self, path: Path_) -> Path_:
        """``path`` in the validated rest as a path in the file."""
        origins = self.origins.get(str(path[0])) if path else None
        if origins is None or len(path) < 2 or not isinstance(path[1], int):
            return path
        return (path[0], origins[path[1]], *path[2:])

    def hides(self, message: str) -> bool:
        """Whether a finding names an entry left out (whose own problem is reported)."""
        return any(repr(name) in message for name in self.names)


def _is_collection(section: str) -> bool:
    """Whether a top-level section holds independent entries (named, or a list)."""
    field_info = Config.model_fields.get(section)
    return field_info is not None and get_origin(field_info.annotation) in (dict, list)


def _valid_rest(data: dict[str, Any], exc: ValidationError) -> tuple[Config | None, _Pruned]:
    """The configuration without the entries that failed, and what was left out (None when
    the rest does not validate either)."""
    pruned = _Pruned()
    for _ in range(MAX_PRUNING_ROUNDS):
        data = pruned.without(data, [_pydantic_path(e["loc"]) for e in exc.errors()])
        try:
            return Config.model_validate(data), pruned
        except ValidationError as again:
            exc = again
    return None, pruned


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
    pruned = _Pruned()
    try:
        config: Config | None = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = _pydantic_path(err["loc"])
            line, column = marks.locate(path, key=err["type"] == "extra_forbidden")
            message = (
                f"unknown key {path[-1]!r}" if err["type"] == "extra_forbidden" else err["msg"]
            )
            where = ".".join(str(p) for p in path) or "(top)"
            problems.append(Problem(line, column, f"{where}: {message}"))
        config, pruned = _valid_rest(data, exc)
    for path, message in cross_check(config, base_dir=Path(source).parent) if config else ():
        if pruned.hides(message):
            continue
        path = pruned.origin(path)
        line, column = marks.locate(path)
        where = ".".join(str(p) for p in path)
        problems.append(Problem(line, column, f"{where}: {message}"))
    if problems or config is None:
        raise ConfigError(source, sorted(problems, key=lambda p: (p.line, p.column)))
    return config


def load_config(path: Path | str) -> Config:
    """Read and validate a configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [Problem(1, 1, f"cannot read the file: {exc}")]) from None
    return parse_config(text, path)
