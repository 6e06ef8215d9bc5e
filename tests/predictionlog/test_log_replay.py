"""``onnxgate log replay``: a candidate version run over the logged inputs of a period,
its agreement with what was served reported — exact for the version that served, and the
known disagreement for a version that differs."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort

from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import onnxgate

SIZES = (4, 16, 3)


def _outputs(data: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x}), strict=True))


def test_replay_reports_agreement_with_what_was_served(
    registry, registry_url, make_gateway, tmp_path: Path
) -> None:
    served_bytes = modelzoo.mlp(SIZES, seed=4)
    candidate_bytes = modelzoo.mlp(SIZES, seed=4, bias_shift=0.5)
    registry.register_version("r", served_bytes, actor="test")
    registry.register_version("r", candidate_bytes, actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(str(log_dir),))
    rng = np.random.default_rng(9)
    sent = []
    for i in range(30):
        x = rng.normal(size=(2, 4)).astype("<f4")
        call = pb.ModelInferRequest(model_name="r", model_version="1", id=f"q-{i}")
        call.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
        call.raw_input_contents.append(x.tobytes())
        gw.stub().ModelInfer(call, timeout=30)
        sent.append(x)
    gw.stop()
    store = ("--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts"))
    where = (*store, "--dir", str(log_dir), "--json")

    same = onnxgate("log", "replay", "r", "--version", "1", *where)
    assert same.returncode == 0, same.stderr
    report = json.loads(same.stdout)
    assert (report["records"], report["rows"], report["failed"]) == (30, 60, 0)
    assert report["served_versions"] == {"1": 30}
    assert report["exact_share"] == 1.0 and report["label_agreement"] == 1.0
    assert all(o["max_abs_diff"] == 0.0 for o in report["outputs"].values())

    x = np.concatenate(sent)
    served, candidate = _outputs(served_bytes, x), _outputs(candidate_bytes, x)
    label = next(n for n in served if "label" in n)
    scores = next(n for n in served if n != label)
    expected_agreement = float(np.mean(served[label] == candidate[label]))
    assert expected_agreement < 1.0  # the candidate really differs
    other = json.loads(onnxgate("log", "replay", "r", "--version", "2", *where).stdout)
    assert other["label_agreement"] == expected_agreement
    assert other["exact_share"] < 1.0
    diff = float(np.abs(served[scores].astype(np.float64) - candidate[scores]).max())
    assert abs(other["outputs"][scores]["max_abs_diff"] - diff) < 1e-6

    # A period: nothing logged in the future; everything since an hour ago.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    none = onnxgate("log", "replay", "r", "--version", "1", "--since", later, *where)
    none = json.loads(none.stdout)
    assert none["records"] == 0 and none["exact_share"] is None
    earlier = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    window = onnxgate("log", "replay", "r", "--version", "2", "--since", earlier, "--until", later,
                      *store, "--dir", str(log_dir))  # fmt: skip
    assert window.returncode == 0 and "replayed 30 record(s) (60 rows)" in window.stdout
    bad = onnxgate("log", "replay", "r", "--version", "1", "--since", "yesterday", *where)
    assert bad.returncode != 0 and "--since" in bad.stderr
