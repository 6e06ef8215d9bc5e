"""``onnxgate performance NAME``: label-free performance estimates of a model's versions.

Calls the gateway's ``MonitoringService.GetPerformance`` (``--target``, admin token from
``ONNXGATE_ADMIN_TOKEN``). Per version: its role, the window's rows, the estimate (CBPE,
:mod:`gateway.monitoring.performance`) and, once delayed labels joined, the realised
accuracy (null before). Registered from :func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from gateway.cli.common import call, client_opts
from gateway.cli.output import EXIT_OK, emit, print_table

__all__ = ["add_commands", "performance_payload", "performance_versions"]


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def performance_payload(model: str, resp: Any) -> dict[str, Any]:
    """The ``--json`` document of a GetPerformance answer."""
    versions = []
    for v in resp.versions:
        estimated = None
        if v.HasField("estimated"):
            e = v.estimated
            estimated = {
                "accuracy": _num(e.accuracy),
                "accuracy_ci": [_num(e.accuracy_low), _num(e.accuracy_high)],
                "roc_auc": _num(e.roc_auc),
                "f1": _num(e.f1),
            }
        realised = None
        if v.HasField("realised"):
            realised = {"accuracy": _num(v.realised.accuracy), "labels": v.realised.labels}
        versions.append(
            {
                "version": v.version,
                "role": v.role,
                "rows": v.rows,
                "method": v.method or None,
                "note": v.note,
                "estimated": estimated,
                "realised": realised,
            }
        )
    return {"model": model, "versions": versions}


def performance_versions(args: argparse.Namespace, model: str, version: str) -> list[Any]:
    """The ``--json`` versions of ``GetPerformance`` (one version's, or all), for the drift
    report; empty when the gateway cannot say (no monitored traffic, an older gateway)."""
    import grpc

    from gateway._proto import monitoring_pb2 as pb
    from gateway._proto import monitoring_pb2_grpc

    request = pb.GetPerformanceRequest(model=model, refresh=False)
    try:
        resp = call(args, monitoring_pb2_grpc.MonitoringServiceStub, "GetPerformance", request)
    except grpc.RpcError:
        return []
    versions = performance_payload(model, resp)["versions"]
    return [v for v in versions if not version or v["version"] == version]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def cmd_performance(args: argparse.Namespace) -> int:
    from gateway._proto import monitoring_pb2 as pb
    from gateway._proto import monitoring_pb2_grpc

    request = pb.GetPerformanceRequest(model=args.name, refresh=not args.cached)
    resp = call(args, monitoring_pb2_grpc.MonitoringServiceStub, "GetPerformance", request)
    payload = performance_payload(args.name, resp)

    def table() -> None:
        rows = []
        for v in payload["versions"]:
            est, real = v["estimated"] or {}, v["realised"] or {}
            low, high = est.get("accuracy_ci", [None, None])
            rows.append(
                (
                    v["version"],
                    v["role"] or "-",
                    v["rows"],
                    _pct(est.get("accuracy")),
                    "-" if low is None else f"{_pct(low)}..{_pct(high)}",
                    "-" if est.get("roc_auc") is None else f"{est['roc_auc']:.3f}",
                    "-" if est.get("f1") is None else f"{est['f1']:.3f}",
                    _pct(real.get("accuracy")),
                    real.get("labels", 0),
                )
            )
        header = ("VERSION", "ROLE", "ROWS", "EST_ACC", "95% CI", "AUC", "F1", "REAL_ACC", "LABELS")
        print_table(rows, header)
        for v in payload["versions"]:
            if v["note"]:
                print(f"{v['version']}: {v['note']}")

    emit(args, payload, table)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``performance`` to the top-level subcommands."""
    p = sub.add_parser(
        "performance", help="label-free performance estimates of a model's versions (CBPE)"
    )
    p.add_argument("name")
    p.add_argument("--cached", action="store_true", help="last report; do not recompute")
    client_opts(p)
    p.set_defaults(func=cmd_performance)
