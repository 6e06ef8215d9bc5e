"""Anytime-valid comparison of two arms: the mixture sequential probability ratio test.

The governor looks at a challenger's delayed labels every evaluation interval. A fixed-
sample test checked that often would promote an equal challenger far more often than its
nominal level (every look is another chance of a false positive). The mixture SPRT
(mSPRT) of Robbins (1970), as used for A/B tests by Johari, Koomen, Pekelis & Walsh
("Peeking at A/B tests", KDD 2017; "Always valid inference", Operations Research 2022),
gives instead a p-value that stays valid however often and whenever it is read.

Model. With ``n_a`` and ``n_b`` observations the difference of means
``delta = mean_b - mean_a`` is approximately ``N(theta, V)``, ``V = var_a/n_a + var_b/n_b``.
Mixing the likelihood ratio of ``theta`` against ``theta = 0`` over a normal prior
``theta ~ N(0, tau^2)`` gives, in closed form::

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 * delta^2 / (2 * V * (V + tau^2)))

which is a nonnegative martingale with mean 1 under the null (exactly so for Gaussian
data with known variance, approximately with a plug-in variance). By Ville's inequality
``P(sup_n Lambda_n >= 1/alpha) <= alpha``, so ``p_n = min(1, min_{k<=n} 1/Lambda_k)`` is an
always-valid p-value. For proportions the variance is estimated under the null (pooled,
with a half-count of smoothing so that it is never 0).

Inverting the same test at every ``theta0`` gives an always-valid confidence sequence,
``delta +- sqrt(V (V + tau^2) / tau^2 * (2 ln(1/alpha) + ln((V + tau^2) / V)))``, which the
quality gate uses to say "worse than the champion by more than the margin" only when the
evidence says so at level ``alpha``.

``tau`` is the scale of differences one expects (in the metric's units, e.g. 0.05 for
accuracy); a wrong guess costs power, never validity. Functions take numpy arrays so
that simulations can run thousands of sequences at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "ArmSample",
    "SequentialResult",
    "always_valid_p",
    "compare",
    "confidence_radius",
    "likelihood_ratio",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | FloatArray


def likelihood_ratio(delta: ArrayLike, variance: ArrayLike, tau: float) -> FloatArray:
    """The normal-mixture likelihood ratio ``Lambda`` of ``delta ~ N(theta, variance)``."""
    d = np.asarray(delta, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    # log form: exp() of large evidence overflows long before it matters; cap at 700.
    log_lr = 0.5 * np.log(v / (v + t2)) + t2 * d * d / (2.0 * v * (v + t2))
    return np.asarray(np.exp(np.minimum(log_lr, 700.0)), dtype=np.float64)


def confidence_radius(variance: ArrayLike, tau: float, alpha: float) -> FloatArray:
    """Half-width of the always-valid (1 - alpha) confidence sequence around ``delta``."""
    v = np.asarray(variance, dtype=np.float64)
    t2 = tau * tau
    return np.asarray(
        np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v))),
        dtype=np.float64,
    )


@dataclass(frozen=True)
class ArmSample:
    """Sufficient statistics of one arm: count, mean and per-observation variance."""

    n: int
    mean: float
    variance: float

    @classmethod
    def proportion(cls, successes: int, n: int) -> ArmSample:
        mean = successes / n if n else 0.0
        return cls(n, mean, mean * (1.0 - mean))

    @classmethod
    def moments(cls, n: int, total: float, total_sq: float) -> ArmSample:
        """From the sum and sum of squares of the observations (population variance)."""
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = total / n
        return cls(n, mean, max(total_sq / n - mean * mean, 0.0))


@dataclass(frozen=True)
class SequentialResult:
    """One look at B versus A. ``p_value`` is this look's ``min(1, 1/Lambda)``; carry the
    running minimum across looks (:func:`always_valid_p`)."""

    delta: float
    variance: float
    likelihood_ratio: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in vars(self).items()}


def compare(
    a: ArmSample,
    b: ArmSample,
    *,
    tau: float,
    alpha: float,
    proportions: bool,
) -> SequentialResult | None:
    """Test B against A (``delta = mean_b - mean_a``); None until each arm has data.

    ``proportions``: the observations are 0/1, so the null variance is pooled.
    """
    if a.n < 1 or b.n < 1:
        return None
    delta = b.mean - a.mean
    scale = 1.0 / a.n + 1.0 / b.n
    if proportions:
        pooled = (a.mean * a.n + b.mean * b.n + 0.5) / (a.n + b.n + 1.0)
        variance = pooled * (1.0 - pooled) * scale
    else:
        # A floor keeps V > 0 when both arms are constant (identical predictions).
        floor = 1e-12 * max(1.0, abs(a.mean), abs(b.mean)) ** 2
        variance = max(a.variance / a.n + b.variance / b.n, floor * scale)
    lr = float(likelihood_ratio(delta, variance, tau))
    radius = float(confidence_radius(variance, tau, alpha))
    return SequentialResult(
        delta=delta,
        variance=variance,
        likelihood_ratio=lr,
        p_value=min(1.0, 1.0 / lr) if lr > 0 else 1.0,
        ci_low=delta - radius,
        ci_high=delta + radius,
    )


def always_valid_p(previous: float, result: SequentialResult | None) -> float:
    """The running always-valid p-value after one more look."""
    if result is None:
        return previous
    return min(previous, result.p_value)
