"""One frozen, validated settings object, built once from defaults, a TOML file, the
environment (``ONNXGATE_*``) and CLI flags — later sources win, in that order.

The loader takes the environment as a mapping so that tests pass a plain dict.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.access import parse_role_table, roles_in_token_spec, split_token_entry

__all__ = ["Settings", "SettingsError", "listen_error"]

ENV_PREFIX = "ONNXGATE_"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


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

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be in 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise SettingsError(f"metrics_port must be in -1..65535, got {self.metrics_port}")
        if not -1 <= self.http_port <= 65535:
            raise SettingsError(f"http_port must be in -1..65535, got {self.http_port}")
        positive = ("workers", "max_message_bytes", "max_inflight", "max_batch_size", "max_queue")
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "grace_s",
            "poll_interval_s",
            "max_delay_us",
            "intra_op_threads",
            "inline_below_us",
            "max_inflight_per_model",
            "retry_after_ms",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.artifact_store and not self.artifact_store.startswith("s3://"):
            raise SettingsError(
                f"artifact_store must be s3://BUCKET/PREFIX (or empty), got {self.artifact_store!r}"
            )
        self.response_cache_sizes  # noqa: B018 - validates the "model=entries" items
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        try:
            parse_role_table(self.admin_roles)
        except ValueError as exc:
            raise SettingsError(f"setting admin_roles: {exc}") from None
        self._check_monitoring()
        self._check_governor()
        self._check_explain()

    def _check_monitoring(self) -> None:
        if not 0.0 < self.monitor_sample <= 1.0:
            raise SettingsError(f"monitor_sample must be in (0, 1], got {self.monitor_sample}")
        if not 0.0 < self.monitor_alpha < 1.0:
            raise SettingsError(f"monitor_alpha must be in (0, 1), got {self.monitor_alpha}")
        if self.monitor_correction not in ("bh", "bonferroni", "none"):
            raise SettingsError(
                "monitor_correction must be bh, bonferroni or none, "
                f"got {self.monitor_correction!r}"
            )
        counts = ("monitor_queue", "monitor_window", "monitor_min_rows", "monitor_top_k")
        for name in (*counts, "shadow_queue", "shadow_threads", "tap_queue"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.monitor_interval_s <= 0:
            raise SettingsError(f"monitor_interval_s must be > 0, got {self.monitor_interval_s}")

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

    def _check_governor(self) -> None:
        for name in ("governor_interval_s", "feedback_ttl_s", "fleet_publish_s", "fleet_lease_s"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.fleet_lease_s < self.fleet_publish_s:
            raise SettingsError("fleet_lease_s must be >= fleet_publish_s")
        if self.fleet_outbox < 1:
            raise SettingsError(f"fleet_outbox must be >= 1, got {self.fleet_outbox}")
        if self.feedback_records < 1:
            raise SettingsError(f"feedback_records must be >= 1, got {self.feedback_records}")

    def _check_explain(self) -> None:
        for name in (
            "explain_threads",
            "explain_queue",
            "explain_background",
            "explain_max_rows",
            "explain_sample_rows",
            "explain_sample_queue",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.explain_deadline_s <= 0:
            raise SettingsError(f"explain_deadline_s must be > 0, got {self.explain_deadline_s}")
        if self.explain_processes < 0:
            raise SettingsError(f"explain_processes must be >= 0, got {self.explain_processes}")
        if self.explain_sample_rate < 0:
            raise SettingsError(f"explain_sample_rate must be >= 0, got {self.explain_sample_rate}")

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
