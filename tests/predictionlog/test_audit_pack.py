"""``onnxgate audit pack``: the auditor's folder from a real registry after a real governed
rollout with the prediction log on (the canary of tests/governor/test_canary.py)."""

from __future__ import annotations

import hashlib
import json
import sys
from html.parser import HTMLParser
from pathlib import Path

from shared import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "governor"))
from govtools import FAST, Load, normal_rows, set_policy, threshold_model

from gateway.auditpack import ARTICLES, Evidence, build_parts, index_of
from registry import utcnow
from registry.deployment import Role

POLICY = """
[canary]
steps = [10, 50]
interval_s = 0.15
min_requests = 15

[gates]
max_p99_ratio = false  # loopback latency on a loaded 2-core box is noise, not evidence
min_requests = 10
"""


def _pack(onnxgate, out: Path, log_dir: Path, *period: str) -> int:
    flags = ("--out", str(out), "--log-dir", str(log_dir))
    return int(onnxgate("audit", "pack", "m", *period, *flags))


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_pack_of_a_governed_rollout_maps_every_file_and_verifies(
    registry, make_gateway, onnxgate, tmp_path: Path
) -> None:
    start = utcnow()
    registry.register_version("m", threshold_model(1), version="1", actor="t")
    registry.register_version("m", threshold_model(1, scale=2.0), version="2", actor="t")
    registry.governance.validate("m", "2", actor="t")
    registry.governance.approve("m", "2", approver="alice", comment="reviewed the eval report")
    registry.set_weights("m", {"1": 90, "2": 10}, {"2": Role.CANARY}, actor="t", reason="canary")
    log_dir = tmp_path / "log"
    gw = make_gateway(**FAST, prediction_log=(str(log_dir),))
    set_policy(gw, "m", POLICY)
    load = Load(gw.target, "m", normal_rows).start()
    try:
        wait_for(lambda: registry.get_deployment("m").champion.version == "2", timeout=90)
    finally:
        outcomes = load.stop()
    gw.stop()  # closes the log's files: each one chained as a log.segment event
    end = utcnow()
    parquet = sorted(p.relative_to(log_dir).as_posix() for p in log_dir.rglob("*.parquet"))
    assert parquet

    out = tmp_path / "pack"
    period = ("--since", start.isoformat(), "--until", end.isoformat())
    assert _pack(onnxgate, out, log_dir, *period) == 0

    files = _files(out)
    index = json.loads(files["index.json"])
    listed = {f["path"]: f for f in index["files"]}
    # Every file but the index itself is listed, with the sha256 of its bytes.
    assert set(listed) == set(files) - {"index.json", "index.md", "index.html"}
    for path, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[path]).hexdigest(), path
        assert entry["articles"] and set(entry["articles"]) <= set(ARTICLES)
    assert set(index["articles"]) == {"Art. 11", "Art. 12", "Art. 19"}
    assert all(index["articles"][a]["files"] for a in ARTICLES)
    assert index["verified"] is True and index["model"] == "m"

    assert {"model-cards/1.md", "model-cards/2.html"} <= set(listed)
    lineage = json.loads(files["lineage.json"])
    assert [v["version"] for v in lineage] == ["1", "2"]
    assert lineage[1]["sha256"] == registry.get_version("m", "2").sha256
    approvals = json.loads(files["approvals.json"])
    assert [(a["version"], a["approver"]) for a in approvals] == [("2", "alice")]

    deployments = json.loads(files["deployments.json"])
    by_governor = [d for d in deployments if d["actor"] == "governor"]
    assert [d["governor_decision"] for d in by_governor] == ["advance", "promote"]
    assert ("t", "canary") in [(d["actor"], d["reason"]) for d in deployments]
    decisions = json.loads(files["governor-decisions.json"])
    applied = [d for d in decisions if d["applied"]]
    assert [d["kind"] for d in applied] == ["advance", "promote"]
    gates = {g["name"]: g for g in applied[-1]["gates"]}
    assert gates["error_rate"]["status"] == "pass" and "threshold" in gates["error_rate"]
    assert applied[-1]["figures"]["2"]["requests"] >= 15
    drift = json.loads(files["drift-importance.json"])
    assert set(drift["summary"]) == {"input_drift", "output_drift", "importance_drift"}

    segments = json.loads(files["prediction-log-segments.json"])
    assert sorted(s["path"] for s in segments) == parquet
    assert sum(s["records"] for s in segments) == len(outcomes)
    events = [json.loads(line) for line in files["audit-events.jsonl"].splitlines()]
    assert {e["action"] for e in events} >= {"version.register", "deployment.promote",
                                             "log.segment", "version.approve"}  # fmt: skip
    assert all(e["subject"] == "m" or e["subject"].startswith("m:") for e in events)
    verification = json.loads(files["verification.json"])
    assert verification["ok"] and verification["audit_chain"]["intact"]
    assert verification["prediction_log"]["checked"] == len(parquet)

    text = files["index.md"].decode()
    assert "Art. 19" in text and listed["verification.json"]["sha256"] in text
    links: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            links.extend(v for k, v in attrs if tag == "a" and k == "href" and v)

    Links().feed(files["index.html"].decode())
    assert set(listed) <= set(links)

    # A period before the rollout holds none of its changes.
    early = tmp_path / "early"
    window = ("--since", "2000-01-01T00:00Z", "--until", start.isoformat())
    assert _pack(onnxgate, early, log_dir, *window) == 0
    assert json.loads((early / "deployments.json").read_text()) == []

    # An altered prediction-log file: the pack says so and the command fails.
    victim = log_dir / parquet[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    bad = tmp_path / "bad"
    assert _pack(onnxgate, bad, log_dir, *period) == 1
    report = json.loads((bad / "verification.json").read_text())
    assert not report["ok"] and report["prediction_log"]["altered"] == [parquet[0]]
    assert json.loads((bad / "index.json").read_text())["verified"] is False
    # The pack never overwrites an earlier one.
    assert _pack(onnxgate, out, log_dir) != 0


def _evidence(**changes: object) -> Evidence:
    fields: dict[str, object] = dict(
        model="m", since=None, until=None, generated_at="2026-01-01T00:00:00+00:00",
        generated_by="cli:test", versions=[], cards={}, approvals=[], events=[], profiles={},
        chain_events=0, chain_problems=[],
    )  # fmt: skip
    fields.update(changes)
    return Evidence(**fields)  # type: ignore[arg-type]


def test_the_index_is_a_function_of_the_evidence() -> None:
    ev = _evidence(cards={"10": ("# c", "<p>c</p>"), "9": ("# c", "<p>c</p>")})
    parts = build_parts(ev)
    assert [p.path for p in parts][:2] == ["model-cards/9.md", "model-cards/9.html"]
    assert index_of(ev, parts, True) == index_of(ev, build_parts(ev), True)
    # No log configured: still verified on the chain alone, and the report says why.
    report = json.loads(next(p for p in parts if p.path == "verification.json").data)
    assert report["ok"] and report["prediction_log"] == {"configured": False}
    broken = build_parts(_evidence(chain_problems=["seq 3: hash mismatch"]))
    report = json.loads(next(p for p in broken if p.path == "verification.json").data)
    assert not report["ok"]


def test_the_segments_part_lists_every_chained_log_action() -> None:
    """Closes, erasures and retention removals all chain log files: the pack lists each, and
    the spelled names are the ones the log writes."""
    from gateway.auditpack.parts import LOG_ACTIONS, _segments
    from gateway.predictionlog.chain import ACTION, ERASURE
    from gateway.predictionlog.retention import RETENTION

    assert {ACTION, ERASURE, RETENTION} == LOG_ACTIONS
    events = [
        {"seq": i, "at": "t", "action": a, "after": {"path": f"p{i}"}, "hash": "h"}
        for i, a in enumerate([ACTION, ERASURE, RETENTION, "deployment.set"])
    ]
    assert [s["action"] for s in _segments(events)] == [ACTION, ERASURE, RETENTION]
