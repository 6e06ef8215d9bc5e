"""``make demo`` end to end (issue 6's "Demo"): the demo runs in a fresh process with
``--fast`` in a temporary data dir, and the registry it leaves behind proves the story
happened: governor advances, a promotion, a rollback on the drift gates, a challenger
promoted on delayed labels, a canary rolled back on its label-free estimate (confirmed by
labels sent later), an intact audit chain, and no failed request."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# scikit-learn and skl2onnx are dev dependencies (make test installs them): a missing one
# is a broken environment, so this fails at import rather than skipping the demo test.
import skl2onnx  # noqa: F401
import sklearn  # noqa: F401

from registry.registry import Registry

pytestmark = pytest.mark.slow


def _decisions(registry: Registry, model: str = "credit") -> list[dict[str, Any]]:
    """Governor decisions from the audit log, applied or recorded, oldest first."""
    out = []
    for e in registry.audit_events(subject=model):
        if e.actor != "governor":
            continue
        if e.action == "governor.decision":
            out.append(e.after["decision"])
        elif isinstance(e.after, dict) and "details" in e.after:
            out.append(e.after["details"]["decision"])
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path_factory.mktemp("demo") / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.demo", "--fast", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    return proc, data


def test_demo_exits_cleanly_and_prints_the_story(demo: Any) -> None:
    proc, data = demo
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for line in (
        "governor ADVANCE  v3 -> 10%",
        "governor PROMOTE  v3",
        "governor ADVANCE  v4 -> 10%",
        "DRIFT INJECTED",
        "governor ROLLBACK v4",
        "governor PROMOTE  v2: challenger better",
        "shadow agreement of v2 with the champion:",
        "failed requests in the whole demo: 0",
        "4b. Why that answer: explain one prediction by the id infer printed",
        "request id why-1",
        "method kernel",
        "top 3 attributions",
        "audit hash chain: intact",
        # 11: a canary rolled back on its label-free estimate, then confirmed by labels
        "INPUTS SHIFT",
        "governor ROLLBACK v2: hard gate failed: estimated_drop",
        "(decided on a label-free estimate: the audit event says so)",
        '"used_estimate": true',
        "(REAL_ACC is empty: no label has arrived)",
        # 14: what was served, kept: the prediction log verified and queried
        "14. What was served: the prediction log",
        "prediction log intact:",
        "model   version  role        status  requests  p99_ms",
        "       request_id why-1",
    ):
        assert line in out, f"{line!r} not printed; the story around the first gap:\n" + out[-6000:]
    assert "did not happen within" not in out  # no bounded wait ran out
    assert "!! onnxgate exited" not in out  # every CLI command of the story worked
    # Every phase printed its failed-request count, and each was zero.
    phases = [ln for ln in out.splitlines() if " requests  " in ln and "failed:" in ln]
    assert len(phases) >= 9
    assert all(ln.rstrip().endswith("failed: 0") for ln in phases), phases
    report = data / "drift-credit-v4.html"
    assert report.is_file() and "X[0]" in report.read_text()


def test_the_story_is_plain_text_without_log_lines_in_it(demo: Any) -> None:
    proc, data = demo
    assert proc.returncode == 0
    assert "\033[" not in proc.stdout  # not a terminal: no ANSI escapes
    for stream in (proc.stdout, proc.stderr):
        assert not [ln for ln in stream.splitlines() if " WARNING " in ln or "WARNING:" in ln]
    assert (data / "gateway.log").is_file()  # where the gateway's own log lines went
    assert "(0 and 0 of" not in proc.stdout and "0/0 labels" not in proc.stdout
    # Tables list the champion first, whatever order a command named the versions in.
    assert "2        challenger  50.0%\n      3        champion" not in proc.stdout
    assert "quality (upper bound of candidate - champion accuracy)" in proc.stdout


def test_the_estimate_rolled_the_churn_canary_back_and_the_labels_confirm_it(demo: Any) -> None:
    proc, data = demo
    assert proc.returncode == 0
    side_by_side = re.findall(
        r"v(\d): estimated ([\d.]+)% \(95% CI [\d.]+%-[\d.]+%\) before any label; "
        r"realised ([\d.]+)% on (\d+) labels",
        proc.stdout,
    )
    figures = {v: (float(est) / 100, float(real) / 100, int(n)) for v, est, real, n in side_by_side}
    assert set(figures) == {"1", "2"}, proc.stdout[-4000:]
    (est1, real1, n1), (est2, real2, n2) = figures["1"], figures["2"]
    assert n1 > 0 and n2 > 0
    assert real2 < real1 - 0.1 and est2 < est1 - 0.1  # the labels confirm what was estimated
    registry = Registry.open(f"sqlite:///{data / 'registry.db'}", data / "artifacts")
    try:
        decisions = _decisions(registry, "churn")
        rollback = next(d for d in decisions if d["kind"] != "hold")
        assert (rollback["kind"], rollback["candidate"]) == ("rollback", "2")
        assert rollback["used_estimate"] is True
        failed = {g["name"] for g in rollback["gates"] if g["status"] == "fail"}
        assert failed == {"estimated_drop"}
        assert not any(f.get("labelled") for f in rollback["figures"].values())  # no labels
        assert registry.get_deployment("churn").arm("2") is None
        report = (data / "drift-churn.html").read_text()
        assert 'id="performance"' in report and "isotonic" in report
    finally:
        registry.close()


def test_registry_holds_the_governor_decisions_and_an_intact_chain(demo: Any) -> None:
    proc, data = demo
    assert proc.returncode == 0
    registry = Registry.open(f"sqlite:///{data / 'registry.db'}", data / "artifacts")
    try:
        decisions = _decisions(registry)
        changes = [(d["kind"], d["candidate"]) for d in decisions if d["kind"] != "hold"]
        assert changes[:4] == [("advance", "3")] * 3 + [("promote", "3")]
        assert ("rollback", "4") in changes and changes[-1] == ("promote", "2")
        rollback = next(d for d in decisions if d["kind"] == "rollback")
        failed = {g["name"] for g in rollback["gates"] if g["status"] == "fail"}
        # The outputs' verdict may land a refresh before the inputs': either drift gate.
        assert failed and failed <= {"input_drift", "output_drift"}
        promote = decisions[-1]
        assert promote["test"]["delta"] > 0 and promote["state"]["p_value"] <= 0.01
        assert registry.get_deployment("credit").champion.version == "2"
        actions = {(e.actor, e.action) for e in registry.audit_events()}
        assert ("governor", "deployment.promote") in actions
        assert ("demo-operator", "governor.policy") in actions
        assert registry.verify_audit_chain() == []
    finally:
        registry.close()
