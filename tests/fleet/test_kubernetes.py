"""deploy/kubernetes/ validates offline against the Kubernetes schemas bundled with
``kubernetes-validate`` (strict: unknown fields are errors; the Prometheus Operator's
ServiceMonitor, a CRD, is checked field by field here), meets the Pod Security Standards'
"restricted" profile (tests/fleet/pod_security.py), and holds together: probes on the gRPC
port, the HTTP port in the pod and the Service, a grace period longer than the drain, the
migration Job, artifacts in object storage with only emptyDir writable, scrape annotations
and a ServiceMonitor, an autoscaler on a gauge the gateway exports, a NetworkPolicy that
lets clients and Prometheus in, and a PodDisruptionBudget that selects the gateway pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pod_security import restricted_violations

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"
CRD_GROUPS = ("monitoring.coreos.com/",)  # not in the bundled schemas: checked below


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
    if doc["apiVersion"].startswith(CRD_GROUPS):
        return  # test_service_monitor_scrapes_the_gateways
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def _pod_templates() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for doc in _docs():
        spec = doc.get("spec", {})
        template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template"
        )
        if template is not None:
            found.append((f"{doc['kind']}/{doc['metadata']['name']}", template))
    return found


@pytest.mark.parametrize(
    ("name", "template"), _pod_templates(), ids=[n for n, _ in _pod_templates()]
)
def test_every_pod_meets_the_restricted_profile(name: str, template: dict[str, Any]) -> None:
    assert restricted_violations(template) == [], name


def test_the_restricted_check_catches_what_the_profile_forbids() -> None:
    bad = {
        "metadata": {},
        "spec": {
            "hostNetwork": True,
            "securityContext": {"runAsUser": 0},
            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [
                {
                    "name": "c",
                    "ports": [{"containerPort": 80, "hostPort": 80}],
                    "securityContext": {
                        "privileged": True,
                        "capabilities": {"add": ["SYS_ADMIN"]},
                        "seccompProfile": {"type": "Unconfined"},
                    },
                }
            ],
        },
    }
    rules = {v.split(":")[0] for v in restricted_violations(bad)}
    assert rules == {
        "host namespaces", "HostPath volumes", "volume types", "privileged containers",
        "host ports", "privilege escalation", "running as non-root", "capabilities",
        "running as non-root user", "seccomp",
    }  # fmt: skip
    (gateway,) = _one("Deployment", "onnxgate")["spec"]["template"]["spec"]["containers"]
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True


def test_gateway_deployment_holds_together() -> None:
    dep = _one("Deployment", "onnxgate")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (gateway,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    grpc_port = ports["grpc"]
    args = gateway["args"]
    assert args[args.index("--http-port") + 1] == str(ports["http"])
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
    assert {p["targetPort"] for p in service["ports"]} == set(ports)  # grpc, http, metrics


def test_artifacts_in_object_storage_and_only_empty_dirs_writable() -> None:
    config = _one("ConfigMap", "onnxgate-config")["data"]
    assert config["ONNXGATE_ARTIFACT_STORE"].startswith("s3://")
    secrets = _one("Secret", "onnxgate-secrets")["stringData"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= secrets.keys()
    assert not [d for d in _docs() if d["kind"] == "PersistentVolumeClaim"]
    spec = _one("Deployment", "onnxgate")["spec"]["template"]["spec"]
    assert all("emptyDir" in v for v in spec["volumes"])
    (gateway,) = spec["containers"]
    mounts = {m["mountPath"] for m in gateway["volumeMounts"]}
    assert Path(config["ONNXGATE_ARTIFACT_DIR"]).parent.as_posix() in mounts  # the cache


def test_service_monitor_scrapes_the_gateways() -> None:
    monitor = _one("ServiceMonitor", "onnxgate")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor["spec"]) <= {"selector", "endpoints", "namespaceSelector", "jobLabel"}
    service = _one("Service", "onnxgate")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "scheme"}
        assert endpoint["port"] in names and endpoint["path"] == "/metrics"


def test_autoscaler_scales_the_gateways_on_their_in_flight_gauge() -> None:
    hpa = _one("HorizontalPodAutoscaler", "onnxgate")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "onnxgate",
    }
    (metric,) = hpa["metrics"]
    name = metric["pods"]["metric"]["name"]
    assert f'"{name}"' in (ROOT / "src" / "gateway" / "metrics.py").read_text()
    assert hpa["minReplicas"] > _one("PodDisruptionBudget")["spec"]["minAvailable"]


def test_network_policy_lets_clients_and_prometheus_in() -> None:
    policy = _one("NetworkPolicy", "onnxgate")["spec"]
    labels = _one("Deployment", "onnxgate")["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    allowed = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert allowed == {8000, 8001, 8002}
    egress = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {5432, 53, 443} <= egress  # the registry, DNS, the object store


def test_migration_job_runs_db_upgrade() -> None:
    (container,) = _one("Job")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["onnxgate", "db", "upgrade"]
