"""docker-compose.yml: valid Compose, and the stack the services need, wired the way they expect.

The Compose Specification schema comes from the ``check-jsonschema`` package (a dev
dependency), which vendors compose-spec/compose-spec ``schema/compose-spec.json``; no network.
"""

from __future__ import annotations

import importlib.resources
import json
from typing import Any
from urllib.parse import urlparse

import pytest
from jsonschema import Draft202012Validator

from libs.common.settings import Settings
from libs.common.topics import Topics
from tests.deploy.manifests import (
    K8S,
    REPO,
    SEVEN_DAYS_MS,
    THIRTY_DAYS_MS,
    load_yaml,
    render,
)
from tooling.devstack import SERVICES

COMPOSE = REPO / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def _compose_schema() -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads((vendored / "compose-spec.json").read_text("utf-8"))
    return schema


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Switchboard services: the ones whose command is `run SERVICE`."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("command", [None])[0] == "run"
    }


def _env(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    assert isinstance(environment, dict), "environment as a mapping"
    return {k: str(v) for k, v in environment.items()}


def test_compose_file_matches_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = _compose_schema()
    assert schema["$id"] == "compose_spec.json"
    errors = list(Draft202012Validator(schema).iter_errors(compose))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def test_the_schema_catches_mistakes(compose: dict[str, Any]) -> None:
    broken = {**compose, "services": {**compose["services"], "redis": {"imagee": "redis:7"}}}
    assert list(Draft202012Validator(_compose_schema()).iter_errors(broken))


def test_every_service_runs_from_the_one_image(compose: dict[str, Any]) -> None:
    services = _app_services(compose)
    assert {s["command"][1] for s in services.values()} >= set(SERVICES)
    for name, service in services.items():
        assert service["command"] == ["run", name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}
        assert service["image"] == "switchboard:local"
        assert service["restart"] == "unless-stopped"
        if name not in SERVICES:
            assert service["profiles"], f"{name} does not exist yet: behind a profile"


def test_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        depends = service["depends_on"]
        assert depends["kafka"] == {"condition": "service_healthy"}, name
        assert depends["redis"] == {"condition": "service_healthy"}, name
        assert depends["topics"] == {"condition": "service_completed_successfully"}, name
    assert compose["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert compose["services"]["topics"]["restart"] == "no"


def test_healthchecks_ask_readyz_without_curl(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], "the slim image has no curl"
        port = _env(service)["SWITCHBOARD_HTTP_PORT"]
        assert f"http://127.0.0.1:{port}/readyz" in test[3], name
        compile(test[3], f"{name} healthcheck", "exec")


def test_stop_grace_outlasts_the_drain(compose: dict[str, Any]) -> None:
    for name, service in _app_services(compose).items():
        drain = float(_env(service)["SWITCHBOARD_DRAIN_SECONDS"])
        grace = service["stop_grace_period"]
        assert grace.endswith("s")
        assert float(grace[:-1]) > drain + 10, name


def test_environment_is_known_to_the_services(compose: dict[str, Any]) -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name, service in _app_services(compose).items():
        env = _env(service)
        assert not [k for k in env if k not in fields and not k.startswith("OTEL_")], name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert urlparse(env["REDIS_URL"]).hostname == "redis"
        assert urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).netloc == "jaeger:4318"
        config_mount = next(v for v in service["volumes"] if v.startswith("./config:"))
        source, target, mode = config_mount.split(":")
        assert env["SWITCHBOARD_CONFIG"] == f"{target}/store.yaml"
        assert (REPO / source / "store.yaml").is_file()
        assert mode == "ro"


def test_ingest_publishes_http_and_smtp(compose: dict[str, Any]) -> None:
    published = {p.rsplit(":", 1)[1] for p in compose["services"]["ingest"]["ports"]}
    assert published == {"8080", "2525"}


def test_kafka_runs_kraft_without_auto_created_topics(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _env(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert any(v.endswith(f":{env['KAFKA_LOG_DIRS']}") for v in kafka["volumes"])
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_topics_job_creates_every_topic_alike(compose: dict[str, Any]) -> None:
    """Same topics, partitions all equal, and the retention of the Kubernetes KafkaTopics."""
    job = compose["services"]["topics"]
    env = _env(job)
    specs = dict(line.split("=") for line in env["TOPICS"].split())
    assert list(specs) == list(Topics.with_prefix().all())
    deadletter = Topics.with_prefix().deadletter
    for topic, retention in specs.items():
        assert int(retention) == (THIRTY_DAYS_MS if topic == deadletter else SEVEN_DAYS_MS)
    kubernetes = {
        t["spec"]["topicName"]: t["spec"]["config"]["retention.ms"]
        for t in render(K8S / "base")
        if t["kind"] == "KafkaTopic"
    }
    assert {t: int(r) for t, r in specs.items()} == kubernetes
    assert int(env["PARTITIONS"]) > 1
    script = job["command"][0]
    assert '--partitions "$$PARTITIONS"' in script
    assert "--if-not-exists" in script
    assert "exit 1" in script, "an existing topic with another count stops the stack"
    assert job["image"] == compose["services"]["kafka"]["image"]


def test_redis_keeps_an_append_only_file(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_prometheus_scrapes_every_service(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mount = next(v for v in prometheus["volumes"] if "prometheus.yml" in v)
    config = load_yaml(REPO / mount.split(":")[0])
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, service in _app_services(compose).items():
        if not service.get("profiles"):
            assert f"{name}:{_env(service)['SWITCHBOARD_HTTP_PORT']}" in targets


def test_observability_and_sandbox_wiring(compose: dict[str, Any]) -> None:
    jaeger = compose["services"]["jaeger"]
    assert "127.0.0.1:16686:16686" in jaeger["ports"]
    grafana = compose["services"]["grafana"]
    dashboard = next(v for v in grafana["volumes"] if v.endswith(".json:ro"))
    assert (REPO / dashboard.split(":")[0]).is_file()
    provisioning = load_yaml(REPO / "deploy/grafana/provisioning/dashboards/switchboard.yml")
    assert dashboard.split(":")[1].startswith(provisioning["providers"][0]["options"]["path"])
    sandbox = compose["services"]["twilio-sandbox"]
    compile(sandbox["command"][0], "twilio-sandbox", "exec")
    outbound_env = _env(compose["services"]["outbound"])
    sandbox_port = sandbox["ports"][0].rsplit(":", 1)[1]
    assert outbound_env["TWILIO_API_BASE_URL"].endswith(f"twilio-sandbox:{sandbox_port}}}")
    assert f"127.0.0.1:{sandbox_port}/sandbox/messages" in sandbox["healthcheck"]["test"][3]
