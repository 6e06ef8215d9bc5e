"""Thin servicer for ``onnxgate.monitoring.v1.MonitoringService``: drift, shadow reports and
label-free performance estimates.

Asks the operations core (:class:`gateway.operations.Observations`) for the monitor's and the
shadow scorer's reports and converts them to protobuf. Authentication is applied around these
methods when the server registers them, as for the admin API.
"""

from __future__ import annotations

import json
from typing import Any

import grpc

from gateway._proto import monitoring_pb2 as pb
from gateway._proto import monitoring_pb2_grpc as pb_grpc
from gateway.governor.evidence import Quality
from gateway.monitoring.monitor import SideDrift, VersionDrift, feature_order
from gateway.monitoring.shadow import ShadowReport
from gateway.monitoring.statistics import DRIFT_STATISTICS
from gateway.operations import Observations

__all__ = ["MonitoringServicer", "performance_to_proto", "side_to_proto", "version_to_proto"]

Context = grpc.aio.ServicerContext[Any, Any]

_WIRE_STATS = tuple(row for row in DRIFT_STATISTICS if row.wire is not None)
_FIELDS = frozenset(pb.FeatureDrift.DESCRIPTOR.fields_by_name)


def side_to_proto(name: str, side: SideDrift, *, histograms: bool) -> pb.SideDrift:
    r = side.report
    out = pb.SideDrift(
        side=name,
        drifted=r.drifted,
        driving_features=r.features,
        alpha=r.alpha,
        correction=r.correction,
        window_rows=r.window_rows,
        reference_rows=side.profile.n_rows,
    )
    profile = side.profile
    for i in feature_order(r).tolist():
        f = out.features.add(
            name=r.feature_names[i],
            categorical=bool(r.categorical[i]),
            drifted=bool(r.drifted_mask[i]),
            no_data=bool(r.no_data[i]),
        )
        for row in _WIRE_STATS:
            value = float(r.value(row.name)[i])
            if row.wire in _FIELDS:
                setattr(f, row.wire, value)
            else:
                f.extra[row.wire or ""] = value
        if histograms:
            k = int(profile.n_bins[i])
            f.histogram.edges.extend(profile.edges[i, 1:k].tolist())
            f.histogram.reference.extend(profile.ref_counts[i, :k].tolist())
            f.histogram.current.extend(side.current_counts[i, :k].tolist())
    return out


def version_to_proto(vd: VersionDrift, *, histograms: bool = False) -> pb.VersionDrift:
    out = pb.VersionDrift(
        model=vd.model,
        version=vd.version,
        profile_source=vd.profile_source,
        window_rows=vd.window_rows,
        rows_seen=vd.rows_seen,
        drifted=vd.drifted,
        skipped=list(vd.skipped),
        computed_at=vd.computed_at,
    )
    for name in ("inputs", "outputs"):
        side = vd.side(name)
        if side is not None:
            out.sides.append(side_to_proto(name, side, histograms=histograms))
    return out


def shadow_to_proto(r: ShadowReport) -> pb.ShadowComparison:
    return pb.ShadowComparison(
        model=r.model,
        version=r.version,
        served_version=r.served_version,
        requests=r.requests,
        rows=r.rows,
        errors=r.errors,
        classifier=r.classifier,
        compared_rows=r.compared_rows,
        agreement=r.agreement,
        mean_abs_diff=r.mean_abs_diff,
        max_abs_diff=r.max_abs_diff,
        latency_mean_seconds=r.latency_mean_s,
        latency_max_seconds=r.latency_max_s,
    )


class MonitoringServicer(pb_grpc.MonitoringServiceServicer):
    def __init__(self, observations: Observations) -> None:
        self._ops = observations

    async def GetDrift(self, request: pb.GetDriftRequest, context: Context) -> pb.GetDriftResponse:
        answer = await self._ops.drift(request.model, request.version, refresh=request.refresh)
        response = pb.GetDriftResponse(
            versions=[
                version_to_proto(v, histograms=request.include_histograms) for v in answer.versions
            ],
            monitor_enqueued=answer.enqueued,
            monitor_dropped=answer.dropped,
        )
        for out in response.versions:
            c = answer.contracts.get(out.version)
            if c is not None:
                out.contract.CopyFrom(
                    pb.ContractCounts(
                        mode=answer.contract_mode,
                        rows=c.rows,
                        violating_rows=c.violating,
                        features=dict(c.features),
                        fleet=answer.fleet,
                    )
                )
        return response

    async def GetShadowReport(
        self, request: pb.GetShadowReportRequest, context: Context
    ) -> pb.GetShadowReportResponse:
        answer = self._ops.shadows(request.model)
        return pb.GetShadowReportResponse(
            comparisons=[shadow_to_proto(r) for r in answer.comparisons],
            dropped=answer.dropped,
            pending=answer.pending,
        )

    async def GetPerformance(
        self, request: pb.GetPerformanceRequest, context: Context
    ) -> pb.GetPerformanceResponse:
        answer = await self._ops.performance(request.model, refresh=request.refresh)
        return pb.GetPerformanceResponse(
            versions=[performance_to_proto(v.drift, v.role, v.quality) for v in answer]
        )


def performance_to_proto(
    vd: VersionDrift, role: str, quality: Quality | None
) -> pb.VersionPerformance:
    """One version's estimated (and, once labels joined, realised) performance."""
    msg = pb.VersionPerformance(
        version=vd.version, role=role, rows=vd.window_rows, note=vd.performance_note
    )
    if vd.performance is not None:
        est = vd.performance.estimate()
        msg.method = "isotonic" if vd.performance_note.startswith("isotonic") else "none"
        msg.estimated.CopyFrom(
            pb.PerformanceEstimate(
                rows=est.rows,
                accuracy=est.accuracy,
                accuracy_low=est.accuracy_low,
                accuracy_high=est.accuracy_high,
                roc_auc=est.roc_auc,
                f1=est.f1,
                sums_json=json.dumps(vd.performance.to_dict()),
            )
        )
    if quality is not None and quality.labelled:
        msg.realised.CopyFrom(
            pb.RealisedPerformance(
                labels=quality.labelled, accuracy=quality.correct / quality.labelled
            )
        )
    return msg
