"""The trace context (gateway.traces), tracing settings, and tracing off costing nothing."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gateway.settings import Settings, SettingsError
from gateway.traces import RequestTrace, Tracing, parse_traceparent
from gateway.tracing.build import build_tracing
from gateway.tracing.export import traces_url

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_valid_traceparent_is_read() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == (TRACE, SPAN, True)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == (TRACE, SPAN, False)
    # A later version may append fields: the first four are still read (W3C).
    assert parse_traceparent(f"01-{TRACE}-{SPAN}-03-extra") == (TRACE, SPAN, True)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        f"ff-{TRACE}-{SPAN}-01",  # version ff is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero span id
        f"00-{TRACE.upper()}-{SPAN}-01",  # ids are lower-case hex
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-zz",
        "garbage",
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None
    headers = {"traceparent": value, "tracestate": "k=v"}
    trace = Tracing(lambda _: None).begin("http", time.perf_counter(), headers.get)
    assert trace is not None
    assert len(trace.trace_id) == 32 and trace.parent_id == "" and trace.sampled
    assert trace.tracestate == ""  # tracestate only travels with its traceparent
    # With nothing exported (only the prediction log on) no id is made up, and no trace is
    # kept at all: its stamps would cost every call for nothing.
    assert Tracing(None).begin("http", time.perf_counter(), headers.get) is None


def test_begin_keeps_the_callers_context_and_stamps_convert_to_epoch_ns() -> None:
    received = time.perf_counter()
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "a=1,b=2"}
    before = time.time_ns()
    trace = Tracing(None).begin("grpc", received, headers.get)
    assert trace is not None
    assert (trace.trace_id, trace.parent_id, trace.tracestate) == (TRACE, SPAN, "a=1,b=2")
    assert len(trace.span_id) == 16 and trace.span_id != SPAN
    assert abs(trace.wall_ns - before) < 50_000_000
    assert trace.ns(received + 0.25) - trace.wall_ns == 250_000_000


def test_end_exports_only_sampled_traces() -> None:
    sent: list[object] = []
    tracing = Tracing(sent.append)
    sampled = RequestTrace("grpc", time.perf_counter(), TRACE, SPAN, True)
    unsampled = RequestTrace("grpc", time.perf_counter(), TRACE, SPAN, False)
    tracing.end(sampled, "OK")
    tracing.end(unsampled, "NOT_FOUND")
    assert sent == [sampled] and unsampled.status == "NOT_FOUND" and unsampled.encoded > 0


def test_the_standard_otel_variables_fill_otel_endpoint() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert Settings.load(environ=env).tracing.otel_endpoint == "http://collector:4318"
    env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = "http://traces:4318/v1/traces"
    assert Settings.load(environ=env).otel_endpoint == "http://traces:4318/v1/traces"
    env["ONNXGATE_OTEL_ENDPOINT"] = "https://ours:4318"
    assert Settings.load(environ=env).otel_endpoint == "https://ours:4318"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://t:4318/v1/traces") == "http://t:4318/v1/traces"
    with pytest.raises(SettingsError, match="otel_endpoint must be an http"):
        Settings(otel_endpoint="collector:4317")
    with pytest.raises(SettingsError, match="otel_queue"):
        Settings(otel_queue=0)


def test_tracing_off_builds_nothing_and_loads_no_opentelemetry() -> None:
    assert build_tracing(Settings().tracing, prediction_log=False) is None
    ids_only = build_tracing(Settings().tracing, prediction_log=True)
    assert ids_only is not None and ids_only.export is None
    code = (
        "import sys; from gateway.server import Gateway; from gateway.settings import Settings\n"
        "from gateway.tracing.build import build_tracing\n"
        "assert build_tracing(Settings().tracing, False) is None\n"
        "loaded = [m for m in sys.modules if m.startswith('opentelemetry')]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
