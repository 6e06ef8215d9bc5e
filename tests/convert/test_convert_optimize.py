"""``onnxgate models optimize NAME:VERSION``: a quantised/optimised child version with its
parent link, parity against the parent, latency and size side by side."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton

from registry import Role, build_card, register_model
from registry.registry import Registry


@pytest.fixture(scope="module")
def mlp(training: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MLPClassifier(hidden_layer_sizes=(64, 64), max_iter=60, random_state=0).fit(
            *training
        )


@pytest.fixture
def registered(registry: Registry, mlp: Any, training: tuple[np.ndarray, np.ndarray]) -> str:
    register_model(registry, "mlp", mlp, sample=training[0][:100], actor="test")
    return "mlp:1"


@pytest.mark.parametrize(
    ("flags", "method"),
    [
        (("--quantize", "dynamic"), "quantize-dynamic"),
        (("--quantize", "static", "--calibration", "{sample}"), "quantize-static"),
        (("--graph-level", "all"), "graph-all"),
    ],
)
def test_optimize_registers_a_child_with_parent_parity_latency_and_size(
    onnxgate, registry: Registry, registered, sample_file: Path, flags, method, capsys
):
    source = registry.get_version("mlp", "1")
    args = [f.format(sample=sample_file) for f in flags]
    assert onnxgate("models", "optimize", registered, *args, "--sample", str(sample_file),
                    "--json") == 0  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "2" and out["parent"] == "mlp:1"

    child = registry.get_version("mlp", "2")
    assert child.lineage.parent == "mlp:1"
    assert child.lineage.tags["optimize.method"] == method
    metrics = child.lineage.metrics
    for key in ("parity.max_abs_diff", "parity.label_agreement", "latency.p50_ms",
                "latency.parent_p50_ms", "size.bytes", "size.parent_bytes"):  # fmt: skip
        assert key in metrics, key
    assert metrics["parity.rows"] == 120
    assert metrics["size.bytes"] == child.size_bytes
    assert metrics["size.parent_bytes"] == source.size_bytes
    assert metrics["latency.p50_ms"] > 0 and metrics["latency.parent_p50_ms"] > 0
    assert child.validation is not None and child.validation["passed"], child.validation
    parity = next(c for c in child.validation["checks"] if c["name"] == "parity")
    assert parity["passed"] and "max |Δ|" in parity["detail"]
    if "quantize" in method:
        assert child.size_bytes < source.size_bytes  # int8 weights
    # The source is never replaced: same bytes, still the champion.
    assert registry.get_version("mlp", "1").sha256 == source.sha256
    assert registry.get_deployment("mlp").champion.version == "1"
    card = build_card(registry, "mlp", "2").markdown()
    assert "latency.p50_ms" in card and "latency.parent_p50_ms" in card and "mlp:1" in card


def test_optimized_child_serves_within_its_recorded_parity(
    onnxgate, registry: Registry, registered, sample_file, make_gateway, training
):
    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    registry.set_weights("mlp", {"1": 0.9, "2": 0.1}, {"2": Role.CANARY}, actor="test")
    client = triton.InferenceServerClient(make_gateway().target)
    x = training[0][:50]

    def probabilities(version: str) -> np.ndarray:
        inp = triton.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        return client.infer("mlp", [inp], model_version=version).as_numpy("probabilities")

    recorded = registry.get_version("mlp", "2").lineage.metrics["parity.max_abs_diff"]
    diff = np.abs(probabilities("2") - probabilities("1")).max()
    assert diff <= recorded + 1e-6


def test_optimize_beyond_the_policy_tolerance_refuses(onnxgate, registry: Registry, registered,
                                                      sample_file, capfd):  # fmt: skip
    from convert.support import one_error_line
    from registry.governance_policy import GovernancePolicy

    registry.governance.set_policy(GovernancePolicy(optimization_tolerance=0.0), actor="test")
    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 1  # fmt: skip
    assert "answers differently from it: max |Δ|" in one_error_line(capfd)
    assert registry.get_version("mlp").version == "1"
    assert [v.version for v in registry.list_versions("mlp")] == ["1"]


def test_optimize_without_a_sample_or_method_says_so(onnxgate, registered, capfd):
    from convert.support import one_error_line

    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic") == 1
    assert "needs a reference sample" in one_error_line(capfd)


def test_optimize_normalises_a_duplicated_default_opset_import(
    onnxgate, registry: Registry, registered, sample_file, capsys
):
    """skl2onnx writes the default-domain import twice on pipelines; onnxruntime's
    quantiser said "Failed to find proper ai.onnx domain". Normalised, and recorded."""
    import onnx

    model = onnx.load_from_string(registry.read_artifact("mlp", "1"))
    default = next(i for i in model.opset_import if i.domain == "")
    model.opset_import.append(onnx.helper.make_opsetid("", default.version))
    registry.register_version("twice", model.SerializeToString(), actor="test")
    assert onnxgate("models", "optimize", "twice:1", "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    tags = registry.get_version("twice", "2").lineage.tags
    assert "imported 2 times" in tags["optimize.opset_normalised"], tags
    # An already-normal model records nothing of the kind.
    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    assert "optimize.opset_normalised" not in registry.get_version("mlp", "2").lineage.tags


@pytest.mark.parametrize("fitted", ["xgboost_model", "sklearn_pipeline"])
@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_optimize_a_tree_ensemble_says_nothing_to_quantise(
    onnxgate, registry: Registry, request, fitted, mode, training, sample_file, capfd
):
    """XGBoost's conversion has no default-domain import (the quantiser failed on it); a
    scikit-learn tree ensemble was "quantised" into a larger no-op child. Neither has
    anything to quantise: one line says so and no version is registered."""
    from convert.support import one_error_line

    register_model(registry, "trees", request.getfixturevalue(fitted), sample=training[0][:50])
    flags = ("--calibration",) if mode == "static" else ("--sample",)
    assert onnxgate("models", "optimize", "trees:1", "--quantize", mode,
                    *flags, str(sample_file)) == 1  # fmt: skip
    assert "nothing to quantise" in one_error_line(capfd)
    assert [v.version for v in registry.list_versions("trees")] == ["1"]


def test_optimize_prints_none_of_onnxruntimes_root_logger_records(
    onnxgate, registered, sample_file, caplog, monkeypatch
):
    """onnxruntime's quantiser logs on the root logger ("Quantization parameters for tensor
    ... not specified", advice to pre-process); with none configured, its first
    ``logging.warning`` even installs a stderr handler for the rest of the process."""
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    assert root.handlers == []
    monkeypatch.setattr(root, "handlers", [caplog.handler])
    caplog.set_level(logging.INFO)
    assert onnxgate("models", "optimize", registered, "--quantize", "static",
                    "--calibration", str(sample_file)) == 0  # fmt: skip
    assert onnxgate("models", "optimize", registered, "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    from_ort = [r.getMessage() for r in caplog.records if "onnxruntime" in r.pathname]
    assert from_ort == []


def test_optimized_child_inherits_its_parents_reference(
    onnxgate, registry: Registry, registered, sample_file, training, tmp_path
):
    """A child had no reference, so no drift profile and no explanations; it inherits its
    parent's (lineage names where from) unless --reference gives its own."""
    from registry import GovernancePolicy

    reference = tmp_path / "reference.npy"
    np.save(reference, training[0][100:200])
    registry.governance.set_policy(GovernancePolicy(require_profile=True), actor="test")
    profile = registry.get_profile("mlp", "1")
    assert profile is None  # the fixture registered it without one
    onnx_file = tmp_path / "mlp.onnx"
    onnx_file.write_bytes(registry.read_artifact("mlp", "1"))
    assert onnxgate("models", "register", "m", str(onnx_file), "--reference",
                    str(reference)) == 0  # fmt: skip
    parent = registry.get_profile("m", "1")
    assert parent is not None
    assert onnxgate("models", "optimize", "m:1", "--quantize", "dynamic",
                    "--sample", str(sample_file)) == 0  # fmt: skip
    child = registry.get_version("m", "2")
    assert registry.get_profile("m", "2") == parent
    assert child.lineage.tags["reference.inherited_from"] == "m:1"
    assert child.validation is not None and child.validation["passed"], child.validation
    # --reference gives the child its own (and nothing is inherited).
    own = tmp_path / "own.npy"
    np.save(own, training[0][:40])
    assert onnxgate("models", "optimize", "m:1", "--graph-level", "basic",
                    "--sample", str(sample_file), "--reference", str(own)) == 0  # fmt: skip
    third = registry.get_profile("m", "3")
    assert third is not None and third != parent
    assert "reference.inherited_from" not in registry.get_version("m", "3").lineage.tags
