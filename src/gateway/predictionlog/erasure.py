"""Erasure (GDPR Art. 17): remove records by request id or by segment, keep the chain whole.

Every closed file holding a matching record is rewritten without it (written aside, then
renamed over the original), and one ``log.erasure`` audit event records the file's old and
new sha256 — so :func:`gateway.predictionlog.chain.verify` checks the rewritten file against
its new digest and the chain shows that, when, by whom and why it changed. A file left with
no record is removed (its event says so). The events name how many records went and by
which selector, never the erased ids or segment. Files still being written (``*.tmp``)
are not touched: their records can be erased once they close.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from gateway.predictionlog.chain import ERASURE
from gateway.predictionlog.parquet import STATS_COLUMNS, file_sha256

__all__ = ["ERASURE", "Erasure", "erase"]


@dataclass
class Erasure:
    """What :func:`erase` did: records removed, files rewritten and files removed."""

    erased: int = 0
    rewritten: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _model_of(relative: str) -> str:
    first = relative.split("/", 1)[0]
    return unquote(first.removeprefix("model=")) if first.startswith("model=") else ""


def erase(
    directory: Path,
    registry: Any,
    *,
    request_ids: Collection[str] = (),
    segment: str | None = None,
    actor: str,
    reason: str,
) -> Erasure:
    """Remove the records whose id is in ``request_ids`` or whose segment is ``segment``."""
    if not request_ids and segment is None:
        raise ValueError("name request ids or a segment to erase")
    selector = "request_id" if request_ids else "segment"
    done = Erasure()
    ids = pa.array(sorted(request_ids), pa.string())
    for path in sorted(directory.rglob("*.parquet")):
        table = pq.read_table(path, partitioning=None)
        if request_ids:
            match = pc.is_in(table["request_id"], value_set=ids)
        else:
            match = pc.equal(table["segment"], pa.scalar(segment, pa.string()))
        hits = pc.sum(pc.fill_null(match, False)).as_py() or 0
        if not hits:
            continue
        relative = path.relative_to(directory).as_posix()
        before = {"path": relative, "sha256": file_sha256(path)}
        kept = table.filter(pc.invert(pc.fill_null(match, False)))
        after: dict[str, Any]
        if kept.num_rows:
            aside = path.with_name(path.name + ".erasing")
            pq.write_table(kept, aside, compression="zstd", write_statistics=STATS_COLUMNS)
            os.replace(aside, path)
            after = {"path": relative, "sha256": file_sha256(path), "records": kept.num_rows,
                     "bytes": path.stat().st_size}  # fmt: skip
            done.rewritten.append(relative)
        else:
            path.unlink()
            after = {"path": relative, "sha256": None, "removed": True}
            done.removed.append(relative)
        after.update(erased=hits, selector=selector)
        registry.record_audit(
            actor=actor,
            action=ERASURE,
            subject=_model_of(relative),
            before=before,
            after=after,
            reason=reason,
        )
        done.erased += hits
    return done
