"""What ``onnxgate infer`` sends: ``--data`` files read, matched to inputs and cast safely.

Files are read before any connection is made, so a wrong path or a file that is not a
``.npy`` array is reported as such even when no gateway is running. A ``.csv`` file (a
header line, then rows of numbers, as ``explain --data`` and ``--sample`` take) is one
input's rows. An array is cast to the
input's datatype only when that keeps its meaning (numbers to numbers of the same or a wider
kind, e.g. float64 rows to FP32, int to FP32; text to BYTES); anything else (strings or
complex numbers to a numeric input, floats to an integer input) is refused, naming the
array's dtype and the input's datatype, rather than sending its bytes as another type.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gateway.cli.output import CliError

__all__ = ["DataFile", "cast_for_input", "match_inputs", "read_data"]

DataFile = tuple[str, Path, Any]
"""(input name or "" when not given, the file, the array it holds)."""

_NUMERIC = "biuf"  # bool, signed, unsigned, floating point; "c" (complex) is not sendable
_TEXT = "USO"  # str, bytes, object (of str/bytes)


def read_data(specs: Sequence[str]) -> list[DataFile]:
    """Each ``[INPUT=]FILE.npy`` read as an array, refusing anything that is not one."""
    out: list[DataFile] = []
    for item in specs:
        name, sep, raw_path = item.rpartition("=")
        path = Path(raw_path)
        if sep and not name:
            raise CliError(f"--data {item!r}: expected [INPUT=]FILE.npy")
        if path.suffix.lower() == ".csv":
            out.append((name, path, _read_csv(path)))
            continue
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise CliError(f"--data {path}: no such file") from None
        except OSError as exc:
            raise CliError(f"--data {path}: {exc.strerror or exc}") from None
        except ValueError:
            # NOTE: numpy's own message advises allow_pickle=True; loading pickles runs code.
            raise CliError(
                f"--data {path}: not a .npy array (save one with numpy.save; pickled "
                "objects are never loaded)"
            ) from None
        if not isinstance(arr, np.ndarray):  # an .npz archive
            arr.close()
            raise CliError(f"--data {path}: an .npz archive; give one .npy file per input")
        out.append((name, path, arr))
    return out


def _read_csv(path: Path) -> Any:
    from gateway.monitoring.reference import read_reference

    try:
        rows, _ = read_reference(path)
    except ValueError as exc:
        raise CliError(f"--data {path}: {exc}") from None
    return rows


def match_inputs(files: Sequence[DataFile], inputs: Sequence[str]) -> dict[str, DataFile]:
    """Which file feeds which input; an unknown or missing input names the model's inputs."""
    listed = ", ".join(repr(i) for i in inputs)
    matched: dict[str, DataFile] = {}
    for name, path, arr in files:
        if not name:
            if len(inputs) != 1:
                raise CliError(
                    f"--data {path}: the model has inputs {listed}; "
                    "pass --data INPUT=FILE.npy for each"
                )
            name = inputs[0]
        if name not in inputs:
            raise CliError(
                f"--data {name}={path}: the model has no input {name!r}; its inputs: {listed}"
            )
        if name in matched:
            raise CliError(f"--data: input {name!r} given twice")
        matched[name] = (name, path, arr)
    missing = [i for i in inputs if i not in matched]
    if missing:
        names = ", ".join(repr(i) for i in missing)
        raise CliError(f"no --data for input(s) {names}; the model's inputs: {listed}")
    return matched


def cast_for_input(arr: np.ndarray[Any, Any], datatype: str, want: Any, where: str) -> Any:
    """``arr`` as the input's numpy dtype ``want``, or a refusal naming both types."""
    kind = arr.dtype.kind
    if datatype == "BYTES":
        if kind in _TEXT:
            return arr
    elif arr.dtype == want:
        return arr
    elif kind in _NUMERIC and np.can_cast(arr.dtype, want, casting="same_kind"):
        return arr.astype(want)  # .npy files are often float64; the model says FP32
    raise CliError(
        f"{where}: array dtype {arr.dtype} cannot be sent as input datatype {datatype} "
        "without changing its values; save the array with a matching dtype"
    )
