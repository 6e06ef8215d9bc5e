"""Soak: a long run at ~70 % of measured capacity while the deployment keeps changing.

One ``onnxgate serve`` process (monitoring, shadows and the governor on, as by default)
serves the small MLP with a champion, a challenger and a shadow. The script

1. measures capacity: closed loop, 64 in flight, ``--probe`` seconds;
2. runs an open loop (Poisson arrivals) at ``--load`` x capacity for ``--duration``
   seconds, as back-to-back ``--interval``-second load generator runs (its own process),
   so each interval has its own p99, errors and drops;
3. meanwhile changes the deployment every ``--change-every`` seconds (weights swing
   between 90/10 and 70/30, a new registry revision each time) and samples the server's
   RSS and open file descriptors every second (``/proc``).

It writes JSON (every sample, every interval) and a PNG of RSS, fds and p99 over time,
and prints failed requests (gRPC errors), drops (arrivals the generator could not send),
RSS growth from the first to the last minute, and the p99 range.

    python benchmarks/soak.py                        # 10 minutes
    python benchmarks/soak.py --duration 120 --out benchmarks/results/soak-2min.json

Overload instead of soak: ``--load 10 --max-inflight 64 --concurrency 1024`` offers ten
times capacity to a gateway that admits 64 calls at once (the rest are refused with
``RESOURCE_EXHAUSTED``, counted as errors by code; add ``--procs 4``: one generator
process cannot offer that much here); ``--then-load 0.5`` adds one last
interval at half capacity, to see that it recovers at once.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import _common as c

MODEL = "mlp_small"


def make_registry(directory: Path) -> tuple[str, Path]:
    """Three versions of the small MLP: champion 1, challenger 2, shadow 3."""
    from gateway.tools import modelzoo
    from registry.deployment import Arm, Role, Shadow
    from registry.registry import Registry

    url = f"sqlite:///{directory / 'registry.db'}"
    artifacts = directory / "artifacts"
    reg = Registry.open(url, artifacts)
    try:
        for seed in range(3):
            reg.register_version(MODEL, modelzoo.mlp(c.MODELS[MODEL], seed=seed), actor="soak")
        arms = [Arm("1", Role.CHAMPION, 0.9), Arm("2", Role.CHALLENGER, 0.1)]
        reg.set_deployment(MODEL, arms, [Shadow("3", 1.0)], actor="soak")
    finally:
        reg.close()
    return url, artifacts


class Changer(threading.Thread):
    """Swings the weights every ``every`` seconds, through the registry, until stopped."""

    def __init__(self, url: str, artifacts: Path, every: float) -> None:
        super().__init__(daemon=True, name="soak-changer")
        self.url, self.artifacts, self.every = url, artifacts, every
        self.stop = threading.Event()
        self.changes = 0
        self.failures: list[str] = []

    def run(self) -> None:
        from registry.registry import Registry

        reg = Registry.open(self.url, self.artifacts, create=False)
        try:
            while not self.stop.wait(self.every):
                share = 0.3 if self.changes % 2 == 0 else 0.1
                try:
                    reg.set_weights(MODEL, {"1": 1 - share, "2": share}, actor="soak")
                    self.changes += 1
                except Exception as exc:  # noqa: BLE001 - recorded: a soak reports, it does not stop
                    self.failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            reg.close()


class Sampler(threading.Thread):
    """RSS (MiB) and open fds of one process, every second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.pid = pid
        self.stop = threading.Event()
        self.samples: list[dict[str, float]] = []
        self.start_time = time.monotonic()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
                rss_kb = next(int(x.split()[1]) for x in status.splitlines() if x[:6] == "VmRSS:")
                fds = len(os.listdir(f"/proc/{self.pid}/fd"))
            except (OSError, StopIteration):
                return
            t = round(time.monotonic() - self.start_time, 2)
            self.samples.append({"t_s": t, "rss_mib": round(rss_kb / 1024, 1), "fds": fds})
            self.stop.wait(1.0)


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (rss, fds, p99) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    t = [s["t_s"] for s in doc["samples"]]
    rss.plot(t, [s["rss_mib"] for s in doc["samples"]])
    rss.set(ylabel="RSS (MiB)", title=f"soak: {doc['settings']['rate']:.0f} req/s")
    fds.plot(t, [s["fds"] for s in doc["samples"]], color="tab:green")
    fds.set(ylabel="open fds")
    ends = [i["end_s"] for i in doc["intervals"]]
    p99.plot(ends, [i["p99_ms"] for i in doc["intervals"]], marker="o", color="tab:red")
    p99.set(ylabel="p99 per interval (ms)", xlabel="seconds since load started")
    for ax in (rss, fds, p99):
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    c.log(f"wrote {path}")


def summary(doc: dict[str, Any]) -> dict[str, Any]:
    samples, intervals = doc["samples"], doc["intervals"]
    minute = [s for s in samples if s["t_s"] <= 60] or samples[:1]
    last = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] - 60] or samples[-1:]
    p99s = [i["p99_ms"] for i in intervals]
    return {
        "requests": sum(i["requests"] for i in intervals),
        "failed": sum(sum(i["errors"].values()) for i in intervals),
        "errors_by_code": {
            code: sum(i["errors"].get(code, 0) for i in intervals)
            for code in sorted({k for i in intervals for k in i["errors"]})
        },
        "dropped_by_generator": sum(i["dropped"] for i in intervals),
        "rss_first_minute_mib": max(s["rss_mib"] for s in minute),
        "rss_last_minute_mib": max(s["rss_mib"] for s in last),
        "fds_min_max": [min(s["fds"] for s in samples), max(s["fds"] for s in samples)],
        "p99_ms_min_median_max": [min(p99s), sorted(p99s)[len(p99s) // 2], max(p99s)],
        "deployment_changes": doc["deployment_changes"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=600.0, help="loaded seconds")
    p.add_argument("--interval", type=float, default=10.0, help="seconds per loadgen run")
    p.add_argument("--load", type=float, default=0.7, help="share of measured capacity")
    p.add_argument("--probe", type=float, default=5.0, help="capacity probe seconds")
    p.add_argument("--change-every", type=float, default=3.0, help="deployment change period")
    p.add_argument("--concurrency", type=int, default=256, help="generator's in-flight cap")
    p.add_argument("--max-inflight", type=int, help="the gateway's max_inflight")
    p.add_argument("--procs", type=int, default=1, help="load generator processes")
    p.add_argument("--then-load", type=float, help="one last interval at this share")
    p.add_argument("--unique-ids", action="store_true", help="a new request id on every call")
    p.add_argument("--out", type=Path, default=c.RESULTS / "soak.json")
    args = p.parse_args()

    doc: dict[str, Any] = {"machine": c.machine(), "settings": vars(args) | {"out": str(args.out)}}
    with tempfile.TemporaryDirectory(prefix="onnxgate-soak-") as tmp_name:
        tmp = Path(tmp_name)
        url, artifacts = make_registry(tmp / "registry")
        port = c.free_port()
        argv = c.onnxgate_argv(url, artifacts, port, workers=1, batching=True)
        env = {} if args.max_inflight is None else {"ONNXGATE_MAX_INFLIGHT": str(args.max_inflight)}
        with c.server("onnxgate", argv, port, [MODEL], env=env, log_dir=tmp) as target:
            probe = c.run_loadgen(target, MODEL, concurrency=64, duration=args.probe, warmup=1)
            capacity = probe["rps"]
            rate = args.load * capacity
            doc["settings"].update(capacity_rps=round(capacity, 1), rate=round(rate, 1))
            c.log(f"capacity {capacity:,.0f} req/s; soaking at {rate:,.0f} req/s")
            pid = _server_pid(port)
            sampler, changer = Sampler(pid), Changer(url, artifacts, args.change_every)
            sampler.start()
            changer.start()
            intervals: list[dict[str, Any]] = []
            try:
                last = False
                while not last:
                    last = bool(sampler.samples) and _elapsed(sampler) >= args.duration
                    if last and args.then_load is None:
                        break
                    share = args.then_load if last else args.load
                    extra = ["--rate", f"{share * capacity:.1f}", "--arrival", "poisson"]
                    extra += ["--procs", str(args.procs)]
                    extra += ["--unique-ids"] if args.unique_ids else []
                    res = c.run_loadgen(
                        target, MODEL, concurrency=args.concurrency, duration=args.interval,
                        warmup=0, extra=extra,
                    )  # fmt: skip
                    point = c.point(res)
                    point.update(end_s=round(_elapsed(sampler), 1), dropped=res.get("dropped", 0))
                    point["load"] = share
                    intervals.append(point)
                    c.log(
                        f"t={point['end_s']:.0f}s rps={point['rps']:.0f} p99={point['p99_ms']}ms "
                        f"errors={sum(point['errors'].values())} rss={sampler.samples[-1]}"
                    )
            finally:
                changer.stop.set()
                sampler.stop.set()
                changer.join(10)
                sampler.join(10)
            doc.update(
                intervals=intervals,
                samples=sampler.samples,
                deployment_changes=changer.changes,
                deployment_change_failures=changer.failures[:20],
            )
        doc["server_log_tail"] = (tmp / "onnxgate.log").read_text()[-4000:]
    doc["summary"] = summary(doc)
    for key, value in doc["summary"].items():
        print(f"{key:24} {value}")
    c.write_json(args.out, doc)
    plot(doc, args.out.with_suffix(".png"))


def _elapsed(sampler: Sampler) -> float:
    return time.monotonic() - sampler.start_time


def _server_pid(port: int) -> int:
    """The process listening on ``port`` (the gateway, not the CLI wrapper above it)."""
    inode = None
    hexport = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(hexport) and fields[3] == "0A":  # LISTEN
                inode = fields[9]
    if inode is None:
        raise RuntimeError(f"nothing listens on port {port}")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return int(pid)
        except OSError:
            continue
    raise RuntimeError(f"no process owns the listener on port {port}")


if __name__ == "__main__":
    main()
