"""deploy/kubernetes/ validates offline against the Kubernetes schemas bundled with
``kubernetes-validate`` (strict: unknown fields are errors), and holds together: probes on
the gRPC port, a grace period longer than the drain, the migration Job, scrape
annotations, and a PodDisruptionBudget that selects the gateway pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"


def _docs() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return docs


def _one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in _docs() if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


@pytest.mark.parametrize("doc", _docs(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_every_manifest_is_valid(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_gateway_deployment_holds_together() -> None:
    dep = _one("Deployment", "onnxgate")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (gateway,) = spec["containers"]
    grpc_port = next(p["containerPort"] for p in gateway["ports"] if p["name"] == "grpc")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert gateway[probe]["grpc"]["port"] == grpc_port
    assert gateway["resources"]["requests"]["cpu"] and gateway["resources"]["requests"]["memory"]
    config = _one("ConfigMap", "onnxgate-config")["data"]
    assert config["ONNXGATE_FLEET"] == "true"
    assert spec["terminationGracePeriodSeconds"] > float(config["ONNXGATE_GRACE_S"])
    refs = {next(iter(e.values()))["name"] for e in gateway["envFrom"]}
    assert refs == {"onnxgate-config", "onnxgate-secrets"}
    assert "ONNXGATE_REGISTRY" in _one("Secret", "onnxgate-secrets")["stringData"]
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert int(notes["prometheus.io/port"]) in {p["containerPort"] for p in gateway["ports"]}
    labels = pod["metadata"]["labels"]
    pdb = _one("PodDisruptionBudget")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < dep["spec"]["replicas"]
    service = _one("Service", "onnxgate")["spec"]
    assert service["selector"].items() <= labels.items()


def test_migration_job_runs_db_upgrade() -> None:
    (container,) = _one("Job")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["onnxgate", "db", "upgrade"]
