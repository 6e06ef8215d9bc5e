"""The auditor's export: one folder per model and period, mapped to AI Act Art. 11/12/19.

``onnxgate audit pack NAME --since ISO --until ISO --out DIR`` writes model cards,
lineage, approvals, every deployment change and governor decision with its gates and
statistics, drift and importance summaries, the prediction log's segment digests and a
verification report, with ``index.json`` (each file's sha256 and articles), ``index.md``
and ``index.html``. :mod:`.parts` and :mod:`.index` are pure; :mod:`.gather` reads the
registry and the log and writes the folder.
"""

from gateway.auditpack.gather import PackResult, gather, write_pack
from gateway.auditpack.index import FORMAT, index_of
from gateway.auditpack.parts import ARTICLES, Evidence, Part, build_parts

__all__ = [
    "ARTICLES",
    "FORMAT",
    "Evidence",
    "PackResult",
    "Part",
    "build_parts",
    "gather",
    "index_of",
    "write_pack",
]
