"""``python -m gateway.demo`` (``make demo``): the product end to end on real models.

Trains small classifiers, registers them in an embedded SQLite registry, starts a gateway and
tells the story with real requests: an operator shifts traffic live through the CLI, then the
governor takes over (:mod:`gateway.demo.story`). Failed requests are counted throughout.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from gateway.demo import convert, estimate, story
from gateway.demo.parts import MODEL, LiveTraffic, cli, say, show_split, step, train_models
from gateway.server import Gateway
from gateway.settings import Settings
from gateway.tools.embedded import EmbeddedGateway
from registry import Registry

# What an analyst asks first: what each version answered, and how fast (model is a partition).
_LOG_QUERY = (
    "select model, version, role, status, count(*) as requests,"
    " round(quantile_cont(latency_us, 0.99) / 1000, 2) as p99_ms"
    " from log group by all order by model, version, role, status"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default="onnxgate-data/demo")
    parser.add_argument("--phase-seconds", type=float, default=2.0)
    parser.add_argument("--fast", action="store_true", help="short phases and canary steps")
    args = parser.parse_args(argv)
    phase_s = min(args.phase_seconds, 0.5) if args.fast else args.phase_seconds
    started = time.monotonic()

    data = Path(args.data_dir)
    shutil.rmtree(data, ignore_errors=True)  # the demo starts from nothing every time
    data.mkdir(parents=True)
    url = f"sqlite:///{data / 'registry.db'}"
    artifacts = data / "artifacts"
    log_dir = data / "prediction-log"

    # The story goes to stdout; the gateway's and libraries' own log lines (e.g. the
    # batcher choosing the executor for slow runs) go to a file, not between its lines.
    log_file = data / "gateway.log"
    logging.basicConfig(
        filename=log_file,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    say(f"(the gateway's own log goes to {log_file})")

    step("1. Train real models and export them to ONNX")
    models = train_models(data, fast=args.fast)

    step("2. Register v1 and v2 in the embedded registry (no gateway needed)")
    common = ("--registry", url, "--artifact-dir", str(artifacts))
    for v in ("1", "2"):
        out = cli(
            "models", "register", MODEL, str(models.files[v]), "--description", models.about[v],
            "--owner", "risk-team", "--meta", "framework=sklearn",
            "--metric", f"accuracy={models.accuracy[v]:.4f}",
            "--reference", str(models.reference), *common,
        )  # fmt: skip
        say(out.rstrip())
    say(cli("models", "list", *common).rstrip())

    step("3. Start the gateway (gRPC + /metrics on free ports)")
    token = secrets.token_urlsafe(16)
    os.environ["ONNXGATE_ADMIN_TOKEN"] = token
    settings = Settings(
        registry=url,
        artifact_dir=artifacts,
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        http_port=0,
        admin_tokens={token: "demo-operator"},
        poll_interval_s=0.2,
        # Small windows recomputed often, so drift shows within a second; a very strict
        # alpha, because the drift gate is hard and every recomputation is another look:
        # at 0.001, a young canary's window, tested a hundred times across ten series, was
        # falsely rolled back in about one demo in ten on a busy machine. The injected shift
        # is four standard deviations: its p-values are astronomically small either way.
        monitor_window=600,
        monitor_min_rows=150,
        monitor_interval_s=0.25,
        monitor_alpha=1e-6,
        governor_interval_s=0.1,  # the loop's tick; the policy evaluates every 0.5 s
        # Every served prediction kept (chapter 14): Parquet files, chained into the audit log.
        prediction_log=(f"file:{log_dir}",),
    )
    registry = Registry.open(url, artifacts)
    failed = 0
    with EmbeddedGateway(Gateway(settings, registry=registry)) as gw:
        target = gw.target
        say(f"gateway on {target}, metrics at {gw.metrics_url}")
        say("a tritonclient / grpcurl user would now call inference.GRPCInferenceService there")
        say(f"OIP v2 over HTTP at {gw.http_url}/v2, the operator console at {gw.http_url}/ui")

        step("4. Real predictions from the champion (v1)")
        np.save(data / "five-rows.npy", models.x[:5])
        say(cli("infer", MODEL, "--data", str(data / "five-rows.npy"), "--target", target))
        say(f"  true labels: {models.y[:5].tolist()}")

        step("4b. Why that answer: explain one prediction by the id infer printed")
        np.save(data / "one-row.npy", models.x[5:6])
        ask = ("infer", MODEL, "--data", str(data / "one-row.npy"), "--id", "why-1")
        say(cli(*ask, "--target", target).rstrip())
        say("  Kernel SHAP against v1's reference sample: each feature's push on the score")
        say(cli("explain", MODEL, "--id", "why-1", "--target", target).rstrip())

        step("5. Operator splits traffic 80/20 (v2 as challenger) through the admin CLI")
        say(
            cli(
                "traffic", "set", MODEL, "1=80", "2=20", "--role", "2=challenger",
                "--reason", "start A/B", "--target", target,
            ).rstrip()
        )  # fmt: skip
        traffic = LiveTraffic(target, models.x, models.y, clients=4).start()
        try:
            time.sleep(phase_s)
            failed += show_split("80/20 under load:", *traffic.take())

            step("6. Shift traffic live while requests keep flowing")
            for label, change in (
                ("after 50/50:", ("traffic", "set", MODEL, "1=50", "2=50", "--reason", "ramp")),
                ("after promoting v2:", ("promote", MODEL, "2", "--reason", "better on holdout")),
                ("after rollback:", ("rollback", MODEL, "--reason", "demo rollback")),
            ):
                cli(*change, "--target", target)
                time.sleep(phase_s)
                failed += show_split(label, *traffic.take())
        finally:
            traffic.stop()
        failed += show_split("(in flight at the end)", *traffic.take())
        say(f"  failed requests across every operator change: {failed}")

        failed += story.Story(
            story.Ops(target, common),
            registry,
            models,
            data,
            phase_s=phase_s,
            min_requests=200 if args.fast else 300,
            timeout_s=30.0,
        ).run()

        failed += estimate.chapter(  # 11. rolled back on a label-free estimate (issue 23)
            story.Ops(target, common), registry, data, timeout_s=30.0
        )

        step("12. Deployment history and audit trail")
        say(cli("history", MODEL, "--target", target).rstrip())
        say("")
        story.print_audit_trail(registry)
        failed += convert.chapter(  # 13. trained model -> canary (issue 16)
            story.Ops(target, common), registry, models, data,
            min_requests=100 if args.fast else 200, timeout_s=30.0,
        )  # fmt: skip
    # The gateway has stopped: every log file is closed, its sha256 in the audit chain.
    step("14. What was served: the prediction log (Parquet, queried with DuckDB)")
    logged = ("--dir", str(log_dir), *common)
    say(cli("log", "verify", *logged).rstrip())
    say(cli("log", "query", _LOG_QUERY, *logged).rstrip())
    say("  the request explained in 4b, as it was served (inputs and outputs bit for bit):")
    say(cli("log", "show", "why-1", *logged).rstrip())
    registry.close()
    say(f"\nfailed requests in the whole demo: {failed}")
    step(f"Done in {time.monotonic() - started:.0f} s. Data left in {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
