"""Helpers shared by the governance tests: tiny models and a policy setter."""

from __future__ import annotations

from typing import Any

from onnx import TensorProto, helper

from gateway.tools import modelzoo
from registry.governance_policy import GovernancePolicy
from registry.registry import Registry


def linear(seed: int) -> bytes:
    """y = x @ W + b, x: [N, 4] float32 — validates cleanly."""
    return modelzoo.linear(4, 2, seed=seed)


def random_output() -> bytes:
    """y = RandomNormalLike(x) with no seed: loads and runs, but is not deterministic."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph(
        [helper.make_node("RandomNormalLike", ["x"], ["y"], dtype=TensorProto.FLOAT)],
        "random",
        [x],
        [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model.SerializeToString()


def set_policy(reg: Registry, **fields: Any) -> GovernancePolicy:
    return reg.governance.set_policy(GovernancePolicy(**fields), actor="admin")
