"""The response cache: a bounded LRU per model, keyed by version, inputs and outputs
asked for; a hit skips inference but is counted, tapped and attributed like any answer."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as triton
from shared import wait_for

from gateway.metrics import GatewayMetrics
from gateway.serving.cache import ModelCache, ResponseCache, input_digest
from gateway.serving.taps import TapRecord
from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo
from registry.deployment import Arm, Role


def _x(value: float = 1.0) -> np.ndarray:
    return np.full((1, 4), value, dtype=np.float32)


def test_digest_tells_names_dtypes_shapes_and_bytes_apart():
    base = input_digest({"x": _x()})
    assert base == input_digest({"x": _x().copy()})
    assert base != input_digest({"y": _x()})
    assert base != input_digest({"x": _x().astype(np.float64)})
    assert base != input_digest({"x": _x().reshape(2, 2)})
    assert base != input_digest({"x": _x(2.0)})
    assert input_digest({"s": np.array([b"ab", b"c"], dtype=object)}) != input_digest(
        {"s": np.array([b"a", b"bc"], dtype=object)}
    )


def test_lru_bound_evictions_and_per_version_keys():
    metrics = GatewayMetrics()
    cache = ModelCache("m", 2, metrics)
    k1, k2, k3 = (cache.key("1", {"x": _x(v)}, ()) for v in (1.0, 2.0, 3.0))
    assert cache.key("2", {"x": _x(1.0)}, ()) != k1  # another version: another entry
    assert cache.key("1", {"x": _x(1.0)}, ("y",)) != k1  # other outputs asked for
    assert cache.get(k1) is None
    cache.put(k1, {"y": np.ones(2)})
    cache.put(k2, {"y": np.zeros(2)})
    assert cache.get(k1) is not None  # k1 is now the most recent
    cache.put(k3, {"y": np.zeros(2)})  # evicts k2, the least recently used
    assert cache.get(k2) is None and len(cache) == 2
    hit = cache.get(k1)
    assert hit is not None and not hit["y"].flags.writeable  # shared by every hit: read-only

    def sample(name: str, **labels: str) -> float:
        return metrics.registry.get_sample_value(name, labels) or 0.0

    assert sample("onnxgate_response_cache_hits_total", model="m", version="1") == 2
    assert sample("onnxgate_response_cache_misses_total", model="m", version="1") == 2
    assert sample("onnxgate_response_cache_evictions_total", model="m") == 1
    assert sample("onnxgate_response_cache_entries", model="m") == 2
    assert ResponseCache({"m": 5}, metrics).for_model("other") is None
    assert not ResponseCache({}, metrics)


def test_setting_is_validated_by_name():
    assert Settings(response_cache=("a=10", "b=2")).response_cache_sizes == {"a": 10, "b": 2}
    with pytest.raises(SettingsError, match="response_cache: expected MODEL=ENTRIES"):
        Settings(response_cache=("a",))
    env = {"ONNXGATE_RESPONSE_CACHE": "lin=100,other=5"}
    assert Settings.load(environ=env).response_cache_sizes == {"lin": 100, "other": 5}


def _infer(client: triton.InferenceServerClient, x: np.ndarray) -> tuple[str, np.ndarray]:
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("lin", [inp])
    return result.get_response().model_version, result.as_numpy("y")


def test_hits_are_counted_and_tapped_as_served_and_never_cross_versions(registry, make_gateway):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    records: list[TapRecord] = []
    gw = make_gateway({"taps": {"record": records.append}}, response_cache=("lin=8",))
    client = triton.InferenceServerClient(gw.target)
    x = _x(0.5)
    first, again = _infer(client, x), _infer(client, x)
    assert first[0] == again[0] == "1"
    np.testing.assert_array_equal(first[1], again[1])
    metrics = gw.gateway.metrics.registry

    def value(name: str, **labels: str) -> float:
        return metrics.get_sample_value(name, labels) or 0.0

    assert value("onnxgate_response_cache_hits_total", model="lin", version="1") == 1
    assert value("onnxgate_response_cache_misses_total", model="lin", version="1") == 1
    ok = {"model": "lin", "version": "1", "role": "champion", "code": "OK"}
    assert value("onnxgate_requests_total", **ok) == 2  # the hit counts as served by v1
    wait_for(lambda: len(records) == 2)  # and reaches the taps (monitor, shadow, feedback)
    assert [r.version for r in records] == ["1", "1"]

    # A routing change: the same input is now answered by version 2, never from v1's entry.
    registry.register_version("lin", modelzoo.linear(4, 2, seed=4), actor="test")
    registry.set_deployment("lin", [Arm("2", Role.CHAMPION, 1.0)], actor="test")
    wait_for(lambda: _infer(client, x)[0] == "2")
    version, y = _infer(client, x)
    assert version == "2"
    np.testing.assert_allclose(y, x @ modelzoo.linear_weights(4, 2, seed=4), rtol=1e-5)
    assert value("onnxgate_response_cache_misses_total", model="lin", version="2") == 1
