"""The background an attribution is measured against: the version's reference sample, or a
weighted k-means summary of it that keeps its mean exactly.

Attributions answer "why this output rather than the average one", so the average is taken
over a background distribution. Kernel SHAP's cost grows linearly with the background's
rows, so a large reference is summarised: k-means clusters the rows, and each cluster
becomes one row (the exact mean of its members) weighted by its share of rows. The weighted
mean of the summary is then the reference's mean to rounding, so a linear model still gets
exactly ``w_j * (x_j - mean_j)``.

Pure numpy and scipy; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["Background", "summarise"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Background:
    """Rows x features, and one weight per row (summing to 1)."""

    rows: FloatArray
    weights: FloatArray
    source_rows: int  # rows of the sample it summarises

    @property
    def mean(self) -> FloatArray:
        return np.asarray(self.weights @ self.rows, dtype=np.float64)

    @property
    def n_features(self) -> int:
        return int(self.rows.shape[1])


def summarise(sample: npt.ArrayLike, k: int, *, seed: int = 0) -> Background:
    """``sample`` itself when it has at most ``k`` rows, else ``k`` weighted centroids.

    Missing values (NaN) cannot be fed to a model as a background, so they are replaced by
    their column's mean first (a column with no value at all becomes 0).
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    x = np.array(sample, dtype=np.float64, ndmin=2)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"expected a non-empty rows x features sample, got shape {x.shape}")
    missing = np.isnan(x)
    if missing.any():
        counts = np.maximum((~missing).sum(axis=0), 1)
        means = np.where(missing, 0.0, x).sum(axis=0) / counts
        x = np.where(missing, means, x)
    n = x.shape[0]
    if n <= k:
        return Background(x, np.full(n, 1.0 / n), n)
    from scipy.cluster.vq import kmeans2

    # NOTE: the centroids kmeans2 returns are discarded; only its labels are kept, and each
    # row of the summary is recomputed as the exact mean of its members, so that
    # sum(weight * centroid) is the sample's mean whatever the clustering converged to.
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    _, labels = kmeans2(x / scale, k, minit="++", seed=seed)
    used = np.unique(labels)
    counts = np.bincount(labels, minlength=k)[used].astype(np.float64)
    sums = np.zeros((k, x.shape[1]))
    np.add.at(sums, labels, x)
    centroids = sums[used] / counts[:, None]
    return Background(centroids, counts / n, n)
