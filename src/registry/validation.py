"""Validation of a version, run automatically at registration and recorded with it.

Checks, each recorded with its outcome and a one-line detail:

=============  ===============================================================
loads          onnxruntime builds an InferenceSession from the bytes
inference      a sample (zeros, then seeded random values) runs without error
deterministic  running each sample twice gives identical outputs
signature      compatible with the champion's signature (fails when forced)
metadata       every field the policy's ``required_metadata`` names is present
license        the licence matches no pattern on the policy's deny-list, nor do the
               training data's (tag ``training_data.license``) and the source
               model's (tag ``source.license``)
profile        a reference profile is stored, when the policy requires one
parity         a converted or optimised version's recorded parity (lineage metrics
               ``parity.*``, see :mod:`registry.convert`) is within the policy's
               ``conversion_tolerance`` (``optimization_tolerance`` for an optimised
               child, whose labels may flip on near-ties); absent for plain ONNX
=============  ===============================================================

The artifact checks (:func:`probe_artifact`) are slow and need no database, so callers run
them before taking the registry's write lock; the rest (:func:`complete_report`) need the
policy and the stored version, and run inside the write transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from registry.datatypes import ORT_TO_DATATYPE
from registry.governance_policy import GovernancePolicy
from registry.lineage import Lineage

__all__ = ["Check", "ValidationReport", "complete_report", "parity_check", "probe_artifact"]

_MAX_DETAIL = 200


@dataclass(frozen=True)
class Check:
    """One validation check's outcome."""

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass(frozen=True)
class ValidationReport:
    """Every check of one validation run; ``passed`` only if all of them passed."""

    at: datetime
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ValidationReport:
        checks = tuple(
            Check(str(c["name"]), bool(c["passed"]), str(c.get("detail", "")))
            for c in doc.get("checks", [])
        )
        return cls(at=datetime.fromisoformat(doc["at"]), checks=checks)


def _short(exc: BaseException) -> str:
    # onnxruntime errors can quote large parts of a graph; keep the record readable.
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 1] + "…"


def _sample(
    inputs: Sequence[Any], rng: np.random.Generator | None, text: str | None = None
) -> dict[str, Any]:
    """One row per input: zeros when ``rng`` is None, else seeded random values; strings
    are ``text`` when given."""
    feeds: dict[str, Any] = {}
    for spec in inputs:
        row = ORT_TO_DATATYPE.get(spec.type)
        dtype = None if row is None else row.numpy
        if dtype is None:
            raise TypeError(f"input {spec.name!r} has type {spec.type}, which has no sample")
        # Symbolic or unknown dimensions (batch, sequence length) get size 1.
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
        if dtype.kind == "O":
            fill = text if text is not None else "" if rng is None else "a"
            value = np.full(shape, fill, dtype=object)
        elif rng is None:
            value = np.zeros(shape, dtype=dtype)
        elif dtype.kind == "b":
            value = rng.random(shape) < 0.5
        elif np.issubdtype(dtype, np.integer):
            value = rng.integers(0, 3, size=shape).astype(dtype)
        else:
            value = rng.standard_normal(shape).astype(dtype)
        feeds[spec.name] = value
    return feeds


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype.kind in "fc":
            return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=True))
        return a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)  # sequences and maps (e.g. sklearn's ZipMap output)


def probe_artifact(artifact: bytes) -> tuple[Check, ...]:
    """The checks that need only the bytes: loads, inference, deterministic."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One thread: validation must not compete with serving, and it is a tiny sample.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # Fatal only: a failing sample run is a finding recorded in the report, not log noise.
    options.log_severity_level = 4
    try:
        session = ort.InferenceSession(
            artifact, sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        skipped = "not run: the model does not load"
        return (
            Check("loads", False, _short(exc)),
            Check("inference", False, skipped),
            Check("deterministic", False, skipped),
        )
    loads = Check("loads", True, f"{len(session.get_inputs())} input(s)")
    try:
        inputs = session.get_inputs()
        samples = [_sample(inputs, None), _sample(inputs, np.random.default_rng(0))]
        runs = [(session.run(None, s), session.run(None, s)) for s in samples]
    except Exception as exc:  # noqa: BLE001
        if any(i.type == "tensor(string)" for i in inputs):
            return _string_inputs_rule(session, inputs, loads)
        return (
            loads,
            Check("inference", False, _short(exc)),
            Check("deterministic", False, "not run: inference failed"),
        )
    inference = Check("inference", True, "zero and random samples ran")
    unstable = [
        f"sample {i} output {j}"
        for i, (first, second) in enumerate(runs)
        for j, (a, b) in enumerate(zip(first, second, strict=True))
        if not _same(a, b)
    ]
    if unstable:
        return loads, inference, Check("deterministic", False, "differs: " + ", ".join(unstable))
    return loads, inference, Check("deterministic", True, "identical outputs on repeat")


def _string_inputs_rule(session: Any, inputs: Sequence[Any], loads: Check) -> tuple[Check, ...]:
    """The gateway's warm-up rule for string inputs (gateway.serving.runtime): a graph that
    parses its strings as numbers refuses "" and "a", so try "0"; one that refuses that too
    passes with the runs skipped, as the gateway loads it with its warm-up skipped."""
    try:
        sample = _sample(inputs, None, text="0")
        first, second = session.run(None, sample), session.run(None, sample)
    except Exception as exc:  # noqa: BLE001
        skipped = f"skipped: string inputs refused synthetic values ({_short(exc)})"
        return loads, Check("inference", True, skipped), Check("deterministic", True, skipped)
    inference = Check("inference", True, 'a sample with strings "0" ran')
    if not all(_same(a, b) for a, b in zip(first, second, strict=True)):
        return loads, inference, Check("deterministic", False, "differs: sample 0")
    return loads, inference, Check("deterministic", True, "identical outputs on repeat")


def _missing_metadata(
    policy: GovernancePolicy, description: str, owner: str, lineage: Lineage
) -> list[str]:
    present: dict[str, bool] = {
        "description": bool(description.strip()),
        "owner": bool(owner.strip()),
        "license": bool(lineage.license),
        "training_data": bool(lineage.training_data),
        "training_data_sha256": bool(lineage.training_data_sha256),
        "code_ref": bool(lineage.code_ref),
        "parent": bool(lineage.parent),
        "hyperparameters": bool(lineage.hyperparameters),
        "metrics": bool(lineage.metrics),
        "tags": bool(lineage.tags),
    }
    missing = []
    for item in policy.required_metadata:
        kind, _, name = item.partition(":")
        if kind == "metric" and name:
            ok = name in lineage.metrics
        elif kind == "tag" and name:
            ok = name in lineage.tags
        else:
            ok = present.get(item, False)
        if not ok:
            missing.append(item)
    return missing


LICENSE_TAGS = {"training_data.license": "training data", "source.license": "source model"}


def license_check(policy: GovernancePolicy, lineage: Lineage) -> Check:
    """The model's licence, its training data's and its source model's, against the
    policy's deny-list (one list for all three)."""
    given = [("model", lineage.license)]
    given += [(what, lineage.tags.get(tag, "")) for tag, what in LICENSE_TAGS.items()]
    for what, licence in given:
        denied = policy.denied_license(licence)
        if denied:
            whose = "" if what == "model" else f"{what} licence "
            return Check("license", False, f"{whose}{licence!r} matches deny-list entry {denied!r}")
    named = [lineage.license] + [f"{w} {lic}" for w, lic in given[1:] if lic]
    return Check("license", True, ", ".join(n for n in named if n) or "none given")


def complete_report(
    probe: Sequence[Check],
    *,
    at: datetime,
    incompatibilities: Sequence[str],
    policy: GovernancePolicy,
    description: str,
    owner: str,
    lineage: Lineage,
    has_profile: bool,
) -> ValidationReport:
    """Add the policy and registry checks to the artifact probe's."""
    checks = list(probe)
    checks.append(
        Check("signature", False, "; ".join(incompatibilities))
        if incompatibilities
        else Check("signature", True, "compatible with the champion")
    )
    missing = _missing_metadata(policy, description, owner, lineage)
    checks.append(
        Check("metadata", False, "missing: " + ", ".join(missing))
        if missing
        else Check("metadata", True, "required metadata present")
    )
    checks.append(license_check(policy, lineage))
    if policy.require_profile and not has_profile:
        checks.append(Check("profile", False, "policy requires a reference profile; none stored"))
    else:
        checks.append(Check("profile", True, "present" if has_profile else "not required"))
    parity = parity_check(lineage, policy)
    if parity is not None:
        checks.append(parity)
    return ValidationReport(at=at, checks=tuple(checks))


def parity_check(lineage: Lineage, policy: GovernancePolicy) -> Check | None:
    """The ``parity`` check of a version whose lineage records one (None otherwise).

    Kept in lineage metrics rather than only in the report, so that re-validation (which
    rebuilds the report from the artifact) keeps it, and a search can filter on it.
    """
    metrics = lineage.metrics
    if "parity.max_abs_diff" not in metrics:
        return None
    optimised = "optimize.method" in lineage.tags
    tolerance = policy.optimization_tolerance if optimised else policy.conversion_tolerance
    diff = metrics["parity.max_abs_diff"]
    scale = metrics.get("parity.scale", 1.0)  # a regressor's tolerance is relative
    rows = int(metrics.get("parity.rows", 0))
    allowed = f"{tolerance:.3g}" if scale == 1.0 else f"{tolerance:.3g} x {scale:.3g}"
    detail = f"max |Δ| {diff:.3g} (tolerance {allowed}) on {rows} rows"
    agreement = metrics.get("parity.label_agreement")
    if agreement is not None:
        detail += f", labels agree on {agreement:.2%}"
    passed = diff <= tolerance * scale and (optimised or agreement is None or agreement >= 1.0)
    return Check("parity", passed, detail)
