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

__all__ = ["Settings", "SettingsError"]

ENV_PREFIX = "ONNXGATE_"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Everything the gateway can be told. Field names double as env/TOML keys."""

    registry: str = "sqlite:///onnxgate-data/registry.db"
    artifact_dir: Path = Path("onnxgate-data/artifacts")
    host: str = "0.0.0.0"
    port: int = 8001
    metrics_port: int = 8002  # -1 disables the /metrics endpoint; 0 picks a free port
    workers: int = 1
    max_message_bytes: int = 64 * 1024 * 1024
    max_inflight: int = 4096  # concurrent ModelInfer calls per worker before RESOURCE_EXHAUSTED
    grace_s: float = 5.0
    poll_interval_s: float = 0.5  # how often the registry's change counter is read
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    intra_op_threads: int = 0  # 0: cores / workers
    inference_threads: int = 0  # executor threads for onnxruntime calls; 0: 2 per worker
    batching: bool = True
    max_batch_size: int = 64
    max_delay_us: int = 500
    max_queue: int = 1024
    admin_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # token -> who
    predict_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # empty: open
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: clients must present a certificate (mTLS)
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be in 0..65535, got {self.port}")
        if not -1 <= self.metrics_port <= 65535:
            raise SettingsError(f"metrics_port must be in -1..65535, got {self.metrics_port}")
        positive = ("workers", "max_message_bytes", "max_inflight", "max_batch_size", "max_queue")
        for name in positive:
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("grace_s", "poll_interval_s", "max_delay_us", "intra_op_threads"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must be >= 0, got {getattr(self, name)}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise SettingsError("tls_cert and tls_key must be given together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise SettingsError("tls_client_ca (mTLS) needs tls_cert and tls_key")

    @property
    def effective_intra_op_threads(self) -> int:
        if self.intra_op_threads:
            return self.intra_op_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def effective_inference_threads(self) -> int:
        return self.inference_threads or 2

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
        # ONNXGATE_ADMIN_TOKEN is the one-operator shorthand: principal "admin".
        if ENV_PREFIX + "ADMIN_TOKEN" in env and "admin_tokens" not in raw:
            raw["admin_tokens"] = {env[ENV_PREFIX + "ADMIN_TOKEN"]: "admin"}
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
        if kind == "bool":
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
            return _parse_tokens(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name}: {exc}") from exc
    raise SettingsError(f"setting {name}: unsupported type {kind}")


def _parse_tokens(value: Any) -> dict[str, str]:
    """``principal:token,principal2:token2`` (env) or a TOML table {principal = token}."""
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
        principal, sep, token = item.partition(":")
        if not sep or not token:
            raise ValueError("expected principal:token entries separated by commas")
        tokens[token] = principal
    return tokens
