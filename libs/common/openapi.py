"""The building blocks of the API documents each service describes itself with.

Each service with HTTP endpoints has an ``openapi`` module whose ``document()`` reads paths, size
limits and header names from the modules that enforce them, so a changed limit changes the
document; the parts every document shares (health routes, error bodies, Retry-After) are here.
``switchboard openapi`` (:mod:`tooling.openapi`) writes the documents to ``docs/openapi/``.
"""

from __future__ import annotations

from typing import Any, Final

import yaml

Document = dict[str, Any]
OPENAPI_VERSION: Final = "3.1.0"
BODY_LIMIT: Final = "x-max-body-bytes"
"""Extension on a request body: the largest body the handler reads before answering 413."""
SCHEMA_REF: Final = "#/components/schemas/{name}"
"""Where a document's named schemas live (OpenAPI and AsyncAPI alike)."""

ERROR_SCHEMA: Final = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}
ERROR_SCHEMA_REF: Final = {"$ref": "#/components/schemas/Error"}
RETRY_AFTER: Final = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    }
}


def error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR_SCHEMA_REF}},
    }


def unavailable(what: str) -> dict[str, Any]:
    return {"description": f"{what}; retry later (no body).", "headers": RETRY_AFTER}


def health_paths() -> dict[str, Any]:
    """``/healthz``, ``/readyz`` and ``/metrics`` (libs/common/health.py), on every service."""
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string"},
            "failures": {"type": "array", "items": {"type": "string"}},
        },
    }

    def check(summary: str, ok: str, failing: str) -> dict[str, Any]:
        return {
            "get": {
                "tags": ["health"],
                "summary": summary,
                "responses": {
                    "200": {
                        "description": ok,
                        "content": {"application/json": {"schema": status}},
                    },
                    "503": {
                        "description": failing,
                        "content": {"application/json": {"schema": status}},
                    },
                },
            }
        }

    return {
        "/healthz": check(
            "Liveness: the process makes progress.", "Alive.", "A liveness check failed."
        ),
        "/readyz": check(
            "Readiness: Kafka, Redis and the service's own parts answer.",
            "Ready for traffic.",
            "A dependency is not usable (the broker or Redis is down).",
        ),
        "/metrics": {
            "get": {
                "tags": ["health"],
                "summary": "Prometheus metrics (text exposition format).",
                "responses": {
                    "200": {
                        "description": "Every metric of the process.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }


def render(document: Document) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
