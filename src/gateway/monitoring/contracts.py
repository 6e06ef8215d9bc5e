"""Data contracts: what a version's inputs may hold, derived from its reference profile.

Per input feature (signature order, :mod:`gateway.monitoring.layout`):

* a **range**: the reference's ``[min, max]`` widened on each side by ``margin`` times its
  width (``margin`` 0.1 by default: a value 10 % of the reference's range beyond its
  extremes violates; a constant feature gets an absolute margin of ``margin``);
* for categorical features, the **categories seen** in the reference (any other value
  violates; the range does not apply);
* whether **missing** values (NaN, +-inf) were seen: a feature never missing in the
  reference violates on a missing value.

:meth:`Contract.check` judges a whole batch with one broadcast comparison per rule (no loop
over rows or features) and returns the violations per feature and the first violating
cell, which a ``reject`` names (row, feature, value). Contracts are documents
(:meth:`Contract.to_dict`) so they can be stored, shown and edited. Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.profiles import Profile

__all__ = ["DEFAULT_MARGIN", "MODES", "Contract", "Violations"]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

DEFAULT_MARGIN = 0.1
MODES = ("off", "count", "flag", "reject")


@dataclass(frozen=True, eq=False)
class Violations:
    """One batch's violations: per feature, the rows with any, and the first violating
    cell (row-major)."""

    per_feature: IntArray
    first: tuple[int, int, float] | None  # (row, feature index, value)
    rows: int = 0  # rows with at least one violation

    @property
    def total(self) -> int:
        return int(self.per_feature.sum())


@dataclass(frozen=True, eq=False)
class Contract:
    """Allowed values of each input feature (see module docs)."""

    feature_names: tuple[str, ...]
    low: FloatArray
    high: FloatArray
    nan_allowed: BoolArray
    categorical: BoolArray
    levels: FloatArray  # features x L, NaN-padded categories seen (categorical features)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_any_categorical", bool(self.categorical.any()))
        none = np.zeros(len(self.feature_names), dtype=np.int64)
        none.flags.writeable = False
        object.__setattr__(self, "_none", none)

    _any_categorical: bool = field(init=False, repr=False)
    _none: IntArray = field(init=False, repr=False)

    @classmethod
    def from_profile(cls, profile: Profile, margin: float = DEFAULT_MARGIN) -> Contract:
        width = profile.maximum - profile.minimum
        pad = np.where(width > 0, margin * width, margin)
        with np.errstate(invalid="ignore"):
            low = np.where(np.isnan(profile.minimum), -np.inf, profile.minimum - pad)
            high = np.where(np.isnan(profile.maximum), np.inf, profile.maximum + pad)
        return cls(
            profile.feature_names,
            low,
            high,
            np.nan_to_num(profile.nan_share) > 0,
            profile.categorical.copy(),
            profile.levels.copy(),
        )

    def fits(self, x: npt.NDArray[Any]) -> bool:
        """Whether every value of a rows x features batch (any numeric dtype) is within its
        feature's range: the request path's common case, one broadcast comparison pair and
        one count. False (so :meth:`check` judges it) for a missing value (NaN compares
        False), a value out of range, or any contract with categorical features."""
        if self._any_categorical:
            return False
        return int(np.count_nonzero((x >= self.low) & (x <= self.high))) == x.size

    def check(self, x: FloatArray) -> Violations:
        """Violations of a rows x features batch (float64; non-finite values are missing)."""
        if self.fits(x):
            return Violations(self._none, None)
        missing = ~np.isfinite(x)
        bad = (x < self.low) | (x > self.high)  # NaN compares False, without a warning
        if self.categorical.any():
            cat = np.flatnonzero(self.categorical)
            seen = (x[:, cat, None] == self.levels[cat][None, :, :]).any(axis=2)
            bad[:, cat] = ~seen
        bad &= ~missing
        bad |= missing & ~self.nan_allowed
        per_feature = bad.sum(axis=0).astype(np.int64)
        first, rows = None, 0
        if per_feature.any():
            row, col = divmod(int(np.argmax(bad.reshape(-1))), x.shape[1])
            first = (row, col, float(x[row, col]))
            rows = int(bad.any(axis=1).sum())
        return Violations(per_feature, first, rows)

    def describe(self, first: tuple[int, int, float]) -> str:
        """A reject's message: the row, the feature, its value and what was allowed."""
        row, col, value = first
        name = self.feature_names[col]
        if not math.isfinite(value):
            allowed = "a value (it is never missing in the reference)"
        elif self.categorical[col]:
            seen = self.levels[col][~np.isnan(self.levels[col])]
            allowed = "one of " + ", ".join(f"{v:g}" for v in seen)
        else:
            allowed = f"within [{self.low[col]:.6g}, {self.high[col]:.6g}]"
        return (
            f"row {row}: feature {name!r} = {value:g} violates the data contract "
            f"(expected {allowed})"
        )

    def to_dict(self) -> dict[str, Any]:
        def finite(a: FloatArray) -> list[float | None]:
            return [float(v) if math.isfinite(v) else None for v in a]

        return {
            "features": list(self.feature_names),
            "low": finite(self.low),
            "high": finite(self.high),
            "nan_allowed": self.nan_allowed.tolist(),
            "categories": [
                [float(v) for v in row[~np.isnan(row)]] if c else None
                for row, c in zip(self.levels, self.categorical, strict=True)
            ],
        }

    @classmethod
    def parse(cls, d: Any) -> Contract:
        """:meth:`from_dict` of an untrusted document (an operator's edit): ValueError
        naming the field when it is malformed."""
        if not isinstance(d, Mapping):
            raise ValueError("a contract is a JSON object")
        keys = ("features", "low", "high", "nan_allowed", "categories")
        missing = [k for k in keys if not isinstance(d.get(k), list)]
        if missing:
            raise ValueError(f"{missing[0]}: expected a list (fields: {', '.join(keys)})")
        n = len(d["features"])
        for k in keys[1:]:
            if len(d[k]) != n:
                raise ValueError(f"{k}: {len(d[k])} entries for {n} features")
        if not all(isinstance(f, str) and f for f in d["features"]):
            raise ValueError("features: expected non-empty names")

        def number(v: Any) -> bool:
            return v is None or (isinstance(v, int | float) and not isinstance(v, bool))

        for k in ("low", "high"):
            bad = next((i for i, v in enumerate(d[k]) if not number(v)), None)
            if bad is not None:
                raise ValueError(f"{k}[{bad}]: expected a number or null, got {d[k][bad]!r}")
        if not all(isinstance(v, bool) for v in d["nan_allowed"]):
            raise ValueError("nan_allowed: expected true or false per feature")
        for i, c in enumerate(d["categories"]):
            if c is not None and not (isinstance(c, list) and c and all(map(number, c))):
                raise ValueError(f"categories[{i}]: expected null or a list of numbers")
        contract = cls.from_dict(d)
        wrong = np.flatnonzero(contract.low > contract.high)
        if wrong.size:
            raise ValueError(f"feature {contract.feature_names[wrong[0]]!r}: low > high")
        return contract

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Contract:
        cats = d["categories"]
        width = max((len(c) for c in cats if c), default=0)
        levels = np.full((len(cats), width), np.nan)
        for i, c in enumerate(cats):
            if c:
                levels[i, : len(c)] = c

        def arr(values: list[float | None], missing: float) -> FloatArray:
            return np.array([missing if v is None else v for v in values], dtype=np.float64)

        return cls(
            tuple(d["features"]),
            arr(d["low"], -math.inf),
            arr(d["high"], math.inf),
            np.array(d["nan_allowed"], dtype=bool),
            np.array([c is not None for c in cats], dtype=bool),
            levels,
        )
