"""Which tensors of a version drift monitoring watches, and how they become feature columns.

A :class:`FeatureLayout` is derived from a signature once per version. Monitored are the
numeric tensors (BOOL, integers, FP16/32/64) of rank 1 (``[batch]``: one column, named
like the tensor) or rank 2 with a fixed width (``[batch, w]``: ``w`` columns named
``name[0]`` .. ``name[w-1]``); their columns follow each other in signature order. Skipped,
with the reason kept in :attr:`FeatureLayout.skipped`: BYTES tensors (no numeric
distribution), rank 0 or rank >= 3 tensors (images, sequences: no per-row feature vector)
and rank-2 tensors with a dynamic width (columns would not line up from batch to batch).

Pure numpy; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from registry.signature import TensorSpec

__all__ = ["Block", "FeatureLayout"]

FloatArray = npt.NDArray[np.float64]
AnyArray = npt.NDArray[np.generic]

NUMERIC = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64"}
)


@dataclass(frozen=True)
class Block:
    """One monitored tensor: its columns ``[start, start + width)`` of the feature matrix."""

    name: str
    datatype: str
    width: int
    rank: int  # 1 or 2
    start: int


@dataclass(frozen=True)
class FeatureLayout:
    """Monitored tensors of one signature side (inputs or outputs) and their feature names."""

    blocks: tuple[Block, ...]
    names: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (tensor, why it is not monitored)

    @classmethod
    def from_specs(cls, specs: Sequence[TensorSpec]) -> FeatureLayout:
        blocks: list[Block] = []
        names: list[str] = []
        skipped: list[tuple[str, str]] = []
        for spec in specs:
            rank = len(spec.shape)
            if spec.datatype not in NUMERIC:
                skipped.append((spec.name, f"datatype {spec.datatype} is not numeric"))
            elif rank == 1:
                blocks.append(Block(spec.name, spec.datatype, 1, 1, len(names)))
                names.append(spec.name)
            elif rank == 2 and spec.shape[1] > 0:
                width = spec.shape[1]
                blocks.append(Block(spec.name, spec.datatype, width, 2, len(names)))
                names.extend(f"{spec.name}[{j}]" for j in range(width))
            elif rank == 2:
                skipped.append((spec.name, "rank-2 tensor with a dynamic width"))
            else:
                skipped.append((spec.name, f"rank-{rank} tensor (only rank 1 and 2 are)"))
        return cls(tuple(blocks), tuple(names), tuple(skipped))

    @property
    def n_features(self) -> int:
        return len(self.names)

    @property
    def complete(self) -> bool:
        """Whether every tensor of the side is monitored (so rows can be fed back to run)."""
        return not self.skipped

    def _fits(self, tensors: Mapping[str, AnyArray]) -> bool:
        """Whether one request has every block, with the expected shapes and one row count."""
        rows = -1
        for b in self.blocks:
            arr = tensors.get(b.name)
            if arr is None or arr.ndim != b.rank or (b.rank == 2 and arr.shape[1] != b.width):
                return False
            if rows not in (-1, arr.shape[0]):
                return False
            rows = arr.shape[0]
        return True

    def stack(self, batches: Sequence[Mapping[str, AnyArray]]) -> FloatArray:
        """One float64 rows x features matrix of several requests' tensors, in order.

        Requests missing a monitored tensor (e.g. outputs filtered by ``requested_outputs``)
        or with a shape the layout does not expect are left out. One ``np.concatenate`` per
        tensor name (converting to float64 on the way), no loop over rows or features; the
        only per-request Python is the shape check.
        """
        if len(self.blocks) == 1 and batches:
            # Fast path (one monitored tensor, e.g. "x"): requests were validated against
            # the signature, so they nearly always fit; check per request only on failure.
            b = self.blocks[0]
            try:
                arrays = [t[b.name] for t in batches]
                if b.rank == 1:
                    fits = all(a.ndim == 1 for a in arrays)
                else:
                    fits = all(a.ndim == 2 and a.shape[1] == b.width for a in arrays)
                if fits:
                    out = np.concatenate(arrays, axis=0, dtype=np.float64)
                    return out.reshape(-1, b.width)
            except (KeyError, ValueError):
                pass
        kept = [t for t in batches if self._fits(t)]
        if not kept or not self.blocks:
            return np.empty((0, self.n_features), dtype=np.float64)
        columns = [
            np.concatenate([t[b.name] for t in kept], axis=0, dtype=np.float64).reshape(-1, b.width)
            for b in self.blocks
        ]
        if len(columns) == 1:
            return columns[0]
        return np.concatenate(columns, axis=1)

    def split(
        self, matrix: FloatArray, dtypes: Mapping[str, np.dtype[np.generic]]
    ) -> dict[str, AnyArray]:
        """The inverse of :meth:`stack` for a complete layout: feature columns back into
        tensors of the given dtypes (to run a model on a reference sample)."""
        if not self.complete:
            raise ValueError("cannot rebuild tensors: some tensors are not monitored")
        tensors: dict[str, AnyArray] = {}
        for b in self.blocks:
            cols = matrix[:, b.start : b.start + b.width]
            arr = cols.reshape(-1) if b.rank == 1 else cols
            tensors[b.name] = np.ascontiguousarray(arr.astype(dtypes[b.name]))
        return tensors
