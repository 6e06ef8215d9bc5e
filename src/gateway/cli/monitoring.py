"""``onnxgate`` commands for monitoring: ``drift``, ``shadow report``, and the reference
profile that ``models register --reference FILE`` stores.

``drift`` and ``shadow report`` call a gateway's MonitoringService (``--target``, admin
token from ``ONNXGATE_ADMIN_TOKEN``); ``--json`` prints the payload that ``--html`` renders
(:mod:`gateway.monitoring.report`). Registered from :func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.cli.common import call, client_opts
from gateway.cli.output import EXIT_OK, CliError, emit, print_table
from gateway.monitoring.statistics import DRIFT_STATISTICS, DriftStatistic, wire_value

__all__ = ["add_commands", "reference_doc"]


# -- reference profiles at registration ---------------------------------------------------


def reference_doc(
    path: Path,
    artifact: bytes,
    metadata: Mapping[str, str],
    *,
    labels: Path | None = None,
    label_column: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the version's profile document from a reference file: (doc, audit summary).

    Done before registering, so that a bad reference refuses the registration instead of
    leaving a version without its profile. ``labels`` / ``label_column`` (the reference's
    labels) add the label-free performance estimator (:mod:`gateway.monitoring.performance`).
    """
    from gateway.monitoring.reference import (
        build_version_profiles,
        onnx_runner,
        read_labels,
        read_reference,
    )
    from registry.signature import signature_from_bytes

    try:
        sample, names = read_reference(path)
    except ValueError as exc:
        raise CliError(f"--reference {path}: {exc}") from exc
    try:
        sample, names, y = read_labels(labels, sample, names, label_column)
    except ValueError as exc:
        raise CliError(f"--reference-labels {labels}: {exc}" if labels else str(exc)) from exc
    try:
        profiles = build_version_profiles(
            signature_from_bytes(artifact),
            sample,
            names=names,
            metadata=metadata,
            run=onnx_runner(artifact),
            labels=y,
        )
    except ValueError as exc:
        raise CliError(f"--reference {path}: {exc}") from exc
    summary = {"reference": path.name, "profiles": profiles.summary()}
    return profiles.to_doc(), summary


# -- client commands -------------------------------------------------------------------------


def _call(args: argparse.Namespace, method: str, request: Any) -> Any:
    from gateway._proto import monitoring_pb2_grpc

    return call(args, monitoring_pb2_grpc.MonitoringServiceStub, method, request)


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else value


def _statistics(f: Any) -> dict[str, float | None]:
    """A FeatureDrift's statistics by wire name: its fields in field order, then ``extra``."""
    wire = {row.wire for row in DRIFT_STATISTICS if row.wire is not None}
    out = {d.name: _finite(getattr(f, d.name)) for d in f.DESCRIPTOR.fields if d.name in wire}
    out.update({k: _finite(f.extra[k]) for k in sorted(f.extra) if k in wire})
    return out


def drift_payload(model: str, resp: Any) -> dict[str, Any]:
    """The GetDrift response as strict-JSON-safe dicts (NaN -> null)."""
    versions = []
    for v in resp.versions:
        sides = []
        for s in v.sides:
            features = []
            for f in s.features:
                row: dict[str, Any] = {
                    "name": f.name,
                    "categorical": f.categorical,
                    "drifted": f.drifted,
                    "no_data": f.no_data,
                }
                row.update(_statistics(f))
                if f.HasField("histogram"):
                    row["histogram"] = {
                        "edges": list(f.histogram.edges),
                        "reference": list(f.histogram.reference),
                        "current": list(f.histogram.current),
                    }
                features.append(row)
            sides.append(
                {
                    "side": s.side,
                    "drifted": s.drifted,
                    "driving_features": list(s.driving_features),
                    "alpha": s.alpha,
                    "correction": s.correction,
                    "window_rows": s.window_rows,
                    "reference_rows": s.reference_rows,
                    "features": features,
                }
            )
        versions.append(
            {
                "version": v.version,
                "profile_source": v.profile_source,
                "window_rows": v.window_rows,
                "rows_seen": v.rows_seen,
                "drifted": v.drifted,
                "skipped": list(v.skipped),
                "computed_at": v.computed_at,
                "sides": sides,
                "contract": _contract(v),
            }
        )
    return {
        "model": model,
        "versions": versions,
        "monitor_enqueued": resp.monitor_enqueued,
        "monitor_dropped": resp.monitor_dropped,
    }


def _contract(v: Any) -> dict[str, Any] | None:
    """A version's data-contract counts (None until a row was checked against one)."""
    if not v.HasField("contract"):
        return None
    c = v.contract
    return {
        "mode": c.mode,
        "rows": c.rows,
        "violating_rows": c.violating_rows,
        "violation_rate": c.violating_rows / c.rows if c.rows else None,
        "features": dict(sorted(c.features.items(), key=lambda kv: (-kv[1], kv[0]))),
        "fleet": c.fleet,
    }


def _fmt(value: float | None, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _columns(features: list[Mapping[str, Any]]) -> list[DriftStatistic]:
    """The drift table's statistic columns: sparse ones only when some feature has a value."""
    return [
        row
        for row in DRIFT_STATISTICS
        if row.cli is not None
        and (not row.sparse or any(wire_value(f, row) is not None for f in features))
    ]


def _drift_table(payload: Mapping[str, Any], outputs: bool) -> None:
    for v in payload["versions"]:
        print(
            f"{payload['model']}:{v['version']}  profile {v['profile_source'] or 'none yet'}  "
            f"window {v['window_rows']} rows  seen {v['rows_seen']}"
        )
        c = v["contract"]
        if c is not None:
            worst = ", ".join(f"{k} {n}" for k, n in list(c["features"].items())[:5]) or "-"
            where = "fleet" if c["fleet"] else "this gateway"
            print(
                f"contract ({c['mode']}, {where}): {c['violating_rows']} of {c['rows']} rows "
                f"violate ({_fmt(c['violation_rate'], '.2%')}): {worst}"
            )
        sides = [s for s in v["sides"] if outputs or s["side"] == "inputs"]
        if not sides:
            print("  no drift computed yet (no profile or too few rows)\n")
        for s in sides:
            verdict = "DRIFT" if s["drifted"] else "ok"
            driving = ", ".join(s["driving_features"]) or "-"
            print(f"{s['side']}: {verdict} ({s['correction']}, alpha {s['alpha']:g}): {driving}")
            columns = _columns(s["features"])
            rows = [
                (
                    f["name"],
                    *(_fmt(wire_value(f, row), row.cli_format) for row in columns),
                    "DRIFT" if f["drifted"] else ("no data" if f["no_data"] else ""),
                )
                for f in s["features"]
            ]
            header = ("FEATURE", *(row.cli or "" for row in columns), "VERDICT")
            print_table(rows, header)
            print()


def cmd_drift(args: argparse.Namespace) -> int:
    from gateway._proto import monitoring_pb2 as pb
    from gateway.monitoring.report import render_html

    request = pb.GetDriftRequest(
        model=args.name,
        version=args.version or "",
        refresh=not args.cached,
        include_histograms=bool(args.html),
    )
    payload = drift_payload(args.name, _call(args, "GetDrift", request))
    if args.html:
        from gateway.cli.explain import importance_payload
        from gateway.cli.performance import performance_versions

        importance = importance_payload(args, args.name, args.version or "")
        if importance:
            payload = {**payload, "importance": importance}
        # The drift just refreshed: the cached estimate is of the same windows.
        performance = performance_versions(args, args.name, args.version or "")
        if any(v["estimated"] or v["note"] for v in performance):
            payload = {**payload, "performance": performance}
        path = Path(args.html)
        try:
            path.write_text(render_html(payload), encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror}") from exc
    if args.json:
        print(json.dumps(payload, indent=2))
    elif args.html:
        print(f"wrote {args.html}")
    else:
        _drift_table(payload, args.outputs)
    return EXIT_OK


def cmd_shadow_report(args: argparse.Namespace) -> int:
    from gateway._proto import monitoring_pb2 as pb

    resp = _call(args, "GetShadowReport", pb.GetShadowReportRequest(model=args.name))
    comparisons = [
        {
            "version": c.version,
            "served_version": c.served_version,
            "requests": c.requests,
            "rows": c.rows,
            "errors": c.errors,
            "classifier": c.classifier,
            "agreement": _finite(c.agreement),
            "mean_abs_diff": _finite(c.mean_abs_diff),
            "max_abs_diff": _finite(c.max_abs_diff),
            "latency_mean_seconds": _finite(c.latency_mean_seconds),
            "latency_max_seconds": _finite(c.latency_max_seconds),
        }
        for c in resp.comparisons
    ]
    payload = {
        "model": args.name,
        "comparisons": comparisons,
        "dropped": resp.dropped,
        "pending": resp.pending,
    }

    def table() -> None:
        rows = [
            (
                c["version"],
                c["served_version"],
                c["requests"],
                c["rows"],
                "-" if c["agreement"] is None else f"{100 * c['agreement']:.2f}%",
                _fmt(c["mean_abs_diff"]),
                _fmt(c["max_abs_diff"]),
                "-"
                if c["latency_mean_seconds"] is None
                else f"{1e3 * c['latency_mean_seconds']:.2f}",
                c["errors"],
            )
            for c in comparisons
        ]
        header = ("SHADOW", "VS", "CALLS", "ROWS", "AGREE", "MEAN|D|", "MAX|D|", "MS", "ERRORS")
        print_table(rows, header)
        print(f"dropped (shadow queue full): {resp.dropped}")

    emit(args, payload, table)
    return EXIT_OK


def add_commands(sub: Any, shadow: Any) -> None:
    """Add ``drift`` to the top-level subcommands and ``report`` under ``shadow``."""
    d = sub.add_parser("drift", help="drift of a model's versions against their reference")
    d.add_argument("name")
    d.add_argument("--version", help="one version (default: every monitored version)")
    d.add_argument("--outputs", action="store_true", help="also show the outputs' drift")
    d.add_argument("--html", metavar="FILE", help="write an HTML report with histograms")
    d.add_argument("--cached", action="store_true", help="last report; do not recompute")
    client_opts(d)
    d.set_defaults(func=cmd_drift)
    r = shadow.add_parser("report", help="shadow versions compared with what served")
    r.add_argument("name")
    client_opts(r)
    r.set_defaults(func=cmd_shadow_report)
