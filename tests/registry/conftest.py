"""Fixtures for the registry tests: a registry on a real database and tiny ONNX models.

The database comes from the ``registry_url`` fixture: a SQLite file in ``tmp_path`` by
default, or the URL in ``ONNXGATE_TEST_REGISTRY_URL`` (e.g. a scratch PostgreSQL
database, ``postgresql+psycopg://...``), which is wiped before and after each test so the
whole suite can run against it.
"""

from __future__ import annotations

import os
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

from sqlalchemy import text

from registry.models import Base
from registry.registry import Registry
from registry.schema import make_engine

URL_ENV = "ONNXGATE_TEST_REGISTRY_URL"

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


def _wipe(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()


@pytest.fixture
def registry_url(tmp_path: Path) -> Iterator[str]:
    external = os.environ.get(URL_ENV)
    if not external:
        # A nested directory proves Registry.open creates the parent.
        yield f"sqlite:///{tmp_path / 'db' / 'registry.db'}"
        return
    _wipe(external)
    yield external
    _wipe(external)


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def reg(registry_url: str, artifact_dir: Path) -> Iterator[Registry]:
    registry = Registry.open(registry_url, artifact_dir)
    yield registry
    registry.close()
