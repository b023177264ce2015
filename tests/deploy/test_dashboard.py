"""The Grafana dashboard asks only for metrics the services export, with labels they carry."""

from __future__ import annotations

import re
from typing import Any

import pytest
from prometheus_client import Counter, Gauge, Histogram, Summary
from prometheus_client.metrics import MetricWrapperBase

from libs.common import metrics
from tests.deploy.manifests import REPO, load_json

DASHBOARD = REPO / "deploy" / "grafana" / "switchboard.json"
# Labels Prometheus adds to every scraped series (scrape target and the Kubernetes discovery).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "container", "endpoint", "le"}
METRIC_NAME = re.compile(r"\bswitchboard_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b(switchboard_[a-z0-9_]+)\{([^}]*)\}")
MATCHER_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _exported() -> dict[str, set[str]]:
    """Every series name the registry can expose, with the labels of its metric."""
    series: dict[str, set[str]] = {}
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        labels = set(value._labelnames)
        (family,) = value.describe()
        if isinstance(value, Counter):
            names = [f"{family.name}_total"]
        elif isinstance(value, Histogram):
            names = [f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"]
        elif isinstance(value, Summary):
            names = [f"{family.name}_count", f"{family.name}_sum"]
        else:
            assert isinstance(value, Gauge)
            names = [family.name]
        for name in names:
            series[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return series


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = load_json(DASHBOARD)
    return loaded


def test_registry_names_are_the_documented_ones() -> None:
    names = {name for name in _exported() if not name.endswith(("_count", "_sum"))}
    assert "switchboard_consumer_lag_records" in names
    assert "switchboard_routing_seconds_bucket" in names
    assert "switchboard_outbound_sends_total" in names


def test_queries_use_only_exported_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    exported = _exported()
    expressions = _expressions(dashboard)
    assert expressions
    for expr in expressions:
        used = set(METRIC_NAME.findall(expr))
        assert used, expr
        unknown = used - set(exported)
        assert not unknown, f"{expr}: not in libs/common/metrics.py: {sorted(unknown)}"
        allowed = set().union(*(exported[name] for name in used)) | TARGET_LABELS
        for name, matchers in SELECTOR.findall(expr):
            for label in MATCHER_LABEL.findall(matchers):
                assert label in exported[name] | TARGET_LABELS, f"{name} has no label {label}"
        for grouping in GROUPING.findall(expr):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in allowed, f"{expr}: no metric here has label {label}"


def test_dashboard_covers_what_ops_watch(dashboard: dict[str, Any]) -> None:
    expressions = " ".join(_expressions(dashboard))
    titles = " ".join(p["title"].lower() for p in _panels(dashboard))
    for topic in (
        "throughput per channel",
        "routing latency",
        "consumer lag",
        "per queue",
        "sla warnings and breaches",
        "outbound failures",
    ):
        assert topic in titles, topic
    assert "sum by (channel) (rate(switchboard_messages_ingested_total" in expressions
    assert "switchboard_routing_seconds_bucket" in expressions
    assert "switchboard_consumer_lag_records" in expressions
    assert "sum by (queue) (increase(switchboard_conversations_routed_total" in expressions
    assert 'kind=~"warning|breached"' in expressions
    assert "status=~" in expressions


def test_dashboard_layout_and_datasource(dashboard: dict[str, Any]) -> None:
    panels = _panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dashboard["uid"] == "switchboard"
