"""A small kustomize: renders ``deploy/k8s`` without kubectl, for the manifest tests.

It supports what ``deploy/k8s`` uses and refuses anything else, so a manifest that
relies on a feature it does not apply fails here rather than being checked half
rendered: ``resources`` (files and kustomization folders), ``namespace``,
``images``, and ``patches`` in RFC 6902 form (a list of operations, from ``path``
or inline ``patch``) with a ``target``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["KustomizeError", "load_documents", "render"]

_SUPPORTED_KEYS = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "PriorityClass",
    "StorageClass",
    "ClusterTriggerAuthentication",
}
_TARGET_KEYS = {"group", "version", "kind", "name"}

Document = dict[str, Any]


class KustomizeError(ValueError):
    """The kustomization cannot be rendered (or uses what this renderer lacks)."""


def load_documents(path: Path) -> list[Document]:
    """Every non-empty YAML document of a manifest file."""
    with path.open() as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc is not None]
    for doc in documents:
        if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
            raise KustomizeError(f"{path}: a document without apiVersion and kind")
    return documents


def render(directory: Path) -> list[Document]:
    """Renders the kustomization in ``directory`` as ``kubectl kustomize`` would."""
    config = _kustomization(directory)
    documents: list[Document] = []
    for entry in config.get("resources", []):
        path = directory / entry
        if path.is_dir():
            documents.extend(render(path))
        elif path.is_file():
            documents.extend(load_documents(path))
        else:
            raise KustomizeError(f"{directory}: resource {entry!r} does not exist")
    for patch in config.get("patches", []):
        _apply_patch(directory, patch, documents)
    for image in config.get("images", []):
        _set_image(documents, image)
    if namespace := config.get("namespace"):
        for doc in documents:
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    _check_unique(directory, documents)
    return documents


def _kustomization(directory: Path) -> dict[str, Any]:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    config = yaml.safe_load(path.read_text()) or {}
    unknown = set(config) - _SUPPORTED_KEYS
    if unknown:
        raise KustomizeError(f"{path}: unsupported fields {sorted(unknown)}")
    return config


def _apply_patch(directory: Path, patch: dict[str, Any], documents: list[Document]) -> None:
    if "path" in patch:
        operations = yaml.safe_load((directory / patch["path"]).read_text())
    elif "patch" in patch:
        operations = yaml.safe_load(patch["patch"])
    else:
        raise KustomizeError(f"{directory}: a patch without path or patch")
    if not isinstance(operations, list):
        raise KustomizeError(f"{directory}: only RFC 6902 patches (a list of operations)")
    target = patch.get("target") or {}
    if not target or set(target) - _TARGET_KEYS:
        raise KustomizeError(f"{directory}: a patch target needs only {sorted(_TARGET_KEYS)}")
    matched = [doc for doc in documents if _matches(doc, target)]
    if not matched:
        raise KustomizeError(f"{directory}: patch target {target} matches no resource")
    for doc in matched:
        for operation in operations:
            _apply_operation(doc, operation)


def _matches(doc: Document, target: dict[str, str]) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    actual = {"group": group, "version": version, "kind": doc["kind"]}
    actual["name"] = doc.get("metadata", {}).get("name", "")
    return all(actual[key] == value for key, value in target.items())


def _apply_operation(doc: Document, operation: dict[str, Any]) -> None:
    op, pointer = operation.get("op"), operation.get("path", "")
    if op not in {"add", "replace", "remove"}:
        raise KustomizeError(f"unsupported RFC 6902 operation {op!r}")
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    if not tokens:
        raise KustomizeError(f"{op} {pointer!r}: the whole document cannot be patched")
    parent: Any = doc
    for token in tokens[:-1]:
        parent = _child(parent, token, pointer)
    last = tokens[-1]
    value = copy.deepcopy(operation.get("value"))
    if isinstance(parent, list):
        if op == "add" and last == "-":
            parent.append(value)
            return
        index = _index(parent, last, pointer, inserting=op == "add")
        if op == "add":
            parent.insert(index, value)
        elif op == "replace":
            parent[index] = value
        else:
            del parent[index]
    elif isinstance(parent, dict):
        if op != "add" and last not in parent:
            raise KustomizeError(f"{op} {pointer!r}: no such field")
        if op == "remove":
            del parent[last]
        else:
            parent[last] = value
    else:
        raise KustomizeError(f"{op} {pointer!r}: the parent is not an object or a list")


def _child(node: Any, token: str, pointer: str) -> Any:
    if isinstance(node, dict) and token in node:
        return node[token]
    if isinstance(node, list):
        return node[_index(node, token, pointer, inserting=False)]
    raise KustomizeError(f"{pointer!r}: {token!r} does not exist")


def _index(items: list[Any], token: str, pointer: str, *, inserting: bool) -> int:
    limit = len(items) if inserting else len(items) - 1
    if not token.isdigit() or int(token) > limit:
        raise KustomizeError(f"{pointer!r}: {token!r} is not an index of the list")
    return int(token)


def _set_image(documents: list[Document], image: dict[str, str]) -> None:
    if "name" not in image or not set(image) <= {"name", "newName", "newTag"}:
        raise KustomizeError(f"images: {image} needs name and newName and/or newTag only")
    found = False
    for container in _containers(documents):
        name, tag = _split_image(container["image"])
        if name == image["name"]:
            found = True
            new_tag = image.get("newTag", tag)
            container["image"] = image.get("newName", name) + (f":{new_tag}" if new_tag else "")
    if not found:
        raise KustomizeError(f"images: no container runs {image['name']!r}")


def _containers(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in {"containers", "initContainers"} and isinstance(value, list):
                found.extend(c for c in value if isinstance(c, dict) and "image" in c)
            else:
                found.extend(_containers(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_containers(item))
    return found


def _split_image(image: str) -> tuple[str, str]:
    """``registry:5000/name:tag`` -> (``registry:5000/name``, ``tag``)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        return image, ""
    return name, tag


def _check_unique(directory: Path, documents: list[Document]) -> None:
    seen: set[tuple[str, str, str]] = set()
    for doc in documents:
        meta = doc.get("metadata", {})
        key = (doc["kind"], meta.get("namespace", ""), meta.get("name", ""))
        if key in seen:
            raise KustomizeError(f"{directory}: {key} is defined twice")
        seen.add(key)
