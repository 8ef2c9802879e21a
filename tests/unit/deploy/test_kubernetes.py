"""The Kubernetes manifests of deploy/k8s, rendered and validated with no cluster.

Each kustomization is rendered by ``kustomize.py`` (patches applied), then every
built-in object is checked against kubernetes-validate's strict schemas for
Kubernetes 1.33 (shipped in the package, read offline) and every KEDA ScaledObject
against ``keda-scaledobject-v1alpha1.schema.json``; then what no schema sees: the
references between objects, probes, resources, settings and commands.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from jsonschema import Draft202012Validator

from tests.unit.deploy.checks import command_problems, env_problems
from tests.unit.deploy.kustomize import KustomizeError, render

K8S = Path(__file__).resolve().parents[3] / "deploy" / "k8s"
KUSTOMIZATIONS = ["base", "overlays/cuda"]
KUBERNETES_VERSION = "1.33"
KEDA_SCHEMA = json.loads(
    Path(__file__).with_name("keda-scaledobject-v1alpha1.schema.json").read_text()
)
WORKLOADS = {"Deployment", "Job"}
# Set on pods for torch's thread pool; not a ragserve setting.
OTHER_ENV = {"OMP_NUM_THREADS"}

Doc = dict[str, Any]


def schema_problems(documents: list[Doc]) -> list[str]:
    """Every way a document breaks its schema; no schema at all is a problem too."""
    keda = Draft202012Validator(KEDA_SCHEMA)
    problems: list[str] = []
    for doc in documents:
        label = f"{doc['kind']}/{doc['metadata'].get('name')}"
        if doc["apiVersion"].startswith("keda.sh/"):
            for error in keda.iter_errors(doc):
                path = ".".join(map(str, error.absolute_path))
                problems.append(f"{label}: {path}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{label}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{label}: {exc.message}")
    return problems


def named(documents: list[Doc], kind: str, name: str) -> Doc:
    [doc] = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def pod_spec(doc: Doc) -> dict[str, Any]:
    spec: dict[str, Any] = doc["spec"]["template"]["spec"]
    return spec


def containers(documents: list[Doc]) -> list[dict[str, Any]]:
    return [c for d in documents if d["kind"] in WORKLOADS for c in pod_spec(d)["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def container_env(documents: list[Doc], container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet builds it: envFrom first, then env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(named(documents, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            secret = named(documents, "Secret", source["secretRef"]["name"])
            env.update(secret.get("stringData", {}))
    env.update({item["name"]: item["value"] for item in container.get("env", [])})
    return env


def reference_problems(documents: list[Doc]) -> list[str]:
    """References no schema checks: selectors, ports, config, scale targets."""
    problems: list[str] = []
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    workloads = [d for d in documents if d["kind"] in WORKLOADS]
    pod_labels = {
        d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in workloads
    }
    ports_of: dict[str, set[str | int]] = {}
    for doc in workloads:
        name, spec = doc["metadata"]["name"], pod_spec(doc)
        if doc["kind"] == "Deployment" and not selects(
            doc["spec"]["selector"]["matchLabels"], pod_labels[name]
        ):
            problems.append(f"Deployment/{name}: its selector does not select its own pods")
        volumes = {v["name"] for v in spec.get("volumes", [])}
        ports = ports_of.setdefault(name, set())
        for container in spec["containers"]:
            for port in container.get("ports", []):
                ports.update({port["containerPort"], port.get("name", port["containerPort"])})
            for source in container.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key in source and (kind, source[key]["name"]) not in names:
                        problems.append(f"{name}: {kind} {source[key]['name']} does not exist")
            for mount in container.get("volumeMounts", []):
                if mount["name"] not in volumes:
                    problems.append(f"{name}: volume {mount['name']} is not declared")
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                port = container.get(probe, {}).get("httpGet", {}).get("port")
                if port is not None and port not in ports:
                    problems.append(f"{name}: {probe} port {port} is not a container port")
    for service in (d for d in documents if d["kind"] == "Service"):
        targets = [
            n for n, labels in pod_labels.items() if selects(service["spec"]["selector"], labels)
        ]
        if not targets:
            problems.append(f"Service/{service['metadata']['name']} selects no pods")
        for port in service["spec"]["ports"]:
            if any(port.get("targetPort", port["port"]) not in ports_of[t] for t in targets):
                problems.append(f"Service/{service['metadata']['name']}: no pod port {port}")
    for pdb in (d for d in documents if d["kind"] == "PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        if not any(selects(selector, labels) for labels in pod_labels.values()):
            problems.append(f"PodDisruptionBudget/{pdb['metadata']['name']} selects no pods")
    scaled: list[str] = []
    for doc in documents:
        if doc["kind"] not in {"HorizontalPodAutoscaler", "ScaledObject"}:
            continue
        ref = doc["spec"]["scaleTargetRef"]
        kind, target = ref.get("kind", "Deployment"), ref["name"]
        if (kind, target) not in names:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: no {kind} {target}")
            continue
        scaled.append(target)
        if "replicas" in named(documents, kind, target)["spec"]:
            problems.append(f"{kind}/{target} sets replicas, which an apply would reset")
    problems += [f"{t} has two autoscalers" for t in set(scaled) if scaled.count(t) > 1]
    return problems


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return render(K8S / request.param)


def test_every_rendered_document_matches_its_schema(rendered: list[Doc]) -> None:
    assert schema_problems(rendered) == []


def test_references_between_objects_resolve(rendered: list[Doc]) -> None:
    assert reference_problems(rendered) == []


def test_every_serving_piece_is_there(rendered: list[Doc]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    assert {
        ("Deployment", "ragserve-api"),
        ("Deployment", "ragserve-inference"),
        ("Deployment", "ragserve-worker"),
        ("Service", "ragserve-api"),
        ("Service", "ragserve-inference"),
        ("Job", "ragserve-migrate"),
        ("ConfigMap", "ragserve-config"),
        ("Secret", "ragserve-secrets"),
        ("PodDisruptionBudget", "ragserve-api"),
        ("PodDisruptionBudget", "ragserve-inference"),
    } <= kinds
    hpa = named(rendered, "HorizontalPodAutoscaler", "ragserve-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == "ragserve-api"
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    scaled = named(rendered, "ScaledObject", "ragserve-inference")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "ragserve-inference"
    assert 1 <= spec["minReplicaCount"] <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]
    [trigger] = spec["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert query.startswith("sum(ragserve:num_requests_waiting{")
    # The query must see this namespace's inference pods, not another's.
    assert f'namespace="{scaled["metadata"]["namespace"]}"' in query
    assert 'pod=~"ragserve-inference-.*"' in query


def test_long_running_pods_have_probes_and_every_container_has_bounds(
    rendered: list[Doc],
) -> None:
    for name in ("ragserve-api", "ragserve-inference"):
        [container] = pod_spec(named(rendered, "Deployment", name))["containers"]
        assert {"startupProbe", "livenessProbe", "readinessProbe"} <= set(container), name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for container in containers(rendered):
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]


def test_commands_and_settings_are_ragserve_s(
    rendered: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    subcommands = set()
    for container in containers(rendered):
        argv = container["command"] + container.get("args", [])
        subcommands.add(argv[1])
        assert command_problems(argv) == []
        env = container_env(rendered, container)
        assert env_problems(env, monkeypatch, other_names=OTHER_ENV) == [], container["name"]
    assert subcommands == {"serve", "inference", "worker", "migrate"}


def test_api_nodes_reach_the_inference_service(rendered: list[Doc]) -> None:
    [api] = pod_spec(named(rendered, "Deployment", "ragserve-api"))["containers"]
    urls = container_env(rendered, api)["RAGSERVE_GENERATION_BACKEND_URLS"].split(",")
    inference = named(rendered, "Deployment", "ragserve-inference")["spec"]["template"]
    for url in map(urlsplit, urls):
        service = named(rendered, "Service", str(url.hostname))
        assert url.port in {p["port"] for p in service["spec"]["ports"]}
        assert selects(service["spec"]["selector"], inference["metadata"]["labels"])


def test_cuda_overlay_puts_inference_nodes_on_gpus() -> None:
    base, cuda = render(K8S / "base"), render(K8S / "overlays/cuda")
    assert "nvidia.com/gpu" not in json.dumps(base)
    inference = named(cuda, "Deployment", "ragserve-inference")
    [container] = pod_spec(inference)["containers"]
    assert container["image"] == "ragserve-inference:0.1.0-cuda"
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in (
        pod_spec(inference)["tolerations"]
    )
    config = named(cuda, "ConfigMap", "ragserve-inference-config")["data"]
    assert config["RAGSERVE_GENERATION_DEVICE"] == "cuda"
    # The overlay changes the inference nodes only.
    for name in ("ragserve-api", "ragserve-worker"):
        assert named(cuda, "Deployment", name) == named(base, "Deployment", name)


BREAKAGES = [
    # (kustomization, file, text, replacement, what the failure must name)
    ("base", "base/api.yaml", "containerPort: 8000", 'containerPort: "8000"', "containerPort"),
    (
        "base",
        "base/api.yaml",
        "terminationGracePeriodSeconds",
        "terminationGrace",
        "terminationGrace",
    ),
    (
        "base",
        "base/api-autoscaling.yaml",
        "averageUtilization: 70",
        "averageUtilisation: 70",
        "averageUtilisation",
    ),
    ("base", "base/inference-autoscaling.yaml", 'threshold: "8"', 'treshold: "8"', "threshold"),
    (
        "base",
        "base/inference-autoscaling.yaml",
        "pollingInterval: 15",
        "pollingInterval: fast",
        "pollingInterval",
    ),
    (
        "overlays/cuda",
        "overlays/cuda/inference-gpu.yaml",
        'nvidia.com/gpu: "1"\n    limits',
        "nvidia.com/gpu: [1]\n    limits",
        "nvidia.com/gpu",
    ),
]


@pytest.mark.parametrize(("kustomization", "file", "text", "replacement", "expected"), BREAKAGES)
def test_a_broken_copy_of_the_manifests_fails(
    tmp_path: Path, kustomization: str, file: str, text: str, replacement: str, expected: str
) -> None:
    """Guards the validation itself: a wrong manifest must not pass as valid."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    source = (copy / file).read_text()
    assert source.count(text) == 1
    (copy / file).write_text(source.replace(text, replacement))
    problems = schema_problems(render(copy / kustomization))
    assert problems
    assert any(expected in problem for problem in problems), problems


def test_broken_references_are_found(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    api = copy / "base" / "api.yaml"
    api.write_text(api.read_text().replace("targetPort: http", "targetPort: web"))
    scaling = copy / "base" / "inference-autoscaling.yaml"
    scaling.write_text(
        scaling.read_text().replace(
            "  scaleTargetRef:\n    name: ragserve-inference",
            "  scaleTargetRef:\n    name: ragserve-infer",
        )
    )
    problems = reference_problems(render(copy / "base"))
    assert any(p.startswith("Service/ragserve-api: no pod port") for p in problems), problems
    assert any("no Deployment ragserve-infer" in p for p in problems), problems


def test_a_patch_that_misses_its_field_stops_the_render(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    patch = copy / "overlays" / "cuda" / "inference-config-cuda.yaml"
    patch.write_text(patch.read_text().replace("GENERATION_DEVICE", "GENERATION_DEVIC"))
    with pytest.raises(KustomizeError, match="no such field"):
        render(copy / "overlays" / "cuda")
