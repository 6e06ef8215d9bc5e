"""Fixtures for the registry tests: a registry on a real database and tiny ONNX models.

The database comes from the ``registry_url`` fixture, parametrised over both backends: a
SQLite file in ``tmp_path``, and PostgreSQL — the session's throwaway cluster (see
``tests/pg_cluster.py``) or the URL in ``ONNXGATE_TEST_REGISTRY_URL`` — wiped before
each test, so the whole suite runs on each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

try:
    import registry  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pg_cluster import BACKENDS, backend_url

from registry.registry import Registry

ModelFactory = Callable[..., bytes]


def linear_model(
    in_features: int = 4,
    out_features: int = 2,
    *,
    seed: int = 0,
    input_name: str = "x",
    elem_type: int = TensorProto.FLOAT,
) -> bytes:
    """Serialised ONNX model computing y = x @ W + b with a dynamic batch dimension."""
    rng = np.random.default_rng(seed)
    dtype = helper.tensor_dtype_to_np_dtype(elem_type)
    w = numpy_helper.from_array(rng.standard_normal((in_features, out_features)).astype(dtype), "W")
    b = numpy_helper.from_array(rng.standard_normal(out_features).astype(dtype), "b")
    x = helper.make_tensor_value_info(input_name, elem_type, ["N", in_features])
    y = helper.make_tensor_value_info("y", elem_type, ["N", out_features])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", [input_name, "W"], ["xw"]),
            helper.make_node("Add", ["xw", "b"], ["y"]),
        ],
        "linear",
        [x],
        [y],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def make_model() -> ModelFactory:
    return linear_model


@pytest.fixture
def model_v1() -> bytes:
    return linear_model(seed=1)


@pytest.fixture
def model_v2() -> bytes:
    """Same signature as ``model_v1``, different weights."""
    return linear_model(seed=2)


@pytest.fixture
def model_other_signature() -> bytes:
    """Input "x" is [-1, 3]: incompatible with ``model_v1``."""
    return linear_model(in_features=3, seed=3)


@pytest.fixture(params=BACKENDS)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from backend_url(request, tmp_path)


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def reg(registry_url: str, artifact_dir: Path) -> Iterator[Registry]:
    registry = Registry.open(registry_url, artifact_dir)
    yield registry
    registry.close()
