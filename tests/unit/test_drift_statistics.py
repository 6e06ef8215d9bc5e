"""The drift statistics table: every reader finds every row, and the series say their test."""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gateway._proto import monitoring_pb2 as pb
from gateway.cli.monitoring import drift_payload
from gateway.console.pages import drift_page
from gateway.monitoring import statistics
from gateway.monitoring.collector import MonitoringCollector
from gateway.monitoring.drift import compute_drift
from gateway.monitoring.monitor import MonitorSnapshot, SideDrift, VersionDrift
from gateway.monitoring.profiles import build_profile
from gateway.monitoring.report import render_html
from gateway.monitoring.shadow import ShadowSnapshot
from gateway.monitoring.statistics import DRIFT_STATISTICS, DriftInputs, DriftStatistic
from gateway.monitoring.windows import BinnedCounts
from gateway.transport.monitoring import version_to_proto


def _mixed() -> tuple[SideDrift, np.ndarray]:
    """A categorical feature with an unseen level and a numeric one that shifted."""
    rng = np.random.default_rng(1)
    ref = np.column_stack([rng.integers(0, 3, 3000).astype(float), rng.normal(size=3000)])
    win = np.column_stack([rng.integers(0, 4, 500).astype(float), rng.normal(1.0, 1, 500)])
    profile = build_profile(ref, ["c", "x"])
    assert profile.categorical.tolist() == [True, False]
    report = compute_drift(profile, win)
    side = SideDrift(report, profile, np.zeros((2, 10), np.int64), BinnedCounts(profile.edges))
    return side, win


def _snapshot(side: SideDrift) -> MonitorSnapshot:
    vd = VersionDrift("m", "1", "reference", 500, 500, side, None, (), 0.0)
    return MonitorSnapshot(MappingProxyType({"m": MappingProxyType({"1": vd})}), 0, 0)


def test_rows_are_unique_and_name_report_arrays_and_proto_fields() -> None:
    side, _ = _mixed()
    names = [row.name for row in DRIFT_STATISTICS]
    assert len(set(names)) == len(names)
    wires = [row.wire for row in DRIFT_STATISTICS if row.wire is not None]
    assert len(set(wires)) == len(wires)
    fields = set(pb.FeatureDrift.DESCRIPTOR.fields_by_name)
    for row in DRIFT_STATISTICS:
        assert side.report.value(row.name).shape == (2,)
        assert row.compute is not None or row.wire is None or row.wire in fields, row.name


def test_categorical_p_value_has_its_own_series_and_unseen_share_is_exported() -> None:
    side, _ = _mixed()
    r = side.report
    reg = CollectorRegistry()
    reg.register(MonitoringCollector(lambda: _snapshot(side), lambda: ShadowSnapshot((), {})))
    labels = {"model": "m", "version": "1", "side": "inputs"}
    cat, num = {**labels, "feature": "c"}, {**labels, "feature": "x"}
    assert reg.get_sample_value("onnxgate_drift_ks_pvalue_adjusted", cat) is None
    chi2 = reg.get_sample_value("onnxgate_drift_chi2_pvalue_adjusted", cat)
    assert chi2 == pytest.approx(float(r.p_adjusted[0]))
    assert reg.get_sample_value("onnxgate_drift_ks_pvalue_adjusted", num) == pytest.approx(
        float(r.p_adjusted[1])
    )
    assert reg.get_sample_value("onnxgate_drift_chi2_pvalue_adjusted", num) is None
    unseen = reg.get_sample_value("onnxgate_drift_unseen_share", cat)
    assert unseen == pytest.approx(float(r.unseen_share[0])) and unseen > 0.1
    assert reg.get_sample_value("onnxgate_drift_unseen_share", num) is None


def test_unseen_share_reaches_the_wire_cli_report_and_console(
    capsys: pytest.CaptureFixture[str],
) -> None:
    side, _ = _mixed()
    vd = _snapshot(side).versions["m"]["1"]
    resp = pb.GetDriftResponse(versions=[version_to_proto(vd)])
    (feature,) = [f for f in resp.versions[0].sides[0].features if f.name == "c"]
    assert feature.unseen_share == pytest.approx(float(side.report.unseen_share[0]))
    payload = drift_payload("m", resp)
    rows = {f["name"]: f for f in payload["versions"][0]["sides"][0]["features"]}
    assert rows["c"]["unseen_share"] == feature.unseen_share
    assert rows["x"]["unseen_share"] is None
    assert "<th>unseen</th>" in render_html(payload)
    assert "unseen" in drift_page("m", payload, "alice")

    from gateway.cli.monitoring import _drift_table

    _drift_table(payload, outputs=False)
    header = capsys.readouterr().out.splitlines()[2].split()
    assert header == [
        "FEATURE",
        "PSI",
        "KS",
        "P",
        "P_ADJ",
        "W/STD",
        "MEAN_SHIFT",
        "UNSEEN",
        "VERDICT",
    ]


def test_a_new_row_with_its_function_reaches_every_reader(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Adding a statistic is one row and its function: nothing else names it."""

    def median_shift(inputs: DriftInputs) -> np.ndarray:
        return np.nanmedian(inputs.window_sorted, axis=1) - inputs.profile.mean

    row = DriftStatistic(
        "median_shift",
        "Window median minus reference mean.",
        wire="median_shift",
        metric="onnxgate_drift_median_shift",
        header="median shift",
        cli="MEDIAN_SHIFT",
        console="median shift",
        compute=median_shift,
    )
    table = (*DRIFT_STATISTICS, row)
    for module in ("gateway.monitoring.drift", "gateway.monitoring.report",
                   "gateway.cli.monitoring", "gateway.console.pages",
                   "gateway.transport.monitoring"):  # fmt: skip
        monkeypatch.setattr(f"{module}.DRIFT_STATISTICS", table, raising=False)
    monkeypatch.setattr(statistics, "DRIFT_STATISTICS", table)
    import gateway.monitoring.collector as collector
    import gateway.transport.monitoring as transport

    monkeypatch.setattr(collector, "_FEATURE_STATS", (row,))
    monkeypatch.setattr(transport, "_WIRE_STATS", (row,))
    side, _ = _mixed()
    assert side.report.extra["median_shift"].shape == (2,)
    reg = CollectorRegistry()
    reg.register(MonitoringCollector(lambda: _snapshot(side), lambda: ShadowSnapshot((), {})))
    x = {"model": "m", "version": "1", "side": "inputs", "feature": "x"}
    assert reg.get_sample_value("onnxgate_drift_median_shift", x) == pytest.approx(
        float(side.report.extra["median_shift"][1])
    )
    resp = pb.GetDriftResponse(versions=[version_to_proto(_snapshot(side).versions["m"]["1"])])
    assert "median_shift" in resp.versions[0].sides[0].features[0].extra
    payload = drift_payload("m", resp)
    assert payload["versions"][0]["sides"][0]["features"][0]["median_shift"] is not None
    assert "<th>median shift</th>" in render_html(payload)
    assert "median shift" in drift_page("m", payload, "alice")


def test_by_name() -> None:
    assert statistics.by_name("js").wire == "js_distance"
    with pytest.raises(KeyError):
        statistics.by_name("nope")
