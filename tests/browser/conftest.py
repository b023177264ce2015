"""What the browser tests share: Debian's Chromium (installed when missing and root), its
headless flags, where screenshots go."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UI_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed by scripts/system-deps.sh when missing and we are root."""
    if not CHROMIUM.exists():
        if os.geteuid() != 0:
            pytest.skip("/usr/bin/chromium is missing and cannot be installed here (not root)")
        subprocess.run(["sh", str(ROOT / "scripts" / "system-deps.sh")], check=True)
    assert CHROMIUM.exists(), "scripts/system-deps.sh did not install /usr/bin/chromium"
    return CHROMIUM
