"""Current windows of a model version's inputs, kept for drift monitoring.

* :class:`CountWindow` is a count-based sliding window: a preallocated ring buffer of the
  newest ``capacity`` rows. Appending is vectorised (at most two slice copies per batch)
  and never allocates; :meth:`CountWindow.view` copies the window out, oldest row first,
  when a drift snapshot is taken.
* :class:`BinnedCounts` holds per-feature counts over a profile's bin edges. Counts are a
  commutative monoid under :meth:`BinnedCounts.merge`, so batches, worker processes and
  replicas can each count and the sums are exact; the object pickles for transport.

Neither class locks: the monitor that owns one serialises access to it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gateway.monitoring.profiles import Profile, as_float_matrix, bin_counts

__all__ = ["BinnedCounts", "CountWindow"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CountWindow:
    """The newest ``capacity`` rows seen, in a preallocated float64 ring buffer."""

    def __init__(self, capacity: int, n_features: int) -> None:
        if capacity < 1 or n_features < 1:
            raise ValueError("capacity and n_features must be positive")
        self._buf: FloatArray = np.empty((capacity, n_features), dtype=np.float64)
        self._head = 0  # next row to write; the oldest row once the buffer is full
        self._count = 0
        self._total_seen = 0

    @property
    def capacity(self) -> int:
        return int(self._buf.shape[0])

    @property
    def n_features(self) -> int:
        return int(self._buf.shape[1])

    @property
    def count(self) -> int:
        """Rows currently in the window (at most ``capacity``)."""
        return self._count

    @property
    def total_seen(self) -> int:
        """Rows appended since creation or the last :meth:`clear`."""
        return self._total_seen

    def append(self, batch: npt.ArrayLike) -> None:
        """Append a rows x features batch (a 1-D array is one row); the oldest rows drop out.

        A batch longer than the capacity keeps only its newest ``capacity`` rows.
        """
        rows = np.asarray(batch, dtype=np.float64)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or rows.shape[1] != self.n_features:
            raise ValueError(f"expected rows x {self.n_features}, got shape {rows.shape}")
        n, cap = rows.shape[0], self.capacity
        self._total_seen += n
        if n >= cap:
            self._buf[:] = rows[n - cap :]
            self._head, self._count = 0, cap
            return
        first = min(n, cap - self._head)
        self._buf[self._head : self._head + first] = rows[:first]
        self._buf[: n - first] = rows[first:]
        self._head = (self._head + n) % cap
        self._count = min(self._count + n, cap)

    def view(self) -> FloatArray:
        """A copy of the window, oldest row first."""
        if self._count < self.capacity:
            return self._buf[: self._count].copy()
        return np.concatenate((self._buf[self._head :], self._buf[: self._head]))

    def clear(self) -> None:
        """Empty the window and reset ``total_seen``."""
        self._head = self._count = self._total_seen = 0


class BinnedCounts:
    """Mergeable per-feature counts over fixed bin edges (features x (B + 1), see profiles).

    ``counts`` is features x B; ``missing`` counts NaN/inf values per feature; ``rows`` is
    the number of rows added.
    """

    def __init__(
        self,
        edges: FloatArray,
        counts: IntArray | None = None,
        missing: IntArray | None = None,
        rows: int = 0,
    ) -> None:
        n_features, width = edges.shape[0], edges.shape[1] - 1
        self.edges: FloatArray = np.array(edges, dtype=np.float64)
        self.edges.setflags(write=False)
        self.counts: IntArray = (
            np.zeros((n_features, width), dtype=np.int64)
            if counts is None
            else np.array(counts, dtype=np.int64)
        )
        self.missing: IntArray = (
            np.zeros(n_features, dtype=np.int64)
            if missing is None
            else np.array(missing, dtype=np.int64)
        )
        if self.counts.shape != (n_features, width) or self.missing.shape != (n_features,):
            raise ValueError("counts/missing do not match the edges")
        self.rows = rows

    @classmethod
    def from_profile(cls, profile: Profile) -> BinnedCounts:
        """Empty counts over ``profile``'s reference bins."""
        return cls(profile.edges)

    def add(self, batch: npt.ArrayLike) -> None:
        """Count a rows x features batch into the bins (vectorised over rows and features)."""
        x = as_float_matrix(batch, self.edges.shape[0])
        counts, missing = bin_counts(x, self.edges)
        self.counts += counts
        self.missing += missing
        self.rows += x.shape[0]

    def merge(self, other: BinnedCounts) -> BinnedCounts:
        """A new :class:`BinnedCounts` holding the sum of ``self`` and ``other``."""
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot merge counts over different bin edges")
        return BinnedCounts(
            self.edges,
            self.counts + other.counts,
            self.missing + other.missing,
            self.rows + other.rows,
        )
