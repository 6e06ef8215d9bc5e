"""onnxgate against its floor and its peer, under one load, in one run.

Servers, each a subprocess on 127.0.0.1, all started and checked ready up front:

* onnxgate with batching off and on, with 1 and 2 worker processes (SO_REUSEPORT);
* the echo floor (``echo_server.py``: grpc.aio ModelInfer, no inference);
* onnxgate and the bare server again, loaded over ``ModelStreamInfer`` (4 bidirectional
  streams, the in-flight requests spread over them) instead of unary calls;
* MLServer 1.7.1 serving the same ONNX files through ``mlserver_runtime.py``, installed
  into its own virtualenv ``.venv-mlserver`` at the repo root (skipped, with the reason,
  when it cannot be installed). It runs with ``MLSERVER_PARALLEL_WORKERS=0`` (its parallel
  workers die at start with uvloop 0.23), and parallel workers are tried too and reported.

The same closed-loop load (``loadgen.py`` in its own process) hits each: the small MLP at
a concurrency sweep, the large MLP at 64, servers interleaved point by point for
``--repeat`` rounds (the best round is kept, every round's RPS is in the JSON), so that
other work on a shared box skews all servers alike. Prints RPS and p99 with ratios to onnxgate's
default configuration, checks the targets (reported, never asserted), writes JSON and a
PNG of throughput against concurrency.

    python benchmarks/compare.py                 # 5 s per point, 2 rounds, with MLServer
    python benchmarks/compare.py --quick         # 1.5 s per point, no MLServer
    python benchmarks/compare.py --quick --with-mlserver --only onnxgate-batch-1w,mlserver
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _common as c
from _mlserver import MLSERVER_VERSION, ensure_mlserver, mlserver_repo

REFERENCE = "onnxgate-batch-1w"


@dataclass(frozen=True)
class ServerDef:
    name: str
    kind: str  # onnxgate | echo | bare | mlserver
    description: str
    workers: int = 1
    batching: bool = True
    env: dict[str, str] = field(default_factory=dict)
    stream: bool = False  # loaded over ModelStreamInfer instead of unary ModelInfer


SERVERS = (
    ServerDef("onnxgate-nobatch-1w", "onnxgate", "onnxgate, batching off, 1 worker", 1, False),
    ServerDef(REFERENCE, "onnxgate", "onnxgate, batching on (default), 1 worker", 1, True),
    ServerDef("onnxgate-nobatch-2w", "onnxgate", "onnxgate, batching off, 2 workers", 2, False),
    ServerDef("onnxgate-batch-2w", "onnxgate", "onnxgate, batching on, 2 workers", 2, True),
    # Not a target: the default with onnxruntime on one intra-op thread, which leaves the
    # event loop a core of its own on a small box (ONNXGATE_INTRA_OP_THREADS).
    ServerDef(
        "onnxgate-batch-1w-intra1",
        "onnxgate",
        "onnxgate, batching on, 1 worker, ONNXGATE_INTRA_OP_THREADS=1",
        env={"ONNXGATE_INTRA_OP_THREADS": "1"},
    ),
    # Not a target: what monitoring and the governor (taps, windows, leases) cost.
    ServerDef(
        "onnxgate-nomon-1w",
        "onnxgate",
        "onnxgate, batching on, 1 worker, monitoring and governor off",
        env={"ONNXGATE_MONITORING": "false", "ONNXGATE_GOVERNOR": "false"},
    ),
    ServerDef("echo", "echo", "grpc.aio echo floor, no inference"),
    ServerDef("bare", "bare", "grpc.aio + onnxruntime per request, nothing else"),
    ServerDef(
        "onnxgate-stream-1w",
        "onnxgate",
        "onnxgate, batching on, 1 worker, over ModelStreamInfer",
        stream=True,
    ),
    ServerDef("bare-stream", "bare", "the bare server over ModelStreamInfer", stream=True),
    ServerDef(
        "mlserver",
        "mlserver",
        f"MLServer {MLSERVER_VERSION}, MLSERVER_PARALLEL_WORKERS=0",
        env={"MLSERVER_PARALLEL_WORKERS": "0", "BENCH_INTRA_OP_THREADS": "0"},
    ),
    ServerDef(
        "mlserver-pw2",
        "mlserver",
        f"MLServer {MLSERVER_VERSION}, 2 parallel inference workers",
        env={"MLSERVER_PARALLEL_WORKERS": "2", "BENCH_INTRA_OP_THREADS": "1"},
    ),
)
QUICK_SERVERS = (
    "onnxgate-nobatch-1w",
    REFERENCE,
    "onnxgate-batch-2w",
    "echo",
    "bare",
    "onnxgate-stream-1w",
    "bare-stream",
)
STREAM_LOAD = ("--stream", "--connections", "4")
"""Loadgen flags of a streamed point: 4 streams, the in-flight requests spread over them."""


# -- one server ----------------------------------------------------------------------------------


@contextlib.contextmanager
def start(
    sd: ServerDef, tmp: Path, models: dict[str, Path], registry: tuple[str, Path], mls: Path | None
) -> Iterator[str]:
    port = c.free_port()
    if sd.kind == "onnxgate":
        argv = c.onnxgate_argv(*registry, port, workers=sd.workers, batching=sd.batching)
        marker = ("onnxgate serving on", sd.workers)  # every worker, not just the first
        kw: dict[str, Any] = {"env": sd.env, "log_dir": tmp, "log_marker": marker}
        with c.server(sd.name, argv, port, list(models), **kw) as t:
            yield t
    elif sd.kind == "echo":
        with c.server(sd.name, c.echo_argv(models, port), port, list(models), log_dir=tmp) as t:
            yield t
    elif sd.kind == "bare":
        argv = c.bare_argv(models, port, sd.env.get("BENCH_PYTHON", c.PYTHON))
        env = {"PYTHONPATH": str(c.REPO / "src")}  # the stubs only; see bare_server.py
        with c.server(sd.name, argv, port, list(models), env=env, log_dir=tmp) as t:
            yield t
    else:
        assert mls is not None
        ports = {"grpc_port": port, "http_port": c.free_port(), "metrics_port": c.free_port()}
        workers = int(sd.env["MLSERVER_PARALLEL_WORKERS"])
        repo = mlserver_repo(tmp / sd.name, models, ports)
        settings = json.loads((repo / "settings.json").read_text())
        (repo / "settings.json").write_text(json.dumps({**settings, "parallel_workers": workers}))
        env = {**sd.env, "PYTHONPATH": str(c.BENCH)}  # where mlserver_runtime.py lives
        argv = [str(mls), "start", str(repo)]
        with c.server(sd.name, argv, port, list(models), env=env, log_dir=tmp, timeout=90) as t:
            yield t


# -- report -------------------------------------------------------------------------------------


def _find(results: list[dict[str, Any]], server: str, model: str, conc: int) -> dict[str, Any]:
    for r in results:
        if (r["server"], r["model"], r["concurrency"]) == (server, model, conc):
            return r
    return {}


def targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The goals, reported against what was measured (None: a side did not run), each with
    the p99 of both sides."""
    gw, off, two = REFERENCE, "onnxgate-nobatch-1w", "onnxgate-batch-2w"
    st, small, large = "onnxgate-stream-1w", "mlp_small", "mlp_large"
    cpu = "server_cpu_us_per_request"
    rows = [
        ("small MLP @64: onnxgate / MLServer RPS", gw, "mlserver", small, "rps", ">=", 2.0),
        ("small MLP @64: onnxgate / echo floor RPS", gw, "echo", small, "rps", ">=", 0.8),
        # The feature overhead: what routing, validation, metrics and taps cost per call.
        ("small MLP @64: onnxgate / bare RPS", gw, "bare", small, "rps", ">=", 0.95),
        ("small MLP @64: onnxgate / bare CPU per request", gw, "bare", small, cpu, "<", 1.053),
        ("small MLP @64: stream / onnxgate unary RPS", st, gw, small, "rps", ">=", 1.5),
        ("small MLP @64: stream / bare stream RPS", st, "bare-stream", small, "rps", ">=", 0.9),
        ("large MLP @64: onnxgate / MLServer RPS", gw, "mlserver", large, "rps", ">=", 2.0),
        ("large MLP @64: onnxgate / bare RPS", gw, "bare", large, "rps", ">=", 0.95),
        ("large MLP @64: batching on / off RPS", gw, off, large, "rps", ">=", 2.0),
        ("large MLP @64: batching on / off p99", gw, off, large, "p99_ms", "<", 2.0),
        ("small MLP @64: 2 workers / 1 worker RPS", two, gw, small, "rps", ">=", 1.0),
        ("large MLP @64: 2 workers / 1 worker RPS", two, gw, large, "rps", ">=", 1.0),
    ]
    out = []
    for name, a, b, model, key, op, goal in rows:
        x, y = _find(results, a, model, 64), _find(results, b, model, 64)
        value = round(x[key] / y[key], 3) if x.get(key) is not None and y.get(key) else None
        met = None if value is None else (value >= goal if op == ">=" else value < goal)
        p99 = " / ".join(f"{r['p99_ms']:.1f}" if r else "-" for r in (x, y))
        out.append({"target": name, "value": value, "goal": f"{op} {goal}", "met": met, "p99": p99})
    return out


def print_report(doc: dict[str, Any]) -> None:
    results = doc["results"]
    rows = []
    for r in results:
        ref = _find(results, REFERENCE, r["model"], r["concurrency"])
        x_rps = f"{r['rps'] / ref['rps']:.2f}x" if ref.get("rps") else "-"
        x_p99 = f"{r['p99_ms'] / ref['p99_ms']:.2f}x" if ref.get("p99_ms") and r["p99_ms"] else "-"
        errors = sum(r["errors"].values())
        rows.append(
            (r["model"], r["concurrency"], r["server"], f"{r['rps']:,.0f}", x_rps)
            + (f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", x_p99, errors, r["client_cpu_cores"])
            + (r.get("server_cpu_us_per_request", "-"),)
        )
    st = doc["settings"]
    print(
        f"ratios are to {REFERENCE}; {st['duration_s']:g} s per point, "
        f"best of {st['rounds']} interleaved round(s)"
    )
    header = ("model", "c", "server", "req/s", "x ref", "p50 ms", "p99 ms", "x ref", "errors")
    c.print_table(rows, (*header, "loadgen cores", "server CPU us/req"))
    for name, s in doc["servers"].items():
        if s["status"] != "ok":
            print(f"{name}: {s['status']}: {s.get('reason', '')}")
    print()
    for t in doc["targets"]:
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        print(f"{verdict:12} {t['target']}: {t['value']} (goal {t['goal']}); p99 ms {t['p99']}")


def plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    small = [r for r in doc["results"] if r["model"] == "mlp_small"]
    for server in dict.fromkeys(r["server"] for r in small):
        pts = sorted((r["concurrency"], r["rps"]) for r in small if r["server"] == server)
        left.plot(*zip(*pts, strict=True), marker="o", label=server)
    left.set(xscale="log", xlabel="concurrency (requests in flight)", ylabel="requests/s")
    left.set_title("small MLP 32-64-64-2, 1 row per request")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    large = [r for r in doc["results"] if r["model"] == "mlp_large"]
    right.barh([r["server"] for r in large], [r["rps"] for r in large], color="tab:orange")
    right.set(xlabel="requests/s", title="large MLP 256-1024-1024-10 @ 64 in flight")
    right.invert_yaxis()
    fig.suptitle(f"{doc['machine']['cpu']} ({doc['machine']['cores']} cores)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    c.log(f"wrote {path}")


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1.5 s per point, c=64 only, no MLServer")
    p.add_argument("--duration", type=float, help="measured seconds per point")
    p.add_argument("--warmup", type=float, help="unmeasured seconds per point")
    p.add_argument("--repeat", type=int, help="rounds over all points (best kept)")
    p.add_argument("--concurrency", help="small-MLP sweep, e.g. 1,8,64")
    p.add_argument("--with-mlserver", action="store_true", help="include MLServer in --quick")
    p.add_argument("--no-mlserver", action="store_true", help="leave MLServer out")
    p.add_argument("--only", help="comma-separated server names (see SERVERS)")
    p.add_argument(
        "--bare-python",
        action="append",
        default=[],
        metavar="LABEL=PYTHON",
        help="also run the bare server under another interpreter (e.g. a venv with another "
        "grpcio) as server bare-LABEL; repeatable",
    )
    p.add_argument(
        "--onnxgate-src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also run onnxgate (default configuration) from another source tree, e.g. an "
        "older commit's src/ (git archive), as servers onnxgate-LABEL and (streamed) "
        "onnxgate-stream-LABEL: before/after in one run",
    )
    p.add_argument("--out", type=Path, default=c.RESULTS / "compare.json")
    args = p.parse_args()
    extra = []
    for item in args.bare_python:
        label, _, python = item.partition("=")
        extra.append(
            ServerDef(
                f"bare-{label}", "bare", f"bare server under {python}", env={"BENCH_PYTHON": python}
            )
        )
    for item in args.onnxgate_src:
        label, _, src = item.partition("=")
        env = {"PYTHONPATH": src}
        extra.append(ServerDef(f"onnxgate-{label}", "onnxgate", f"onnxgate from {src}", env=env))
        extra.append(
            ServerDef(
                f"onnxgate-stream-{label}", "onnxgate", f"onnxgate from {src}, streamed",
                env=env, stream=True,
            )
        )  # fmt: skip
    servers = (*SERVERS, *extra)
    duration = args.duration or (1.5 if args.quick else 5.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)
    repeat = args.repeat or (1 if args.quick else 2)
    sweep = [int(x) for x in args.concurrency.split(",")] if args.concurrency else None
    sweep = sweep or ([64] if args.quick else [1, 8, 64])
    points = [("mlp_small", n) for n in sweep] + [("mlp_large", 64)]
    chosen = [
        s
        for s in servers
        if not args.quick or s.name in QUICK_SERVERS or s.kind == "mlserver" or s in extra
    ]
    if args.only:
        wanted = set(args.only.split(",")) | {s.name for s in extra}
        chosen = [s for s in servers if s.name in wanted]
    with_mlserver = not args.no_mlserver and (args.with_mlserver or not args.quick)

    doc: dict[str, Any] = {
        "machine": c.machine(),
        "settings": {
            "duration_s": duration,
            "warmup_s": warmup,
            "rounds": repeat,
            "quick": args.quick,
        },
        "points": [{"model": m, "concurrency": n} for m, n in points],
        "reference": REFERENCE,
        "servers": {},
        "results": [],
    }
    mls: Path | None = None
    if with_mlserver and any(s.kind == "mlserver" for s in chosen):
        try:
            mls = ensure_mlserver()
        except RuntimeError as exc:
            c.log(f"MLServer skipped: cannot install it: {exc}")
            doc["mlserver_skipped"] = str(exc)
    with tempfile.TemporaryDirectory(prefix="onnxgate-compare-") as tmp_name, ExitStack() as up:
        tmp = Path(tmp_name)
        models = c.write_models(tmp / "models")
        registry = c.make_registry(tmp / "registry")
        targets_up: dict[str, str] = {}
        by_name = {sd.name: sd for sd in chosen}
        for sd in chosen:
            entry: dict[str, Any] = {"description": sd.description, "env": sd.env}
            doc["servers"][sd.name] = entry
            if sd.kind == "mlserver" and mls is None:
                entry.update(status="skipped", reason=doc.get("mlserver_skipped", "not asked for"))
                continue
            try:
                targets_up[sd.name] = up.enter_context(start(sd, tmp, models, registry, mls))
                entry["status"] = "ok"
            except RuntimeError as exc:
                c.log(f"{sd.name} failed: {exc}")
                entry.update(status="failed", reason=str(exc)[-1500:])
        # NOTE: every server stays up (idle ones cost next to nothing) and the points are
        # interleaved, round after round, so a burst of other work on the box hits all
        # servers alike instead of whichever happened to be measured then.
        samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for rnd in range(repeat):
            for model, conc in points:
                for name, target in list(targets_up.items()):
                    c.log(f"round {rnd + 1}/{repeat}: {name} {model} c={conc} for {duration:g}s")
                    sd = by_name[name]
                    extra = STREAM_LOAD if sd.stream else ()
                    # What the server process spent (the parent only, with several workers).
                    marker = (
                        str(tmp / sd.name) + "\0"
                        if sd.kind == "mlserver"
                        else c.port_marker(int(target.rsplit(":", 1)[1]))
                    )
                    try:
                        cpu = c.process_cpu_seconds(marker)
                        res = c.run_loadgen(
                            target,
                            model,
                            concurrency=conc,
                            duration=duration,
                            warmup=warmup,
                            extra=extra,
                        )
                        cpu = c.process_cpu_seconds(marker) - cpu
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        c.log(f"{name} failed under load: {exc}")
                        doc["servers"][name].update(status="failed", reason=str(exc)[-1500:])
                        del targets_up[name]
                        continue
                    pt = c.point(res)
                    served = pt["requests"] * (duration + warmup) / duration
                    pt["server_cpu_us_per_request"] = round(1e6 * cpu / max(served, 1.0), 1)
                    samples.setdefault((name, model, conc), []).append(pt)
        for (name, model, conc), runs in samples.items():
            # Other work on the box only ever slows a server down, so the best round is the
            # closest to what it can do; every round's RPS stays in the JSON.
            best = max(runs, key=lambda r: r["rps"])
            row = {"server": name, "model": model, "concurrency": conc, **best}
            doc["results"].append({**row, "rps_rounds": [r["rps"] for r in runs]})
    doc["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    doc["targets"] = targets(doc["results"])
    print_report(doc)
    c.write_json(args.out, doc)
    if doc["results"]:
        plot(doc, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
