"""Drift statistics: how far a window of inputs has moved from a version's reference profile.

Pure functions of numpy arrays; every statistic is computed for all features at once (no
Python loop over features or rows). Missing values (NaN, +-inf) are dropped per feature:
columns are sorted with NaN last and carry their own valid counts.

Per feature, against a :class:`~gateway.monitoring.profiles.Profile`:

``psi``
    Population Stability Index over the reference quantile bins, as defined for credit
    scoring by Siddiqi (2006) and studied by Yurdakul (2018):
    ``sum_b (w_b - r_b) * ln(w_b / r_b)`` over bin proportions, where a proportion of 0 is
    replaced by ``psi_eps`` (default 1e-4) so that empty bins stay finite.
``ks_stat``, ``ks_p``
    Two-sample Kolmogorov-Smirnov ``D = sup |F_ref - F_win|`` between the profile's sample
    and the window, equal to ``scipy.stats.ks_2samp``'s statistic. The p-value, by default
    (``ks_method="kolmogorov"``), is Smirnov's limiting distribution,
    ``scipy.special.kolmogorov(sqrt(en) * D)`` with ``en = n*m / (n+m)``: a vectorised
    ufunc. ``ks_method="kstwo"`` instead gives exactly ``ks_2samp(method="asymp")``, i.e.
    ``scipy.stats.kstwo.sf(D, round(en))``; scipy evaluates that one feature at a time in
    Python (up to a few ms each for en ~ 5,000), so it is opt-in. For en >= 5 the limit
    is conservative: never below ``kstwo`` and above it by at most ~0.28 / sqrt(en)
    (4e-3 at en = 5,000). ``ks_2samp``'s default ``method="auto"`` uses the exact
    distribution when both samples have at most 10,000 rows; neither mode reproduces that.
``js``
    Jensen-Shannon distance (square root of the divergence) in base 2, so in [0, 1], over
    the same bins: ``scipy.spatial.distance.jensenshannon(ref_counts, win_counts, base=2)``.
``wasserstein``, ``wasserstein_norm``
    1-Wasserstein distance between the profile's sample and the window,
    ``scipy.stats.wasserstein_distance``, and the same divided by the reference std.
``chi2``, ``chi2_p``
    Categorical features only (NaN elsewhere): Pearson's chi-square of the window's level
    counts against the reference proportions scaled to the window's count, i.e.
    ``scipy.stats.chisquare(obs, ref / ref.sum() * obs.sum())``.
``mean_shift``, ``std_ratio``
    ``(mean_win - mean_ref) / std_ref`` and ``std_win / std_ref`` (population stds). With a
    constant reference, ``x / 0`` is ``+-inf`` and ``0 / 0`` is 0 (ratio: 1).
``nan_share``, ``out_of_range_share``, ``unseen_share``
    Share of missing window values; share of valid ones outside the reference
    ``[min, max]``; for categoricals, share of valid ones that are not a reference level.

Verdict. Each feature has one test p-value, chi-square for categoricals with at least two
levels and KS otherwise, adjusted across features by Benjamini-Hochberg (default, controls
the false discovery rate) or Bonferroni (family-wise error rate). A feature drifts when
``p_adjusted < alpha`` AND an effect-size guard holds: ``psi >= min_psi`` or
``wasserstein_norm >= min_wasserstein_norm`` (both 0.1 by default). With 10,000-row
windows a KS test rejects shifts of a few hundredths of a std; the guard keeps such
statistically real but operationally trivial shifts from raising alarms. A feature with
no valid values in the window or the reference sample has NaN statistics, ``no_data``
set, and never drifts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from gateway.monitoring.profiles import (
    Profile,
    as_float_matrix,
    bin_counts_sorted,
    count_at_most,
    sorted_columns,
)
from gateway.monitoring.statistics import DRIFT_STATISTICS, DriftInputs

__all__ = [
    "DriftReport",
    "adjust_pvalues",
    "chisquare",
    "compute_drift",
    "ecdf_distances",
    "js_distance",
    "ks_pvalue",
    "psi",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Correction = Literal["bh", "bonferroni", "none"]
KsMethod = Literal["kolmogorov", "kstwo"]


def _proportions(counts: npt.NDArray[Any]) -> FloatArray:
    total = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(counts / total, dtype=np.float64)


def psi(
    ref_counts: npt.NDArray[Any], cur_counts: npt.NDArray[Any], *, eps: float = 1e-4
) -> FloatArray:
    """Population Stability Index per feature (row) of two features x bins count arrays."""
    ref = np.maximum(_proportions(ref_counts), eps)
    cur = np.maximum(_proportions(cur_counts), eps)
    return np.asarray(np.sum((cur - ref) * np.log(cur / ref), axis=1), dtype=np.float64)


def js_distance(
    ref_counts: npt.NDArray[Any], cur_counts: npt.NDArray[Any], *, base: float = 2.0
) -> FloatArray:
    """Jensen-Shannon distance per feature (row), as ``scipy.spatial.distance.jensenshannon``."""
    p = _proportions(ref_counts)
    q = _proportions(cur_counts)
    m = (p + q) / 2.0
    js = np.sum(special.rel_entr(p, m), axis=1) + np.sum(special.rel_entr(q, m), axis=1)
    return np.asarray(np.sqrt(js / np.log(base) / 2.0), dtype=np.float64)


def chisquare(
    ref_counts: npt.NDArray[Any], cur_counts: npt.NDArray[Any]
) -> tuple[FloatArray, FloatArray]:
    """Pearson chi-square statistic and p-value per feature (row), over reference-seen bins.

    Expected counts are the reference proportions times the window's count; bins the
    reference never saw are left out (``dof = seen bins - 1``; p is NaN when ``dof < 1``).
    """
    ref_total = ref_counts.sum(axis=1, keepdims=True)
    cur_total = cur_counts.sum(axis=1, keepdims=True)
    seen = ref_counts > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = ref_counts / ref_total * cur_total
        terms = np.where(seen, (cur_counts - expected) ** 2 / expected, 0.0)
    stat = np.sum(terms, axis=1)
    dof = np.count_nonzero(seen, axis=1) - 1
    ok = (dof >= 1) & (cur_total[:, 0] > 0)
    p = np.full(stat.shape, np.nan)
    p[ok] = special.chdtrc(dof[ok], stat[ok])
    stat = np.where(cur_total[:, 0] > 0, stat, np.nan)
    return stat.astype(np.float64), p


def ecdf_distances(
    ref_sorted: FloatArray, ref_valid: IntArray, win_sorted: FloatArray, win_valid: IntArray
) -> tuple[FloatArray, FloatArray]:
    """KS statistic and 1-Wasserstein distance per feature, all features at once.

    Inputs are features x rows, each row sorted with its ``valid`` values first (NaN last).
    Both halves of the merged row are already sorted, so the stable sort (timsort) only
    merges two runs, O(n) per feature; the running count of reference rows then gives both
    ECDFs at every merged value. KS takes the largest gap at the last of each run of tied
    values (as ``ks_2samp``'s ``searchsorted(side="right")``); Wasserstein integrates the
    gap over the steps between consecutive merged values (as ``wasserstein_distance``).
    """
    n_features, m = ref_sorted.shape
    merged = np.concatenate((ref_sorted, win_sorted), axis=1)
    total = merged.shape[1]
    nan = np.full(n_features, np.nan)
    if total == 0:
        return nan, nan.copy()
    order = np.argsort(merged, axis=1, kind="stable")
    values = np.take_along_axis(merged, order, axis=1)
    nr, nw = ref_valid[:, None], win_valid[:, None]
    # NOTE: scaled by nr * nw the ECDF gap F_ref - F_win is an exact integer that rises by
    # nw at each reference value and falls by nr at each window value. It is built in
    # place in ``order``'s buffer and the steps in ``merged``'s: at 50 x 20,000 every
    # fresh temporary costs about as much as the arithmetic (page faults).
    from_ref = order < m
    gap = np.multiply(from_ref, nr + nw, out=order)
    gap -= nr
    np.cumsum(gap, axis=1, out=gap)
    np.abs(gap, out=gap)
    steps = np.subtract(values[:, 1:], values[:, :-1], out=merged[:, :-1])
    if np.any(ref_valid + win_valid < total):  # missing values: zero everything past them
        gap[np.arange(1, total + 1) > (ref_valid + win_valid)[:, None]] = 0
        steps[np.isnan(steps)] = 0.0
    # Within a run of tied values only the last position is an ECDF value: zero the others.
    # Their steps are 0, so the Wasserstein sum is unchanged. (The zeroed NaN step also
    # masks the last valid position, whose gap is 0 anyway: both ECDFs are 1 there.)
    np.multiply(gap[:, :-1], steps != 0.0, out=gap[:, :-1])
    ks = np.max(gap, axis=1)
    area = np.einsum("ij,ij->i", gap[:, :-1], steps)
    scale = (ref_valid * win_valid).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (
            np.where(scale > 0, ks / scale, np.nan),
            np.where(scale > 0, area / scale, np.nan),
        )


def ks_pvalue(
    ks: FloatArray, n_ref: IntArray, n_win: IntArray, *, method: KsMethod = "kolmogorov"
) -> FloatArray:
    """Two-sided two-sample KS p-values (see module docstring for the two methods)."""
    big = n_ref.astype(np.float64)
    small = n_win.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        en = big * small / (big + small)
    ok = np.isfinite(ks) & (en > 0)
    p = np.full(ks.shape, np.nan)
    if method == "kolmogorov":
        p[ok] = special.kolmogorov(np.sqrt(en[ok]) * ks[ok])
    elif method == "kstwo":
        if np.any(ok):
            p[ok] = stats.kstwo.sf(ks[ok], np.round(en[ok]))
    else:
        raise ValueError(f"unknown KS p-value method {method!r}")
    return np.asarray(np.clip(p, 0.0, 1.0), dtype=np.float64)


def adjust_pvalues(p: npt.ArrayLike, method: Correction = "bh") -> FloatArray:
    """Multiple-testing adjusted p-values; NaNs stay NaN and do not count as tests.

    ``"bh"``: Benjamini-Hochberg step-up, ``min_{j>=i} m * p_(j) / j`` capped at 1;
    ``"bonferroni"``: ``min(m * p, 1)``; ``"none"``: unchanged.
    """
    pv = np.asarray(p, dtype=np.float64)
    out = np.full(pv.shape, np.nan)
    ok = ~np.isnan(pv)
    q = pv[ok]
    m = q.size
    if method == "none":
        adjusted = q
    elif method == "bonferroni":
        adjusted = np.minimum(q * m, 1.0)
    elif method == "bh":
        order = np.argsort(q, kind="stable")
        ranked = q[order] * m / np.arange(1, m + 1)
        ranked = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(ranked, 1.0)
    else:
        raise ValueError(f"unknown correction {method!r}")
    out[ok] = adjusted
    return out


def _ratio(num: FloatArray, den: FloatArray, zero_by_zero: float) -> FloatArray:
    """``num / den`` with ``x / 0 = sign(x) * inf`` and ``0 / 0 = zero_by_zero``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
        zero = den == 0
        out[zero] = np.where(num[zero] == 0, zero_by_zero, np.sign(num[zero]) * np.inf)
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True, eq=False)
class DriftReport:
    """Per-feature drift statistics of one window (arrays in signature order) and a verdict.

    ``drifted`` is true when any feature drifted; ``features`` names those, most
    significant first (by adjusted p-value, ties broken by larger PSI).
    """

    feature_names: tuple[str, ...]
    window_rows: int
    categorical: BoolArray
    no_data: BoolArray
    psi: FloatArray
    ks_stat: FloatArray
    ks_p: FloatArray
    js: FloatArray
    wasserstein: FloatArray
    wasserstein_norm: FloatArray
    chi2: FloatArray
    chi2_p: FloatArray
    mean_shift: FloatArray
    std_ratio: FloatArray
    nan_share: FloatArray
    out_of_range_share: FloatArray
    unseen_share: FloatArray
    p_value: FloatArray
    p_adjusted: FloatArray
    drifted_mask: BoolArray
    drifted: bool
    features: list[str]
    alpha: float
    correction: Correction
    # ``p_adjusted`` split by the test behind it (NaN where the other test decided), so
    # that no series carries one test's p-value under the other's name.
    ks_p_adjusted: FloatArray
    chi2_p_adjusted: FloatArray
    # Statistics of the table's rows that bring their own ``compute``, by domain name.
    extra: dict[str, FloatArray] = field(default_factory=dict)

    def value(self, name: str) -> FloatArray:
        """The array of the statistic whose domain name is ``name`` (a table row's)."""
        found = self.extra.get(name)
        return found if found is not None else np.asarray(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON-safe dict (NaN -> None, +-inf -> "inf"/"-inf"), e.g. for audit."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if isinstance(value, dict):
                out[name] = {k: [_json_number(v) for v in a.tolist()] for k, a in value.items()}
            elif isinstance(value, np.ndarray):
                out[name] = [_json_number(v) for v in value.tolist()]
            elif isinstance(value, tuple):
                out[name] = list(value)
            else:
                out[name] = value
        return out


def _json_number(v: float | bool) -> float | bool | str | None:
    if isinstance(v, bool) or np.isfinite(v):
        return v
    return None if np.isnan(v) else ("inf" if v > 0 else "-inf")


def compute_drift(
    profile: Profile,
    window: npt.ArrayLike,
    *,
    alpha: float = 0.01,
    correction: Correction = "bh",
    min_psi: float = 0.1,
    min_wasserstein_norm: float = 0.1,
    psi_eps: float = 1e-4,
    js_base: float = 2.0,
    ks_method: KsMethod = "kolmogorov",
) -> DriftReport:
    """Compare a rows x features ``window`` with ``profile`` (see the module docstring)."""
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    x = as_float_matrix(window, profile.n_features)
    n_rows = x.shape[0]
    win_sorted, win_valid = sorted_columns(x)
    ref_valid = profile.sample_valid
    no_data = (win_valid == 0) | (ref_valid == 0)

    ks, wasserstein = ecdf_distances(profile.sorted_sample, ref_valid, win_sorted, win_valid)
    ks_p = ks_pvalue(ks, ref_valid, win_valid, method=ks_method)
    counts = bin_counts_sorted(win_sorted, win_valid, profile.edges)
    cat = profile.categorical
    chi2, chi2_p = chisquare(profile.ref_counts, counts)
    chi2 = np.where(cat, chi2, np.nan)
    chi2_p = np.where(cat, chi2_p, np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        if n_rows and np.all(win_valid == n_rows):
            mean = win_sorted.mean(axis=1)
            std = win_sorted.std(axis=1)
        else:
            present = ~np.isnan(win_sorted)
            mean = np.where(present, win_sorted, 0.0).sum(axis=1) / win_valid
            dev = np.where(present, win_sorted - mean[:, None], 0.0)
            std = np.sqrt((dev * dev).sum(axis=1) / win_valid)
        bounds = np.column_stack([profile.minimum, profile.maximum])
        below = count_at_most(win_sorted, win_valid, bounds[:, :1], strict=True)[:, 0]
        above = win_valid - count_at_most(win_sorted, win_valid, bounds[:, 1:])[:, 0]
        out_of_range = (below + above) / win_valid
        nan_share = (n_rows - win_valid) / np.float64(n_rows)
        levels = profile.levels  # NaN padding matches nothing
        known = count_at_most(win_sorted, win_valid, levels) - count_at_most(
            win_sorted, win_valid, levels, strict=True
        )
        unseen = np.where(cat, 1.0 - known.sum(axis=1) / win_valid, np.nan)

    def stat(values: FloatArray) -> FloatArray:
        return np.where(no_data, np.nan, values).astype(np.float64)

    wasserstein_norm = _ratio(wasserstein, profile.std, 0.0)
    psi_values = stat(psi(profile.ref_counts, counts, eps=psi_eps))
    by_chi2 = cat & (profile.n_bins >= 2)
    p_value = stat(np.where(by_chi2, chi2_p, ks_p))
    p_adjusted = adjust_pvalues(p_value, correction)
    effect = (psi_values >= min_psi) | (wasserstein_norm >= min_wasserstein_norm)
    mask = (p_adjusted < alpha) & effect & ~no_data
    hits = np.nonzero(mask)[0]
    hits = hits[np.lexsort((-psi_values[hits], p_adjusted[hits]))]
    inputs = DriftInputs(profile, win_sorted, win_valid, counts)
    return DriftReport(
        feature_names=profile.feature_names,
        window_rows=n_rows,
        categorical=cat.copy(),
        no_data=no_data,
        psi=psi_values,
        ks_stat=stat(ks),
        ks_p=stat(ks_p),
        js=stat(js_distance(profile.ref_counts, counts, base=js_base)),
        wasserstein=stat(wasserstein),
        wasserstein_norm=stat(wasserstein_norm),
        chi2=stat(chi2),
        chi2_p=stat(chi2_p),
        mean_shift=stat(_ratio(mean - profile.mean, profile.std, 0.0)),
        std_ratio=stat(_ratio(std, profile.std, 1.0)),
        nan_share=nan_share,
        out_of_range_share=stat(out_of_range),
        unseen_share=stat(unseen),
        p_value=p_value,
        p_adjusted=p_adjusted,
        drifted_mask=mask,
        drifted=bool(hits.size),
        features=[profile.feature_names[i] for i in hits],
        alpha=alpha,
        correction=correction,
        ks_p_adjusted=np.where(by_chi2, np.nan, p_adjusted),
        chi2_p_adjusted=np.where(by_chi2, p_adjusted, np.nan),
        extra={row.name: stat(row.compute(inputs)) for row in DRIFT_STATISTICS if row.compute},
    )
