"""Thin servicer for ``onnxgate.monitoring.v1.MonitoringService``: drift, shadow reports and
label-free performance estimates.

Reads the monitor's and the shadow scorer's published snapshots and converts them to
protobuf; ``refresh`` runs the monitor's (blocking) recomputation on the I/O executor.
Authentication is applied around these methods by the server, as for the admin API.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc

from gateway._proto import monitoring_pb2 as pb
from gateway._proto import monitoring_pb2_grpc as pb_grpc
from gateway.concurrency import run_blocking
from gateway.errors import FailedPrecondition, InvalidArgument, NotFound
from gateway.governor.evidence import Quality
from gateway.monitoring.monitor import Monitor, SideDrift, VersionDrift, feature_order
from gateway.monitoring.shadow import ShadowReport, ShadowScorer

__all__ = ["MonitoringServicer", "performance_to_proto", "side_to_proto", "version_to_proto"]

Context = grpc.aio.ServicerContext[Any, Any]


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
            psi=r.psi[i],
            ks_statistic=r.ks_stat[i],
            ks_pvalue=r.ks_p[i],
            js_distance=r.js[i],
            wasserstein=r.wasserstein[i],
            wasserstein_normalized=r.wasserstein_norm[i],
            chi2=r.chi2[i],
            chi2_pvalue=r.chi2_p[i],
            mean_shift=r.mean_shift[i],
            std_ratio=r.std_ratio[i],
            nan_share=r.nan_share[i],
            out_of_range_share=r.out_of_range_share[i],
            pvalue=r.p_value[i],
            pvalue_adjusted=r.p_adjusted[i],
        )
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
    def __init__(
        self,
        monitor: Monitor | None,
        shadow: ShadowScorer,
        *,
        io_executor: concurrent.futures.Executor,
        settle: Callable[[], Awaitable[object]] | None = None,
        role_of: Callable[[str, str], str] | None = None,
        quality: Callable[[str], Mapping[str, Quality]] | None = None,
    ) -> None:
        self._monitor = monitor
        self._role_of = role_of  # (model, version) -> its role in the routing table
        self._quality = quality  # model -> version -> delayed-label quality (feedback)
        self._shadow = shadow
        self._io = io_executor
        # Served requests reach the monitor through the tap queue: a refresh first waits
        # (briefly) for what is already queued there, so it covers every answered call.
        self._settle = settle

    async def GetDrift(self, request: pb.GetDriftRequest, context: Context) -> pb.GetDriftResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        if self._monitor is None:
            raise FailedPrecondition("drift monitoring is off on this gateway (monitoring=false)")
        if request.refresh:
            if self._settle is not None:
                await self._settle()
            snap = await run_blocking(self._io, self._monitor.refresh)
        else:
            snap = self._monitor.snapshot()
        versions = snap.versions.get(request.model, {})
        if request.version:
            # A version no longer served (rolled back, retired) answers with its last report.
            found = versions.get(request.version) or snap.retired.get(
                (request.model, request.version)
            )
            if found is None:
                raise NotFound(
                    f"model '{request.model}' version '{request.version}' has no monitored "
                    "traffic on this gateway yet"
                )
            chosen = [found]
        else:
            if not versions:
                raise NotFound(f"model '{request.model}' has no monitored traffic yet")
            chosen = [versions[v] for v in sorted(versions)]
        return pb.GetDriftResponse(
            versions=[version_to_proto(v, histograms=request.include_histograms) for v in chosen],
            monitor_enqueued=snap.enqueued,
            monitor_dropped=snap.dropped,
        )

    async def GetShadowReport(
        self, request: pb.GetShadowReportRequest, context: Context
    ) -> pb.GetShadowReportResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        snap = self._shadow.snapshot()
        return pb.GetShadowReportResponse(
            comparisons=[shadow_to_proto(r) for r in snap.for_model(request.model)],
            dropped=snap.dropped.get(request.model, 0),
            pending=snap.pending,
        )

    async def GetPerformance(
        self, request: pb.GetPerformanceRequest, context: Context
    ) -> pb.GetPerformanceResponse:
        if not request.model:
            raise InvalidArgument("model is required")
        if self._monitor is None:
            raise FailedPrecondition("drift monitoring is off on this gateway (monitoring=false)")
        if request.refresh:
            if self._settle is not None:
                await self._settle()
            snap = await run_blocking(self._io, self._monitor.refresh)
        else:
            snap = self._monitor.snapshot()
        versions = snap.versions.get(request.model, {})
        if not versions:
            raise NotFound(f"model '{request.model}' has no monitored traffic yet")
        quality = {} if self._quality is None else self._quality(request.model)
        out = []
        for name in sorted(versions):
            vd = versions[name]
            role = "" if self._role_of is None else self._role_of(request.model, name)
            out.append(performance_to_proto(vd, role, quality.get(name)))
        return pb.GetPerformanceResponse(versions=out)


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
