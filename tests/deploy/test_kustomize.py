"""The renderer the deploy tests use, held to the real kustomize.

``kustomize_lite`` renders the overlays in every environment; where a kustomize is installed
(``kustomize`` or ``kubectl kustomize``, as on the project's machines) its output must be the
same, object for object and in the same order.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.kustomize_lite import (
    KustomizeError,
    Resource,
    UnsupportedFeature,
    configmap_hash,
    render,
)
from tests.deploy.manifests import K8S, OVERLAYS, REPO


def _real_kustomize(directory: Path) -> list[Resource] | None:
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(directory)]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(directory)]
    else:
        return None
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} failed:\n{result.stderr}")
    # libyaml's loader when PyYAML has it: the pure-Python one takes seconds on the CSV.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(result.stdout, Loader=loader) if d is not None]


@pytest.mark.parametrize("directory", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
def test_lite_renders_what_kustomize_renders(directory: str) -> None:
    real = _real_kustomize(K8S / directory)
    if real is None:
        pytest.skip("no kustomize or kubectl on PATH to compare with")
    lite = render(K8S / directory)
    identity = [(r["kind"], r["metadata"]["name"]) for r in lite]
    assert identity == [(r["kind"], r["metadata"]["name"]) for r in real]
    for ours, theirs in zip(lite, real, strict=True):
        assert ours == theirs, f"{ours['kind']} {ours['metadata']['name']} differs"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        # Suffixes printed by kustomize v5.5.0 (kubectl 1.32) for these generators.
        ({"a.txt": "hi\n"}, "5484kbgg2f"),
        ({"A": "b"}, "b9t2424hkf"),
        (None, "6ct58987ht"),
    ],
)
def test_configmap_hash_is_kustomizes(data: dict[str, str] | None, expected: str) -> None:
    configmap: Resource = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}
    if data is not None:
        configmap["data"] = data
    assert configmap_hash(configmap) == expected


def test_routing_config_copies_match_the_originals() -> None:
    """The ConfigMap is generated from copies (kustomize reads nothing outside the base)."""
    copies = K8S / "base" / "config"
    for relative in ("store.yaml", "examples/customer-service.csv"):
        original = (REPO / "config" / relative).read_bytes()
        assert (copies / relative).read_bytes() == original, (
            f"deploy/k8s/base/config/{relative} differs from config/{relative}: "
            f"cp config/{relative} deploy/k8s/base/config/{relative}"
        )


def _kustomization(tmp_path: Path, text: str) -> Path:
    (tmp_path / "kustomization.yaml").write_text(text)
    return tmp_path


def test_files_outside_the_kustomization_are_refused(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("x")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "link.txt").symlink_to(tmp_path / "outside.txt")
    _kustomization(inner, "configMapGenerator:\n- name: c\n  files: [link.txt]\n")
    with pytest.raises(KustomizeError, match="not in or below"):
        render(inner)


def test_unsupported_fields_raise(tmp_path: Path) -> None:
    _kustomization(tmp_path, "commonLabels: {a: b}\n")
    with pytest.raises(UnsupportedFeature, match="commonLabels"):
        render(tmp_path)


def test_patches_generators_and_images(tmp_path: Path) -> None:
    (tmp_path / "deployment.yaml").write_text(
        """apiVersion: apps/v1
kind: Deployment
metadata: {name: app}
spec:
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers:
        - name: main
          image: switchboard:1
          envFrom: [{configMapRef: {name: env}}]
          resources: {limits: {memory: 1Gi}}
        - {name: side, image: other}
"""
    )
    _kustomization(
        tmp_path,
        """namespace: ns
resources: [deployment.yaml]
configMapGenerator:
  - name: env
    literals: [A=1, 'B="quoted"']
images:
  - {name: switchboard, newName: registry/switchboard, newTag: "2"}
patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: app}
      spec:
        template:
          spec:
            containers:
              - name: main
                resources: {limits: {cpu: "1"}}
  - target: {kind: Deployment, name: ap.*}
    patch: |-
      - {op: add, path: /spec/replicas, value: 2}
""",
    )
    configmap, deployment = render(tmp_path)
    assert configmap["metadata"] == {
        "name": f"env-{configmap_hash(configmap)}",
        "namespace": "ns",
    }
    assert configmap["data"] == {"A": "1", "B": "quoted"}
    assert deployment["spec"]["replicas"] == 2
    main, side = deployment["spec"]["template"]["spec"]["containers"]
    assert main["image"] == "registry/switchboard:2"
    assert main["resources"] == {"limits": {"memory": "1Gi", "cpu": "1"}}
    assert main["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    assert side == {"name": "side", "image": "other"}
