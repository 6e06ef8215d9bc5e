"""``onnxgate explain`` against a real gateway: the --json object, the table, --id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from explain_support import infer, onnx_of, register
from sklearn.linear_model import LogisticRegression

from gateway import cli

FEATURES = 4
KEYS = [
    "model",
    "version",
    "output",
    "method",
    "features",
    "base_value",
    "attributions",
    "output_value",
]


def _model(registry) -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(300, FEATURES))
    model = LogisticRegression().fit(ref, (ref[:, 0] - ref[:, 2] > 0).astype(int))
    register(registry, "cli-m", onnx_of(model, FEATURES), ref)
    return model, ref


def test_json_prints_exactly_the_documented_object(
    registry, make_gateway, tmp_path: Path, capsys
) -> None:
    model, ref = _model(registry)
    gw = make_gateway()
    rows = np.random.default_rng(1).normal(size=(5, FEATURES))
    np.save(tmp_path / "rows.npy", rows)

    code = cli.main(
        ["explain", "cli-m", "--data", str(tmp_path / "rows.npy"), "--json", "--target", gw.target]
    )

    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == KEYS
    assert (out["model"], out["version"], out["method"]) == ("cli-m", "1", "kernel")
    assert out["output"] == "logit(probabilities[1])"
    assert out["features"] == [f"x[{i}]" for i in range(FEATURES)]
    assert len(out["base_value"]) == len(out["output_value"]) == 5
    attrs = np.asarray(out["attributions"])
    assert attrs.shape == (5, FEATURES)
    expected = model.coef_[0] * (rows - ref.mean(axis=0))
    np.testing.assert_allclose(attrs, expected, atol=1e-6)


def test_table_and_by_id_and_csv(registry, make_gateway, tmp_path: Path, capsys) -> None:
    _, ref = _model(registry)
    gw = make_gateway()
    csv = tmp_path / "rows.csv"
    csv.write_text("a,b,c,d\n1,2,3,4\n0,0,0,0\n", encoding="utf-8")

    assert cli.main(["explain", "cli-m:1", "--data", str(csv), "--target", gw.target]) == 0
    table = capsys.readouterr().out
    assert "cli-m:1  logit(probabilities[1])  method kernel" in table
    assert "top 3 attributions" in table and "x[0]" in table

    infer(gw, "cli-m", ref[:2], "served-7")
    assert cli.main(["explain", "cli-m", "--id", "served-7", "--json", "--target", gw.target]) == 0
    assert len(json.loads(capsys.readouterr().out)["base_value"]) == 2

    assert cli.main(["explain", "cli-m", "--id", "gone", "--target", gw.target]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err
