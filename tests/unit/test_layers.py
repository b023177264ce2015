"""The layers a reader sees in the folders are the layers the imports keep.

``libs/domain`` is pure logic (business time, deadlines, references, text) and imports no other
part of Switchboard; ``libs/common`` is the runtime spine every service runs on; ``libs/contracts``
holds what two services agree on. Services import libs only, never each other; ``tooling``
(CLI, dev stack, sandboxes, simulator, hub client) may import anything, and nothing imports it
but tooling, tests and benchmarks.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAY_IMPORT = {
    "libs.domain": {"libs.domain"},
    "libs.common": {"libs.domain", "libs.common"},
    "libs.contracts": {"libs.domain", "libs.common", "libs.contracts"},
}
"""Layer -> the layers its modules may import from (besides third-party packages)."""
OURS = ("libs", "services", "tooling")


def imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return {m for m in modules if m.split(".")[0] in OURS}


def allowed(source: str, target: str) -> bool:
    if source.startswith("services."):
        service = ".".join(source.split(".")[:2])
        return target.startswith(("libs.", f"{service}.")) or target == service
    for layer, layers in MAY_IMPORT.items():
        if source == layer or source.startswith(f"{layer}."):
            return any(target == ok or target.startswith(f"{ok}.") for ok in layers)
    return True  # tooling may import anything


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def test_imports_stay_in_their_layer() -> None:
    sources = sorted(p for folder in ("libs", "services") for p in (ROOT / folder).rglob("*.py"))
    assert len(sources) > 100
    wrong = {
        module_name(path): sorted(
            t for t in imported_modules(path) if not allowed(module_name(path), t)
        )
        for path in sources
    }
    assert {source: targets for source, targets in wrong.items() if targets} == {}


def test_the_rule_catches_what_crosses_a_layer() -> None:
    assert not allowed("services.router.route", "services.hub.protocol")
    assert not allowed("services.hub.app", "tooling.devstack")
    assert not allowed("libs.common.config", "libs.contracts.surveys")
    assert not allowed("libs.domain.calendar", "libs.common.settings")
    assert allowed("services.router.route", "libs.domain.calendar")
    assert allowed("tooling.cli", "services.router.replay")
