"""The model page plots estimated (no labels) against realised accuracy over time (issue 23).

A real gateway serves a champion and a worse canary, both registered with labelled
reference samples (so each has a CBPE estimator); traffic arrives in rounds, each in its
own realised-history bucket and each followed by a monitor refresh (one estimate point per
refresh that saw new rows); the true labels are sent afterwards. The page is read over
HTTP (the series and the table) and in Chromium (a screenshot for a person to look at).
"""

from __future__ import annotations

import math
import re
import time

import httpx
import numpy as np
from shared import ADMIN_TOKEN, CONSOLE_ARTIFACTS, admin_metadata, wait_for

from gateway._proto import governor_pb2 as gpb
from gateway._proto import governor_pb2_grpc
from gateway._proto import grpc_service_pb2 as pb
from gateway.console.accuracy import accuracy_svg
from gateway.monitoring.reference import build_version_profiles, onnx_runner
from gateway.tools import modelzoo
from registry.deployment import Role
from registry.signature import signature_from_bytes

WEIGHTS = [2.0, -1.5, 1.0, 0.5]
VIEWER = "viewer-token-for-accuracy"
INTERVAL_S = 0.1  # the monitor's refresh, and so the realised buckets' width
ROUNDS, REQUESTS, ROWS = 4, 8, 25
POLICY = """
[canary]
steps = [50]
interval_s = 0.2
min_requests = 1000000  # never met: the canary holds for the whole test

[gates]
max_p99_ratio = false
max_drifted_features = false
output_drift = false
"""


def _truth(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    return (rng.random(len(x)) < 1.0 / (1.0 + np.exp(-(x @ np.array(WEIGHTS))))).astype(int)


def _serve(registry, make_gateway):
    rng = np.random.default_rng(11)
    reference = rng.standard_normal((4000, len(WEIGHTS)))
    labels = _truth(rng, reference)
    for version, weights in (("1", WEIGHTS), ("2", [0.2, -1.5, 1.0, 0.5])):
        artifact = modelzoo.logistic(weights)
        registry.register_version("m", artifact, version=version, actor="t")
        doc = build_version_profiles(
            signature_from_bytes(artifact), reference, run=onnx_runner(artifact), labels=labels
        ).to_doc()
        registry.set_profile("m", version, doc, source="reference", actor="t")
    registry.set_weights("m", {"1": 50, "2": 50}, {"2": Role.CANARY}, actor="t")
    gw = make_gateway(
        admin_tokens={ADMIN_TOKEN: "ops", VIEWER: "watcher"},
        admin_roles={"watcher": "viewer"},
        monitoring=True,
        monitor_interval_s=INTERVAL_S,
    )
    gov = governor_pb2_grpc.GovernorServiceStub(gw.channel())
    policy = gpb.SetPolicyRequest(model="m", toml=POLICY)
    gov.SetPolicy(policy, metadata=admin_metadata())  # predictions kept for joining labels
    wait_for(lambda: "m" in gw.gateway.feedback.configured())
    stub, monitor = gw.stub(), gw.gateway.monitor
    sent: list[tuple[str, int, int]] = []  # (request id, row, true label)
    correct: dict[str, list[bool]] = {"1": [], "2": []}
    # A version's estimator comes with its profile, which the monitor reads from the registry
    # after the version's first rows: one pinned request each, then wait until both estimate,
    # so every round below is estimated whichever moment the profile arrived.
    for version in ("1", "2"):
        req = pb.ModelInferRequest(model_name="m", model_version=version, id=f"warm-{version}")
        req.inputs.add(name="x", datatype="FP32", shape=[1, len(WEIGHTS)])
        req.raw_input_contents.append(np.zeros((1, len(WEIGHTS)), np.float32).tobytes())
        stub.ModelInfer(req, timeout=30)

    def points() -> dict[str, int]:
        assert gw.gateway.taps.flush(30)
        snap = monitor.refresh()
        found = {v: snap.get("m", v) for v in ("1", "2")}
        return {v: 0 if d is None else len(d.performance_history) for v, d in found.items()}

    wait_for(lambda: min(points().values()) > 0, timeout=30)
    before = points()
    bucket = -1
    for r in range(ROUNDS):
        # Each round starts in a bucket after the one the previous round ended in (its rows
        # tapped and flushed): at least a realised point per round, however long a round took.
        wait_for(lambda: math.floor(time.time() / INTERVAL_S) > bucket, timeout=5, every=0.01)  # noqa: B023
        for i in range(REQUESTS):
            x = rng.standard_normal((ROWS, len(WEIGHTS))).astype(np.float32)
            y = _truth(rng, x)
            # Each version every round (50/50 routing could leave one out of a round of 8).
            version = ("1", "2")[i % 2]
            req = pb.ModelInferRequest(model_name="m", model_version=version, id=f"r{r}-{i}")
            req.inputs.add(name="x", datatype="FP32", shape=[ROWS, len(WEIGHTS)])
            req.raw_input_contents.append(x.tobytes())
            resp = stub.ModelInfer(req, timeout=30)
            names = [o.name for o in resp.outputs]
            label = np.frombuffer(resp.raw_output_contents[names.index("label")], np.int64)
            correct[resp.model_version] += list(label == y)
            sent += [(req.id, row, int(t)) for row, t in enumerate(y)]
        assert gw.gateway.taps.flush(30)
        monitor.refresh()  # every round's rows estimated: at least a point per round
        bucket = math.floor(time.time() / INTERVAL_S)
    assert gw.gateway.taps.flush(30)
    history = {v: len(monitor.refresh().get("m", v).performance_history) for v in ("1", "2")}
    assert all(history[v] - before[v] >= ROUNDS for v in history), (before, history)
    again = monitor.refresh()  # no new rows: no new point
    assert {v: len(again.get("m", v).performance_history) for v in history} == history
    items = [gpb.FeedbackItem(id=i, row=row, label=str(t)) for i, row, t in sent]
    resp = gov.Feedback(gpb.FeedbackRequest(model="m", items=items), timeout=30)
    assert resp.joined == len(sent)
    return gw, correct, history


def test_the_model_page_plots_estimated_against_realised_accuracy(
    registry, make_gateway, browser
) -> None:
    gw, correct, history = _serve(registry, make_gateway)
    headers = {"authorization": f"Bearer {VIEWER}"}
    with httpx.Client(base_url=gw.http_url, timeout=30, headers=headers) as client:
        html = client.get("/ui/models/m").text
    assert "estimated vs realised accuracy over time" in html
    section = html.split("<th>95% interval</th>")[1]
    cells = {}
    for version in ("1", "2"):
        estimated = re.search(
            rf'<polyline class="estimated" data-version="{version}" points="([^"]+)"', html
        )
        assert estimated is not None
        assert len(estimated.group(1).split()) == history[version] >= 2
        assert f'<polygon class="interval" data-version="{version}"' in html
        dots = re.findall(
            rf'<circle class="realised" data-version="{version}"[^>]*><title>'
            r"v\d realised [\d.]+% on (\d+) labels",
            html,
        )
        assert len(dots) >= ROUNDS  # each round starts a bucket (and may spill into the next)
        assert sum(int(n) for n in dots) == len(correct[version])
        row = re.search(rf"<tr><td>{version}</td>(.*?)</tr>", section)
        assert row is not None
        cells[version] = re.findall(r"<td>(.*?)</td>", row.group(1))
        realised = sum(correct[version]) / len(correct[version])
        assert cells[version][6:8] == [f"{100 * realised:.1f}%", str(len(correct[version]))]
    # The canary lost its strongest feature: its estimate and its labels both say so.
    for column in (2, 6):  # estimated, realised
        champion, canary = (float(cells[v][column].rstrip("%")) for v in ("1", "2"))
        assert canary < champion - 5

    page = browser.new_page()
    page.set_extra_http_headers(headers)
    page.goto(f"{gw.http_url}/ui/models/m")
    plot = page.locator("svg.accuracy")
    assert page.locator("svg.accuracy polyline.estimated").count() == 2
    assert page.locator("svg.accuracy circle.realised").count() >= 2 * ROUNDS
    box = plot.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 200
    CONSOLE_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    plot.screenshot(path=str(CONSOLE_ARTIFACTS / "accuracy.png"))
    page.screenshot(path=str(CONSOLE_ARTIFACTS / "model-accuracy.png"), full_page=True)
    page.close()


def test_the_plot_says_so_when_there_is_nothing_to_draw() -> None:
    assert "no estimate yet" in accuracy_svg([{"version": "1", "history": []}])
    nan = {"at": 1.0, "accuracy": float("nan"), "low": None, "high": None}
    assert "no estimate yet" in accuracy_svg([{"version": "1", "history": [nan]}])
    one = {"at": 5.0, "accuracy": 0.8, "low": 0.7, "high": 0.9}
    svg = accuracy_svg([{"version": "1", "history": [one], "realised_history": []}])
    assert 'class="estimated"' in svg and "nan" not in svg.lower()
