"""A version's reference profiles (inputs and outputs), and building them from a sample.

The registry stores one opaque JSON document per version; this module owns its layout::

    {"format": 1, "inputs": Profile.to_dict() | None, "outputs": Profile.to_dict() | None}

A reference sample (``onnxgate models register ... --reference FILE``) holds the input
features in signature order (see :mod:`gateway.monitoring.layout`): ``.npy``, ``.npz`` (the array
named ``x``, else the first one) or CSV with a header line (its names become the feature
names). The outputs' profile comes from running the model on that sample, so prediction
drift has a reference too. Categorical features may be declared in the version's metadata
(``categorical_features=name1,name2``); otherwise integer columns with few levels are
detected (see :func:`gateway.monitoring.profiles.build_profile`).
"""

from __future__ import annotations

import csv
import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.domain import Tensors
from gateway.monitoring import performance
from gateway.monitoring.layout import FeatureLayout
from gateway.monitoring.profiles import Profile, build_profile
from registry.datatypes import DATATYPE_TO_NUMPY
from registry.signature import Signature

__all__ = [
    "CATEGORICAL_META",
    "VersionProfiles",
    "build_version_profiles",
    "categorical_indices",
    "onnx_runner",
    "read_labels",
    "read_reference",
]

FloatArray = npt.NDArray[np.float64]
Runner = Callable[[Tensors], Tensors]

DOC_FORMAT = 1
CATEGORICAL_META = "categorical_features"
RUN_CHUNK_ROWS = 4096  # rows per onnxruntime call when profiling the outputs


@dataclass(frozen=True)
class VersionProfiles:
    """Reference profiles of one version's inputs and outputs (either may be missing)."""

    inputs: Profile | None
    outputs: Profile | None
    # The label-free performance estimator (gateway.monitoring.performance), when the
    # reference came with labels: Estimator.to_doc(), or {"skipped": why}.
    performance: Mapping[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = {
            "format": DOC_FORMAT,
            "inputs": None if self.inputs is None else self.inputs.to_dict(),
            "outputs": None if self.outputs is None else self.outputs.to_dict(),
        }
        if self.performance is not None:  # absent otherwise: older documents stay as they were
            doc["performance"] = dict(self.performance)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> VersionProfiles:
        if doc.get("format") != DOC_FORMAT:
            raise ValueError(f"unsupported version profile format {doc.get('format')!r}")
        inputs = None if doc.get("inputs") is None else Profile.from_dict(doc["inputs"])
        outputs = None if doc.get("outputs") is None else Profile.from_dict(doc["outputs"])
        return cls(inputs, outputs, doc.get("performance"))

    def summary(self) -> dict[str, Any]:
        """What an audit event records about the profiles (not the profiles)."""
        out: dict[str, Any] = {}
        for name, p in (("inputs", self.inputs), ("outputs", self.outputs)):
            out[name] = None if p is None else {"features": p.n_features, "rows": p.n_rows}
        if self.performance is not None:
            perf = self.performance
            out["performance"] = perf.get("skipped") or perf.get("reason")
        return out


def _read_csv(path: Path) -> tuple[FloatArray, tuple[str, ...]]:
    """A header line, then numbers; an empty cell is a missing value (NaN), as monitoring
    treats it. Anything else that is not a number is refused, naming its row and column."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = csv.reader(fh)
        header = next(rows, None)
        if header is None or not any(h.strip() for h in header):
            raise ValueError("the CSV file is empty; expected a header line, then rows")
        names = tuple(h.strip() for h in header)
        values: list[list[float]] = []
        for line, row in enumerate(rows, start=2):
            if not row:
                continue  # a blank line
            if len(row) != len(names):
                raise ValueError(f"line {line} has {len(row)} cells; the header has {len(names)}")
            parsed = []
            for name, cell in zip(names, row, strict=True):
                text = cell.strip()
                try:
                    parsed.append(float(text) if text else math.nan)
                except ValueError:
                    shown = text if len(text) <= 20 else text[:20] + "…"
                    raise ValueError(
                        f"line {line}, column {name!r}: {shown!r} is not a number"
                    ) from None
            values.append(parsed)
    if not values:
        raise ValueError("the CSV file has a header but no rows")
    return np.array(values, dtype=np.float64), names


def _load_numpy(path: Path, suffix: str) -> Any:
    if path.stat().st_size == 0:
        raise ValueError(f"the file is empty (0 bytes); expected a {suffix} file")
    # NOTE: our own file object: np.load leaks the one it opens when the bytes are no zip.
    with path.open("rb") as fh:
        try:
            loaded = np.load(fh, allow_pickle=False)
            if suffix == ".npy":
                if not isinstance(loaded, np.ndarray):
                    raise ValueError("expected a .npy array, found a .npz archive")
                return loaded
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("expected a .npz archive, found a single .npy array")
            with loaded as archive:
                if not archive.files:
                    raise ValueError("the .npz archive holds no array")
                return archive["x" if "x" in archive.files else archive.files[0]]
        except (EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"not a valid {suffix} file ({exc})") from None


def read_reference(path: Path) -> tuple[FloatArray, tuple[str, ...] | None]:
    """A rows x features float64 sample from ``.npy``, ``.npz`` or CSV, and CSV's header.

    Every problem with the file is a one-line :class:`ValueError` (the CLI prints it).
    """
    suffix = path.suffix.lower()
    names: tuple[str, ...] | None = None
    try:
        if suffix in (".npy", ".npz"):
            data: Any = _load_numpy(path, suffix)
        elif suffix == ".csv":
            data, names = _read_csv(path)
        else:
            raise ValueError("use a .npy, .npz or .csv file")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise ValueError(f"{path}: the CSV file is not UTF-8 text") from None
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{path}: expected a non-empty rows x features array, got {arr.shape}")
    return arr.astype(np.float64), names


def read_labels(
    path: Path | None, sample: FloatArray, names: tuple[str, ...] | None, column: str | None
) -> tuple[FloatArray, tuple[str, ...] | None, FloatArray | None]:
    """The reference's labels: from their own file (``.npy``/``.npz``/one-column CSV), or
    a CSV reference's ``column`` (taken out of the features). Returns (sample, names, labels).
    """
    if column is not None:
        if names is None or column not in names:
            raise ValueError(f"--label-column {column!r}: not a column of the CSV reference")
        i = names.index(column)
        rest = tuple(n for n in names if n != column)
        return np.delete(sample, i, axis=1), rest, sample[:, i]
    if path is None:
        return sample, names, None
    labels, _ = read_reference(path)
    if labels.shape[1] != 1:
        raise ValueError(f"{path}: expected one label per row, got {labels.shape[1]} columns")
    return sample, names, labels[:, 0]


def categorical_indices(names: Sequence[str], metadata: Mapping[str, str]) -> list[int] | None:
    """Indices of the features the version's metadata declares categorical (None: detect)."""
    declared = metadata.get(CATEGORICAL_META, "")
    wanted = [n.strip() for n in declared.split(",") if n.strip()]
    if not wanted:
        return None
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise ValueError(f"{CATEGORICAL_META}: unknown feature(s) {unknown}")
    return [names.index(n) for n in wanted]


def _run_outputs(
    signature: Signature, inputs: FeatureLayout, sample: FloatArray, run: Runner
) -> FloatArray | None:
    outputs = FeatureLayout.from_specs(signature.outputs)
    if not inputs.complete or not outputs.n_features:
        return None
    dtypes = {s.name: DATATYPE_TO_NUMPY[s.datatype] for s in signature.inputs}
    # NOTE: chunked so that a large reference does not become one huge onnxruntime call;
    # the loop is over chunks of thousands of rows, not over rows.
    chunks = [
        run(inputs.split(sample[i : i + RUN_CHUNK_ROWS], dtypes))
        for i in range(0, sample.shape[0], RUN_CHUNK_ROWS)
    ]
    return outputs.stack(chunks)


def build_version_profiles(
    signature: Signature,
    sample: npt.ArrayLike,
    *,
    names: Sequence[str] | None = None,
    metadata: Mapping[str, str] | None = None,
    run: Runner | None = None,
    outputs_sample: npt.ArrayLike | None = None,
    labels: npt.ArrayLike | None = None,
    max_sample: int = 10_000,
) -> VersionProfiles:
    """Profiles of a reference input ``sample`` (and of the outputs, by ``run`` on it).

    ``names`` overrides the layout's feature names (a CSV header); ``outputs_sample`` gives
    the outputs directly instead of running the model. ``labels`` (one class id per row)
    fit the label-free performance estimator; labels that do not fit are a ValueError.
    """
    layout = FeatureLayout.from_specs(signature.inputs)
    x = np.asarray(sample, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != layout.n_features:
        raise ValueError(
            f"the reference has {x.shape[-1] if x.ndim else 0} columns; the model's monitored "
            f"inputs have {layout.n_features} features ({', '.join(layout.names[:8])}...)"
        )
    feature_names = tuple(names) if names is not None else layout.names
    if len(feature_names) != layout.n_features:
        raise ValueError(f"{len(feature_names)} names for {layout.n_features} features")
    cat = categorical_indices(feature_names, metadata or {})
    inputs = build_profile(x, feature_names, categorical=cat, max_sample=max_sample)
    out_x: FloatArray | None
    if outputs_sample is not None:
        out_x = np.asarray(outputs_sample, dtype=np.float64)
    else:
        out_x = None if run is None else _run_outputs(signature, layout, x, run)
    outputs = None
    if out_x is not None and out_x.shape[0]:
        out_names = FeatureLayout.from_specs(signature.outputs).names
        outputs = build_profile(out_x, out_names, max_sample=max_sample)
    estimator = None
    if labels is not None:
        estimator = _estimator_doc(signature, x.shape[0], out_x, labels)
    return VersionProfiles(inputs, outputs, estimator)


def _estimator_doc(
    signature: Signature, rows: int, out_x: FloatArray | None, labels: npt.ArrayLike
) -> dict[str, Any]:
    y = np.asarray(labels).reshape(-1)
    if y.size != rows:
        raise ValueError(f"{y.size} labels for {rows} reference rows")
    if out_x is None or not out_x.shape[0]:
        raise ValueError("labels need the model's outputs on the reference (not monitored)")
    try:
        return performance.fit(FeatureLayout.from_specs(signature.outputs), out_x, y).to_doc()
    except performance.NotClassifier as exc:
        return {"skipped": str(exc)}


def onnx_runner(artifact: bytes) -> Runner:
    """Run an ONNX model's bytes on CPU (for profiling a reference's outputs)."""
    import onnxruntime as ort

    session = ort.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def run(inputs: Tensors) -> Tensors:
        return dict(zip(names, session.run(None, inputs), strict=True))

    return run
