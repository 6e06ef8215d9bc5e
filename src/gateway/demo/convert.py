"""The demo's chapter "From a trained model to a canary" (issue 16), on the running gateway.

A data scientist's scikit-learn pipeline, handed over as a pickle, goes to production with
no hand edits of weights: registered from the pickle (refused until trusted; converted to
ONNX with its parity recorded), optimised into a quantised child version, approved by two
people, started as a canary by the rollout policy's ``[start]`` rule, and promoted by the
governor — under live traffic, counting failed requests.
"""

from __future__ import annotations

import pickle
import shlex
import warnings
from pathlib import Path

import numpy as np

from gateway.demo.parts import (
    LiveTraffic,
    StoryModels,
    model_ready,
    run_cli,
    say,
    show_split,
    step,
    wait_until,
)
from gateway.demo.story import Ops, event
from registry import GovernancePolicy, Registry
from registry.deployment import Role

__all__ = ["SCORER", "chapter"]

SCORER = "scorer"


def policy_toml(min_requests: int) -> str:
    return f"""\
# Rollout policy of "{SCORER}": the governor starts an approved version as a canary itself.
[start]
on = "approved"              # four eyes first: the registry's policy asks two approvals
strategy = "canary"

[canary]
steps = [25, 50]
interval_s = 0.5
min_requests = {min_requests}

[gates]
max_p99_ratio = false        # loopback latency on a busy box is noise, not evidence
max_drifted_features = false # this chapter is about the path, not drift (see above)
output_drift = false
min_disparate_impact = false
min_requests = 50
"""


def chapter(
    ops: Ops,
    registry: Registry,
    models: StoryModels,
    data: Path,
    *,
    min_requests: int,
    timeout_s: float,
) -> int:
    """Tell the chapter (see the module docstring); return the failed requests."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    step("13. From a trained model to a canary: convert, optimise, approve, roll out by policy")
    half = len(models.x) // 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline = make_pipeline(
            StandardScaler(), MLPClassifier((128,), max_iter=60, random_state=0)
        ).fit(models.x[:3000], models.y[:3000])
    pickled, sample = data / "scorer.pkl", data / "scorer-sample.npy"
    pickled.write_bytes(pickle.dumps(pipeline))
    np.save(sample, models.x[half : half + 500])
    say(f"  a data scientist hands over {pickled.name}: scaler + MLP, trained in scikit-learn")

    register = ("models", "register", SCORER, str(pickled), "--sample", str(sample))
    event("$ onnxgate " + shlex.join(register))
    code, _ = run_cli(*register, *ops.registry_args)  # refused, one line on stderr
    event(f"refused (exit {code}): a pickle is code; the operator trusts its author")
    if ops(*register, "--trust-pickle", "--owner", "risk-team", registry=True) is None:
        return 0
    optimize = ("models", "optimize", f"{SCORER}:1", "--quantize", "dynamic")
    if ops(*optimize, "--sample", str(sample), registry=True) is None:
        return 0

    policy = data / "scorer-policy.toml"
    policy.write_text(policy_toml(min_requests), encoding="utf-8")
    ops("policy", "set", SCORER, str(policy), "--reason", "roll out approved versions", show=False)
    registry.governance.set_policy(
        GovernancePolicy(approvals_required=2), actor="demo", reason="four eyes"
    )
    event("governance policy: a version needs 2 approvals (four eyes)")

    failed = 0
    # Traffic starts once the gateway serves the model: before its next registry poll it
    # does not know the name yet, and those requests would be NOT_FOUND, not the story.
    wait_until(f"the gateway to load {SCORER}", lambda: model_ready(ops.target, SCORER), timeout_s)
    live = models.x[half:], models.y[half:]
    with LiveTraffic(ops.target, *live, model=SCORER, input_name="input", seed=100) as traffic:
        ops("approve", f"{SCORER}:2", "--reason", "parity and latency checked")  # 1 of 2
        ops("rollout", "status", SCORER, registry=True)
        registry.governance.approve(SCORER, "2", approver="risk-lead", comment="checked card")
        event("risk-lead approves scorer:2 (second pair of eyes): status approved")

        def canary() -> bool:
            arms = registry.get_deployment(SCORER).arms
            return any(a.version == "2" and a.role is Role.CANARY for a in arms)

        if wait_until("the automatic canary", canary, timeout_s):
            start = [e for e in registry.audit_events(subject=SCORER) if e.actor == "governor"]
            if start:
                event(f"governor: {start[0].reason}", start[0].at)
            ops("rollout", "status", SCORER, registry=True)
        promoted = wait_until(
            "the promotion",
            lambda: registry.get_deployment(SCORER).champion.version == "2",
            timeout_s,
        )
        failed += show_split("scorer until the promotion:", *traffic.take())
        if promoted:
            event("governor promoted scorer:2 (the quantised child) to champion")
            wait_until("traffic on the new champion", lambda: traffic.count() >= 200, timeout_s)
            failed += show_split("scorer after the promotion:", *traffic.take())
    failed += show_split("(in flight at the end)", *traffic.take())
    return failed
