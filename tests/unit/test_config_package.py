"""The configuration is a package split along what each part does (models, loading with line
marks, cross-checks, live reload), imported from one place, and ``switchboard config check``
reports through it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import libs.common.config as config
from tooling.cli import main

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("schema", "line_marks", "checks", "live")


def test_the_package_is_split_along_what_each_part_does() -> None:
    assert hasattr(config, "__path__"), "libs.common.config is one module, not a package"
    for part in PARTS:
        assert importlib.import_module(f"libs.common.config.{part}").__doc__


def test_every_public_name_is_imported_from_the_package() -> None:
    assert {"Config", "ConfigError", "LiveConfig", "load_config", "parse_config"} <= set(
        config.__all__
    )
    for name in config.__all__:
        assert getattr(config, name) is not None


def test_config_check_accepts_the_sample_and_names_the_line_of_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "check", str(ROOT / "config" / "store.yaml")]) == 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("queues:\n  desk:\n    calendar: nowhere\nrules: []\n")
    assert main(["config", "check", str(broken)]) == 1
    assert f"{broken}:3:" in capsys.readouterr().err
