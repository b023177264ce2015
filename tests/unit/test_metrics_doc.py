"""The README's metric table lists exactly the metrics the code defines."""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.metrics import MetricWrapperBase

import libs.common.metrics as metrics

README = Path(__file__).parents[2] / "README.md"


def exposed_names() -> set[str]:
    """Names as they appear on ``/metrics`` (counters with ``_total``)."""
    names = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = set(re.findall(r"^\| `(switchboard_[a-z_]+)` \|", README.read_text(), re.M))
    assert documented == exposed_names()
