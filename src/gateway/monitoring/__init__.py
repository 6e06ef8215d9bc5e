"""What each version receives and returns, off the request path.

:mod:`~gateway.monitoring.monitor` folds taps into :mod:`~gateway.monitoring.windows` and
judges drift (:mod:`~gateway.monitoring.drift`) against reference profiles
(:mod:`~gateway.monitoring.profiles`, :mod:`~gateway.monitoring.reference`);
:mod:`~gateway.monitoring.shadow` scores shadow versions against what served;
:mod:`~gateway.monitoring.collector` exposes it all to Prometheus and
:mod:`~gateway.monitoring.report` renders HTML. No grpc: servicers read snapshots.
Names load on first use (scipy, onnxruntime stay unimported until needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.lazy import lazy_attributes

if TYPE_CHECKING:
    from gateway.monitoring.collector import MonitoringCollector
    from gateway.monitoring.drift import DriftReport
    from gateway.monitoring.monitor import (
        Monitor,
        MonitorConfig,
        MonitorSnapshot,
        SideDrift,
        VersionDrift,
        feature_order,
    )
    from gateway.monitoring.reference import build_version_profiles, onnx_runner, read_reference
    from gateway.monitoring.report import render_html
    from gateway.monitoring.shadow import ShadowReport, ShadowScorer, ShadowSnapshot

__all__ = [
    "DriftReport",
    "Monitor",
    "MonitorConfig",
    "MonitorSnapshot",
    "MonitoringCollector",
    "ShadowReport",
    "ShadowScorer",
    "ShadowSnapshot",
    "SideDrift",
    "VersionDrift",
    "build_version_profiles",
    "feature_order",
    "onnx_runner",
    "read_reference",
    "render_html",
]

_LAZY = {
    "DriftReport": "gateway.monitoring.drift",
    "Monitor": "gateway.monitoring.monitor",
    "MonitorConfig": "gateway.monitoring.monitor",
    "MonitorSnapshot": "gateway.monitoring.monitor",
    "MonitoringCollector": "gateway.monitoring.collector",
    "ShadowReport": "gateway.monitoring.shadow",
    "ShadowScorer": "gateway.monitoring.shadow",
    "ShadowSnapshot": "gateway.monitoring.shadow",
    "SideDrift": "gateway.monitoring.monitor",
    "VersionDrift": "gateway.monitoring.monitor",
    "build_version_profiles": "gateway.monitoring.reference",
    "feature_order": "gateway.monitoring.monitor",
    "onnx_runner": "gateway.monitoring.reference",
    "read_reference": "gateway.monitoring.reference",
    "render_html": "gateway.monitoring.report",
}


__getattr__ = lazy_attributes(__name__, _LAZY)
