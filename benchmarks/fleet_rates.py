"""What the fleet asks of the registry database: prediction upserts per second (one
writer) and the cost of one publishing cycle, on SQLite and on a throwaway PostgreSQL
(started with tests/pg_cluster.py's tools; skipped when its binaries are missing).

    python benchmarks/fleet_rates.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the throwaway PostgreSQL cluster helper

from pg_cluster import Cluster, find_pg_bin  # noqa: E402

from registry import PredictionRow, Registry, utcnow  # noqa: E402

ROWS = 5000


def measure(url: str, label: str) -> None:
    reg = Registry.open(url, Path(tempfile.mkdtemp()) / "artifacts")
    try:
        rows = [PredictionRow("m", f"id{i}", "1", ["1"], [""], utcnow()) for i in range(ROWS)]
        reg.fleet.record_predictions(rows)
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            reg.fleet.record_predictions(rows)
            best = min(best, time.perf_counter() - start)
        payload = {"traffic": [10, 0, [0.001, None], [5, 5]]}
        evidence = {("m", str(v)): payload for v in range(20)}
        start = time.perf_counter()
        for k in range(20):
            reg.fleet.heartbeat(f"p{k % 3}", 10)
            reg.fleet.publish(f"p{k % 3}", evidence)
            reg.fleet.evidence()
        cycle = (time.perf_counter() - start) / 20
    finally:
        reg.close()
    print(
        f"{label}: prediction upsert {1e6 * best / ROWS:.0f} us/row "
        f"({ROWS / best:.0f} rows/s, one writer); publish cycle "
        f"(heartbeat + 20 evidence rows + full read) {1e3 * cycle:.1f} ms"
    )


def main() -> int:
    measure(f"sqlite:///{tempfile.mkdtemp()}/registry.db", "sqlite")
    bindir = find_pg_bin()
    if bindir is None:
        print("postgresql: skipped (no initdb/pg_ctl)")
        return 0
    cluster = Cluster(bindir)
    try:
        measure(cluster.start(), "postgresql (fsync off)")
    finally:
        cluster.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
