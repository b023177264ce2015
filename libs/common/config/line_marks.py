"""Loading with line numbers: the YAML file is composed once to mark where every node and
key sits, so each problem pydantic or the cross-checks find is reported at its line and
column (``switchboard config check FILE``, a refused reload)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
