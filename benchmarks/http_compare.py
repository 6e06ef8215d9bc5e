"""gRPC against HTTP/JSON and HTTP/binary on one onnxgate, and MLServer's REST, in one run.

One onnxgate process (batching on, 1 worker) serves both faces from one event loop; the
same closed-loop load (single-row requests to the small MLP) runs against each face, the
faces interleaved point by point for ``--repeat`` rounds (the best round is kept) so that
other work on a shared box skews all of them alike. MLServer's REST endpoint (JSON; it has
no binary extension) is added when its virtualenv ``.venv-mlserver`` exists (see
``compare.py``); otherwise it is reported as skipped.

    python benchmarks/http_compare.py              # 5 s per point, 2 rounds, c=64
    python benchmarks/http_compare.py --quick      # 2 s per point, 1 round
"""

from __future__ import annotations

import argparse
import json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--duration", type=float)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--repeat", type=int)
    p.add_argument("--out", type=Path, default=c.RESULTS / "http_compare.json")
    args = p.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    repeat = args.repeat or (1 if args.quick else 2)

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="onnxgate-http-")))
        models = c.write_models(tmp / "models")
        registry = c.make_registry(tmp)
        grpc_port, http_port = c.free_port(), c.free_port()
        argv = c.onnxgate_argv(*registry, grpc_port, workers=1, batching=True)
        argv += ["--http-port", str(http_port)]  # the last --http-port wins
        target = stack.enter_context(
            c.server("onnxgate", argv, grpc_port, list(models), log_dir=tmp)
        )
        http = f"http://127.0.0.1:{http_port}"
        faces: dict[str, Any] = {
            "onnxgate gRPC": lambda: c.point(
                c.run_loadgen(
                    target,
                    MODEL,
                    concurrency=args.concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                )
            ),
            "onnxgate HTTP JSON": lambda: _http_point(http, "json", args),
            "onnxgate HTTP binary": lambda: _http_point(http, "binary", args),
        }
        skipped = {}
        mlserver = c.REPO / ".venv-mlserver" / "bin" / "mlserver"
        if mlserver.exists():
            from compare import SERVERS, start

            sd = next(s for s in SERVERS if s.name == "mlserver")
            stack.enter_context(start(sd, tmp, models, registry, mlserver))
            settings = json.loads((tmp / sd.name / "settings.json").read_text())
            rest = f"http://127.0.0.1:{settings['http_port']}"
            faces["MLServer REST JSON"] = lambda: _http_point(rest, "json", args)
        else:
            skipped["MLServer REST JSON"] = f"{mlserver} not found (see compare.py)"
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in faces}
        for r in range(repeat):
            for name, run in faces.items():
                c.log(f"round {r + 1}/{repeat}: {name}")
                rounds[name].append(run())
    best = {name: max(pts, key=lambda p: p["rps"]) for name, pts in rounds.items()}
    grpc_rps = best["onnxgate gRPC"]["rps"] or 1.0
    rows = [
        (
            name,
            pt["rps"],
            _ms(pt["p50_ms"]),
            _ms(pt["p99_ms"]),
            round(pt["rps"] / grpc_rps, 2),
            pt["client_cpu_cores"],
            pt["errors"],
        )
        for name, pt in best.items()
    ]
    print(f"small MLP, 1 row per request, concurrency {args.concurrency}, best of {repeat}")
    c.print_table(rows, ("face", "rps", "p50 ms", "p99 ms", "/ gRPC", "client cores", "errors"))
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    c.write_json(
        args.out,
        {"machine": c.machine(), "model": MODEL, "concurrency": args.concurrency,
         "duration_s": args.duration, "rounds": rounds, "best": best, "skipped": skipped},
    )  # fmt: skip


if __name__ == "__main__":
    main()
