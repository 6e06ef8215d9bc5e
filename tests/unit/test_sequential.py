"""The mixture SPRT: its closed form, and its error guarantee under repeated looks.

The simulations run thousands of A/A and A/B sequences at once (numpy), looking after
every batch of labels exactly as the governor does every evaluation interval.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from gateway.governor.sequential import (
    ArmSample,
    always_valid_p,
    compare,
    confidence_radius,
    likelihood_ratio,
)

ALPHA = 0.05
TAU = 0.05
MIN_N = 50  # the governor's challenger.min_labels


def test_likelihood_ratio_is_the_normal_mixture() -> None:
    delta, v, tau = 0.03, 0.0004, 0.05

    def integrand(theta: float) -> float:
        ratio = stats.norm.pdf(delta, theta, math.sqrt(v)) / stats.norm.pdf(delta, 0, math.sqrt(v))
        return float(ratio * stats.norm.pdf(theta, 0, tau))

    expected, _ = integrate.quad(integrand, -1, 1, points=[0.0, delta])
    assert float(likelihood_ratio(delta, v, tau)) == pytest.approx(expected, rel=1e-6)


def test_confidence_radius_inverts_the_test() -> None:
    v, alpha = 0.001, 0.05
    r = float(confidence_radius(v, TAU, alpha))
    assert float(likelihood_ratio(r, v, TAU)) == pytest.approx(1 / alpha, rel=1e-9)


def test_compare_and_running_p() -> None:
    a = ArmSample.proportion(80, 100)
    b = ArmSample.proportion(95, 100)
    res = compare(a, b, tau=TAU, alpha=ALPHA, proportions=True)
    assert res is not None
    assert res.delta == pytest.approx(0.15)
    assert res.ci_low < res.delta < res.ci_high
    assert res.p_value == pytest.approx(min(1.0, 1 / res.likelihood_ratio))
    assert always_valid_p(0.01, res) == min(0.01, res.p_value)
    assert always_valid_p(0.3, None) == 0.3
    assert compare(ArmSample(0, 0, 0), b, tau=TAU, alpha=ALPHA, proportions=True) is None
    m = ArmSample.moments(4, 10.0, 30.0)
    assert (m.mean, m.variance) == (2.5, pytest.approx(30 / 4 - 2.5**2))
    # constant arms (identical regressors) do not divide by zero
    same = ArmSample.moments(10, 5.0, 2.5)
    flat = compare(same, same, tau=TAU, alpha=ALPHA, proportions=False)
    assert flat is not None and flat.p_value == 1.0


def _simulate(
    p_a: float,
    p_b: float,
    *,
    runs: int,
    looks: int,
    per_look: int,
    share_b: float,
    seed: int,
) -> float:
    """Share of runs in which some look promoted B (B ahead and Lambda >= 1/alpha)."""
    rng = np.random.default_rng(seed)
    n_b_look = max(1, round(per_look * share_b))
    n_a_look = per_look - n_b_look
    n_a = np.arange(1, looks + 1) * n_a_look
    n_b = np.arange(1, looks + 1) * n_b_look
    s_a = rng.binomial(n_a_look, p_a, size=(runs, looks)).cumsum(axis=1)
    s_b = rng.binomial(n_b_look, p_b, size=(runs, looks)).cumsum(axis=1)
    pooled = (s_a + s_b + 0.5) / (n_a + n_b + 1.0)
    variance = pooled * (1 - pooled) * (1 / n_a + 1 / n_b)
    delta = s_b / n_b - s_a / n_a
    lr = likelihood_ratio(delta, variance, TAU)
    looked = (n_a >= MIN_N) & (n_b >= MIN_N)
    promoted = (lr >= 1 / ALPHA) & (delta > 0) & looked
    return float(promoted.any(axis=1).mean())


@pytest.mark.parametrize(("p", "share_b"), [(0.8, 0.5), (0.95, 0.5), (0.6, 0.1)])
def test_aa_false_promotions_stay_below_alpha_despite_peeking(p: float, share_b: float) -> None:
    runs = 4000
    rate = _simulate(p, p, runs=runs, looks=200, per_look=20, share_b=share_b, seed=7)
    tolerance = 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert rate <= ALPHA + tolerance


def test_naive_peeking_would_inflate_false_promotions() -> None:
    """The reason for the mSPRT: a fixed-n z-test read at every look is far above alpha."""
    rng = np.random.default_rng(3)
    runs, looks, n = 2000, 200, 10
    s_a = rng.binomial(n, 0.8, size=(runs, looks)).cumsum(axis=1)
    s_b = rng.binomial(n, 0.8, size=(runs, looks)).cumsum(axis=1)
    count = np.arange(1, looks + 1) * n
    pooled = (s_a + s_b + 0.5) / (2 * count + 1)
    z = (s_b - s_a) / count / np.sqrt(pooled * (1 - pooled) * 2 / count)
    naive = float((z > stats.norm.ppf(1 - ALPHA)).any(axis=1).mean())
    assert naive > 3 * ALPHA


@pytest.mark.parametrize(("p_a", "p_b"), [(0.80, 0.88), (0.5, 0.6)])
def test_ab_real_difference_is_detected(p_a: float, p_b: float) -> None:
    power = _simulate(p_a, p_b, runs=500, looks=200, per_look=20, share_b=0.5, seed=11)
    assert power >= 0.9
