"""A small ``kustomize build`` in Python, limited to what ``deploy/k8s`` uses.

The tests must render the overlays in a fresh clone with nothing but the project's Python
dependencies, and no kustomize ships on PyPI for this Python (``pykustomize`` needs 3.14, the
kubectl wheels pull in the whole AWS CDK), so this renders them itself. It follows kustomize v5's
order of work within one kustomization: resources (files, and directories built recursively),
then ``configMapGenerator``, then ``patches``, ``namespace``, ``labels`` and ``images``; the
generated ConfigMaps get their content-hash suffix at the very end, and pod specs that name them
are updated. Supported:

- ``resources``: YAML files and kustomization directories;
- ``configMapGenerator``: ``literals``, ``files`` (``key=path`` or ``path``), ``envs``;
  ``behavior`` create, merge and replace; ``options.disableNameSuffixHash``; kustomize's load
  restrictor (no file outside the kustomization's directory, symlinks resolved);
- ``patches``: inline or ``path``, JSON 6902 (add, replace, remove) or strategic merge (maps
  merged, ``null`` deletes, lists of built-in kinds merged by their merge key, everything else
  replaced, as a JSON merge patch does for custom resources); ``target`` by group, version,
  kind, name, namespace (regular expressions, as kustomize) and equality label selectors;
- ``namespace``, ``labels`` (``pairs`` on ``metadata.labels``), ``images``.

Anything else in a kustomization raises :class:`UnsupportedFeature` rather than being ignored,
and ``tests/deploy/test_kustomize.py`` compares this output with the real kustomize whenever one
is on the PATH (``kustomize`` or ``kubectl kustomize``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

Resource = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = frozenset(
    {
        "apiVersion",
        "kind",
        "resources",
        "namespace",
        "labels",
        "images",
        "configMapGenerator",
        "patches",
    }
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "PersistentVolume",
        "PriorityClass",
        "RuntimeClass",
        "StorageClass",
        "ValidatingWebhookConfiguration",
    }
)
BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "autoscaling",
        "batch",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
    }
)
# Strategic-merge keys of the lists this repository's built-in resources hold
# (k8s.io/api `patchMergeKey` tags). Lists not named here are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "envFrom": None,
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}
_GENERATED = "kustomize-lite.internal/generated"
_HASHED = "kustomize-lite.internal/hash-suffix"


class KustomizeError(Exception):
    """The kustomization is invalid (kustomize would refuse it too)."""


class UnsupportedFeature(KustomizeError):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path) -> list[Resource]:
    """``kustomize build DIRECTORY``: every resource, generated names hashed, in kustomize's
    legacy order (by kind, then name)."""
    resources = _build(directory.resolve())
    renames: dict[str, str] = {}
    for resource in resources:
        annotations = resource["metadata"].get("annotations", {})
        if annotations.pop(_HASHED, None) == "true":
            name = resource["metadata"]["name"]
            renames[name] = f"{name}-{configmap_hash(resource)}"
            resource["metadata"]["name"] = renames[name]
        annotations.pop(_GENERATED, None)
        if "annotations" in resource["metadata"] and not annotations:
            del resource["metadata"]["annotations"]
    for resource in resources:
        for pod_spec in _pod_specs(resource):
            _rename_configmap_refs(pod_spec, renames)
    return sorted(resources, key=_legacy_order)


def configmap_hash(configmap: Resource) -> str:
    """The suffix kustomize v5 gives a generated ConfigMap.

    kustomize's ``hasher.encodeConfigMap`` looks the name up with the path ``metadata/name``
    as a single field, which never exists, so the encoded name is always empty: the hash covers
    ``data`` (and ``binaryData``) only. Checked against kustomize v5.5 in the tests.
    """
    encoded: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": configmap.get("data", "")}
    if isinstance(configmap.get("binaryData"), dict):
        encoded["binaryData"] = configmap["binaryData"]
    digest = hashlib.sha256(_go_json(encoded).encode("utf-8")).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def _go_json(value: Any) -> str:
    """``json.Marshal`` of Go: sorted keys, no spaces, HTML characters and U+2028/9 escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def _build(directory: Path) -> list[Resource]:
    kustomization = _load_kustomization(directory)
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise UnsupportedFeature(f"{directory}: {sorted(unsupported)}")

    resources: list[Resource] = []
    for entry in kustomization.get("resources", []):
        # Other kustomizations may live anywhere (a base beside the overlays); files may not.
        path = (directory / entry).resolve()
        if path.is_dir():
            resources.extend(_build(path))
        else:
            resources.extend(_load_documents(_inside(directory, entry)))

    for generator in kustomization.get("configMapGenerator", []):
        _generate_configmap(directory, generator, resources)

    for patch in kustomization.get("patches", []):
        _apply_patch(directory, patch, resources)

    namespace = kustomization.get("namespace")
    if namespace:
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED_KINDS:
                resource["metadata"]["namespace"] = namespace

    for entry in kustomization.get("labels", []):
        _apply_labels(entry, resources)

    for image in kustomization.get("images", []):
        _apply_image(image, resources)

    _check_unique(resources, directory)
    return resources


def _load_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        path = directory / name
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise KustomizeError(f"{path}: not a mapping")
            return loaded
    raise KustomizeError(f"{directory}: no kustomization file")


def _inside(root: Path, relative: str) -> Path:
    """kustomize's LoadRestrictionsRootOnly: files are read from the root's tree only."""
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise KustomizeError(f"security; file '{root / relative}' is not in or below '{root}'")
    return path


def _load_documents(path: Path) -> list[Resource]:
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    for document in documents:
        if not isinstance(document, dict) or not {"apiVersion", "kind", "metadata"} <= set(
            document
        ):
            raise KustomizeError(f"{path}: not a Kubernetes resource: {document!r:.80}")
    return documents


def _generate_configmap(directory: Path, generator: dict[str, Any], into: list[Resource]) -> None:
    known = {"name", "behavior", "literals", "files", "envs", "options"}
    if set(generator) - known:
        raise UnsupportedFeature(f"configMapGenerator: {sorted(set(generator) - known)}")
    options = generator.get("options", {})
    if set(options) - {"disableNameSuffixHash", "labels", "annotations"}:
        raise UnsupportedFeature(f"configMapGenerator options: {sorted(options)}")
    data: dict[str, str] = {}
    for literal in generator.get("literals", []):
        key, value = _split_pair(literal)
        data[key] = _unquote(value)
    for env_file in generator.get("envs", []):
        for line in _inside(directory, env_file).read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, value = _split_pair(line)
                data[key] = value
    for source in generator.get("files", []):
        key, _, relative = source.partition("=") if "=" in source else ("", "", source)
        path = _inside(directory, relative)
        try:
            data[key or path.name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedFeature(f"{path}: binary files (binaryData)") from exc

    name = generator["name"]
    behavior = generator.get("behavior", "create")
    existing = [r for r in into if r["kind"] == "ConfigMap" and r["metadata"]["name"] == name]
    if behavior == "create":
        if existing:
            raise KustomizeError(f"configMapGenerator {name}: already exists (behavior create)")
        metadata: dict[str, Any] = {"name": name}
        annotations = {_GENERATED: "true", **options.get("annotations", {})}
        if not options.get("disableNameSuffixHash", False):
            annotations[_HASHED] = "true"
        metadata["annotations"] = annotations
        if options.get("labels"):
            metadata["labels"] = dict(options["labels"])
        configmap: Resource = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
        if data:
            configmap["data"] = data
        into.append(configmap)
        return
    if behavior not in {"merge", "replace"}:
        raise KustomizeError(f"configMapGenerator {name}: unknown behavior {behavior!r}")
    if len(existing) != 1:
        raise KustomizeError(f"configMapGenerator {name}: nothing to {behavior}")
    target = existing[0]
    merged = {**target.get("data", {}), **data} if behavior == "merge" else data
    target["data"] = merged
    target["metadata"].setdefault("labels", {}).update(options.get("labels", {}))
    target["metadata"].setdefault("annotations", {}).update(options.get("annotations", {}))
    if options.get("disableNameSuffixHash", False):
        target["metadata"]["annotations"].pop(_HASHED, None)
    if not target["metadata"]["labels"]:
        del target["metadata"]["labels"]


def _split_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise KustomizeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _apply_patch(directory: Path, entry: dict[str, Any], resources: list[Resource]) -> None:
    if set(entry) - {"patch", "path", "target"}:
        raise UnsupportedFeature(f"patches: {sorted(set(entry) - {'patch', 'path', 'target'})}")
    text = entry["patch"] if "patch" in entry else _inside(directory, entry["path"]).read_text()
    patch = yaml.safe_load(text)
    target = entry.get("target")
    if isinstance(patch, list):
        if target is None:
            raise KustomizeError("a JSON 6902 patch needs a target")
        for resource in _select(resources, target):
            for operation in patch:
                _json6902(resource, operation)
        return
    if not isinstance(patch, dict):
        raise KustomizeError(f"patch is neither a list nor a mapping: {text!r:.80}")
    if target is None:
        target = {"kind": patch["kind"], "name": re.escape(patch["metadata"]["name"])}
    selected = _select(resources, target)
    if not selected:
        raise KustomizeError(f"patch matches no resource: {target}")
    body = {k: v for k, v in patch.items() if k not in {"apiVersion", "kind", "metadata"}}
    for resource in selected:
        builtin = resource["apiVersion"].rpartition("/")[0] in BUILTIN_GROUPS
        merged = _strategic_merge(resource, body, builtin=builtin)
        resource.clear()
        resource.update(merged)
        metadata_patch = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
        if metadata_patch:
            resource["metadata"] = _strategic_merge(resource["metadata"], metadata_patch, True)


def _select(resources: list[Resource], target: dict[str, Any]) -> list[Resource]:
    known = {"group", "version", "kind", "name", "namespace", "labelSelector"}
    if set(target) - known:
        raise UnsupportedFeature(f"patch target: {sorted(set(target) - known)}")

    def matches(resource: Resource) -> bool:
        group, _, version = resource["apiVersion"].rpartition("/")
        fields = {
            "group": group,
            "version": version,
            "kind": resource["kind"],
            "name": resource["metadata"]["name"],
            "namespace": resource["metadata"].get("namespace", ""),
        }
        for key, value in fields.items():
            if key in target and not re.fullmatch(target[key], value):
                return False
        labels = resource["metadata"].get("labels", {})
        for requirement in filter(None, target.get("labelSelector", "").split(",")):
            key, sep, value = requirement.partition("=")
            if sep and labels.get(key.strip()) != value.strip():
                return False
            if not sep and key.strip() not in labels:
                return False
        return True

    return [r for r in resources if matches(r)]


def _json6902(resource: Resource, operation: dict[str, Any]) -> None:
    op, pointer = operation["op"], operation["path"]
    if op not in {"add", "replace", "remove"}:
        raise UnsupportedFeature(f"JSON 6902 op {op!r}")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    if not parts:
        raise KustomizeError("JSON 6902 on the whole document")
    parent: Any = resource
    for part in parts[:-1]:
        parent = parent[int(part)] if isinstance(parent, list) else parent[part]
    last = parts[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if op == "add":
            parent.insert(index, value)
        elif op == "replace":
            parent[index] = value
        else:
            del parent[index]
        return
    if op in {"replace", "remove"} and last not in parent:
        raise KustomizeError(f"JSON 6902 {op}: no {pointer} in {resource['metadata']['name']}")
    if op == "remove":
        del parent[last]
    else:
        parent[last] = value


def _strategic_merge(original: Any, patch: Any, builtin: bool, key: str = "") -> Any:
    if isinstance(patch, dict) and isinstance(original, dict):
        if any(k.startswith("$") for k in patch):
            raise UnsupportedFeature(f"strategic merge directives: {sorted(patch)}")
        merged = dict(original)
        for name, value in patch.items():
            if value is None:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = _strategic_merge(merged[name], value, builtin, name)
            else:
                merged[name] = copy.deepcopy(value)
        return merged
    if isinstance(patch, list) and isinstance(original, list) and builtin:
        merge_key = MERGE_KEYS.get(key)
        if key == "ports" and patch and all(isinstance(p, dict) for p in patch):
            merge_key = "containerPort" if "containerPort" in patch[0] else "port"
        if merge_key is None:
            return copy.deepcopy(patch)
        merged_list = [copy.deepcopy(item) for item in original]
        for item in patch:
            position = next(
                (i for i, o in enumerate(merged_list) if o.get(merge_key) == item[merge_key]),
                None,
            )
            if position is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[position] = _strategic_merge(merged_list[position], item, builtin)
        return merged_list
    return copy.deepcopy(patch)


def _apply_labels(entry: dict[str, Any], resources: list[Resource]) -> None:
    if set(entry) - {"pairs", "includeSelectors", "includeTemplates"}:
        raise UnsupportedFeature(f"labels: {sorted(entry)}")
    if entry.get("includeSelectors") or entry.get("includeTemplates"):
        raise UnsupportedFeature("labels with includeSelectors or includeTemplates")
    for resource in resources:
        resource["metadata"].setdefault("labels", {}).update(entry.get("pairs", {}))


def _apply_image(image: dict[str, Any], resources: list[Resource]) -> None:
    if set(image) - {"name", "newName", "newTag", "digest"}:
        raise UnsupportedFeature(f"images: {sorted(image)}")
    for resource in resources:
        for container in _containers(resource):
            reference = container.get("image", "")
            name, separator, suffix = _split_image(reference)
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                separator, suffix = "@", image["digest"]
            elif "newTag" in image:
                separator, suffix = ":", str(image["newTag"])
            container["image"] = f"{name}{separator}{suffix}"


def _split_image(reference: str) -> tuple[str, str, str]:
    if "@" in reference:
        name, _, digest = reference.partition("@")
        return name, "@", digest
    name, separator, tag = reference.rpartition(":")
    if separator and "/" not in tag:
        return name, ":", tag
    return reference, "", ""


def _containers(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"containers", "initContainers"} and isinstance(value, list):
                yield from (c for c in value if isinstance(c, dict))
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def _pod_specs(resource: Resource) -> Iterator[dict[str, Any]]:
    spec = resource.get("spec", {})
    if resource["kind"] == "Pod":
        yield spec
    elif resource["kind"] == "CronJob":
        yield spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})
    elif isinstance(spec.get("template"), dict):
        yield spec["template"].get("spec", {})


def _rename_configmap_refs(pod_spec: dict[str, Any], renames: dict[str, str]) -> None:
    def rename(reference: dict[str, Any] | None) -> None:
        if reference and reference.get("name") in renames:
            reference["name"] = renames[reference["name"]]

    for volume in pod_spec.get("volumes", []):
        rename(volume.get("configMap"))
        for source in volume.get("projected", {}).get("sources", []):
            rename(source.get("configMap"))
    for key in ("containers", "initContainers"):
        for container in pod_spec.get(key, []):
            for env_from in container.get("envFrom", []):
                rename(env_from.get("configMapRef"))
            for env in container.get("env", []):
                rename(env.get("valueFrom", {}).get("configMapKeyRef"))


def _check_unique(resources: list[Resource], directory: Path) -> None:
    seen: set[tuple[str, str, str, str]] = set()
    for resource in resources:
        identity = (
            resource["apiVersion"].rpartition("/")[0],
            resource["kind"],
            resource["metadata"].get("namespace", ""),
            resource["metadata"]["name"],
        )
        if identity in seen:
            raise KustomizeError(f"{directory}: resource {identity} defined twice")
        seen.add(identity)


_ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")


def _legacy_order(resource: Resource) -> tuple[int, str, str, str]:
    """kustomize's ``resid.Gvk.IsLessThan``: kinds ranked first and last, the rest by
    ``group_version_kind``; then by namespace and name."""
    kind = resource["kind"]
    if kind in _ORDER_FIRST:
        rank = _ORDER_FIRST.index(kind)
    elif kind in _ORDER_LAST:
        rank = len(_ORDER_FIRST) + 1 + _ORDER_LAST.index(kind)
    else:
        rank = len(_ORDER_FIRST)
    group, _, version = resource["apiVersion"].rpartition("/")
    gvk = f"{group or '~G'}_{version or '~V'}_{kind}"
    metadata = resource["metadata"]
    return rank, gvk, metadata.get("namespace", ""), metadata["name"]
