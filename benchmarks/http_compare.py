"""onnxgate's HTTP face against MLServer's REST and a bare ASGI server, in one run.

Servers, each a subprocess on 127.0.0.1, started and checked ready up front:

* one onnxgate (batching on, 1 worker) serving gRPC and HTTP from one process;
* the bare HTTP ceiling (``bare_asgi.py``: raw ASGI under uvicorn, one onnxruntime run per
  request, nothing else), JSON and binary; ``--bare-python`` runs it under another
  interpreter (e.g. ``.venv-mlserver/bin/python``, which has uvloop);
* MLServer 1.7.1's REST endpoint (JSON; it has no binary extension), from ``.venv-mlserver``
  (installed on first use, see ``compare.py``; skipped with the reason when it cannot be).

The same closed-loop load (``http_load.py``, its own process) runs against each, points
interleaved for ``--repeat`` rounds (the best round is kept) so other work on a shared box
skews all of them alike. Besides req/s and p99 each point has the server's CPU per request
(user + system seconds of the server process over the point / requests), the figure to trust
on a busy machine. Prints the issue's ratios (HTTP/JSON >= 2x MLServer's REST with p99 no
worse, >= 0.7x the bare ASGI server) with p99 beside each, and writes JSON.

    python benchmarks/http_compare.py              # 5 s per point, 2 rounds, c=64
    python benchmarks/http_compare.py --quick      # 2 s per point, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import _common as c

MODEL = "mlp_small"


def _http_point(url: str, encoding: str, args: argparse.Namespace) -> dict[str, Any]:
    argv = [c.PYTHON, str(c.BENCH / "http_load.py"), "--url", url, "--model", MODEL]
    argv += ["--features", str(c.MODELS[MODEL][0]), "--encoding", encoding]
    argv += ["--concurrency", str(args.concurrency), "--duration", str(args.duration)]
    argv += ["--warmup", str(args.warmup)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=args.duration + 120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"http_load failed: {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return c.point(result)


def _ms(value: float | None) -> str:
    # None: no call finished inside the measured window (a very busy machine).
    return "-" if value is None else f"{value:.1f}"


def _cpu_point(run: Any, marker: str, args: argparse.Namespace) -> dict[str, Any]:
    """``run()``'s point with the server's CPU per request over it."""
    before = c.process_cpu_seconds(marker)
    pt: dict[str, Any] = run()
    cpu = c.process_cpu_seconds(marker) - before
    # The CPU reading spans warm-up and measured seconds; scale the measured count to match.
    served = pt["requests"] * (args.duration + args.warmup) / args.duration
    pt["server_cpu_us_per_request"] = round(1e6 * cpu / max(served, 1.0), 1)
    return pt


def _ratio(best: dict[str, dict[str, Any]], a: str, b: str, key: str = "rps") -> float | None:
    if a not in best or b not in best or not best[b].get(key) or best[a].get(key) is None:
        return None
    return round(best[a][key] / best[b][key], 2)


GOALS = (
    # (what, face a, face b, key, op, goal)
    ("HTTP/JSON: onnxgate / MLServer REST req/s", "onnxgate HTTP JSON", "MLServer REST JSON",
     "rps", ">=", 2.0),
    ("HTTP/JSON: onnxgate / MLServer REST p99", "onnxgate HTTP JSON", "MLServer REST JSON",
     "p99_ms", "<=", 1.0),
    ("HTTP/JSON: onnxgate / bare ASGI req/s", "onnxgate HTTP JSON", "bare ASGI JSON",
     "rps", ">=", 0.7),
    ("HTTP/binary: onnxgate / bare ASGI req/s", "onnxgate HTTP binary", "bare ASGI binary",
     "rps", ">=", 0.7),
    ("HTTP/JSON: onnxgate / bare ASGI CPU per request", "onnxgate HTTP JSON", "bare ASGI JSON",
     "server_cpu_us_per_request", "<=", 1 / 0.7),
)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeat", type=int)
    p.add_argument("--no-mlserver", action="store_true", help="leave MLServer out")
    p.add_argument("--bare-python", default=c.PYTHON, help="interpreter for bare_asgi.py")
    p.add_argument("--out", type=Path, default=c.RESULTS / "http_compare.json")
    args = p.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    repeat = args.repeat or (1 if args.quick else 2)

    from _mlserver import ensure_mlserver
    from compare import SERVERS, start

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="onnxgate-http-")))
        models = c.write_models(tmp / "models")
        registry = c.make_registry(tmp)
        grpc_port, http_port, bare_port = c.free_port(), c.free_port(), c.free_port()
        argv = c.onnxgate_argv(*registry, grpc_port, workers=1, batching=True)
        argv += ["--http-port", str(http_port)]  # the last --http-port wins
        target = stack.enter_context(
            c.server("onnxgate", argv, grpc_port, list(models), log_dir=tmp)
        )
        http = f"http://127.0.0.1:{http_port}"
        bare = f"http://127.0.0.1:{bare_port}"
        bare_argv = [args.bare_python, str(c.BENCH / "bare_asgi.py"), "--port", str(bare_port)]
        bare_argv += [arg for n, path in models.items() for arg in ("--model", f"{n}={path}")]
        stack.enter_context(
            c.server("bare-asgi", bare_argv, bare_port, [], log_dir=tmp,
                     ready_url=f"{bare}/v2/health/ready")
        )  # fmt: skip
        gw_cpu, bare_cpu = c.port_marker(grpc_port), c.port_marker(bare_port)
        faces: dict[str, tuple[Any, str]] = {
            "onnxgate gRPC": (
                lambda: c.point(
                    c.run_loadgen(
                        target,
                        MODEL,
                        concurrency=args.concurrency,
                        duration=args.duration,
                        warmup=args.warmup,
                    )
                ),
                gw_cpu,
            ),
            "onnxgate HTTP JSON": (lambda: _http_point(http, "json", args), gw_cpu),
            "onnxgate HTTP binary": (lambda: _http_point(http, "binary", args), gw_cpu),
            "bare ASGI JSON": (lambda: _http_point(bare, "json", args), bare_cpu),
            "bare ASGI binary": (lambda: _http_point(bare, "binary", args), bare_cpu),
        }
        skipped = {}
        if args.no_mlserver:
            skipped["MLServer REST JSON"] = "--no-mlserver"
        else:
            try:
                mlserver = ensure_mlserver()
                sd = next(s for s in SERVERS if s.name == "mlserver")
                stack.enter_context(start(sd, tmp, models, registry, mlserver))
                settings = json.loads((tmp / sd.name / "settings.json").read_text())
                rest = f"http://127.0.0.1:{settings['http_port']}"
                faces["MLServer REST JSON"] = (
                    lambda: _http_point(rest, "json", args),
                    str(tmp / sd.name) + "\0",
                )
            except RuntimeError as exc:
                skipped["MLServer REST JSON"] = str(exc)[-500:]
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in faces}
        for r in range(repeat):
            for name, (run, marker) in faces.items():
                c.log(f"round {r + 1}/{repeat}: {name}")
                rounds[name].append(_cpu_point(run, marker, args))
    best = {name: max(pts, key=lambda p: p["rps"]) for name, pts in rounds.items()}
    rows = [
        (
            name,
            pt["rps"],
            _ms(pt["p50_ms"]),
            _ms(pt["p99_ms"]),
            pt["server_cpu_us_per_request"],
            pt["client_cpu_cores"],
            pt["errors"],
        )
        for name, pt in best.items()
    ]
    load = [round(x, 2) for x in os.getloadavg()]
    print(f"small MLP, 1 row per request, concurrency {args.concurrency}, best of {repeat}; "
          f"load average at end {load}")  # fmt: skip
    header = ("face", "req/s", "p50 ms", "p99 ms", "server CPU us/req", "client cores", "errors")
    c.print_table(rows, header)
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    print()
    goals = []
    for what, a, b, key, op, goal in GOALS:
        value = _ratio(best, a, b, key)
        met = None if value is None else (value >= goal if op == ">=" else value <= goal)
        goals.append({"target": what, "value": value, "goal": f"{op} {goal:.2f}", "met": met})
        verdict = {True: "met", False: "MISSED", None: "not measured"}[met]
        p99 = " / ".join(_ms(best[f].get("p99_ms")) if f in best else "-" for f in (a, b))
        print(f"{verdict:12} {what}: {value} (goal {op} {goal:.2f}); p99 ms {p99}")
    c.write_json(
        args.out,
        {"machine": {**c.machine(), "loadavg_at_end": load}, "model": MODEL,
         "concurrency": args.concurrency, "duration_s": args.duration, "rounds": rounds,
         "best": best, "skipped": skipped, "targets": goals},
    )  # fmt: skip


if __name__ == "__main__":
    main()
