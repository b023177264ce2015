"""The Kubernetes overlays: valid against the API and CRD schemas, and consistent with the code.

Both overlays are rendered (``kubectl kustomize``) and every object is validated offline: built-in
kinds with ``kubernetes-validate`` (strict: unknown fields fail) for the oldest and newest
Kubernetes versions we target, custom resources against the CRDs in ``tests/fixtures/crds``.
The rest checks what the services rely on: one KafkaTopic per topic with equal partitions,
probes on /healthz and /readyz, a grace period longer than the drain, the routing configuration
mounted where SWITCHBOARD_CONFIG points and loadable there, autoscalers that match the consumer
groups, and so on.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from urllib.parse import urlparse

import kubernetes_validate
import pytest

from libs.common.config import load_config
from libs.common.settings import Settings
from tests.deploy.manifests import (
    DEPLOYED_SERVICES,
    OVERLAYS,
    SEVEN_DAYS_MS,
    THIRTY_DAYS_MS,
    consumers,
    container,
    crd_validator,
    deployment,
    env_settings,
    generated_configmap,
    named,
    of_kind,
    rendered,
    topics,
    walk,
)

KUBERNETES_VERSIONS = ("1.30", "1.37")
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("kafka.strimzi.io/v1", "KafkaTopic"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
}
PRESTOP_SLEEP_SECONDS = 5
CONFIGMAP_LIMIT_BYTES = 1024 * 1024

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_resources_match_the_kubernetes_schemas(overlay: str, version: str) -> None:
    for resource in rendered(overlay):
        if (resource["apiVersion"], resource["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{resource['kind']} {resource['metadata']['name']}: {exc.message}")


def test_custom_resources_match_their_crds(overlay: str) -> None:
    seen = set()
    for resource in rendered(overlay):
        identity = (resource["apiVersion"], resource["kind"])
        if identity not in CUSTOM_KINDS:
            continue
        seen.add(identity)
        errors = list(crd_validator(*identity).iter_errors(resource))
        assert not errors, f"{resource['kind']} {resource['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
        )
    assert seen == CUSTOM_KINDS


def test_a_crd_schema_rejects_what_the_api_would(overlay: str) -> None:
    """The fixtures are strict: a misspelt field or a number for a string fails."""
    scaled = of_kind(rendered(overlay), "ScaledObject")[0]
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    assert list(crd_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(broken))
    trigger = {**scaled["spec"]["triggers"][0], "metadata": {"lagThreshold": 10}}
    broken = {**scaled, "spec": {**scaled["spec"], "triggers": [trigger]}}
    assert list(crd_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(broken))


def test_every_topic_has_a_kafkatopic_and_all_have_equal_partitions(overlay: str) -> None:
    resources = rendered(overlay)
    kafka_topics = {t["spec"]["topicName"]: t for t in of_kind(resources, "KafkaTopic")}
    assert set(kafka_topics) == set(topics(resources).all())
    partitions = {t["spec"]["partitions"] for t in kafka_topics.values()}
    assert len(partitions) == 1, f"topics must have equal partition counts, got {partitions}"
    expected = {"dev": 3, "prod": 12}[overlay]
    assert partitions == {expected}
    for topic in kafka_topics.values():
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "switchboard"
        config = topic["spec"]["config"]
        assert config["cleanup.policy"] == "delete"
        assert config["min.insync.replicas"] <= topic["spec"]["replicas"]


def test_retention_is_seven_days_and_thirty_for_dead_letters(overlay: str) -> None:
    resources = rendered(overlay)
    deadletter = topics(resources).deadletter
    for topic in of_kind(resources, "KafkaTopic"):
        retention = topic["spec"]["config"]["retention.ms"]
        name = topic["spec"]["topicName"]
        assert retention == (THIRTY_DAYS_MS if name == deadletter else SEVEN_DAYS_MS), name


def test_every_service_has_deployment_service_and_pdb(overlay: str) -> None:
    resources = rendered(overlay)
    for service in DEPLOYED_SERVICES:
        pod_labels = deployment(resources, service)["spec"]["template"]["metadata"]["labels"]
        assert container(deployment(resources, service))["args"] == ["run", service]
        for kind in ("Service", "PodDisruptionBudget"):
            selector = named(resources, kind, f"switchboard-{service}")["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert selector.items() <= pod_labels.items(), f"{kind} {service} selects nothing"
        assert named(resources, "PodDisruptionBudget", f"switchboard-{service}")["spec"] == {
            "maxUnavailable": 1,
            "selector": {"matchLabels": {k: pod_labels[k] for k in selector}},
        }


def test_probes_use_readyz_and_healthz(overlay: str) -> None:
    for service in DEPLOYED_SERVICES:
        main = container(deployment(rendered(overlay), service))
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        http = [p for p in main["ports"] if p["name"] == "http"]
        assert http == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_grace_period_outlasts_the_drain(overlay: str) -> None:
    resources = rendered(overlay)
    drain = float(env_settings(resources)["SWITCHBOARD_DRAIN_SECONDS"])
    for service in DEPLOYED_SERVICES:
        pod = deployment(resources, service)["spec"]["template"]["spec"]
        pre_stop = container(deployment(resources, service))["lifecycle"]["preStop"]["exec"]
        assert pre_stop["command"] == ["sleep", str(PRESTOP_SLEEP_SECONDS)]
        # preStop runs inside the grace period, before SIGTERM starts the drain.
        assert pod["terminationGracePeriodSeconds"] > PRESTOP_SLEEP_SECONDS + drain + 10


def test_pods_are_locked_down(overlay: str) -> None:
    resources = rendered(overlay)
    account = named(resources, "ServiceAccount", "switchboard")
    assert account["automountServiceAccountToken"] is False
    for service in DEPLOYED_SERVICES:
        pod = deployment(resources, service)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "switchboard"
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container(deployment(resources, service))["securityContext"]
        assert security == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        mounts = {m["mountPath"] for m in container(deployment(resources, service))["volumeMounts"]}
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp"
        affinity = pod["affinity"]["podAntiAffinity"][
            "preferredDuringSchedulingIgnoredDuringExecution"
        ]
        assert affinity[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    for namespace in of_kind(resources, "Namespace"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_resources_have_requests_and_limits(overlay: str) -> None:
    for service in DEPLOYED_SERVICES:
        resources = container(deployment(rendered(overlay), service))["resources"]
        assert set(resources) == {"requests", "limits"}
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_settings_come_from_the_configmap_and_credentials_from_secret_refs(overlay: str) -> None:
    resources = rendered(overlay)
    env = env_settings(resources)
    assert not of_kind(resources, "Secret"), "no secret values in the manifests"
    secret_like = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY$|ACCOUNT_SID")
    assert not [k for k in env if secret_like.search(k) and k != "SWITCHBOARD_KEY_PREFIX"]
    assert "OTEL_SERVICE_NAME" not in env, "one shared value would name every service alike"
    env_configmap = generated_configmap(resources, "switchboard-env")["metadata"]["name"]
    for service in DEPLOYED_SERVICES:
        main = container(deployment(resources, service))
        assert main["envFrom"] == [{"configMapRef": {"name": env_configmap}}]
        for variable in main["env"]:
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference == {
                    "name": "switchboard-secrets",
                    "key": variable["name"],
                    "optional": False,
                }
    for service in ("ingest", "outbound"):
        keys = {
            e["name"]
            for e in container(deployment(resources, service))["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        assert {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"} <= keys


def test_configmap_settings_are_accepted_by_the_services(overlay: str) -> None:
    """Every variable is a known setting (or OTEL_*), and the values pass Settings' checks."""
    env = env_settings(rendered(overlay))
    fields = {name.upper() for name in Settings.model_fields}
    unknown = [k for k in env if k not in fields and not k.startswith("OTEL_")]
    assert not unknown, f"not read by any service: {unknown}"
    settings = Settings.model_validate({k.lower(): v for k, v in env.items() if k in fields})
    assert settings.switchboard_config == Path("/etc/switchboard/store.yaml")
    assert urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port == 4318, "OTLP over HTTP"


def test_routing_config_is_mounted_where_settings_point_and_loads(
    overlay: str, tmp_path: Path
) -> None:
    """Recreate the volume as the kubelet would (keys to paths) and load the config from it."""
    resources = rendered(overlay)
    configmap = generated_configmap(resources, "switchboard-routing")
    size = sum(len(k) + len(v.encode()) for k, v in configmap["data"].items())
    assert size < CONFIGMAP_LIMIT_BYTES, f"ConfigMaps hold at most 1 MiB, this one {size} bytes"
    config_path = Path(env_settings(resources)["SWITCHBOARD_CONFIG"])
    for service in DEPLOYED_SERVICES:
        pod = deployment(resources, service)["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if v.get("configMap"))
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        mount = next(
            m
            for m in container(deployment(resources, service))["volumeMounts"]
            if m["name"] == volume["name"]
        )
        assert mount["readOnly"] is True
        assert Path(mount["mountPath"]) == config_path.parent
    root = tmp_path / "etc-switchboard"
    for item in volume["configMap"]["items"]:
        target = root / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]], encoding="utf-8")
    config = load_config(root / config_path.name)
    assert config.queues


def test_autoscalers_own_every_deployment(overlay: str) -> None:
    resources = rendered(overlay)
    targets = [
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(resources, "HorizontalPodAutoscaler")
    ]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in of_kind(resources, "ScaledObject")]
    assert sorted(targets) == sorted(f"switchboard-{s}" for s in DEPLOYED_SERVICES)
    for service in DEPLOYED_SERVICES:
        assert "replicas" not in deployment(resources, service)["spec"], "the autoscaler owns it"
    counts = [
        (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
        for h in of_kind(resources, "HorizontalPodAutoscaler")
    ]
    counts += [
        (s["spec"]["minReplicaCount"], s["spec"]["maxReplicaCount"])
        for s in of_kind(resources, "ScaledObject")
    ]
    for minimum, maximum in counts:
        if overlay == "dev":
            assert (minimum, maximum) == (1, 1), "dev runs one replica of each service"
        else:
            assert 2 <= minimum <= maximum, "prod survives losing a pod"
    for hpa in of_kind(resources, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_scaledobjects_follow_the_consumer_groups(overlay: str) -> None:
    """KEDA watches the lag of the group and topics each service really consumes."""
    resources = rendered(overlay)
    env = env_settings(resources)
    names = topics(resources)
    partitions = min(t["spec"]["partitions"] for t in of_kind(resources, "KafkaTopic"))
    found = consumers()
    assert {c.service for c in found} == {"router", "sla", "outbound"}
    for consumer in found:
        scaled = named(resources, "ScaledObject", f"switchboard-{consumer.service}")
        assert scaled["spec"]["scaleTargetRef"]["name"] == f"switchboard-{consumer.service}"
        assert scaled["spec"]["minReplicaCount"] >= 1, "never zero: the SLA timers must fire"
        assert scaled["spec"]["maxReplicaCount"] <= partitions, "more consumers would idle"
        triggers = scaled["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}
        assert {t["metadata"]["topic"] for t in triggers} == {
            getattr(names, field) for field in consumer.topic_fields
        }
        for trigger in triggers:
            metadata = trigger["metadata"]
            # named after its topic's field: the name the overlays' kafka-triggers component reads
            assert metadata["topic"] == getattr(names, trigger["name"])
            assert metadata["consumerGroup"] == consumer.group_id
            assert metadata["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
            assert int(metadata["lagThreshold"]) > 0
            assert metadata["offsetResetPolicy"] == "earliest"  # as the consumer loop


def test_ingress_routes_webhooks_and_websockets_to_existing_ports(overlay: str) -> None:
    resources = rendered(overlay)
    public = urlparse(env_settings(resources)["SWITCHBOARD_PUBLIC_URL"])
    assert public.scheme == "https"
    paths = {}
    for ingress in of_kind(resources, "Ingress"):
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            assert rule["host"] == public.hostname, "Twilio signs the URL it calls"
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = named(resources, "Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
                paths[path["path"]] = (ingress, backend["name"])
        assert [t["hosts"] for t in ingress["spec"]["tls"]] == [[public.hostname]]
    assert paths["/v1/sms"][1] == "switchboard-ingest"
    assert paths["/v1/agents"][1] == "switchboard-hub"
    for websocket_path in ("/v1/chat", "/v1/agents"):
        annotations = paths[websocket_path][0]["metadata"]["annotations"]
        for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
            assert int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    assert not {"/metrics", "/healthz", "/readyz", "/"} & set(paths)
    ingest = named(resources, "Service", "switchboard-ingest")
    assert {(p["name"], p["port"]) for p in ingest["spec"]["ports"]} == {
        ("http", 8080),
        ("smtp", 2525),
    }


def test_servicemonitor_scrapes_every_service(overlay: str) -> None:
    resources = rendered(overlay)
    (monitor,) = of_kind(resources, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    scraped = {
        s["metadata"]["name"]
        for s in of_kind(resources, "Service")
        if selector.items() <= s["metadata"].get("labels", {}).items()
        and endpoint["port"] in {p["name"] for p in s["spec"]["ports"]}
    }
    assert scraped == {f"switchboard-{s}" for s in DEPLOYED_SERVICES}


def test_network_policies_deny_by_default_and_open_what_is_needed(overlay: str) -> None:
    resources = rendered(overlay)
    policies = {p["metadata"]["name"]: p["spec"] for p in of_kind(resources, "NetworkPolicy")}
    deny = policies["switchboard-default-deny"]
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    assert "egress" not in deny
    for service in DEPLOYED_SERVICES:
        labels = deployment(resources, service)["spec"]["template"]["metadata"]["labels"]
        assert deny["podSelector"]["matchLabels"].items() <= labels.items()
    env = env_settings(resources)
    common = policies["switchboard-common"]
    egress_ports = {p["port"] for rule in common["egress"] for p in rule["ports"]}
    kafka_port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")[2])
    redis_port = urlparse(env["REDIS_URL"]).port or 6379
    otlp_port = urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).port
    assert {53, kafka_port, redis_port, otlp_port} <= egress_ports
    assert [p["port"] for rule in common["ingress"] for p in rule["ports"]] == ["http"]
    ingest_in = {
        p["port"] for rule in policies["switchboard-ingest"]["ingress"] for p in rule["ports"]
    }
    assert ingest_in == {"http", "smtp"}
    assert {
        p["port"] for rule in policies["switchboard-hub"]["ingress"] for p in rule["ports"]
    } == {"http"}
    for name in ("switchboard-ingest", "switchboard-outbound"):
        for rule in policies[name]["egress"]:
            for peer in rule["to"]:
                for private in peer["ipBlock"]["except"]:
                    assert ipaddress.ip_network(private).is_private


def test_overlay_sets_image_and_namespace(overlay: str) -> None:
    resources = rendered(overlay)
    images = {container(deployment(resources, s))["image"] for s in DEPLOYED_SERVICES}
    assert len(images) == 1, "one image for every service"
    (image,) = images
    assert not image.endswith(":latest")
    namespaces = {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"}
    (namespace,) = of_kind(resources, "Namespace")
    assert namespaces == {namespace["metadata"]["name"]}
    secrets = [v for v in walk(list(resources)) if isinstance(v, dict) and "secretKeyRef" in v]
    assert secrets, "credentials are referenced"
