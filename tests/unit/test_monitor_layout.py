"""Feature layouts, reference files and profile documents, and the HTML report."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.reference import (
    VersionProfiles,
    build_version_profiles,
    onnx_runner,
    read_reference,
)
from gateway.monitoring.report import render_html
from gateway.tools import modelzoo
from registry.signature import Signature, TensorSpec, signature_from_bytes

MIXED = (
    TensorSpec("a", "FP32", (-1, 3)),
    TensorSpec("ids", "INT64", (-1,)),
    TensorSpec("text", "BYTES", (-1, 1)),
    TensorSpec("image", "FP32", (-1, 3, 8, 8)),
    TensorSpec("seq", "FP32", (-1, -1)),
    TensorSpec("b", "FP64", (-1, 2)),
)


def test_layout_names_skips_and_stacks() -> None:
    layout = FeatureLayout.from_specs(MIXED)
    assert layout.names == ("a[0]", "a[1]", "a[2]", "ids", "b[0]", "b[1]")
    assert [name for name, _ in layout.skipped] == ["text", "image", "seq"]
    assert not layout.complete
    one = {"a": np.ones((2, 3), np.float32), "ids": np.array([4, 5]), "b": np.zeros((2, 2))}
    two = {"a": np.full((1, 3), 2, np.float32), "ids": np.array([6]), "b": np.ones((1, 2))}
    partial = {"a": np.ones((5, 3), np.float32)}  # e.g. requested_outputs left some out
    x = layout.stack([one, partial, two])
    assert x.dtype == np.float64 and x.shape == (3, 6)
    np.testing.assert_array_equal(x[:, 3], [4, 5, 6])
    np.testing.assert_array_equal(x[2], [2, 2, 2, 6, 1, 1])
    assert layout.stack([]).shape == (0, 6)


def test_split_inverts_stack_for_complete_layouts() -> None:
    specs = (TensorSpec("a", "FP32", (-1, 3)), TensorSpec("ids", "INT64", (-1,)))
    layout = FeatureLayout.from_specs(specs)
    tensors = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "ids": np.array([7, 8])}
    back = layout.split(
        layout.stack([tensors]), {"a": np.dtype(np.float32), "ids": np.dtype(np.int64)}
    )
    for name, arr in tensors.items():
        np.testing.assert_array_equal(back[name], arr)
        assert back[name].dtype == arr.dtype


def test_read_reference_formats(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((20, 3))
    np.save(tmp_path / "r.npy", x)
    np.savez(tmp_path / "first.npz", a=x, b=x * 2)
    np.savez(tmp_path / "named.npz", b=x * 2, x=x)
    (tmp_path / "r.csv").write_text("u,v,w\n1,2,3\n4,,6\n")
    for name in ("r.npy", "first.npz", "named.npz"):
        got, names = read_reference(tmp_path / name)
        np.testing.assert_array_equal(got, x)
        assert names is None
    got, names = read_reference(tmp_path / "r.csv")
    assert names == ("u", "v", "w")
    np.testing.assert_array_equal(got, [[1, 2, 3], [4, np.nan, 6]])
    (tmp_path / "r.txt").write_text("1")
    with pytest.raises(ValueError, match="npy"):
        read_reference(tmp_path / "r.txt")
    with pytest.raises(ValueError, match="cannot read"):
        read_reference(tmp_path / "missing.npy")


def test_version_profiles_from_a_reference_run_the_model() -> None:
    data = modelzoo.mlp((4, 8, 2), seed=0)
    signature = signature_from_bytes(data)
    x = np.random.default_rng(1).standard_normal((9000, 4))
    x[:, 1] = np.round(x[:, 1])  # declared categorical below
    meta = {"categorical_features": "x[1]"}
    profiles = build_version_profiles(signature, x, metadata=meta, run=onnx_runner(data))
    assert profiles.inputs is not None and profiles.outputs is not None
    assert profiles.inputs.categorical.tolist() == [False, True, False, False]
    assert profiles.outputs.feature_names == ("probabilities[0]", "probabilities[1]", "label")
    assert profiles.outputs.n_rows == 9000  # run in chunks, every row profiled
    doc = json.loads(json.dumps(profiles.to_doc(), allow_nan=False))
    again = VersionProfiles.from_doc(doc)
    assert again.inputs is not None and again.outputs is not None
    np.testing.assert_array_equal(again.outputs.ref_counts, profiles.outputs.ref_counts)
    with pytest.raises(ValueError, match="3 columns"):
        build_version_profiles(signature, x[:, :3])
    with pytest.raises(ValueError, match="unknown feature"):
        build_version_profiles(signature, x, metadata={"categorical_features": "nope"})


def test_models_with_unmonitored_inputs_get_no_output_profile() -> None:
    signature = Signature(
        inputs=(TensorSpec("x", "FP32", (-1, 2)), TensorSpec("t", "BYTES", (-1,))),
        outputs=(TensorSpec("y", "FP32", (-1, 1)),),
    )
    profiles = build_version_profiles(
        signature, np.zeros((10, 2)), run=lambda t: {"y": np.zeros((10, 1))}
    )
    assert profiles.inputs is not None and profiles.outputs is None


def test_html_report_is_self_contained_with_parseable_svg() -> None:
    feature = {
        "name": "age<script>",
        "drifted": True,
        "psi": 0.5,
        "pvalue_adjusted": 1e-9,
        "histogram": {"edges": [0.0, 1.0], "reference": [10, 20, 30], "current": [30, 20, 0]},
    }
    payload = {
        "model": "m",
        "versions": [
            {
                "version": "1",
                "profile_source": "reference",
                "sides": [{"side": "inputs", "drifted": True, "features": [feature]}],
            }
        ],
    }
    page = render_html(payload)
    assert "<script>" not in page and "age&lt;script&gt;" in page
    assert "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    (svg,) = re.findall(r"<svg.*?</svg>", page, re.S)
    root = ET.fromstring(svg)
    bars = [e for e in root if e.tag.endswith("rect")][:-2]  # the last two: the legend
    assert len(bars) == 6
    assert "reference (0,1]: 20 of 60 (33.3%)" in svg


def test_single_tensor_fast_path_falls_back_on_misfits() -> None:
    layout = FeatureLayout.from_specs((TensorSpec("x", "FP32", (-1, 2)),))
    good = {"x": np.ones((2, 2), np.float32)}
    wide = {"x": np.ones((1, 4), np.float32)}
    assert layout.stack([good, {}, wide, good]).shape == (4, 2)
    labels = FeatureLayout.from_specs((TensorSpec("label", "INT64", (-1,)),))
    x = labels.stack(
        [{"label": np.array([1, 2])}, {"label": np.array([[3]])}, {"label": np.array([4])}]
    )
    np.testing.assert_array_equal(x[:, 0], [1, 2, 4])
