"""The settings in sections: one frozen view per concern, each validating its own fields.

:class:`gateway.settings.Settings` stays one flat object (its field names are the env and
TOML keys, and engineers add fields to it); each section here is a frozen dataclass whose
fields carry the SAME names as the flat fields they view, built by ``Settings``'s
properties (``settings.serving``, ``settings.monitor``, ``settings.explain``, ...; the
governor's and the fleet's are ``governor_section`` and ``fleet_section``, their flat on/off
keys having the short names). A package takes its section, not the whole ``Settings``:
the catalog reads :class:`ServingSettings`, the monitor :class:`MonitorSettings`, the
explain assembly :class:`ExplainSettings`. Each section checks its own fields in
``__post_init__``, and ``Settings`` builds every section when it is made, so a bad value is
refused at once, with the same :class:`SettingsError` line whichever way it was given.

A new setting: a flat field on ``Settings`` (its key) and, if a package reads it, the same
name here on that package's section.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gateway.access import parse_role_table

__all__ = [
    "AccessSettings",
    "ExplainSettings",
    "FleetSettings",
    "GovernorSettings",
    "ListenSettings",
    "MonitorSettings",
    "ServingSettings",
    "SettingsError",
    "TracingSettings",
]


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


def _at_least(section: object, bound: int | float, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(section, name) < bound:
            raise SettingsError(f"{name} must be >= {bound}, got {getattr(section, name)}")


def _positive(section: object, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(section, name) <= 0:
            raise SettingsError(f"{name} must be > 0, got {getattr(section, name)}")


@dataclass(frozen=True)
class ListenSettings:
    """Where the faces listen (gRPC, HTTP, /metrics), their TLS and body limits."""

    host: str
    port: int
    metrics_port: int
    http_port: int
    max_message_bytes: int
    decode_thread_bytes: int
    decode_process_bytes: int
    tls_cert: Path | None
    tls_key: Path | None
    tls_client_ca: Path | None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be in 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise SettingsError(f"metrics_port must be in -1..65535, got {self.metrics_port}")
        if not -1 <= self.http_port <= 65535:
            raise SettingsError(f"http_port must be in -1..65535, got {self.http_port}")
        _at_least(self, 1, ("max_message_bytes",))
        _at_least(self, 0, ("decode_thread_bytes", "decode_process_bytes"))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError("tls_client_ca (mTLS) needs tls_cert and tls_key")


@dataclass(frozen=True)
class AccessSettings:
    """Who may call what: tokens, roles, and the console's sign-in."""

    admin_tokens: Mapping[str, str] = field(repr=False)
    admin_roles: Mapping[str, str]
    predict_tokens: Mapping[str, str] = field(repr=False)
    console_session_s: float
    console_login_attempts: int

    def __post_init__(self) -> None:
        _at_least(self, 1, ("console_login_attempts", "console_session_s"))
        try:
            parse_role_table(self.admin_roles)
        except ValueError as exc:
            raise SettingsError(f"setting admin_roles: {exc}") from None


@dataclass(frozen=True)
class ServingSettings:
    """The data plane: admission, drain, loading, batching, the response cache, the taps."""

    workers: int
    max_inflight: int
    max_inflight_per_model: int
    retry_after_ms: int
    grace_s: float
    poll_interval_s: float
    providers: tuple[str, ...]
    intra_op_threads: int
    inference_threads: int
    batching: bool
    max_batch_size: int
    max_delay_us: int
    max_queue: int
    inline_below_us: int
    response_cache: tuple[str, ...]
    tap_queue: int

    def __post_init__(self) -> None:
        _at_least(self, 1, ("workers", "max_inflight", "max_batch_size", "max_queue", "tap_queue"))
        _at_least(
            self,
            0,
            (
                "grace_s",
                "poll_interval_s",
                "max_delay_us",
                "intra_op_threads",
                "inline_below_us",
                "max_inflight_per_model",
                "retry_after_ms",
            ),
        )
        self.response_cache_sizes  # noqa: B018 - validates the "model=entries" items

    @property
    def response_cache_sizes(self) -> dict[str, int]:
        """``response_cache`` as model -> entries (SettingsError naming a bad item)."""
        sizes: dict[str, int] = {}
        for item in self.response_cache:
            model, sep, size = item.partition("=")
            if not sep or not model.strip() or not size.strip().isdigit() or int(size) < 1:
                raise SettingsError(f"response_cache: expected MODEL=ENTRIES (>= 1), got {item!r}")
            sizes[model.strip()] = int(size)
        return sizes

    @property
    def effective_intra_op_threads(self) -> int:
        # NOTE: one core per worker is left to its event loop (gRPC, decoding, batching).
        # Measured on 2 cores, small MLP at 64 in flight: 2 intra-op threads gave 3.2k req/s,
        # 1 thread 5.2k — the spinning pool took the core the loop needed.
        if self.intra_op_threads:
            return self.intra_op_threads
        return max(1, (os.cpu_count() or 1) // self.workers - 1)

    @property
    def effective_inference_threads(self) -> int:
        return self.inference_threads or 8


@dataclass(frozen=True)
class MonitorSettings:
    """Drift monitoring and shadow scoring."""

    monitoring: bool
    monitor_sample: float
    monitor_queue: int
    monitor_window: int
    monitor_min_rows: int
    monitor_interval_s: float
    monitor_alpha: float
    monitor_correction: str
    monitor_top_k: int
    shadow_queue: int
    shadow_threads: int

    def __post_init__(self) -> None:
        if not 0.0 < self.monitor_sample <= 1.0:
            raise SettingsError(f"monitor_sample must be in (0, 1], got {self.monitor_sample}")
        if not 0.0 < self.monitor_alpha < 1.0:
            raise SettingsError(f"monitor_alpha must be in (0, 1), got {self.monitor_alpha}")
        if self.monitor_correction not in ("bh", "bonferroni", "none"):
            raise SettingsError(
                "monitor_correction must be bh, bonferroni or none, "
                f"got {self.monitor_correction!r}"
            )
        _at_least(
            self,
            1,
            (
                "monitor_queue",
                "monitor_window",
                "monitor_min_rows",
                "monitor_top_k",
                "shadow_queue",
                "shadow_threads",
            ),
        )
        _positive(self, ("monitor_interval_s",))


@dataclass(frozen=True)
class GovernorSettings:
    """The governor loop and the delayed-label record (and its request journal)."""

    governor: bool
    governor_interval_s: float
    feedback_records: int
    feedback_max_bytes: int
    feedback_ttl_s: float

    def __post_init__(self) -> None:
        _positive(self, ("governor_interval_s", "feedback_ttl_s"))
        _at_least(self, 1, ("feedback_records", "feedback_max_bytes"))


@dataclass(frozen=True)
class FleetSettings:
    """Processes sharing evidence, predictions and windows through the registry database."""

    fleet: bool | None  # None: on when the registry is shared (see Settings.fleet_on)
    fleet_publish_s: float
    fleet_lease_s: float
    fleet_outbox: int

    def __post_init__(self) -> None:
        _positive(self, ("fleet_publish_s", "fleet_lease_s"))
        if self.fleet_lease_s < self.fleet_publish_s:
            raise SettingsError("fleet_lease_s must be >= fleet_publish_s")
        _at_least(self, 1, ("fleet_outbox",))


@dataclass(frozen=True)
class ExplainSettings:
    """Explanations: their executor, processes, queue, deadline and the importance sampler."""

    explain_threads: int
    explain_processes: int
    explain_queue: int
    explain_deadline_s: float
    explain_background: int
    explain_max_rows: int
    explain_keep_inputs: bool
    explain_sample_rate: float
    explain_sample_rows: int
    explain_sample_queue: int
    monitor_top_k: int  # importance gauges exported per version (checked by the monitor's)

    def __post_init__(self) -> None:
        _at_least(
            self,
            1,
            (
                "explain_threads",
                "explain_queue",
                "explain_background",
                "explain_max_rows",
                "explain_sample_rows",
                "explain_sample_queue",
            ),
        )
        _positive(self, ("explain_deadline_s",))
        _at_least(self, 0, ("explain_processes", "explain_sample_rate"))


@dataclass(frozen=True)
class TracingSettings:
    """OpenTelemetry tracing: where spans go (OTLP/HTTP), and the queue in front of it."""

    otel_endpoint: str  # empty: no export (the OTEL_EXPORTER_OTLP_* variables fill it)
    otel_queue: int
    otel_headers: tuple[str, ...]

    @property
    def otel_header_map(self) -> dict[str, str]:
        """``otel_headers`` as a mapping (values URL-decoded, as the OTel variables are)."""
        out: dict[str, str] = {}
        for item in self.otel_headers:
            name, _, value = item.partition("=")
            out[name.strip()] = urllib.parse.unquote(value.strip())
        return out

    def __post_init__(self) -> None:
        for item in self.otel_headers:
            if "=" not in item or not item.partition("=")[0].strip():
                # NOTE: the item is not echoed: a header value may be a credential.
                raise SettingsError("otel_headers: each item must be NAME=VALUE")
        if self.otel_endpoint and not self.otel_endpoint.startswith(("http://", "https://")):
            raise SettingsError(
                f"otel_endpoint must be an http(s):// OTLP/HTTP URL, got {self.otel_endpoint!r}"
            )
        _at_least(self, 1, ("otel_queue",))
