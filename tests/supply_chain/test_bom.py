"""``onnxgate models bom NAME:VERSION``: a CycloneDX 1.6 document that validates against
the schema and lists the model, its source and converter, training data and reference,
signer, runtime, and for an optimised child its parent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from registry.registry import Registry
from supply_chain.conftest import sign_with_key, trust


def _valid(text: str) -> dict[str, Any]:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert errors is None, errors
    doc: dict[str, Any] = json.loads(text)
    assert doc["specVersion"] == "1.6"
    return doc


def test_bom_of_a_signed_converted_model_and_its_optimised_child(
    onnxgate, registry: Registry, tmp_path: Path, keys, capfd
):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 4)).astype(np.float32)
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    source = tmp_path / "model.joblib"
    joblib.dump(model, source, compress=3)
    sample = tmp_path / "sample.npy"
    np.save(sample, x)
    private, public = keys["alice"]
    trust(registry, trusted_keys={"alice": str(public)})
    bundle = sign_with_key(source, private)
    data_sha = "ab" * 32
    args = ("models", "register", "credit", str(source), "--sample", str(sample),
            "--trust-pickle", "--signature", str(bundle), "--license", "Apache-2.0",
            "--training-data", "s3://data/credit.parquet", "--training-data-sha256", data_sha,
            "--tag", "training_data.license=CC-BY-4.0")  # fmt: skip
    assert onnxgate(*args) == 0
    out_file = tmp_path / "bom.json"
    assert onnxgate("models", "bom", "credit:1", "--out", str(out_file)) == 0
    doc = _valid(out_file.read_text())
    main = doc["metadata"]["component"]
    assert main["type"] == "machine-learning-model" and main["name"] == "credit"
    rec = registry.get_version("credit", "1")
    assert main["hashes"] == [{"alg": "SHA-256", "content": rec.sha256}]
    assert main["licenses"][0]["license"]["id"] == "Apache-2.0"
    props = {p["name"]: p["value"] for p in main["properties"]}
    assert props["onnxgate:source.signature.signer"].startswith("alice (key ")
    assert props["onnxgate:converted.by"]
    assert props["onnxgate:validated.runtime"].startswith("onnxruntime ")
    assert props["onnxgate:scan"].startswith("passed")
    assert props["onnxgate:source.scan"].startswith("joblib, zlib")
    assert "ai.onnx" in props["onnxgate:onnx.opset"]
    by_ref = {c["bom-ref"]: c for c in doc["components"]}
    assert by_ref["source"]["name"] == "model.joblib"
    assert by_ref["source"]["hashes"][0]["content"] == rec.lineage.tags["source.sha256"]
    assert by_ref["converter"]["name"] == "skl2onnx" and by_ref["converter"]["version"]
    assert by_ref["training-data"]["hashes"][0]["content"] == data_sha
    assert by_ref["training-data"]["licenses"][0]["license"]["id"] == "CC-BY-4.0"
    assert "reference" in by_ref  # the sample became the reference
    (dependency,) = [d for d in doc["dependencies"] if d["ref"] == "credit:1"]
    assert set(dependency["dependsOn"]) == set(by_ref)

    # An optimised child names its parent, and carries the parent's signature as its source's.
    assert onnxgate("models", "optimize", "credit:1", "--graph-level", "basic",
                    "--sample", str(sample)) == 0  # fmt: skip
    capfd.readouterr()
    assert onnxgate("models", "bom", "credit:2") == 0
    child = _valid(capfd.readouterr().out)["metadata"]["component"]
    (ancestor,) = child["pedigree"]["ancestors"]
    assert ancestor["bom-ref"] == "credit:1"
    assert ancestor["hashes"][0]["content"] == rec.sha256
    props = {p["name"]: p["value"] for p in child["properties"]}
    assert props["onnxgate:source.signature.signer"].startswith("alice (key ")
    assert props["onnxgate:converted.by"]


def test_denied_training_data_licence_fails_validation(registry: Registry, model_file: Path):
    from registry.governance_policy import GovernancePolicy
    from registry.lineage import Lineage

    registry.governance.set_policy(GovernancePolicy(license_denylist=("CC-BY-SA-*",)), actor="test")
    lineage = Lineage(license="MIT", tags={"training_data.license": "CC-BY-SA-4.0"})
    rec = registry.register_version("m", model_file.read_bytes(), lineage=lineage)
    assert rec.validation is not None
    check = next(c for c in rec.validation["checks"] if c["name"] == "license")
    assert not check["passed"]
    assert (
        check["detail"]
        == "training data licence 'CC-BY-SA-4.0' matches deny-list entry 'CC-BY-SA-*'"
    )
