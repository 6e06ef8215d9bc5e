"""Shadow comparison (pure) and the ShadowScorer's bounded executor, without a server."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from gateway.monitoring.shadow import OutputKinds, ShadowScorer, compare_outputs
from gateway.serving.taps import TapRecord
from registry.signature import Signature, TensorSpec

CLASSIFIER = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)),),
    outputs=(
        TensorSpec("probabilities", "FP32", (-1, 3)),
        TensorSpec("label", "INT64", (-1,)),
    ),
)
REGRESSOR = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)),), outputs=(TensorSpec("y", "FP32", (-1, 2)),)
)


def test_output_kinds_from_signatures() -> None:
    kinds = OutputKinds.from_signature(CLASSIFIER)
    assert (kinds.label, kinds.probabilities, kinds.numeric) == (
        "label",
        "probabilities",
        ("probabilities",),
    )
    assert kinds.classifier
    regressor = OutputKinds.from_signature(REGRESSOR)
    assert not regressor.classifier and regressor.numeric == ("y",)


def test_compare_classifier_labels_and_probabilities() -> None:
    kinds = OutputKinds.from_signature(CLASSIFIER)
    rng = np.random.default_rng(0)
    p1 = rng.dirichlet(np.ones(3), size=50).astype(np.float32)
    p2 = rng.dirichlet(np.ones(3), size=50).astype(np.float32)
    served = {"probabilities": p1, "label": p1.argmax(1)}
    shadow = {"probabilities": p2, "label": p2.argmax(1)}
    c = compare_outputs(kinds, served, shadow)
    assert c.rows == 50
    assert c.agree == int((p1.argmax(1) == p2.argmax(1)).sum())
    diff = np.abs(p1.astype(np.float64) - p2)
    assert c.diff_count == diff.size and c.diff_max == pytest.approx(diff.max())
    assert c.diff_sum == pytest.approx(diff.sum())
    # The caller asked only for probabilities: labels come from their argmax.
    only_probs = compare_outputs(kinds, {"probabilities": p1}, shadow)
    assert only_probs.agree == c.agree


def test_compare_regression_has_no_agreement() -> None:
    kinds = OutputKinds.from_signature(REGRESSOR)
    y = np.arange(8, dtype=np.float32).reshape(4, 2)
    c = compare_outputs(kinds, {"y": y}, {"y": y + 0.5})
    assert (c.rows, c.agree, c.diff_count) == (4, None, 8)
    assert c.diff_sum == pytest.approx(4.0) and c.diff_max == pytest.approx(0.5)


class _Version:
    """A stand-in LoadedVersion whose run waits for a gate (to fill the shadow queue)."""

    def __init__(self, fail: bool = False) -> None:
        self.model, self.version, self.signature = "m", "2", REGRESSOR
        self.gate = threading.Event()
        self.fail = fail

    def run(self, inputs: dict[str, Any]) -> dict[str, Any]:
        self.gate.wait(10)
        if self.fail:
            raise RuntimeError("boom")
        return {"y": inputs["x"][:, :2] * 2}


def _call(scorer: ShadowScorer, x: np.ndarray) -> None:
    record = TapRecord("m", "1", "champion", "", {}, {"x": x}, {"y": x[:, :2]}, REGRESSOR)
    scorer.observe(record)


def test_full_queue_drops_without_blocking_and_feeds_the_monitor() -> None:
    version = _Version()
    fed: list[Any] = []
    scorer = ShadowScorer(
        lambda model: (version,),
        queue_size=2,
        feed=lambda v, i, o: fed.append((v, i, o)),
    )
    x = np.ones((3, 4), dtype=np.float32)
    for _ in range(5):
        _call(scorer, x)  # returns at once although the shadow is stuck
    assert scorer.snapshot().dropped == {"m": 3}
    version.gate.set()
    assert scorer.drain(10)
    (report,) = scorer.snapshot().reports
    assert (report.version, report.served_version, report.requests, report.rows) == (
        "2",
        "1",
        2,
        6,
    )
    assert report.mean_abs_diff == pytest.approx(1.0) and report.errors == 0
    assert len(fed) == 2 and fed[0][2]["y"].shape == (3, 2)
    scorer.close()


def test_shadow_failures_are_counted() -> None:
    version = _Version(fail=True)
    version.gate.set()
    scorer = ShadowScorer(lambda model: (version,), queue_size=4)
    _call(scorer, np.ones((1, 4), dtype=np.float32))
    assert scorer.drain(10)
    (report,) = scorer.snapshot().reports
    assert (report.requests, report.errors) == (0, 1)
    scorer.close()
