"""The response cache: answers already computed, served again without inference.

Opt-in per model (setting ``response_cache``, e.g. ``fraud=10000,churn=500``: entries per
model). Each model has one bounded LRU whose keys are (version, a hash of the inputs'
names, datatypes, shapes and bytes, the requested outputs): the version is part of the
key, so a routing change never serves one version's answer as another's, and a version's
entries age out by LRU once it stops serving.

What a hit skips is the batcher and onnxruntime only: the data plane still counts the
request on the version's counter set and offers it to the taps (monitoring, shadows,
feedback) as served by that version, so a cached answer is indistinguishable downstream.
Models are deterministic (validation checks it), so an answer is the answer.

Prometheus: ``onnxgate_response_cache_hits_total`` and ``..._misses_total`` by model and
version (hit rate = hits / (hits + misses)), ``..._evictions_total`` and the entries gauge
by model.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import numpy as np

from gateway.domain import Tensors
from gateway.metrics import GatewayMetrics

__all__ = ["ModelCache", "ResponseCache"]

Key = tuple[str, bytes, tuple[str, ...]]


def input_digest(inputs: Tensors) -> bytes:
    """blake2b over every input's name, dtype, shape and bytes, in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(inputs):
        array = inputs[name]
        h.update(f"{name}\0{array.dtype.str}\0{array.shape}\0".encode())
        if array.dtype.kind == "O":  # BYTES tensors: object arrays of bytes/str
            for item in array.ravel():
                value = item if isinstance(item, bytes) else str(item).encode()
                h.update(len(value).to_bytes(8, "little") + value)
        else:
            h.update(np.ascontiguousarray(array).data)
    return h.digest()


class ModelCache:
    """One model's bounded LRU (see the module docstring)."""

    def __init__(self, model: str, capacity: int, metrics: GatewayMetrics) -> None:
        self.model = model
        self.capacity = capacity
        self._entries: OrderedDict[Key, Tensors] = OrderedDict()
        self._metrics = metrics
        self._evictions = metrics.cache_evictions.labels(model)
        self._size = metrics.cache_entries.labels(model)

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, version: str, inputs: Tensors, wanted: Sequence[str]) -> Key:
        return (version, input_digest(inputs), tuple(wanted))

    def get(self, key: Key) -> Tensors | None:
        found = self._entries.get(key)
        counter = self._metrics.cache_hits if found is not None else self._metrics.cache_misses
        counter.labels(self.model, key[0]).inc()
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: Key, outputs: Tensors) -> None:
        # Copies: a batch's outputs are views of one array that would otherwise stay alive;
        # read-only, as every hit shares them.
        kept = {}
        for name, array in outputs.items():
            copy = np.array(array, copy=True)
            copy.flags.writeable = False
            kept[name] = copy
        self._entries[key] = kept
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self._evictions.inc()
        self._size.set(len(self._entries))


class ResponseCache:
    """Every opted-in model's cache; ``for_model`` is None for the others."""

    def __init__(self, capacities: Mapping[str, int], metrics: GatewayMetrics) -> None:
        self._models = {m: ModelCache(m, n, metrics) for m, n in capacities.items() if n > 0}

    def __bool__(self) -> bool:
        return bool(self._models)

    def for_model(self, model: str) -> ModelCache | None:
        return self._models.get(model)
