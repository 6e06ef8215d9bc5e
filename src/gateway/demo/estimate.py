"""The demo's chapter "Before the labels arrive" (issue 23), on the running gateway.

A churn model's labels come months later, so the governor cannot wait for them. Champion v1
and canary v2 are registered with labelled reference samples, which gives each a label-free
performance estimator (CBPE, :mod:`gateway.monitoring.performance`). v2 was retrained with
churners up-weighted: on the traffic it was tested on it is as good as v1. Then the inputs
shift (a new population of customers, close to the decision boundary, where v2's moved
threshold is wrong): nothing fails, the answers just get worse. The policy's
``max_estimated_drop`` gate sees it in the estimates and rolls v2 back with no label sent;
the audit event says the decision used an estimate. Later the labels arrive and
``onnxgate performance`` shows the realised accuracy beside the estimate.

The data follow a known logistic truth, so the calibration each estimator learnt on the
reference stays valid after the shift (the shift is in the inputs, not in how churn depends
on them): the situation CBPE is built for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gateway.demo.parts import LiveTraffic, model_ready, run_cli, say, show_split, step, wait_until
from gateway.demo.story import Ops, Timeline, event
from registry import Registry

__all__ = ["CHURN", "chapter", "population"]

CHURN = "churn"
N_FEATURES = 4
_W = np.array([1.0, -0.8, 0.6, 0.5])
WEIGHTS = _W / np.linalg.norm(_W) * 1.5  # the true logit is WEIGHTS @ x
SEGMENTS = (-5.0, 5.0)  # the tested population: loyal customers and clear churners
NEW_SEGMENT = (-1.1,)  # after the shift: customers close to the decision boundary
UPWEIGHT = 9.0  # v2 weighs churners 9x in training: its threshold moves by log(9)
ESTIMATE_FIGURES = ("estimated_accuracy", "estimated_half_width")


def population(
    rng: np.random.Generator, n: int, centres: tuple[float, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` customers around the given true logits, and whether each churns (0/1)."""
    z = rng.standard_normal((n, N_FEATURES))
    m = rng.choice(np.asarray(centres), size=n)
    x = z + np.outer(m, WEIGHTS / (WEIGHTS @ WEIGHTS))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(x @ WEIGHTS)))).astype(np.int64)
    return x.astype(np.float32), y


def policy_toml() -> str:
    return f"""\
# Rollout policy of "{CHURN}": labels come months later, so the estimate is the evidence.
[canary]
steps = [20, 50]
interval_s = 0.5
min_requests = 1000000       # the canary soaks at 20 % (promotion is not this chapter)

[gates]
max_estimated_drop = 0.03    # label-free: estimated accuracy may trail v1's by 3 points
max_drifted_features = false # a new population drifts: whether that matters is the question
output_drift = false
max_p99_ratio = false
min_disparate_impact = false
min_requests = 50
hard = ["error_rate", "estimated_drop"]
"""


def _train(data: Path) -> dict[str, Path]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(23)
    x, y = population(rng, 10_000, SEGMENTS)
    fitted = {
        "1": (LogisticRegression(), "logistic regression"),
        "2": (
            LogisticRegression(class_weight={0: 1.0, 1: UPWEIGHT}),
            f"retrained, churners weighted {UPWEIGHT:g}x (more recall)",
        ),
    }
    files = {}
    for version, (model, what) in fitted.items():
        model.fit(x, y)
        onnx = to_onnx(model, x[:1], options={"zipmap": False}, target_opset=17)
        files[version] = data / f"{CHURN}-v{version}.onnx"
        files[version].write_bytes(onnx.SerializeToString())
        say(f"  trained v{version} {what}")
    return files


def _estimates(ops: Ops) -> dict[str, dict[str, object]]:
    """``onnxgate performance churn --json``, by version ({} when not answered)."""
    code, out = run_cli("performance", CHURN, "--json", "--target", ops.target)
    if code != 0:
        return {}
    return {v["version"]: v for v in json.loads(out)["versions"]}


def _rows(ops: Ops, version: str) -> int:
    rows = _estimates(ops).get(version, {}).get("rows")
    return rows if isinstance(rows, int) else 0


def _side_by_side(ops: Ops) -> None:
    for version, v in sorted(_estimates(ops).items()):
        est, real = v.get("estimated") or {}, v.get("realised") or {}
        assert isinstance(est, dict) and isinstance(real, dict)
        low, high = est.get("accuracy_ci") or (None, None)
        if est.get("accuracy") is None or real.get("accuracy") is None:
            continue
        event(
            f"v{version}: estimated {est['accuracy']:.1%} (95% CI {low:.1%}-{high:.1%}) before "
            f"any label; realised {real['accuracy']:.1%} on {real['labels']} labels"
        )


def chapter(ops: Ops, registry: Registry, data: Path, *, timeout_s: float) -> int:
    """Tell the chapter (see the module docstring); return the failed requests."""
    step("11. Before the labels arrive: a canary silently degrades, rolled back on an estimate")
    files = _train(data)
    rng = np.random.default_rng(230)
    ref_x, ref_y = population(rng, 20_000, SEGMENTS)
    live_x, live_y = population(rng, 20_000, SEGMENTS)
    new_x, new_y = population(rng, 20_000, NEW_SEGMENT)
    reference, labels = data / "churn-reference.npy", data / "churn-reference-labels.npy"
    np.save(reference, ref_x)
    np.save(labels, ref_y)
    for version, path in files.items():
        ops(
            "models", "register", CHURN, str(path), "--version", version,
            "--reference", str(reference), "--reference-labels", str(labels),
            show=False, registry=True,
        )  # fmt: skip
    event("both registered with a labelled reference: each gets a calibrated estimator")
    policy = data / "churn-policy.toml"
    policy.write_text(policy_toml(), encoding="utf-8")
    ops("policy", "set", CHURN, str(policy), "--reason", "estimates as evidence", show=False)
    say("\n".join("      " + line for line in policy_toml().splitlines()[5:9]))

    timeline = Timeline(registry, CHURN)
    failed = 0
    wait_until(f"the gateway to load {CHURN}", lambda: model_ready(ops.target, CHURN), timeout_s)
    with LiveTraffic(ops.target, live_x, live_y, model=CHURN, seed=200) as traffic:
        # Shadowed first: v2's window holds every request, and a rollback returns it to
        # shadow, where its estimate stays visible.
        ops("shadow", "add", CHURN, "2", "--fraction", "1.0", "--reason", "warm up v2")
        ops(
            "traffic", "set", CHURN, "1=80", "2=20", "--role", "2=canary",
            "--reason", "canary v2",
        )  # fmt: skip
        timeline.wait(
            "both versions' estimates over 300 rows",
            lambda: min(_rows(ops, "1"), _rows(ops, "2")) >= 300,
            timeout_s,
        )
        ops("performance", CHURN)
        ops("governor", "status", CHURN)
        failed += show_split("churn, the tested population:", *traffic.take())

        traffic.record_labels()  # the true outcomes, known only months later
        traffic.population(new_x, new_y)
        event("INPUTS SHIFT: the traffic now comes from a new population near the boundary;")
        event("   every request still succeeds, and no label will arrive for months")
        timeline.wait(
            "the governor to roll canary v2 back on its estimate",
            lambda: registry.get_deployment(CHURN).arm("2") is None,
            timeout_s,
        )
        failed += show_split("churn, after the shift:", *traffic.take())
        # The windows hold only the new population once a window's worth has passed.
        wait_until("a window of the new population", lambda: traffic.count() >= 900, timeout_s)
        ops("performance", CHURN)
        event("(REAL_ACC is empty: no label has arrived)")

        step("11b. Months later, the labels arrive: they confirm the estimate")
        rows = traffic.pop_labels(stop=True)
        sent = data / "churn-labels.csv"
        sent.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in rows))
        ops("feedback", CHURN, "--file", str(sent))
        ops("performance", CHURN)
        _side_by_side(ops)
        report = data / "drift-churn.html"
        if ops("drift", CHURN, "--html", str(report), show=False):
            event(f"HTML drift report, with the estimate beside the realised: {report.resolve()}")
        event("the console's model page (/ui/models/churn) plots both over time")
        failed += show_split("churn, until the labels:", *traffic.take())
    failed += show_split("(in flight at the end)", *traffic.take())
    _audit_excerpt(registry)
    return failed


def _audit_excerpt(registry: Registry) -> None:
    """The rollback's audit event as an auditor reads it: the estimate it used."""
    for e in registry.audit_events(subject=CHURN):
        details = e.after.get("details", {}) if isinstance(e.after, dict) else {}
        d = details.get("decision") if isinstance(details, dict) else None
        if e.actor != "governor" or not isinstance(d, dict) or d.get("kind") != "rollback":
            continue
        figures = {
            v: {
                "role": f.get("role"),
                **{k: round(f[k], 4) for k in ESTIMATE_FIGURES if f.get(k) is not None},
            }
            for v, f in d.get("figures", {}).items()
        }
        excerpt = {"action": e.action, "used_estimate": d.get("used_estimate"), "figures": figures}
        event(f"audit event #{e.seq} ({e.action}), an excerpt:")
        text = json.dumps(excerpt, indent=2)
        say("\n".join("      " + line for line in text.splitlines()))
        return
    event("!! no rollback in the audit log")
