"""One frozen, validated settings object, built once from defaults, a TOML file, the
environment (``ONNXGATE_*``) and CLI flags — later sources win, in that order.

The loader takes the environment as a mapping so that tests pass a plain dict. The fields
stay flat (their names are the keys); packages read their own section of them
(``settings.serving``, ``settings.monitor``, ... :mod:`gateway.sections`), and each section
validates its own fields when the settings are made.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from gateway.access import parse_role_table, roles_in_token_spec, split_token_entry
from gateway.sections import (
    AccessSettings,
    ExplainSettings,
    FleetSettings,
    GovernorSettings,
    ListenSettings,
    MonitorSettings,
    ServingSettings,
    SettingsError,
    TracingSettings,
)

__all__ = ["Settings", "SettingsError", "listen_error"]

ENV_PREFIX = "ONNXGATE_"
_Section = TypeVar("_Section")
# The properties below that build a section (gateway.sections), each validating its fields.
_SECTIONS = ("listen", "access", "serving", "monitor", "governor_section", "fleet_section",
             "explain", "tracing")  # fmt: skip
# The OpenTelemetry SDK's own variables, read when otel_endpoint is not set: the traces URL,
# else the base URL (spans then go to BASE/v1/traces).
OTEL_ENDPOINT_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
OTEL_HEADERS_ENV = ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told. Field names double as env/TOML keys."""

    registry: str = "sqlite:///onnxgate-data/registry.db"
    artifact_dir: Path = Path("onnxgate-data/artifacts")
    # "s3://BUCKET/PREFIX": artifacts in object storage (endpoint and credentials from the
    # standard AWS environment), artifact_dir then being their bounded local cache.
    artifact_store: str = ""
    host: str = "0.0.0.0"
    port: int = 8001
    metrics_port: int = 8002  # -1 disables the /metrics endpoint; 0 picks a free port
    # OIP v2 over HTTP/REST and the operator console (/ui); -1 disables; 0 picks a free port.
    http_port: int = 8000
    workers: int = 1
    max_message_bytes: int = 64 * 1024 * 1024
    # Bodies whose decoding loops in Python (BYTES, typed contents) from this size decode on a
    # thread; JSON bodies from decode_process_bytes parse in a separate process (json.loads
    # holds the GIL). 0 turns either off (gateway.transport.decoding).
    decode_thread_bytes: int = 64 * 1024
    decode_process_bytes: int = 256 * 1024
    max_inflight: int = 4096  # concurrent ModelInfer calls per worker before RESOURCE_EXHAUSTED
    max_inflight_per_model: int = 0  # the same, per model and worker; 0: only max_inflight
    retry_after_ms: int = 100  # back-off hint with RESOURCE_EXHAUSTED (grpc-retry-pushback-ms)
    # SIGTERM: requests in flight or queued get this long to finish (the drain deadline).
    grace_s: float = 5.0
    poll_interval_s: float = 0.5  # how often the registry's change counter is read
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0  # 0: cores / workers
    # Executor threads for onnxruntime calls (made on demand); 0: 8 per worker. One version
    # holds at most 2 at once, so a slow model leaves the rest to the others.
    inference_threads: int = 0
    batching: bool = True
    max_batch_size: int = 64
    max_delay_us: int = 500
    max_queue: int = 1024
    inline_below_us: int = 100  # runs predicted shorter than this skip the executor hop
    admin_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # token -> who
    # principal -> viewer | operator | approver | admin; a principal not named is an admin.
    admin_roles: Mapping[str, str] = field(default_factory=dict)
    predict_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # empty: open
    # Console sign-in: session lifetime, and failed sign-ins per client per minute.
    console_session_s: float = 8 * 3600.0
    console_login_attempts: int = 10
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate (mTLS)
    log_level: str = "INFO"
    # Drift monitoring and shadow scoring (gateway.monitoring.monitor, gateway.monitoring.shadow).
    monitoring: bool = True  # off: no windows, no drift (shadow scoring still runs)
    monitor_sample: float = 1.0  # share of requests whose tensors are monitored
    monitor_queue: int = 1024  # requests waiting for the monitor; beyond it they are dropped
    monitor_window: int = 10_000  # rows per version in the count-based window
    monitor_min_rows: int = 1_000  # rows a window needs before drift is computed on it
    monitor_interval_s: float = 10.0  # how often drift reports are recomputed
    monitor_alpha: float = 0.01  # significance level after multiple-testing correction
    monitor_correction: str = "bh"  # bh (Benjamini-Hochberg) | bonferroni | none
    monitor_top_k: int = 20  # features per version/side exported to Prometheus
    shadow_queue: int = 256  # shadow requests waiting or running; beyond it they are dropped
    shadow_threads: int = 1  # executor threads for shadow inference
    # Served requests waiting for the taps (shadow, monitor, feedback); beyond it dropped.
    tap_queue: int = 4096
    # The governor (gateway.governor.loop) and delayed labels (gateway.governor.feedback).
    governor: bool = True  # off: no governor loop, and no predictions kept for feedback
    governor_interval_s: float = 1.0  # loop tick; each policy sets its model's own interval
    feedback_records: int = 100_000  # recent predictions kept to join delayed labels to
    # ... and at most this many bytes of them (ids, predictions, kept inputs), oldest first.
    feedback_max_bytes: int = 256 * 1024 * 1024
    feedback_ttl_s: float = 86_400.0  # older predictions no longer accept a label
    # Response cache (gateway.serving.cache), opt-in per model: "model=entries,...".
    response_cache: tuple[str, ...] = ()
    # The fleet (gateway.fleet): processes sharing evidence, predictions and windows through
    # the registry database. Unset: on whenever the registry is shared (PostgreSQL) or with
    # --workers > 1 (see fleet_on); false opts out, true forces it (several SQLite replicas).
    fleet: bool | None = None
    fleet_publish_s: float = 2.0  # how often each process publishes (and reads the merge)
    fleet_lease_s: float = 10.0  # a process silent this long is no longer a member
    fleet_outbox: int = 65_536  # predictions waiting to be shared; beyond it dropped
    # Explanations (gateway.explain): their own executor, queue and deadline.
    explain_threads: int = 1  # executor threads for explanations (never the inference pool)
    explain_processes: int = 1  # niced worker processes for explanations; 0: threads here
    explain_queue: int = 8  # explanations queued or running; beyond it RESOURCE_EXHAUSTED
    explain_deadline_s: float = 30.0  # default deadline of one Explain call
    explain_background: int = 32  # weighted k-means rows summarising the reference sample
    explain_max_rows: int = 256  # rows per Explain call
    explain_keep_inputs: bool = True  # keep small requests' inputs by id, to explain later
    explain_sample_rate: float = 1.0  # requests/s sampled for global importance; 0: off
    explain_sample_rows: int = 4  # rows of each sampled request explained
    explain_sample_queue: int = 64  # sampled requests waiting; beyond it they are dropped
    # The prediction log (gateway.predictionlog): sink URLs, comma-separated; empty: off.
    # "file:DIR" or a plain path: Parquet files; "http(s)://...": CloudEvents (KServe's format).
    prediction_log: tuple[str, ...] = ()
    prediction_log_sample: float = 1.0  # share of request ids logged (by a hash of the id)
    prediction_log_sample_models: tuple[str, ...] = ()  # NAME=SHARE: that model's own share
    prediction_log_inputs: bool = True  # false: keep only outputs (privacy)
    prediction_log_roll_mb: int = 128  # a Parquet file closes past this size...
    prediction_log_roll_s: float = 3600.0  # ...or this age
    # OpenTelemetry tracing (gateway.tracing, the otel extra): an OTLP/HTTP URL; empty: off.
    otel_endpoint: str = ""
    otel_queue: int = 4096  # finished traces waiting for export; beyond it they are dropped
    otel_headers: tuple[str, ...] = ()  # "name=value" sent with every export (may be secret)

    def __post_init__(self) -> None:
        # Each section checks its own fields; building them all refuses a bad value now.
        for name in _SECTIONS:
            getattr(self, name)
        self._check_prediction_log()
        if self.artifact_store and not self.artifact_store.startswith("s3://"):
            raise SettingsError(
                f"artifact_store must be s3://BUCKET/PREFIX (or empty), got {self.artifact_store!r}"
            )

    def _section(self, cls: type[_Section]) -> _Section:
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        return cls(**{name: getattr(self, name) for name in names})

    @cached_property
    def listen(self) -> ListenSettings:
        return self._section(ListenSettings)

    @cached_property
    def access(self) -> AccessSettings:
        return self._section(AccessSettings)

    @cached_property
    def serving(self) -> ServingSettings:
        return self._section(ServingSettings)

    @cached_property
    def monitor(self) -> MonitorSettings:
        return self._section(MonitorSettings)

    @cached_property
    def governor_section(self) -> GovernorSettings:
        """(``governor`` is the flat on/off key, so the section goes by this name.)"""
        return self._section(GovernorSettings)

    @cached_property
    def fleet_section(self) -> FleetSettings:
        """(``fleet`` is the flat on/off key, so the section goes by this name.)"""
        return self._section(FleetSettings)

    @cached_property
    def explain(self) -> ExplainSettings:
        return self._section(ExplainSettings)

    @cached_property
    def tracing(self) -> TracingSettings:
        return self._section(TracingSettings)

    @property
    def response_cache_sizes(self) -> dict[str, int]:
        """``response_cache`` as model -> entries (SettingsError naming a bad item)."""
        return self.serving.response_cache_sizes

    def _check_prediction_log(self) -> None:
        if not 0.0 <= self.prediction_log_sample <= 1.0:
            raise SettingsError(
                f"prediction_log_sample must be in [0, 1], got {self.prediction_log_sample}"
            )
        _ = self.prediction_log_shares  # validates the NAME=SHARE items, naming a bad one
        if self.prediction_log_roll_mb < 1:
            raise SettingsError(
                f"prediction_log_roll_mb must be >= 1, got {self.prediction_log_roll_mb}"
            )
        if self.prediction_log_roll_s <= 0:
            raise SettingsError(
                f"prediction_log_roll_s must be > 0, got {self.prediction_log_roll_s}"
            )
        for item in self.prediction_log:
            bucket = item.removeprefix("s3://").split("/", 1)[0].split("?", 1)[0]
            if item.startswith("s3://") and not bucket:
                raise SettingsError(f"prediction_log {item!r}: expected s3://BUCKET/PREFIX")

    @property
    def prediction_log_shares(self) -> dict[str, float]:
        """``prediction_log_sample_models`` as model -> share (SettingsError naming a bad item)."""
        shares: dict[str, float] = {}
        for item in self.prediction_log_sample_models:
            name, sep, share = item.partition("=")
            try:
                value = float(share)
            except ValueError:
                value = -1.0
            if not sep or not name.strip() or not 0.0 <= value <= 1.0:
                raise SettingsError(
                    f"prediction_log_sample_models {item!r}: expected NAME=SHARE, SHARE in [0, 1]"
                )
            shares[name.strip()] = value
        return shares

    @property
    def effective_intra_op_threads(self) -> int:
        return self.serving.effective_intra_op_threads

    @property
    def effective_inference_threads(self) -> int:
        return self.serving.effective_inference_threads

    @property
    def fleet_on(self) -> bool:
        """Whether this process joins the fleet: ``fleet`` when set, else whenever the
        registry is PostgreSQL (made to be shared) or there are several workers."""
        if self.fleet is not None:
            return self.fleet
        return self.workers > 1 or self.registry.startswith("postgresql")

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        toml_path: Path | str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """Defaults < TOML file (``ONNXGATE_CONFIG`` or ``toml_path``) < env < overrides."""
        env = os.environ if environ is None else environ
        raw: dict[str, Any] = {}
        path = toml_path or env.get(ENV_PREFIX + "CONFIG")
        if path:
            try:
                with open(path, "rb") as fh:
                    doc = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise SettingsError(f"cannot read config file {path}: {exc}") from exc
            raw.update(doc.get("gateway", doc))
        for f in dataclasses.fields(cls):
            key = ENV_PREFIX + f.name.upper()
            if key in env:
                raw[f.name] = env[key]
        # ONNXGATE_ADMIN_TOKEN is the one-operator shorthand: principal "admin" (role admin).
        # (Written as the TOML table form, principal = token.)
        if ENV_PREFIX + "ADMIN_TOKEN" in env and "admin_tokens" not in raw:
            raw["admin_tokens"] = {"admin": env[ENV_PREFIX + "ADMIN_TOKEN"]}
        # "alice:approver:TOKEN" entries in a token list carry their principal's role.
        if isinstance(raw.get("admin_tokens"), str) and "admin_roles" not in raw:
            try:
                raw["admin_roles"] = roles_in_token_spec(raw["admin_tokens"])
            except ValueError as exc:
                raise SettingsError(f"setting admin_tokens: {exc}") from None
        standards = (("otel_endpoint", OTEL_ENDPOINT_ENV), ("otel_headers", OTEL_HEADERS_ENV))
        for key, names in standards:
            standard = next((env[name] for name in names if env.get(name)), None)
            if key not in raw and standard is not None:
                raw[key] = standard
        raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(known))
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        values = {name: _coerce(name, known[name].type, value) for name, value in raw.items()}
        return cls(**values)


def _coerce(name: str, annotation: Any, value: Any) -> Any:
    """Turn a TOML/env/CLI value into the field's type, naming the field on failure."""
    kind = str(annotation)
    try:
        if kind in ("bool", "bool | None"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"not a boolean: {value!r}")
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
        if kind.startswith("Path"):
            return None if value in (None, "") else Path(value)
        if kind.startswith("tuple"):
            if isinstance(value, Mapping):  # a TOML table {name = value}: NAME=VALUE items
                value = [f"{k}={v}" for k, v in value.items()]
            items = value if isinstance(value, list | tuple) else str(value).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        if kind.startswith("Mapping"):
            return parse_role_table(value) if name == "admin_roles" else _parse_tokens(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: {exc}") from exc
    raise SettingsError(f"setting {name}: unsupported type {kind}")


def _parse_tokens(value: Any) -> dict[str, str]:
    """``principal:token,principal2:role:token2`` (env) or a TOML table {principal = token}.

    A role in an entry is read by :func:`gateway.access.roles_in_token_spec`; here only the
    token -> principal mapping is kept.
    """
    if isinstance(value, Mapping):
        if all(isinstance(v, str) for v in value.values()):
            # TOML is written principal = "token"; stored token -> principal.
            return {str(token): str(principal) for principal, token in value.items()}
        raise ValueError("token table values must be strings")
    tokens: dict[str, str] = {}
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        principal, _role, token = split_token_entry(item)
        tokens[token] = principal
    return tokens


def listen_error(what: str, address: str, setting: str, why: str | None = None) -> SettingsError:
    """The one line for a port that cannot be listened on, naming the setting that chose it."""
    flag = "--" + setting.replace("_", "-")
    env = "ONNXGATE_" + setting.upper()
    return SettingsError(
        f"cannot listen for {what} on {address} ({why or 'address in use?'}): choose another "
        f"port with {flag} or {env} (setting {setting})"
    )
