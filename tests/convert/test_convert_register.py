"""``onnxgate models register NAME model.pkl|.txt|.json --sample FILE``: trained models
become ONNX versions whose answers match the original within the recorded parity."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as triton

from convert.support import one_error_line, write_pickle
from registry.governance_policy import GovernancePolicy
from registry.registry import Registry


def _native_files(tmp: Path, pipeline: Any, lgbm: Any, xgb: Any) -> dict[str, Path]:
    lgbm_file = tmp / "lgbm.txt"
    lgbm.booster_.save_model(str(lgbm_file))
    xgb_file = tmp / "xgb.json"
    xgb.save_model(str(xgb_file))
    return {
        "pipe": write_pickle(tmp / "pipe.pkl", pipeline),
        "lgbm": lgbm_file,
        "xgb": xgb_file,
    }


def _infer(client: Any, model: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    inp = triton.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer(model, [inp])
    outputs = result.get_response().outputs
    by_kind = {o.datatype: o.name for o in outputs}
    return result.as_numpy(by_kind["INT64"]), result.as_numpy(by_kind["FP32"])


def test_three_families_registered_from_native_files_serve_native_answers(
    onnxgate, registry: Registry, make_gateway, tmp_path, sample_file, training,
    sklearn_pipeline, lightgbm_model, xgboost_model,
):  # fmt: skip
    files = _native_files(tmp_path, sklearn_pipeline, lightgbm_model, xgboost_model)
    assert onnxgate("models", "register", "pipe", str(files["pipe"]), "--sample",
                    str(sample_file), "--trust-pickle") == 0  # fmt: skip
    assert onnxgate("models", "register", "lgbm", str(files["lgbm"]), "--sample",
                    str(sample_file), "--opset", "15") == 0  # fmt: skip
    assert onnxgate("models", "register", "xgb", str(files["xgb"]), "--sample",
                    str(sample_file)) == 0  # fmt: skip
    natives = {"pipe": sklearn_pipeline, "lgbm": lightgbm_model, "xgb": xgboost_model}
    converters = {"pipe": "skl2onnx", "lgbm": "onnxmltools", "xgb": "onnxmltools"}

    gw = make_gateway()
    client = triton.InferenceServerClient(gw.target)
    x = training[0][120:160]  # rows the sample did not contain
    for name, native in natives.items():
        rec = registry.get_version(name, "1")
        lineage = rec.lineage
        assert lineage.tags["source.sha256"] == hashlib.sha256(files[name].read_bytes()).hexdigest()
        assert lineage.tags["source.file"] == files[name].name
        assert lineage.tags["converter"] == converters[name]
        assert lineage.tags["converter.version"]
        assert rec.validation is not None
        parity = next(c for c in rec.validation["checks"] if c["name"] == "parity")
        assert parity["passed"], parity
        tolerance = lineage.metrics["parity.max_abs_diff"]
        assert lineage.metrics["parity.label_agreement"] == 1.0
        assert lineage.metrics["parity.rows"] == 120

        labels, probabilities = _infer(client, name, x)
        np.testing.assert_array_equal(labels.ravel(), native.predict(x))
        # The recorded tolerance on the sample, plus float32 slack for unseen rows.
        diff = np.abs(probabilities - native.predict_proba(x)).max()
        assert diff <= max(tolerance * 10, 1e-5), (name, diff, tolerance)
    assert registry.get_version("lgbm", "1").lineage.tags["converter.opset"] == "15"


def test_pickle_without_trust_is_refused_in_one_line(
    onnxgate, tmp_path, sample_file, sklearn_pipeline, capfd
):
    path = write_pickle(tmp_path / "pipe.pkl", sklearn_pipeline)
    assert onnxgate("models", "register", "pipe", str(path), "--sample", str(sample_file)) == 1
    line = one_error_line(capfd)
    assert "pipe.pkl is a pickle" in line and "--trust-pickle" in line


def test_policy_may_trust_pickles(onnxgate, registry: Registry, tmp_path, sample_file,
                                  sklearn_pipeline):  # fmt: skip
    registry.governance.set_policy(GovernancePolicy(trust_pickle=True), actor="test")
    path = write_pickle(tmp_path / "pipe.pkl", sklearn_pipeline)
    assert onnxgate("models", "register", "pipe", str(path), "--sample", str(sample_file)) == 0


def test_unsupported_estimator_is_one_line_naming_it(
    onnxgate, tmp_path, sample_file, training, capfd
):
    from sklearn.neighbors import KernelDensity
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), KernelDensity()).fit(training[0])
    path = write_pickle(tmp_path / "kde.pkl", model)
    args = ("models", "register", "kde", str(path), "--sample", str(sample_file), "--trust-pickle")
    assert onnxgate(*args) == 1
    assert one_error_line(capfd) == (
        "onnxgate: cannot convert KernelDensity: the converter has no support for it"
    )


def test_parity_beyond_the_policy_tolerance_refuses_with_the_figures(
    onnxgate, registry: Registry, tmp_path, sample_file, lightgbm_model, capfd
):
    registry.governance.set_policy(GovernancePolicy(conversion_tolerance=0.0), actor="test")
    path = tmp_path / "lgbm.txt"
    lightgbm_model.booster_.save_model(str(path))
    assert onnxgate("models", "register", "lgbm", str(path), "--sample", str(sample_file)) == 1
    line = one_error_line(capfd)
    assert "answers differently: max |Δ| " in line and "(tolerance 0)" in line
    assert "on 120 rows" in line and "refusing to register it" in line
    assert registry.list_models() == []


def test_trained_model_without_sample_says_so(onnxgate, tmp_path, lightgbm_model, capfd):
    path = tmp_path / "lgbm.txt"
    lightgbm_model.booster_.save_model(str(path))
    assert onnxgate("models", "register", "lgbm", str(path)) == 1
    assert "give --sample FILE" in one_error_line(capfd)


def test_missing_extra_names_it(onnxgate, tmp_path, sample_file, lightgbm_model, capfd,
                                monkeypatch):  # fmt: skip
    path = tmp_path / "lgbm.txt"
    lightgbm_model.booster_.save_model(str(path))
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # as if not installed
    assert onnxgate("models", "register", "lgbm", str(path), "--sample", str(sample_file)) == 1
    assert "pip install 'onnxgate[convert]'" in one_error_line(capfd)


def test_python_api_with_a_dataframe_names_inputs_after_its_columns(
    registry: Registry, make_gateway, training, lightgbm_model
):
    import pandas as pd

    from registry import register_model

    columns = [f"f{i}" for i in range(training[0].shape[1])]
    frame = pd.DataFrame(training[0][:80], columns=columns)
    rec = register_model(registry, "lgbm", lightgbm_model, sample=frame, actor="test")
    assert [s.name for s in rec.signature.inputs] == columns
    assert rec.lineage.tags["source.family"] == "lightgbm"

    client = triton.InferenceServerClient(make_gateway().target)
    x = training[0][:5]
    inputs = []
    for i, column in enumerate(columns):
        inp = triton.InferInput(column, [5, 1], "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(x[:, [i]]))
        inputs.append(inp)
    result = client.infer("lgbm", inputs)
    np.testing.assert_allclose(
        result.as_numpy("probabilities"), lightgbm_model.predict_proba(x), atol=1e-5
    )


def test_regressors_and_multiclass_from_native_files(onnxgate, registry: Registry, tmp_path):
    import lightgbm
    import xgboost
    from sklearn.datasets import make_classification, make_regression

    xr, yr = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    xr = (xr * 100).astype(np.float32)  # large values: float32 resolves them coarsely
    xm, ym = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3,
                                 random_state=0)  # fmt: skip
    xm = xm.astype(np.float32)
    files = {
        "lgb-reg": tmp_path / "reg.txt",
        "xgb-reg": tmp_path / "reg.json",
        "lgb-multi": tmp_path / "multi.txt",
    }
    lightgbm.LGBMRegressor(n_estimators=10, verbose=-1).fit(xr, yr * 1000).booster_.save_model(
        str(files["lgb-reg"])
    )
    xgboost.XGBRegressor(n_estimators=10, n_jobs=1).fit(xr, yr * 1000).save_model(
        str(files["xgb-reg"])
    )
    lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(xm, ym).booster_.save_model(
        str(files["lgb-multi"])
    )
    np.save(tmp_path / "reg.npy", xr[:100])
    np.save(tmp_path / "multi.npy", xm[:100])
    for name, path in files.items():
        sample = tmp_path / ("multi.npy" if "multi" in name else "reg.npy")
        assert onnxgate("models", "register", name, str(path), "--sample", str(sample)) == 0
        rec = registry.get_version(name, "1")
        assert rec.validation is not None
        parity = next(c for c in rec.validation["checks"] if c["name"] == "parity")
        assert parity["passed"], (name, parity)
        if "reg" in name:  # relative to the values' scale, recorded beside the figure
            assert rec.lineage.metrics["parity.scale"] > 1000
            assert "parity.label_agreement" not in rec.lineage.metrics
        else:
            assert rec.lineage.metrics["parity.label_agreement"] == 1.0
            assert [s.shape[-1] for s in rec.signature.outputs if s.datatype == "FP32"] == [3]
