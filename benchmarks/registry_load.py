"""Registry write load of a fleet, per 1,000 req/s, read from PostgreSQL's own counters, and
the request rate at which one PostgreSQL would become the limit.

Two members (``onnxgate serve``, fleet on by default on PostgreSQL) share a throwaway
PostgreSQL (tests/pg_cluster.py: fsync off) and serve ``mlp_small`` under a governor policy
that holds, so every request with an id keeps its prediction for label joins (shared through
the registry every 0.25 s). One open-loop load generator per member (``--rate R/2
--unique-ids``: every request a new prediction row) runs for each rate; the members are also
measured idle. Over a window inside each run the script reads ``pg_stat_database`` (commits,
rows inserted/updated/deleted), ``pg_stat_wal`` (WAL bytes) and the CPU seconds of every
PostgreSQL process, before and after. Write load = fixed part (per member, idle) + a part per
request (the slope between the two rates).

The limit is extrapolated, assuming PostgreSQL's CPU per request stays what it is here and
that the database is CPU-bound (fsync off here: with durable commits on slow disks the WAL
flush can bind first): rate at which PostgreSQL would use ``--db-cores`` cores.

    python benchmarks/registry_load.py [--rates 200,600] [--duration 8]
        [--out benchmarks/results/registry_load.json]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

sys.path.insert(0, str(c.REPO / "tests"))  # the throwaway PostgreSQL cluster helper

from pg_cluster import Cluster, find_pg_bin

MODEL = "mlp_small"
HOLD_POLICY = "[canary]\nsteps = [50]\n"  # a policy (predictions kept), nothing to ramp
MEMBERS = 2
COUNTERS = ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted")
SNAPSHOT = (
    "SELECT numbackends, xact_commit, tup_inserted, tup_updated, tup_deleted, "
    "(SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes "
    "FROM pg_stat_database WHERE datname = current_database()"
)


def _pg_cpu_seconds(data_dir: Path) -> float:
    """User + system CPU seconds of the postmaster and every process it started (backends,
    WAL writer, checkpointer, autovacuum): what the database spent."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(proc.name) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class Probe:
    """Before/after readings of the database's counters and CPU."""

    def __init__(self, url: str, data_dir: Path) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url, isolation_level="AUTOCOMMIT")
        self.data_dir = data_dir

    def read(self) -> dict[str, float]:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            row = conn.execute(text(SNAPSHOT)).mappings().one()
        out = {k: float(v) for k, v in row.items()}
        out["pg_cpu_s"] = _pg_cpu_seconds(self.data_dir)
        out["t"] = time.monotonic()
        return out

    def window(self, seconds: float) -> dict[str, float]:
        """Rates per second over ``seconds`` from now."""
        before = self.read()
        time.sleep(seconds)
        after = self.read()
        span = after["t"] - before["t"]
        rates = {k: (after[k] - before[k]) / span for k in before if k not in ("t", "numbackends")}
        rates["numbackends"] = after["numbackends"]  # a gauge: connections open at the end
        return rates


def _load(
    targets: list[str], rate: float, duration: float, warmup: float, seed: int
) -> tuple[list[dict[str, Any]], list[threading.Thread]]:
    """Start one open-loop load generator per member (``rate`` split evenly), in threads."""
    results: list[dict[str, Any]] = [{} for _ in targets]

    def one(i: int, target: str) -> None:
        # Each generator its own seed: ``--unique-ids`` ids derive from it, and a repeated id
        # would be an update of another member's row, not a new prediction.
        extra = ["--rate", f"{rate / len(targets):g}", "--ids", "--unique-ids"]
        extra += ["--samples", "256", "--seed", str(seed + i)]
        results[i] = c.run_loadgen(
            target, MODEL, concurrency=64, duration=duration, warmup=warmup, extra=extra
        )

    threads = [threading.Thread(target=one, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    return results, threads


def _point(name: str, rps: float, rates: dict[str, float]) -> dict[str, Any]:
    pt: dict[str, Any] = {"point": name, "rps": round(rps, 1)}
    skip = ("pg_cpu_s", "numbackends")
    pt.update({f"{k}_per_s": round(v, 1) for k, v in rates.items() if k not in skip})
    pt["connections"] = int(rates["numbackends"])
    pt["rows_written_per_s"] = round(sum(rates[k] for k in COUNTERS[1:]), 1)
    pt["pg_cpu_cores"] = round(rates["pg_cpu_s"], 3)
    return pt


def measure(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    bindir = find_pg_bin()
    if bindir is None:
        raise SystemExit("no initdb/pg_ctl found: apt-get install postgresql")
    from registry.registry import Registry

    cluster = Cluster(bindir)
    try:
        url = cluster.start()
        artifacts = tmp / "artifacts"
        reg = Registry.open(url, artifacts)
        reg.register_version(MODEL, c.model_bytes()[MODEL], actor="benchmarks")
        reg.governor.set_policy(MODEL, HOLD_POLICY, actor="benchmarks")
        reg.close()
        probe = Probe(url, cluster.data)
        points: list[dict[str, Any]] = []
        with contextlib.ExitStack() as stack:
            targets = []
            for i in range(MEMBERS):
                port = c.free_port()
                argv = c.onnxgate_argv(url, artifacts, port, workers=1, batching=True)
                env = {"ONNXGATE_LOG_LEVEL": "INFO"}  # fleet: on by default on PostgreSQL
                targets.append(
                    stack.enter_context(
                        c.server(f"member{i}", argv, port, [MODEL], env=env, log_dir=tmp)
                    )
                )
            time.sleep(2.0)  # past the members' first publish
            points.append(_point("idle (2 members)", 0.0, probe.window(args.duration)))
            c.log(f"idle: {points[-1]}")
            warmup = 3.0
            for n, rate in enumerate(args.rates):
                seed = 100 * (n + 1)
                results, threads = _load(targets, rate, args.duration + 2.0, warmup, seed)
                # The window starts after the generators' start-up and warm-up, ends before
                # their end: every second in it is under the full rate.
                time.sleep(warmup + 2.0)
                rates = probe.window(args.duration)
                for t in threads:
                    t.join()
                rps = sum(r["rps"] for r in results)
                pt = _point(f"{rate:g} req/s offered", rps, rates)
                pt["dropped"] = sum(r.get("dropped", 0) for r in results)
                pt["errors"] = [r["errors"] for r in results if r["errors"]]
                points.append(pt)
                c.log(f"{rate:g}: {pt}")
        probe.engine.dispose()
    finally:
        cluster.stop()
    return {"points": points}


def summarise(points: list[dict[str, Any]], members: int, db_cores: float) -> dict[str, Any]:
    """The fixed part per member (idle, and serving: predictions are shared every 0.25 s
    whatever the rate), the part per 1,000 req/s (slope between the lowest and highest
    rate), and the rate at which PostgreSQL would use ``db_cores``."""
    idle, loaded = points[0], points[1:]
    lo, hi = loaded[0], loaded[-1]
    span = hi["rps"] - lo["rps"]
    if span <= 0 or hi["rps"] <= 0:
        raise SystemExit(f"no slope: the rates served were {lo['rps']} and {hi['rps']} req/s")
    keys = ("xact_commit_per_s", "rows_written_per_s", "tup_inserted_per_s", "wal_bytes_per_s")
    serving = sum(pt["xact_commit_per_s"] for pt in loaded) / len(loaded)
    out: dict[str, Any] = {
        "fixed_per_member_idle": {k: round(idle[k] / members, 1) for k in keys},
        "commits_per_s_per_member_serving": round(serving / members, 1),
        "per_1000_rps": {k: round(1000 * (hi[k] - lo[k]) / span, 1) for k in keys},
    }
    # PostgreSQL's CPU above idle at the highest rate, per request: steadier than a slope
    # between two small readings (CPU time comes in clock ticks), and it charges the
    # serving members' fixed part to the requests (an overestimate, on the safe side).
    cpu_per_1000 = 1000 * (hi["pg_cpu_cores"] - idle["pg_cpu_cores"]) / hi["rps"]
    out["pg_cpu_cores_per_1000_rps"] = round(cpu_per_1000, 4)
    out["pg_cpu_cores_idle_per_member"] = round(idle["pg_cpu_cores"] / members, 4)
    left = db_cores - idle["pg_cpu_cores"]
    out["pg_limit_rps"] = round(1000 * left / cpu_per_1000, -3) if cpu_per_1000 > 0 else None
    out["db_cores"] = db_cores
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rates", default="200,600", help="offered req/s, comma-separated (2+)")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per point")
    p.add_argument("--db-cores", type=float, default=float(os.cpu_count() or 1))
    p.add_argument("--out", type=Path, default=c.RESULTS / "registry_load.json")
    args = p.parse_args()
    args.rates = [float(r) for r in args.rates.split(",")]
    if len(args.rates) < 2:
        p.error("--rates needs two rates at least (the slope between them)")
    doc: dict[str, Any] = {"machine": c.machine(), "model": MODEL, "members": MEMBERS}
    with tempfile.TemporaryDirectory(prefix="onnxgate-registry-load-") as tmp:
        doc.update(measure(args, Path(tmp)))
    doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["summary"] = summarise(doc["points"], MEMBERS, args.db_cores)
    header = ["point", "req/s", "commits/s", "rows written/s", "inserted/s", "WAL KiB/s",
              "PG cores", "connections"]  # fmt: skip
    rows = [
        (pt["point"], pt["rps"], pt["xact_commit_per_s"], pt["rows_written_per_s"],
         pt["tup_inserted_per_s"], round(pt["wal_bytes_per_s"] / 1024, 1), pt["pg_cpu_cores"],
         pt["connections"])
        for pt in doc["points"]
    ]  # fmt: skip
    c.print_table(rows, header)
    s = doc["summary"]
    print(f"\nfixed, per idle member: {s['fixed_per_member_idle']}")
    print(f"commits/s per serving member (any rate): {s['commits_per_s_per_member_serving']}")
    print(f"per 1,000 req/s:   {s['per_1000_rps']}")
    print(
        f"PostgreSQL CPU: {s['pg_cpu_cores_per_1000_rps']} cores per 1,000 req/s "
        f"(+{s['pg_cpu_cores_idle_per_member']} per idle member); "
        f"{s['db_cores']:g} cores reached at ~{s['pg_limit_rps']} req/s (linear, CPU-bound)"
    )
    c.write_json(args.out, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
