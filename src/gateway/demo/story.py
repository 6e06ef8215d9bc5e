"""The governor and monitoring part of ``make demo`` (issue 6's "Demo"), on real models.

Runs after the operator part of :mod:`gateway.demo`, on the same gateway and registry:

7. the champion serves while a challenger is scored in shadow (``onnxgate shadow report``);
8. a healthy canary ramps through the policy's steps under the governor and is promoted;
9. a second canary ramps while drift is injected into the traffic: the governor rolls it
   back on its drift gates (``onnxgate governor status``, ``onnxgate drift``, HTML report);
10. a truly better challenger is promoted on delayed labels (``onnxgate feedback``) by the
    anytime-valid sequential test;

then :func:`print_audit_trail`. Every wait is bounded and says what it waits for; a step
that does not happen in time is reported and the story goes on. Governor decisions are
read back from the audit log, as an auditor would, and printed as they land.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from gateway.demo.parts import MODEL, LiveTraffic, StoryModels, run_cli, say, show_split, step
from registry import AuditRecord, Registry

__all__ = ["Ops", "Story", "Timeline", "print_audit_trail"]

GOVERNOR = "governor"  # the actor the governor loop writes audit events as
DRIFTED_FEATURES = (0, 2, 5)  # columns the injected drift shifts ...
DRIFT_STDS = 4.0  # ... by this many reference standard deviations
PROGRESS_EVERY_S = 5.0  # a bounded wait says how things stand this often


def stamp(at: datetime | None = None) -> str:
    """Local wall-clock time to a tenth of a second (now, or an audit event's time)."""
    at = (at or datetime.now(UTC)).astimezone()
    return f"{at:%H:%M:%S}.{at.microsecond // 100_000}"


def event(text: str, at: datetime | None = None) -> None:
    """One timeline line: when, then what happened."""
    say(f"  {stamp(at)}  {text}")


@dataclass(frozen=True)
class Ops:
    """Runs ``onnxgate`` commands as timeline events against one gateway and registry."""

    target: str
    registry_args: tuple[str, ...]  # --registry URL --artifact-dir DIR

    def __call__(self, *args: str, show: bool = True, registry: bool = False) -> str | None:
        """Print the command, run it, print its output (``show``); None when it failed."""
        event("$ onnxgate " + shlex.join(args))
        code, out = run_cli(*args, *(self.registry_args if registry else ("--target", self.target)))
        if code != 0:
            event(f"!! onnxgate exited with code {code}; the demo goes on")
            return None
        if show and out.strip():
            say("\n".join("      " + line for line in out.rstrip().splitlines()))
        return out


# -- governor decisions, read back from the audit log ------------------------------------------


def decision_of(e: AuditRecord) -> dict[str, Any] | None:
    """The governor decision an audit event holds (an applied change or a recorded one)."""
    after = e.after if isinstance(e.after, dict) else {}
    found = after.get("decision") if e.action == "governor.decision" else None
    found = found or after.get("details", {}).get("decision")
    return found if isinstance(found, dict) and e.actor == GOVERNOR else None


def gates_brief(d: Mapping[str, Any]) -> str:
    """The gates that were judged (pending ones left out): value, threshold, verdict."""
    out = []
    for g in d.get("gates", []):
        if g["status"] == "pending":
            continue
        value = "n/a" if g["value"] is None else f"{g['value']:.3g}"
        verdict = "FAIL" + (f" [{g['detail']}]" if g["detail"] else "")
        name = g["name"]
        if name == "quality":
            # NOTE: the gate compares the upper confidence bound of (candidate - champion)
            # accuracy with -max_quality_drop; printed bare it read like the difference itself.
            name = "quality (upper bound of candidate - champion accuracy)"
        elif name == "estimated_drop":
            name = "estimated_drop (upper bound of candidate - champion estimated accuracy)"
        out.append(
            f"{name} {value} {g['op']} {g['threshold']:.3g} "
            + (verdict if g["status"] == "fail" else g["status"])
        )
    return "  ".join(out)


def figures_brief(d: Mapping[str, Any]) -> str:
    """Each version's evidence behind a decision, in a few words."""
    parts = []
    for version, f in sorted(d.get("figures", {}).items()):
        text = f"v{version} {f.get('role')}: {f.get('requests', 0)} req {f.get('errors', 0)} err"
        if f.get("labelled"):
            text += f", accuracy {f['quality']:.3f} on {f['labelled']} labels"
        if f.get("estimated_accuracy") is not None:
            half = f.get("estimated_half_width") or 0.0
            text += f", estimated accuracy {f['estimated_accuracy']:.3f} +- {half:.3f} (no labels)"
        if f.get("drifted_inputs"):
            text += f", drifted inputs {','.join(f['drifted_inputs'])}"
        if f.get("output_drifted"):
            text += ", outputs drifted"
        parts.append(text)
    test, p = d.get("test"), d.get("state", {}).get("p_value", 1.0)
    if test and p < 1.0:
        parts.append(f"test: delta {test['delta']:+.3f}, always-valid p {p:.2g}")
    return "; ".join(parts)


class Timeline:
    """Prints the governor's decisions from the audit log as they land; bounded waits."""

    def __init__(self, registry: Registry, model: str = MODEL) -> None:
        self._registry = registry
        self._model = model
        self._seen = max((e.seq for e in registry.audit_events(limit=1)), default=0)

    def poll(self) -> None:
        for e in self._registry.audit_events(subject=self._model, limit=50):
            if e.seq <= self._seen:
                continue
            self._seen = e.seq
            d = decision_of(e)
            if d is None:
                continue
            cand, weights = d.get("candidate"), d.get("weights") or {}
            to = f" -> {weights[cand]:g}%" if d["kind"] == "advance" and cand in weights else ""
            event(f"governor {d['kind'].upper():8} v{cand}{to}: {'; '.join(d['reasons'])}", e.at)
            if d["kind"] in ("rollback", "promote"):
                say(f"{'':16}gates: {gates_brief(d)}\n{'':16}evidence: {figures_brief(d)}")
                if d.get("used_estimate"):
                    say(f"{'':16}(decided on a label-free estimate: the audit event says so)")

    def wait(
        self,
        what: str,
        done: Callable[[], bool],
        timeout: float,
        every: Callable[[], None] | None = None,
    ) -> bool:
        """Poll ``done`` (printing decisions meanwhile) for at most ``timeout`` seconds."""
        event(f"waiting up to {timeout:.0f} s for {what}")
        start, problem, told = time.monotonic(), "", time.monotonic()
        while True:
            self.poll()
            try:
                ok = done()
            except Exception as exc:  # noqa: BLE001 - a failed look is "not yet", not a crash
                if str(exc) != problem:  # said once, not every 0.2 s
                    problem = str(exc)
                    event(f"   (could not check: {problem})")
                ok = False
            if ok:
                # What made done() true may have landed after the poll above: print it.
                self.poll()
                event(f"{what}: after {time.monotonic() - start:.1f} s")
                return True
            if time.monotonic() - start > timeout:
                event(f"!! {what}: did not happen within {timeout:.0f} s; the demo goes on")
                return False
            if every is not None:
                every()
            if time.monotonic() - told >= PROGRESS_EVERY_S:
                told = time.monotonic()
                event(f"   ... still waiting ({told - start:.0f} s): {self.traffic_now()}")
            time.sleep(0.2)

    def traffic_now(self) -> str:
        """The deployment in force, in a few words: "v1 champion 90%, v3 canary 10%"."""
        dep = self._registry.get_deployment(self._model)
        total = sum(a.weight for a in dep.arms) or 1.0
        arms = sorted(dep.arms, key=lambda a: (a.role.value != "champion", a.version))
        return ", ".join(f"v{a.version} {a.role.value} {100 * a.weight / total:.0f}%" for a in arms)


def policy_toml(min_requests: int) -> str:
    return f"""\
# The demo's governor rollout policy for model "{MODEL}" (format: see gateway/governor/rollout.py).
mode = "enforce"

[canary]
steps = [5, 10, 25, 50]      # percent of traffic; promoted after the last step
interval_s = 0.5             # evaluate twice a second (a real service: every minute)
min_requests = {min_requests:<14}# canary requests in a step before it may advance

[gates]
max_error_rate = 0.01
max_error_rate_delta = 0.01
max_p99_ratio = false        # loopback latency on a busy 2-core box is noise, not evidence
max_drifted_features = 1     # more than one drifted input feature fails the gate
output_drift = true
min_disparate_impact = false # this demo's traffic carries no segments
min_requests = 50
hard = ["error_rate", "error_rate_delta", "input_drift", "output_drift"]

[challenger]
alpha = 0.01                 # false-promotion probability, however often the governor looks
min_labels = 100
"""


# -- the story ---------------------------------------------------------------------------------


@dataclass
class Story:
    """The governor story on one running gateway: :meth:`run` tells it (sections 7-10)."""

    ops: Ops
    registry: Registry
    models: StoryModels
    data: Path
    phase_s: float
    min_requests: int  # canary requests per step
    timeout_s: float  # bound on each wait for the governor

    def __post_init__(self) -> None:
        self.timeline = Timeline(self.registry)
        self.traffic = LiveTraffic(self.ops.target, self.models.x, self.models.y)
        self.failed: list[int] = []  # failed requests per phase

    def run(self) -> int:
        """Tell the story; return the number of failed requests (printed per phase)."""
        self.ops("traffic", "set", MODEL, "1=100", "--reason", "v1 alone", show=False)
        self.traffic.start()
        try:
            self.shadow()
            self.healthy_canary()
            self.drifting_canary()
            self.better_challenger()
        finally:
            self.traffic.stop()
        self.phase_end("(in flight at the end)")
        say(f"  failed requests across the governor story: {sum(self.failed)}")
        return sum(self.failed)

    def phase_end(self, label: str) -> None:
        self.failed.append(show_split(label, *self.traffic.take()))

    def share(self, version: str) -> float:
        dep = self.registry.get_deployment(MODEL)
        arm = dep.arm(version)
        return 0.0 if arm is None else 100 * arm.weight / sum(a.weight for a in dep.arms)

    def drifted(self, version: str) -> bool:
        """The monitor's current verdict on ``version`` (``onnxgate drift --json``)."""
        code, out = run_cli(
            "drift", MODEL, "--version", version, "--json", "--target", self.ops.target
        )
        return code != 0 or bool(json.loads(out)["versions"][0]["drifted"])

    def champion(self) -> str:
        return self.registry.get_deployment(MODEL).champion.version

    def register(self, version: str) -> None:
        m = self.models
        self.ops(
            "models", "register", MODEL, str(m.files[version]), "--version", version,
            "--description", m.about[version], "--reference", str(m.reference),
            show=False, registry=True,
        )  # fmt: skip

    def shadow(self) -> None:
        step("7. Champion v1 serves; challenger v2 (gradient boosting) is scored in shadow")
        self.ops("shadow", "add", MODEL, "2", "--fraction", "1.0", "--reason", "score v2 live")
        time.sleep(max(self.phase_s, 1.0))
        self.ops("shadow", "report", MODEL)
        code, out = run_cli("shadow", "report", MODEL, "--json", "--target", self.ops.target)
        for c in json.loads(out)["comparisons"] if code == 0 else []:
            if (c["version"], c["served_version"]) == ("2", "1") and c["agreement"] is not None:
                rows = f"{c['rows']} shadowed rows"
                event(f"shadow agreement of v2 with the champion: {c['agreement']:.1%} of {rows}")
        self.ops("shadow", "remove", MODEL, "2", "--reason", "enough shadow evidence", show=False)
        self.phase_end("champion + shadow:")

    def healthy_canary(self) -> None:
        step("8. The governor takes over: a healthy canary (v3) ramps 5 -> 10 -> 25 -> 50 %")
        path = self.data / "policy.toml"
        path.write_text(policy_toml(self.min_requests), encoding="utf-8")
        self.ops("policy", "set", MODEL, str(path), "--reason", "governor on", show=False)
        self.ops("policy", "show", MODEL)  # read back from the registry, versioned
        self.register("3")
        self.ops(
            "traffic", "set", MODEL, "1=95", "3=5", "--role", "3=canary", "--reason", "canary v3"
        )
        self.timeline.wait(
            "the governor to ramp canary v3 and promote it",
            lambda: self.champion() == "3",
            self.timeout_s * 2,
        )
        self.phase_end("canary v3, ramp and promotion:")

    def drifting_canary(self) -> None:
        step("9. Canary v4 ramps, then the traffic drifts: the governor rolls v4 back")
        self.register("4")
        # Shadowed first, so v4 has a monitored window before it serves, and a rollback
        # returns it to shadow (the last good deployment), where its drift stays visible.
        self.ops("shadow", "add", MODEL, "4", "--fraction", "1.0", "--reason", "warm up v4")
        time.sleep(max(self.phase_s, 1.0))
        self.ops(
            "traffic", "set", MODEL, "3=95", "4=5", "--role", "4=canary", "--reason", "canary v4"
        )
        self.timeline.wait(
            "the governor to advance canary v4 to 10 %",
            lambda: self.share("4") >= 9.5,
            self.timeout_s,
        )
        ref = np.load(self.models.reference)
        cols = list(DRIFTED_FEATURES)
        shift = np.zeros(ref.shape[1], np.float32)
        shift[cols] = DRIFT_STDS * ref[:, cols].std(axis=0)
        self.traffic.drift(shift)
        names = ", ".join(f"X[{i}]" for i in cols)
        event(f"DRIFT INJECTED: {names} of every request shifted by +{DRIFT_STDS:g} std")
        self.timeline.wait(
            "the governor to roll canary v4 back on a drift gate",
            lambda: self.share("4") == 0.0,
            self.timeout_s,
        )
        if self.champion() == "4":
            event("!! v4 was promoted before its drift was seen (raise canary.min_requests)")
        self.ops("governor", "status", MODEL)
        self.ops("drift", MODEL, "--version", "4", "--outputs")
        report = self.data / "drift-credit-v4.html"
        if self.ops("drift", MODEL, "--version", "4", "--html", str(report), show=False):
            event(f"HTML drift report (histograms, reference vs now): {report.resolve()}")
        self.traffic.drift(None)
        event("drift stopped: the traffic is back to the reference distribution")
        self.ops("shadow", "remove", MODEL, "4", "--reason", "v4 rolled back", show=False)
        self.timeline.wait(
            "the champion's drift window to refill with normal traffic",
            lambda: not self.drifted("3"),
            self.timeout_s,
        )
        self.phase_end("canary v4, drift and rollback:")

    def better_challenger(self) -> None:
        step("10. Champion v3 vs challenger v2 on delayed labels (anytime-valid test)")
        acc = self.models.accuracy
        event(f"accuracy on held-out data: v3 {acc['3']:.3f}, v2 {acc['2']:.3f} (not told)")
        self.traffic.record_labels()
        self.ops(
            "traffic", "set", MODEL, "3=50", "2=50", "--role", "2=challenger",
            "--reason", "v2 vs v3 on delayed labels",
        )  # fmt: skip
        labels, last = self.data / "delayed-labels.csv", [0.0]

        def send_labels() -> None:  # each served request's true outcome, a moment later
            if time.monotonic() - last[0] < 0.5:
                return
            last[0] = time.monotonic()
            rows = self.traffic.pop_labels()
            if rows:
                labels.write_text("id,label\n" + "".join(f"{i},{y}\n" for i, y in rows))
                out = self.ops("feedback", MODEL, "--file", str(labels), show=False)
                say(f"      {len(rows)} labels: {(out or 'not sent').strip()}")

        self.timeline.wait(
            "the governor to promote v2 on delayed labels",
            lambda: self.champion() == "2",
            self.timeout_s,
            every=send_labels,
        )
        self.traffic.pop_labels(stop=True)
        self.phase_end("challenger v2 on delayed labels:")


def print_audit_trail(registry: Registry) -> None:
    """Every audit event; governor decisions with their judged gates and evidence."""
    for e in registry.audit_events():
        say(f"  {stamp(e.at)}  {e.actor:14} {e.action:20} {e.subject:9} {e.reason}")
        d = decision_of(e)
        if d is not None:
            if gates := gates_brief(d):
                say(f"{'':14}gates: {gates}")
            say(f"{'':14}evidence: {figures_brief(d)}")
    problems = registry.verify_audit_chain()
    say(f"  audit hash chain: {'intact' if not problems else problems}")
