"""Shared plumbing for the benchmark scripts: models, ports, server subprocesses, loadgen runs.

Every server under test runs as its own process group on 127.0.0.1, is checked ready over
gRPC (``ServerReady`` then ``ModelReady``) before any load, and is always stopped (SIGTERM
to its group, then SIGKILL) when the ``with`` block ends. The load generator runs as a
separate process too, so the benchmark driver never competes with what it measures.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
PYTHON = sys.executable

# name -> modelzoo.mlp sizes. Small: per-call cost dominates; large: compute dominates.
MODELS: dict[str, tuple[int, ...]] = {
    "mlp_small": (32, 64, 64, 2),
    "mlp_large": (256, 1024, 1024, 10),
}


def log(message: str) -> None:
    """Progress for people, on stderr, so stdout stays the table."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def model_bytes() -> dict[str, bytes]:
    from gateway.tools import modelzoo

    return {name: modelzoo.mlp(sizes, seed=0) for name, sizes in MODELS.items()}


def write_models(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in model_bytes().items():
        paths[name] = directory / f"{name}.onnx"
        paths[name].write_bytes(data)
    return paths


def free_port() -> int:
    # NOTE: the port is free when asked; a server binding it a moment later can still race
    # with another program, which on a benchmark box is acceptable.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import numpy
    import onnxruntime

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        # Other programs on the box skew every number; the load average says how much.
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def wait_ready(
    target: str, models: Sequence[str], proc: subprocess.Popen[bytes], timeout: float
) -> None:
    """Poll ServerReady and ModelReady until every model is ready or ``timeout`` passes."""
    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc

    deadline = time.monotonic() + timeout
    last = "no answer"
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with code {proc.returncode} before ready")
            try:
                if stub.ServerReady(pb.ServerReadyRequest(), timeout=1).ready and all(
                    stub.ModelReady(pb.ModelReadyRequest(name=m), timeout=1).ready for m in models
                ):
                    return
                last = "not ready yet"
            except grpc.RpcError as exc:
                last = f"{exc.code().name}"  # type: ignore[attr-defined]
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout:.0f}s ({last})")


def wait_http_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll ``GET url`` until it answers 200 or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before ready")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    # The server leads its own process group (start_new_session), so its workers go too.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def _read(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")
    return ""


def _why(path: Path, lines: int = 12) -> str:
    """The last error line of a server's log (the cause), then its tail."""
    text = _read(path).splitlines()
    errors = [line for line in text if "Error" in line or "Exception" in line]
    cause = f"last error: {errors[-1].strip()}\n" if errors else ""
    return cause + "\n".join(text[-lines:])


@contextlib.contextmanager
def server(
    name: str,
    argv: Sequence[str],
    port: int,
    models: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log_dir: Path,
    timeout: float = 60.0,
    log_marker: tuple[str, int] | None = None,
    ready_url: str | None = None,
) -> Iterator[str]:
    """Start ``argv`` as a server on ``port``, wait until ready, yield its target, stop it.

    ``log_marker=(text, n)`` also waits for ``text`` to appear ``n`` times in its output:
    with several workers on one port, one ready worker answers ServerReady while the others
    still load, and connections made then would all land on the first. ``ready_url``: an
    HTTP-only server, ready once a GET there answers 200.
    """
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=subprocess.STDOUT, env=full_env, start_new_session=True
        )
    target = f"127.0.0.1:{port}"
    try:
        started = time.monotonic()
        try:
            if ready_url is None:
                wait_ready(target, models, proc, timeout)
            else:
                wait_http_ready(ready_url, proc, timeout)
            text, count = log_marker or ("", 0)
            while _read(log_path).count(text) < count:
                if time.monotonic() - started > timeout or proc.poll() is not None:
                    raise RuntimeError(f"{count} x {text!r} not seen in the log")
                time.sleep(0.2)
        except RuntimeError as exc:
            raise RuntimeError(f"{name}: {exc}; {_why(log_path)}") from None
        log(f"{name} ready on {target} in {time.monotonic() - started:.1f}s")
        yield target
    finally:
        _stop(proc)


def onnxgate_argv(
    registry_url: str, artifact_dir: Path, port: int, *, workers: int, batching: bool
) -> list[str]:
    argv = [PYTHON, "-m", "gateway.cli", "serve", "--registry", registry_url]
    argv += ["--artifact-dir", str(artifact_dir), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--metrics-port", "-1", "--http-port", "-1", "--workers", str(workers)]
    return argv if batching else [*argv, "--no-batching"]


def echo_argv(model_paths: Mapping[str, Path], port: int) -> list[str]:
    argv = [PYTHON, str(BENCH / "echo_server.py"), "--port", str(port)]
    for name, path in model_paths.items():
        argv += ["--model", f"{name}={path}"]
    return argv


def bare_argv(model_paths: Mapping[str, Path], port: int, python: str = PYTHON) -> list[str]:
    """The bare server (``bare_server.py``), optionally under another interpreter."""
    argv = [python, str(BENCH / "bare_server.py"), "--port", str(port)]
    for name, path in model_paths.items():
        argv += ["--model", f"{name}={path}"]
    return argv


def make_registry(directory: Path) -> tuple[str, Path]:
    """A fresh SQLite registry with every benchmark model registered (champion = v1)."""
    from registry.registry import Registry

    url = f"sqlite:///{directory / 'registry.db'}"
    artifacts = directory / "artifacts"
    reg = Registry.open(url, artifacts)
    try:
        for name, data in model_bytes().items():
            reg.register_version(name, data, actor="benchmarks")
    finally:
        reg.close()
    return url, artifacts


def run_loadgen(
    target: str,
    model: str,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    extra: Sequence[str] = (),
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run benchmarks/loadgen.py in its own process and return its JSON summary."""
    with tempfile.TemporaryDirectory(prefix="onnxgate-loadgen-") as tmp:
        out = Path(tmp) / "result.json"
        argv = [PYTHON, str(BENCH / "loadgen.py"), "--target", target, "--model", model]
        argv += ["--concurrency", str(concurrency), "--duration", str(duration)]
        argv += ["--warmup", str(warmup), "--json", str(out), "--quiet", *extra]
        limit = timeout if timeout is not None else duration + warmup + 60
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, check=False)
        if not out.exists():
            raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result


def point(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers a comparison table needs from one loadgen summary."""
    lat = result["latency_ms"]
    return {
        "rps": round(result["rps"], 1),
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "p99.9_ms": lat["p99.9"],
        "errors": result["errors"],
        "requests": result["requests"],
        "client_cpu_cores": round(result["client_cpu_cores"], 2),
    }


def process_cpu_seconds(marker: str) -> float:
    """User + system CPU seconds of every process whose command line holds ``marker`` (a
    server's ``--port\0N\0``, MLServer's repository path): what a server spent, robust to
    other load on the machine, unlike requests/s."""
    total, found = 0.0, False
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cmdline").read_text():
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        found = True
    if not found:
        raise RuntimeError(f"no process with {marker!r} in its command line")
    return total


def port_marker(port: int) -> str:
    """:func:`process_cpu_seconds`'s marker for a server started with ``--port N``."""
    return f"--port\0{port}\0"


def server_cpu_seconds(port: int) -> float:
    """User + system CPU seconds of the gateway process listening on ``port`` (robust to
    other load on the machine, unlike requests/s)."""
    wanted = f"--port\0{port}\0"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_text()
            if "gateway.cli" not in cmdline or wanted not in cmdline:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise RuntimeError(f"no gateway process found for port {port}")


def measure_onnxgate(
    name: str,
    registry: tuple[str, Path],
    model: str,
    env: Mapping[str, str],
    log_dir: Path,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    extra: Sequence[str] = (),
) -> tuple[dict[str, Any], str]:
    """One load run against a fresh onnxgate (one worker, batching on, settings ``env``):
    its :func:`point` with the server's CPU per request, and its metrics page after the run.
    """
    port, metrics_port = free_port(), free_port()
    argv = onnxgate_argv(*registry, port, workers=1, batching=True)
    argv[argv.index("--metrics-port") + 1] = str(metrics_port)
    with server(name, argv, port, [model], env=env, log_dir=log_dir):
        cpu_before = server_cpu_seconds(port)
        result = run_loadgen(
            f"127.0.0.1:{port}",
            model,
            concurrency=concurrency,
            duration=duration,
            warmup=warmup,
            extra=extra,
        )
        cpu = server_cpu_seconds(port) - cpu_before
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text: str = r.read().decode()
    measured = point(result)
    # The CPU reading spans warm-up and measured seconds; scale the measured count to match.
    served = result["requests"] * (duration + warmup) / duration
    measured["server_cpu_us_per_request"] = round(1e6 * cpu / max(served, 1.0), 1)
    return measured, text


def medians(points: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One mode's rounds summed up: median req/s, p99 and server CPU per request, and the
    rounds themselves (what the on/off benchmarks compare, as ratios of medians)."""
    return {
        "rps_median": statistics.median(pt["rps"] for pt in points),
        "p99_ms_median": statistics.median(pt["p99_ms"] for pt in points),
        "cpu_us_per_request_median": statistics.median(
            pt["server_cpu_us_per_request"] for pt in points
        ),
        "runs": list(points),
    }


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {path}")


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
