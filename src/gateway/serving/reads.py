"""The data plane's read side: what every face answers besides inference, as domain values.

``ServerReady``, ``ModelReady``, ``ModelMetadata``, Triton's ``ModelConfig``,
``ModelStatistics`` and ``RepositoryIndex`` (gRPC), and ``/v2/health/ready``,
``/v2/models/{m}[/versions/{v}][/ready]`` (HTTP) all ask :class:`Reads`, which reads the
catalog's live tables once; a face only encodes the answer. The protocol's fixed facts
(platform, backend, server name and extensions) live here too, so the faces cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gateway
from gateway.errors import NotFound
from gateway.metrics import VersionStats
from gateway.serving.catalog import Catalog
from registry.signature import TensorSpec

__all__ = [
    "BACKEND",
    "PLATFORM",
    "SERVER_NAME",
    "IndexEntry",
    "ModelConfig",
    "ModelMetadata",
    "Reads",
    "VersionStatistics",
]

SERVER_NAME = "onnxgate"
PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"


@dataclass(frozen=True)
class ModelMetadata:
    """A model as served: its loaded versions and the signature of the one asked for."""

    name: str
    versions: Sequence[str]
    platform: str
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]


@dataclass(frozen=True)
class ModelConfig:
    """Triton's model configuration: with batching on, dims exclude the batch dimension."""

    name: str
    platform: str
    backend: str
    max_batch_size: int
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]

    def dims(self, spec: TensorSpec) -> tuple[int, ...]:
        return spec.shape[1:] if self.max_batch_size > 0 else spec.shape


@dataclass(frozen=True)
class VersionStatistics:
    model: str
    version: str
    stats: VersionStats


@dataclass(frozen=True)
class IndexEntry:
    """One version the gateway knows for a model: READY (loaded) or UNAVAILABLE."""

    name: str
    version: str
    state: str
    reason: str


class Reads:
    """Answers the protocol's read calls from the catalog's live tables."""

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    @property
    def version(self) -> str:
        return gateway.__version__

    def ready(self) -> bool:
        """Every deployed version loaded at least once (health turns SERVING after that)."""
        return self._catalog.ready

    def model_ready(self, model: str, version: str = "") -> bool:
        try:
            self._catalog.find(model, version)
        except NotFound:
            return False
        return True

    def model_metadata(self, model: str, version: str = "") -> ModelMetadata:
        """NotFound for a model or version not served here."""
        served = self._catalog.find(model, version)
        entry = self._catalog.entry(model)
        versions = sorted(entry.served) if entry is not None else [served.version]
        sig = served.loaded.signature
        return ModelMetadata(model, versions, PLATFORM, sig.inputs, sig.outputs)

    def model_config(self, model: str, version: str = "") -> ModelConfig:
        served = self._catalog.find(model, version)
        policy = served.batcher.policy
        max_batch = policy.max_batch_size if policy.enabled else 0
        sig = served.loaded.signature
        return ModelConfig(model, PLATFORM, BACKEND, max_batch, sig.inputs, sig.outputs)

    def statistics(self, model: str = "", version: str = "") -> list[VersionStatistics]:
        """Every loaded version's counters (of ``model``, of ``version``, when given)."""
        entries = self._catalog.entries()
        if model and model not in entries:
            raise NotFound(f"model '{model}' is not known to this gateway")
        out = []
        for name, entry in sorted(entries.items()):
            if model and name != model:
                continue
            for v, served in sorted(entry.served.items()):
                if version and v != version:
                    continue
                out.append(VersionStatistics(name, v, served.counters.statistics()))
        if version and not out:
            raise NotFound(f"model '{model}' version '{version}' is not loaded")
        return out

    def repository_index(self, ready_only: bool = False) -> list[IndexEntry]:
        out = []
        for model, entry in sorted(self._catalog.entries().items()):
            versions = {a.version for a in entry.table.arms} | {
                s.version for s in entry.table.shadows
            }
            for version in sorted(versions | set(entry.served)):
                served = entry.served.get(version)
                if ready_only and served is None:
                    continue
                # A loaded version says why its warm-up was skipped (a string-parsing graph).
                reason = (served.loaded.warm_up_skipped or "") if served else "not loaded"
                state = "READY" if served is not None else "UNAVAILABLE"
                out.append(IndexEntry(model, version, state, reason))
        return out
