"""Lua that Redis runs is code in ``.lua`` files: each says its KEYS and ARGV in a header,
compiles on the real Redis, is loaded by its module and ships in the wheel."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("libs", "services")
SCRIPTS = sorted(path for layer in LAYERS for path in (ROOT / layer).rglob("lua/*.lua"))
LOADED = re.compile(r"""load_script\(\s*"([\w.]+)",\s*"([\w.]+\.lua)"\s*\)""")


def _package_and_name(script: Path) -> tuple[str, str]:
    """``services/router/lua/place_message.lua`` -> (``services.router``, ``place_message.lua``)."""
    package = script.parent.parent.relative_to(ROOT)
    return ".".join(package.parts), script.name


def _python_sources() -> list[Path]:
    return [path for layer in LAYERS for path in (ROOT / layer).rglob("*.py")]


def test_no_lua_is_left_in_python_strings() -> None:
    assert SCRIPTS, "no .lua scripts found"
    holding = [p.relative_to(ROOT) for p in _python_sources() if "redis.call(" in p.read_text()]
    assert holding == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_script_starts_with_its_keys_and_argv(script: Path) -> None:
    header = []
    for line in script.read_text().splitlines():
        if not line.startswith("--"):
            break
        header.append(line)
    assert any(line.startswith("-- KEYS") for line in header), f"{script.name}: no KEYS line"
    assert any(line.startswith("-- ARGV") for line in header), f"{script.name}: no ARGV line"


def test_every_script_is_loaded_and_every_load_names_a_script() -> None:
    loads = {
        match.groups() for path in _python_sources() for match in LOADED.finditer(path.read_text())
    }
    assert loads == {_package_and_name(script) for script in SCRIPTS}


def test_every_script_ships_as_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data: dict[str, list[str]] = pyproject["tool"]["setuptools"]["package-data"]
    for script in SCRIPTS:
        package, name = _package_and_name(script)
        globs = package_data.get(package, []) + package_data.get("*", [])
        assert any(fnmatch(f"lua/{name}", glob) for glob in globs), f"{package}: lua/{name}"


async def test_every_script_compiles_on_redis(redis: Redis) -> None:
    for script in SCRIPTS:
        sha = await redis.script_load(script.read_text())
        assert await redis.script_exists(sha) == [True], script.name
