"""A served request's inputs read back from the prediction log, by model and request id.

Explain by request id asks the request journal first (this process, within the join
window); when the journal no longer has the id — another gateway of a fleet served it, the
process restarted, the window passed — :func:`logged_inputs` reads the closed Parquet files
under ``DIR/model=NAME/`` for the id's *primary* record (a shadow record of the same id is
not what was served) and returns the version that served it with its inputs decoded.
Files still being written (``*.tmp``) are not read: a record is found once its file closes.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pyarrow.compute as pc
import pyarrow.dataset as ds

from gateway.domain import Tensors
from gateway.predictionlog.record import decode_tensors

__all__ = ["logged_inputs"]


def logged_inputs(directory: Path, model: str, request_id: str) -> tuple[str, Tensors] | None:
    """The version that served ``request_id`` of ``model`` and its logged inputs (None when
    no closed file holds a primary record of it with inputs, e.g. ``prediction_log_inputs =
    false``). The newest such record wins should a client have reused the id."""
    folder = directory / f"model={quote(model, safe='')}"
    files = sorted(str(p) for p in folder.rglob("*.parquet")) if folder.is_dir() else []
    if not files:
        return None
    wanted = (pc.field("request_id") == request_id) & (pc.field("role") != "shadow")
    table = ds.dataset(files, format="parquet").to_table(
        columns=["time", "version", "inputs"], filter=wanted
    )
    if not table.num_rows:
        return None
    newest = pc.index(table["time"], pc.max(table["time"])).as_py()
    row = table.slice(newest, 1).to_pylist()[0]
    if not row["inputs"]:
        return None
    return str(row["version"]), decode_tensors(row["inputs"])
