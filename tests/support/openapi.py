"""Comparing a service's OpenAPI document with the routes its aiohttp app registers."""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web


def registered_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) of every route the app registers.

    aiohttp adds a HEAD route beside each GET; HEAD is GET without the body, so it is not
    documented separately (checked: every HEAD has its GET).
    """
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    heads = {(m, p) for m, p in routes if m == hdrs.METH_HEAD}
    assert heads == {(hdrs.METH_HEAD, p) for m, p in routes if m == hdrs.METH_GET}
    return routes - heads


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
