"""Label-free performance estimates end to end: ``models register --reference-labels``,
``onnxgate performance --json`` on a real gateway, and the realised accuracy once the
delayed labels are sent (a logistic model under covariate shift)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from monitoring_support import infer_request
from prometheus_client import generate_latest
from shared import ADMIN_TOKEN, admin_metadata, clear_onnxgate_env, wait_for

from gateway import cli
from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway.tools import modelzoo

FEATURES = 4
WEIGHTS = np.array([2.0, -1.5, 1.0, 0.5])
POLICY = '[feedback]\noutput = "label"\n'


def logistic_model() -> bytes:
    return modelzoo.logistic(WEIGHTS.tolist())


def sample(rng: np.random.Generator, rows: int, shift: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels drawn from the model's own probabilities (no concept shift); the
    shift pulls the strongest features towards the decision boundary."""
    x = rng.standard_normal((rows, FEATURES))
    if shift:
        x[:, :2] *= 0.25
    p = 1.0 / (1.0 + np.exp(-(x.astype(np.float32) @ WEIGHTS)))
    return x, (rng.random(rows) < p).astype(np.int64)


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    clear_onnxgate_env(monkeypatch)
    monkeypatch.setenv("ONNXGATE_ADMIN_TOKEN", ADMIN_TOKEN)


@pytest.fixture
def register(registry_url, tmp_path):
    model = tmp_path / "logistic.onnx"
    model.write_bytes(logistic_model())
    flags = ["--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts")]

    def run(*args: str) -> int:
        return cli.main(["models", "register", "m", str(model), "--allow-duplicate", *args, *flags])

    return run


def test_reference_labels_refused_in_one_line(registry, register, tmp_path, capfd) -> None:
    x, y = sample(np.random.default_rng(0), 500, shift=False)
    np.save(tmp_path / "ref.npy", x)
    np.save(tmp_path / "short.npy", y[:400])
    np.save(tmp_path / "three.npy", np.where(y == 1, 2, 0))
    capfd.readouterr()
    assert register("--reference", str(tmp_path / "ref.npy"), "--reference-labels",
                    str(tmp_path / "short.npy")) == 1  # fmt: skip
    err = capfd.readouterr().err.strip()
    assert "400 labels for 500 reference rows" in err and len(err.splitlines()) == 1
    assert register("--reference", str(tmp_path / "ref.npy"), "--reference-labels",
                    str(tmp_path / "three.npy")) == 1  # fmt: skip
    err = capfd.readouterr().err.strip()
    assert "not a class id the model can output (0..1" in err and len(err.splitlines()) == 1
    assert register("--reference-labels", str(tmp_path / "short.npy")) == 1
    assert "need --reference" in capfd.readouterr().err
    assert registry.list_models() == []  # refused before registering

    # A CSV reference's label column: taken out of the features, kept with the profile.
    names = [f"f{i}" for i in range(FEATURES)] + ["y"]
    np.savetxt(tmp_path / "ref.csv", np.column_stack([x, y]), delimiter=",",
               header=",".join(names), comments="")  # fmt: skip
    assert register("--reference", str(tmp_path / "ref.csv"), "--label-column", "y") == 0
    doc, _ = registry.get_profile("m", "1")
    assert doc["inputs"]["feature_names"] == names[:-1]
    assert doc["performance"]["scores"] == "probabilities"
    assert doc["performance"]["classes"] == 2


def test_estimate_under_shift_matches_realised_accuracy(
    registry, register, make_gateway, tmp_path, capfd
) -> None:
    rng = np.random.default_rng(7)
    x_ref, y_ref = sample(rng, 10_000, shift=False)
    np.save(tmp_path / "ref.npy", x_ref)
    np.save(tmp_path / "labels.npy", y_ref)
    assert register("--reference", str(tmp_path / "ref.npy"), "--reference-labels",
                    str(tmp_path / "labels.npy")) == 0  # fmt: skip
    gw = make_gateway(monitor_interval_s=60, governor_interval_s=0.05)
    governor = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    governor.SetPolicy(gpb.SetPolicyRequest(model="m", toml=POLICY), metadata=admin_metadata())
    wait_for(lambda: "m" in gw.gateway.feedback.configured(), timeout=10)  # records predictions

    x, y = sample(rng, 4000, shift=True)
    stub = gw.stub()
    predicted = []
    rows = 20
    for i, start in enumerate(range(0, x.shape[0], rows)):
        req = infer_request("m", x[start : start + rows])
        req.id = f"r{i}"
        resp = stub.ModelInfer(req, timeout=30)
        predicted.append(np.frombuffer(resp.raw_output_contents[0], dtype=np.int64))
    realised = float(np.mean(np.concatenate(predicted) == y))
    reference_accuracy = float(np.mean((x_ref @ WEIGHTS > 0) == y_ref))
    assert reference_accuracy - realised >= 0.10  # the shift costs at least ten points

    target = ["--target", gw.target]
    capfd.readouterr()
    assert cli.main(["performance", "m", "--json", *target]) == 0
    (before,) = json.loads(capfd.readouterr().out)["versions"]
    assert before["rows"] == 4000 and before["realised"] is None
    est = before["estimated"]
    assert abs(est["accuracy"] - realised) <= 0.03, (est, realised)
    low, high = est["accuracy_ci"]
    assert low < est["accuracy"] < high
    assert 0.5 < est["roc_auc"] < 1.0 and 0.5 < est["f1"] < 1.0
    assert before["method"] in ("isotonic", "none") and before["note"]
    scraped = generate_latest(gw.gateway.metrics.registry).decode()
    series = 'onnxgate_performance_estimated_accuracy{model="m",version="1"} '
    (gauge,) = [line for line in scraped.splitlines() if line.startswith(series)]
    assert float(gauge.split()[-1]) == pytest.approx(est["accuracy"])

    items = [
        gpb.FeedbackItem(id=f"r{i // rows}", row=i % rows, label=str(int(label)))
        for i, label in enumerate(y)
    ]
    for start in range(0, len(items), 500):
        reply = governor.Feedback(gpb.FeedbackRequest(model="m", items=items[start : start + 500]))
        assert reply.joined == len(items[start : start + 500])
    assert cli.main(["performance", "m", "--json", *target]) == 0
    (after,) = json.loads(capfd.readouterr().out)["versions"]
    assert after["realised"]["labels"] == 4000
    assert after["realised"]["accuracy"] == pytest.approx(realised)
    assert abs(after["estimated"]["accuracy"] - after["realised"]["accuracy"]) <= 0.03

    assert cli.main(["performance", "m", *target]) == 0
    table = capfd.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["VERSION", "ROLE", "ROWS"]
    assert table[2].split()[0] == "1"

    # The drift HTML report carries the same figures in its performance section.
    report = tmp_path / "drift.html"
    assert cli.main(["drift", "m", "--html", str(report), *target]) == 0
    section = report.read_text().split('<h2 id="performance">')[1].split("</table>")[0]
    (row,) = [r for r in section.split("<tr>")[2:]]
    cells = [c.split("</td>")[0] for c in row.split("<td")[1:]]
    cells = [c.split(">", 1)[1] for c in cells]
    est, real = after["estimated"], after["realised"]
    assert cells[:3] == ["1", "champion", "4000"]
    assert cells[3] == f"{100 * est['accuracy']:.1f}%"
    low, high = est["accuracy_ci"]
    assert cells[4] == f"{100 * low:.1f}% – {100 * high:.1f}%"
    assert cells[5:7] == [f"{est['roc_auc']:.3g}", f"{est['f1']:.3g}"]
    assert cells[7:9] == [f"{100 * real['accuracy']:.1f}%", "4000"]
    assert cells[9] == after["note"] and ("isotonic" in cells[9] or "calibrated" in cells[9])


def test_the_drift_report_has_no_performance_section_without_reference_labels() -> None:
    from gateway.monitoring.report import render_html

    page = render_html({"model": "m", "versions": []})
    assert 'id="performance"' not in page
    with_note = {"model": "m", "versions": [], "performance": [
        {"version": "1", "role": "champion", "rows": 10, "estimated": None, "realised": None,
         "note": "no class scores among the monitored outputs"}]}  # fmt: skip
    page = render_html(with_note)
    assert 'id="performance"' in page and "no class scores" in page
