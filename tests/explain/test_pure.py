"""The pure parts: the background summary keeps the mean; the output choice and its space."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import InvalidArgument
from gateway.explain.background import summarise
from gateway.explain.outputs import choose_output


def test_summary_keeps_the_mean_exactly() -> None:
    x = np.random.default_rng(0).gamma(2.0, size=(5000, 7)) * np.arange(1, 8)
    bg = summarise(x, 32)
    assert bg.rows.shape == (32, 7) or bg.rows.shape[0] < 32
    assert bg.source_rows == 5000
    assert bg.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(bg.mean, x.mean(axis=0), rtol=1e-12)


def test_small_samples_are_kept_and_missing_values_filled() -> None:
    x = np.array([[1.0, np.nan], [3.0, 4.0]])
    bg = summarise(x, 32)
    np.testing.assert_array_equal(bg.rows, [[1.0, 4.0], [3.0, 4.0]])
    np.testing.assert_array_equal(bg.weights, [0.5, 0.5])


def test_output_choice() -> None:
    probs = np.array([[0.2, 0.8], [0.9, 0.1]])
    outs = {"label": np.array([1, 0]), "probabilities": probs}
    choice = choose_output(outs)
    assert (choice.name, choice.index, choice.space) == ("probabilities", 1, "logit")
    np.testing.assert_allclose(choice.value(outs), np.log(probs[:, 1] / probs[:, 0]))
    reg = choose_output({"y": np.array([[1.5], [2.5]])})
    assert (reg.index, reg.space, reg.label) == (0, "identity", "y[0]")
    three = {"p": np.array([[0.2, 0.3, 0.5]])}
    with pytest.raises(InvalidArgument, match="output_index"):
        choose_output(three)
    c = choose_output(three, index=2)
    logp = np.log(three["p"])
    np.testing.assert_allclose(c.value(three), logp[:, 2] - logp.mean(axis=1))
    with pytest.raises(InvalidArgument, match="not a float output"):
        choose_output(outs, "label")
    with pytest.raises(InvalidArgument, match="does not exist"):
        choose_output(outs, "nope")
    with pytest.raises(InvalidArgument, match="out of range"):
        choose_output(outs, index=5)


def test_rank_correlation_and_the_gate_policy() -> None:
    from gateway.governor.evidence import Importance
    from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy

    names = ("a", "b", "c", "d")
    champ = Importance(names, (4.0, 3.0, 2.0, 1.0), 100)
    assert champ.top == "a"
    assert champ.rank_correlation(Importance(names, (8.0, 6.1, 3.0, 0.5), 100)) == 1.0
    assert champ.rank_correlation(Importance(names, (1.0, 2.0, 3.0, 4.0), 100)) == -1.0
    ties = Importance(names, (1.0, 1.0, 1.0, 1.0), 10)
    assert champ.rank_correlation(ties) == 0.0
    assert champ.rank_correlation(Importance(("a", "b"), (1.0, 2.0), 10)) is None

    policy = parse_rollout_policy("[gates]\nmin_importance_correlation = 0.5\n")
    assert policy.gates.min_importance_correlation == 0.5
    assert parse_rollout_policy("").gates.min_importance_correlation is None
    with pytest.raises(RolloutPolicyError, match="min_importance_correlation"):
        parse_rollout_policy("[gates]\nmin_importance_correlation = 2\n")
