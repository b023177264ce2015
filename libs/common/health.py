"""``/healthz`` (the process makes progress), ``/readyz`` (dependencies answer), ``/metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[None]]
"""A check raises (or times out) when its dependency is not usable."""

LIVENESS_CHECKS = web.AppKey("liveness_checks", list[Check])
READINESS_CHECKS = web.AppKey("readiness_checks", list[Check])
CHECK_TIMEOUT = 2.0


async def _run(checks: list[Check]) -> list[str]:
    failures = []
    for check in checks:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
        except Exception as exc:
            failures.append(f"{getattr(check, '__name__', 'check')}: {type(exc).__name__} {exc}")
    return failures


async def healthz(request: web.Request) -> web.Response:
    failures = await _run(request.app[LIVENESS_CHECKS])
    if failures:
        return web.json_response({"status": "unhealthy", "failures": failures}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    failures = await _run(request.app[READINESS_CHECKS])
    if failures:
        return web.json_response({"status": "not ready", "failures": failures}, status=503)
    return web.json_response({"status": "ready"})


async def metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def add_health_routes(app: web.Application) -> None:
    app.setdefault(LIVENESS_CHECKS, [])
    app.setdefault(READINESS_CHECKS, [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
