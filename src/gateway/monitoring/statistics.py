"""The drift statistics vocabulary: one row per statistic, read by every reader.

Each :class:`DriftStatistic` names one per-feature statistic once: its domain name (the
:class:`~gateway.monitoring.drift.DriftReport` array, or a key of its ``extra``), its wire
name (the ``FeatureDrift`` field of ``monitoring.proto``, which is also the key of
``onnxgate drift --json``; a name that is not a field travels in ``FeatureDrift.extra``),
its Prometheus gauge, its column headers and its help text. The proto mapping
(:mod:`gateway.transport.monitoring`), the Prometheus collector
(:mod:`gateway.monitoring.collector`), the HTML report (:mod:`gateway.monitoring.report`),
the CLI (:mod:`gateway.cli.monitoring`) and the console (:mod:`gateway.console.pages`)
iterate :data:`DRIFT_STATISTICS`; none of them spells a statistic itself.

Adding a statistic is one row here with its ``compute`` function (called by
:func:`~gateway.monitoring.drift.compute_drift` with a :class:`DriftInputs`; the result
lands in ``DriftReport.extra``). The rows without ``compute`` are the built-in statistics
that ``compute_drift`` derives together (they share sorted columns and bin counts).

Rows are in the order the tables show them (HTML report, CLI, console). No numpy at
import: the CLI reads this table without loading the numeric stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from gateway.monitoring.profiles import Profile

__all__ = ["DRIFT_STATISTICS", "DriftInputs", "DriftStatistic", "by_name", "wire_value"]


@dataclass(frozen=True)
class DriftInputs:
    """What a statistic's ``compute`` sees: the profile and the window, features x rows."""

    profile: Profile
    window_sorted: npt.NDArray[np.float64]  # each row sorted, NaN last
    window_valid: npt.NDArray[np.int64]  # valid (non-missing) values per feature
    counts: npt.NDArray[np.int64]  # the window's counts over the profile's bins


@dataclass(frozen=True)
class DriftStatistic:
    """One per-feature drift statistic and how each reader names and shows it."""

    name: str  # domain: DriftReport attribute, or key of DriftReport.extra
    help: str
    wire: str | None = None  # FeatureDrift field / JSON key; None: not sent
    metric: str | None = None  # Prometheus gauge over the top-K features; None: not exported
    header: str | None = None  # column of the HTML report
    cli: str | None = None  # column of `onnxgate drift`'s table
    cli_format: str = ".4g"
    console: str | None = None  # column of the console's drift page
    console_digits: int = 4
    # A column shown only when some feature has a value (categorical-only statistics).
    sparse: bool = False
    compute: Callable[[DriftInputs], npt.NDArray[np.float64]] | None = None


DRIFT_STATISTICS: tuple[DriftStatistic, ...] = (
    DriftStatistic(
        "psi",
        "Population Stability Index over the reference bins.",
        wire="psi",
        metric="onnxgate_drift_psi",
        header="PSI",
        cli="PSI",
        console="PSI",
    ),
    DriftStatistic(
        "ks_stat",
        "Two-sample Kolmogorov-Smirnov statistic.",
        wire="ks_statistic",
        metric="onnxgate_drift_ks_statistic",
        header="KS",
        cli="KS",
        console="KS",
    ),
    DriftStatistic("ks_p", "Kolmogorov-Smirnov p-value (uncorrected).", wire="ks_pvalue"),
    DriftStatistic(
        "p_value",
        "The verdict's test p-value: chi-square for categoricals, KS otherwise.",
        wire="pvalue",
        header="p",
        cli="P",
        cli_format=".3g",
    ),
    DriftStatistic(
        "p_adjusted",
        "The verdict's p-value after the multiple-testing correction.",
        wire="pvalue_adjusted",
        header="p adj.",
        cli="P_ADJ",
        cli_format=".3g",
        console="p adj.",
        console_digits=3,
    ),
    DriftStatistic(
        "ks_p_adjusted",
        "Verdict p-value (KS) after multiple-testing correction; features tested by KS.",
        metric="onnxgate_drift_ks_pvalue_adjusted",
    ),
    DriftStatistic(
        "chi2_p_adjusted",
        "Verdict p-value (chi-square) after multiple-testing correction; categorical "
        "features tested by chi-square.",
        metric="onnxgate_drift_chi2_pvalue_adjusted",
    ),
    DriftStatistic(
        "js",
        "Jensen-Shannon distance (base 2) over the bins.",
        wire="js_distance",
        metric="onnxgate_drift_js_distance",
        header="JS",
    ),
    DriftStatistic("wasserstein", "1-Wasserstein distance.", wire="wasserstein"),
    DriftStatistic(
        "wasserstein_norm",
        "1-Wasserstein distance divided by the reference standard deviation.",
        wire="wasserstein_normalized",
        metric="onnxgate_drift_wasserstein_normalized",
        header="W/σ",
        cli="W/STD",
    ),
    DriftStatistic("chi2", "Pearson chi-square statistic (categoricals).", wire="chi2"),
    DriftStatistic("chi2_p", "Chi-square p-value (categoricals).", wire="chi2_pvalue"),
    DriftStatistic(
        "mean_shift",
        "Window mean minus reference mean, in reference standard deviations.",
        wire="mean_shift",
        header="mean shift/σ",
        cli="MEAN_SHIFT",
        cli_format="+.3f",
        console="mean shift",
    ),
    DriftStatistic(
        "std_ratio",
        "Window std / reference std.",
        wire="std_ratio",
        header="std ratio",
    ),
    DriftStatistic("nan_share", "Share of missing values.", wire="nan_share", header="missing"),
    DriftStatistic(
        "out_of_range_share",
        "Share of valid values outside the reference [min, max].",
        wire="out_of_range_share",
        header="out of range",
    ),
    DriftStatistic(
        "unseen_share",
        "Share of a categorical feature's valid values that are not a reference level.",
        wire="unseen_share",
        metric="onnxgate_drift_unseen_share",
        header="unseen",
        cli="UNSEEN",
        console="unseen",
        sparse=True,
    ),
)


def by_name(name: str) -> DriftStatistic:
    """The row of domain name ``name``."""
    for row in DRIFT_STATISTICS:
        if row.name == name:
            return row
    raise KeyError(name)


def wire_value(feature: Mapping[str, Any], row: DriftStatistic) -> Any:
    """A row's value in one feature of a drift document (a field, or under ``extra``)."""
    if row.wire is None:
        return None
    if row.wire in feature:
        return feature[row.wire]
    return feature.get("extra", {}).get(row.wire)
