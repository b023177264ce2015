"""Scraping a running service's ``/metrics`` the way Prometheus does."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tooling.devstack import ServiceProcess


async def scraped_names(http: aiohttp.ClientSession, process: ServiceProcess) -> set[str]:
    """The metric names a service exposes (counters with ``_total``, as documented)."""
    async with http.get(f"{process.url}/metrics") as response:
        assert response.status == 200, process.name
        exposition = await response.text()
    families = text_string_to_metric_families(exposition)
    return {f.name + ("_total" if f.type == "counter" else "") for f in families}


async def scraped_values(http: aiohttp.ClientSession, url: str, name: str) -> dict[str, float]:
    """A gauge's values on the ``/metrics`` of the service at ``url``, by its ``queue`` label."""
    async with http.get(f"{url}/metrics") as response:
        assert response.status == 200, url
        exposition = await response.text()
    return {
        sample.labels.get("queue", ""): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    }
