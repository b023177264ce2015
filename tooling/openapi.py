"""``switchboard openapi``: every service's OpenAPI document, written to ``docs/openapi/``.

A test fails while a checked-in document differs from what the code builds or from the routes
the app registers (tests/integration/{ingest,hub}/test_openapi.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

from libs.common.openapi import Document, render
from services.hub import openapi as hub
from services.ingest import openapi as ingest

DOCUMENTS: Final[dict[str, Callable[[], Document]]] = {
    "ingest": ingest.document,
    "hub": hub.document,
}
"""Service -> the function that builds its OpenAPI document."""
DEFAULT_DIRECTORY: Final = Path("docs/openapi")
"""Where the documents are checked in, relative to the repository root."""


def build(service: str) -> Document:
    return DOCUMENTS[service]()


def write_all(directory: Path = DEFAULT_DIRECTORY) -> list[Path]:
    """Write every service's document as ``{service}.yaml``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for service in DOCUMENTS:
        path = directory / f"{service}.yaml"
        path.write_text(render(build(service)), encoding="utf-8")
        written.append(path)
    return written
