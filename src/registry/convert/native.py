"""Reading what data scientists hand over: a trained model file and a sample of its inputs.

Native formats load without running code: LightGBM's text model (``.txt``) and XGBoost's
JSON model (``.json``). Pickles (``.pkl``, ``.pickle``, ``.joblib``) are code — unpickling
runs whatever the file says — so they load only with an explicit opt-in (``trust_pickle``,
the ``--trust-pickle`` flag or the governance policy's ``trust_pickle``), and even then only
after :func:`registry.convert.pickles.scan_pickle` found nothing but allowed globals. The
file's content says whether it is a plain pickle or a joblib dump (raw arrays in the
stream, possibly compressed), whatever its suffix.

The training libraries are the optional ``onnxgate[convert]`` extra; without them a native
file is refused in one line that names the extra.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from registry.convert.pickles import PickleRefused, scan_pickle
from registry.errors import RegistryError

__all__ = [
    "EXTRA",
    "NATIVE_SUFFIXES",
    "PICKLE_SUFFIXES",
    "ConversionError",
    "Sample",
    "is_native",
    "load_native",
    "load_scanned",
    "read_sample",
    "require",
]

EXTRA = "pip install 'onnxgate[convert]'"
PICKLE_SUFFIXES = frozenset({".pkl", ".pickle", ".joblib"})
NATIVE_SUFFIXES = PICKLE_SUFFIXES | {".txt", ".json"}


class ConversionError(RegistryError):
    """A trained model that cannot become an ONNX version (unreadable, unsupported,
    untrusted, or converted with answers too far from the original's)."""


@dataclass(frozen=True)
class Sample:
    """Rows x features float32 inputs, and the feature names when the sample had a header."""

    values: npt.NDArray[np.float32]
    columns: tuple[str, ...] | None = None


def is_native(path: Path) -> bool:
    """Whether ``path`` names a trained model to convert rather than an ONNX file."""
    return path.suffix.lower() in NATIVE_SUFFIXES


def require(module: str, purpose: str) -> Any:
    """Import ``module`` or refuse in one line naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConversionError(
            f"{purpose} needs {module}, which is not installed: {EXTRA}"
        ) from None


def load_native(path: Path, *, trust_pickle: bool, allow_modules: Iterable[str] = ()) -> Any:
    """The trained model in ``path`` (see the module docstring for the formats);
    ``allow_modules`` extends the pickle scan's allow-list."""
    return load_scanned(path, trust_pickle=trust_pickle, allow_modules=allow_modules)[0]


def load_scanned(
    path: Path, *, trust_pickle: bool, allow_modules: Iterable[str] = ()
) -> tuple[Any, str]:
    """:func:`load_native`, and what the scan found (empty for formats that run no code)."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ConversionError(
                f"{path.name} is a pickle, and loading a pickle runs code from it: "
                "pass --trust-pickle if you trust its author (or set trust_pickle in the policy)"
            )
        return _load_pickle(path, allow_modules)
    if suffix == ".txt":
        lightgbm = require("lightgbm", "a LightGBM .txt model")
        try:
            return lightgbm.Booster(model_file=str(path)), ""
        except Exception as exc:  # noqa: BLE001 - LightGBM raises its own error type
            raise ConversionError(f"{path.name} is not a LightGBM text model: {exc}") from None
    if suffix == ".json":
        return _load_xgboost(path), ""
    raise ConversionError(f"{path.name}: expected .pkl, .joblib, .txt (LightGBM) or .json")


def _load_pickle(path: Path, allow_modules: Iterable[str]) -> tuple[Any, str]:
    # The estimator's classes must import; their absence is the extra, not a bad file.
    require("sklearn", "a pickled scikit-learn model")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConversionError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        scan = scan_pickle(raw, allow=allow_modules)
    except PickleRefused as exc:
        raise ConversionError(f"{path.name}: {exc}") from None
    try:
        # The bytes scanned are the bytes loaded (never the path again). joblib reads a
        # plain pickle too, and a joblib dump under any suffix.
        if scan.joblib_arrays or scan.compression:
            joblib = require("joblib", "a joblib-dumped model")
            return joblib.load(io.BytesIO(raw)), scan.describe()
        return pickle.loads(raw), scan.describe()
    except ModuleNotFoundError as exc:
        raise ConversionError(
            f"{path.name} needs module {exc.name!r} to load: {EXTRA}, or install it"
        ) from None
    except (OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ConversionError(f"{path.name} is not a readable pickle: {exc}") from None


def _load_xgboost(path: Path) -> Any:
    xgboost = require("xgboost", "an XGBoost .json model")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        objective = str(doc["learner"]["objective"]["name"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f"{path.name} is not an XGBoost JSON model ({exc})") from None
    kind = xgboost.XGBClassifier if objective.startswith(("binary:", "multi:")) else None
    model = (kind or xgboost.XGBRegressor)()
    try:
        model.load_model(str(path))
    except Exception as exc:  # noqa: BLE001 - XGBoost raises its own error type
        raise ConversionError(f"{path.name}: XGBoost cannot load it: {exc}") from None
    return model


def read_sample(path: Path) -> Sample:
    """A sample from ``.npy`` (2-D, numeric) or ``.csv`` (a header row of feature names)."""
    suffix = path.suffix.lower()
    columns: tuple[str, ...] | None = None
    try:
        if suffix == ".npy":
            data: Any = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            with path.open(encoding="utf-8") as fh:
                header = fh.readline().strip()
            columns = tuple(h.strip().strip('"') for h in header.split(","))
            data = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=np.float64)
            data = np.asarray(data).reshape(-1, len(columns))
        else:
            raise ConversionError(f"--sample {path.name}: use a .npy or .csv file")
    except OSError as exc:
        raise ConversionError(f"--sample {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ConversionError(f"--sample {path.name}: {exc}") from None
    return as_sample(data, columns, where=f"--sample {path.name}")


def as_sample(data: Any, columns: tuple[str, ...] | None = None, *, where: str) -> Sample:
    """Validate ``data`` (array-like or a pandas DataFrame) as a 2-D numeric sample."""
    if columns is None and hasattr(data, "columns") and hasattr(data, "to_numpy"):
        columns = tuple(str(c) for c in data.columns)
        data = data.to_numpy()
    try:
        values = np.asarray(data, dtype=np.float32)
    except (TypeError, ValueError):
        raise ConversionError(f"{where}: expected numbers") from None
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] == 0:
        raise ConversionError(f"{where}: expected rows x features, got shape {values.shape}")
    return Sample(values, columns)
