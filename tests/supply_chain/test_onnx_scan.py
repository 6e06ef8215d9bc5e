"""The scan at registration refuses hostile or unservable ONNX files in one line naming the
finding, before onnxruntime parses them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from registry.artifact_scan import ScanFinding, scan_onnx
from registry.registry import Registry
from supply_chain.conftest import linear_onnx


def _external(location: str) -> bytes:
    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "W")
    external_data_helper.set_external_data(w, location=location, offset=0, length=32)
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    return bytes(linear_onnx(w).SerializeToString())


@pytest.mark.parametrize("location", ["../../secret.bin", "/etc/passwd", "a/../../x.bin"])
def test_external_data_outside_the_artifact_is_refused(
    onnxgate, registry: Registry, tmp_path: Path, capfd, location: str
):
    path = tmp_path / "ext.onnx"
    path.write_bytes(_external(location))
    assert onnxgate("models", "register", "m", str(path)) == 1
    (line,) = capfd.readouterr().err.strip().splitlines()
    assert line == (
        f"onnxgate: scan: initializer 'W' reads external data from {location!r}, "
        "outside the artifact"
    )
    assert registry.list_models() == []


def test_external_data_beside_the_file_is_refused_too() -> None:
    with pytest.raises(ScanFinding, match="keeps its data in another file"):
        scan_onnx(_external("weights.bin"))


def test_unknown_operator_domain_is_refused() -> None:
    model = linear_onnx()
    model.graph.node.append(helper.make_node("Evil", ["y"], ["z"], domain="com.example.custom"))
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    with pytest.raises(ScanFinding, match="operator domain 'com.example.custom'"):
        scan_onnx(model.SerializeToString())


def test_initializer_larger_than_the_file_is_refused() -> None:
    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 2], b"\x00" * 32, raw=True)
    w.dims[:] = [1 << 20, 1 << 20]  # a terabyte-scale shape over 32 bytes of data
    with pytest.raises(ScanFinding, match="more than the .*-byte file can hold"):
        scan_onnx(linear_onnx(w).SerializeToString())
    w.dims[:] = [4, 4]  # a shape its 32 bytes cannot fill
    with pytest.raises(ScanFinding, match=r"declares shape \[4, 4\] \(64 bytes\) but holds 32"):
        scan_onnx(linear_onnx(w).SerializeToString())


def test_a_plain_model_passes_with_its_counts() -> None:
    assert scan_onnx(linear_onnx().SerializeToString()) == (
        "passed: 1 nodes, 1 initializers, domains ai.onnx"
    )


def test_graphs_over_the_limits_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from registry import artifact_scan

    data = linear_onnx().SerializeToString()
    monkeypatch.setattr(artifact_scan, "MAX_NODES", 0)
    with pytest.raises(ScanFinding, match="more than 0 nodes"):
        scan_onnx(data)
    monkeypatch.setattr(artifact_scan, "MAX_NODES", 10)
    monkeypatch.setattr(artifact_scan, "MAX_INITIALIZERS", 0)
    with pytest.raises(ScanFinding, match="more than 0 initializers"):
        scan_onnx(data)
