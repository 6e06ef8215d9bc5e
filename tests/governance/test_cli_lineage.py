"""Lineage through the CLI: register flags, search by tag and metric, model cards,
validation and approvals listings — tables, --json and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway import cli
from gateway.tools import modelzoo
from governance.support import linear
from registry.registry import Registry

Run = Callable[..., int]
DATA_SHA = "ab" * 32


@pytest.fixture
def onnxgate(registry_url: str, artifact_dir: Path) -> Run:
    flags = ["--registry", registry_url, "--artifact-dir", str(artifact_dir)]
    return lambda *args: cli.main([*args, *flags])


@pytest.fixture
def registered(onnxgate: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, auc, team in ((1, "0.85", "risk"), (2, "0.93", "risk"), (3, "0.95", "growth")):
        path = tmp_path / f"m{seed}.onnx"
        path.write_bytes(linear(seed))
        code = onnxgate(
            "models", "register", "m", str(path), "--owner", "ana",
            "--metric", f"auc={auc}", "--metric", "latency_ms=3",
            "--tag", f"team={team}", "--param", "lr=0.01", "--param", "depth=6",
            "--param", "loss=logloss", "--license", "Apache-2.0",
            "--training-data", "s3://bucket/train.parquet", "--training-data-sha256", DATA_SHA,
            "--code-ref", f"deadbee{seed}", *(["--parent", str(seed - 1)] if seed > 1 else []),
        )  # fmt: skip
        assert code == 0
    capsys.readouterr()


def test_register_flags_are_stored(
    registered: None, reg: Registry, onnxgate: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    lin = reg.get_version("m", "3").lineage
    assert lin.metrics == {"auc": 0.95, "latency_ms": 3.0}
    assert lin.hyperparameters == {"lr": 0.01, "depth": 6, "loss": "logloss"}
    assert (lin.parent, lin.code_ref, lin.training_data_sha256) == ("m:2", "deadbee3", DATA_SHA)
    assert onnxgate("models", "show", "m:3", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    # The registry adds its own tags (the scan's result, the runtime it validated on).
    own = {"scan", "validated.runtime"}
    tags = {k: v for k, v in shown["lineage"]["tags"].items() if k not in own}
    assert tags == {"team": "growth"} and shown["validation"]["passed"]
    assert shown["lineage"]["tags"]["scan"].startswith("passed")


SEARCHES = [
    (["--metric", "auc>0.9"], ["2", "3"]),
    (["--metric", "auc>=0.93"], ["2", "3"]),
    (["--metric", "auc<0.93"], ["1"]),
    (["--metric", "auc<=0.85"], ["1"]),
    (["--metric", "latency_ms=3"], ["1", "2", "3"]),
    (["--tag", "team=risk"], ["1", "2"]),
    (["--tag", "team=risk", "--metric", "auc>0.9"], ["2"]),
    (["--metric", "f1>0"], []),
    (["--status", "champion"], ["1"]),
]


def test_search(registered: None, onnxgate: Run, capsys: pytest.CaptureFixture[str]) -> None:
    for filters, expected in SEARCHES:
        assert onnxgate("models", "search", *filters, "--json") == 0
        found = [v["version"] for v in json.loads(capsys.readouterr().out)]
        assert found == expected, filters


def test_search_table_and_bad_filter(
    registered: None, onnxgate: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    assert onnxgate("models", "search", "--tag", "team=growth") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["MODEL", "VERSION", "STATUS", "LICENSE", "METRICS", "TAGS"]
    assert lines[2].split() == ["m", "3", "validated", "Apache-2.0", "auc=0.95", "latency_ms=3",
                                "team=growth"]  # fmt: skip
    assert onnxgate("models", "search", "--metric", "auc~0.9") == 1
    out, err = capsys.readouterr()
    assert out == "" and "metric filter 'auc~0.9'" in err


def test_register_refuses_bad_lineage(
    onnxgate: Run, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(linear(1))
    for flags, needle in (
        (["--metric", "auc=high"], "'high' is not a number"),
        (["--training-data-sha256", "xyz"], "64 hex digits"),
        (["--tag", "novalue"], "KEY=VALUE"),
        (["--parent", "9"], "parent version m:9"),
    ):
        assert onnxgate("models", "register", "m", str(path), *flags) == 1
        out, err = capsys.readouterr()
        assert out == "" and needle in err and len(err.strip().splitlines()) == 1


def test_model_card(
    registered: None,
    reg: Registry,
    onnxgate: Run,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reg.governance.approve("m", "2", approver="bob", comment="reviewed <b>")
    reg.set_weights("m", {"1": 90, "2": 10}, actor="op", reason="canary")
    reg.set_profile("m", "2", {"format": 1, "inputs": {"feature_names": ["a", "b"],
                    "n_rows": 500}, "outputs": None}, source="reference", actor="ana")  # fmt: skip
    reg.record_audit(actor="gateway", action="drift.alert", subject="m:2", reason="psi 0.4")
    html_file = tmp_path / "card.html"
    assert onnxgate("models", "card", "m:2", "--html", str(html_file)) == 0
    md = capsys.readouterr().out
    assert md.startswith("# Model card: m:2\n")
    for needle in (
        "**Parents:** m:1",
        f"(sha256 `{DATA_SHA}`)",
        "| auc | 0.93 |",
        "| lr | 0.01 |",
        "| input | x | FP32 | [-1, 4] |",
        "| deterministic | pass |",
        "**Inputs:** 500 reference row(s); features a, b",
        "**Approvals:** 1 of 0 required by policy",
        "| bob |",
        "| 2 |",
        "challenger 10.0%",
        "| drift.alert | m:2 | psi 0.4 |",
    ):
        assert needle in md, needle
    page = html_file.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<h2>Lineage</h2>" in page
    assert "reviewed &lt;b&gt;" in page and "<b>" not in page.replace("<body>", "")


def test_validate_and_approvals_cli(
    reg: Registry, onnxgate: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    reg.register_version("m", linear(1), actor="alice")
    reg.register_version("m", modelzoo.failing_at_run(), force=True, actor="alice")
    assert onnxgate("models", "validate", "m:1") == 0
    assert "m:1 validation passed" in capsys.readouterr().out
    assert onnxgate("models", "validate", "m:2", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    failed = [c["name"] for c in doc["checks"] if not c["passed"]]
    assert failed == ["inference", "deterministic"]
    reg.governance.approve("m", "1", approver="bob", comment="ok")
    assert onnxgate("models", "approvals", "m") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "APPROVER", "AT", "COMMENT"]
    assert lines[2].split()[:2] == ["1", "bob"]
