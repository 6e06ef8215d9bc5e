"""ONNX input/output signatures in Open Inference Protocol terms, and compatibility checks.

A :class:`Signature` is what a version promises its callers: tensor names, OIP datatypes
and shapes (``-1`` for a dynamic dimension). The registry stores it with each version and
refuses a new version whose signature would break callers of the current champion.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.datatypes import DATATYPES, ORT_TO_DATATYPE
from registry.errors import InvalidArtifact

if TYPE_CHECKING:
    import onnxruntime

__all__ = [
    "DATATYPES",
    "Signature",
    "TensorSpec",
    "incompatibilities",
    "signature_from_bytes",
    "signature_from_session",
]

# NOTE: errors from onnxruntime can quote large parts of a malformed graph; cap them.
_MAX_REASON = 300


@dataclass(frozen=True)
class TensorSpec:
    """One named input or output tensor: OIP datatype and shape (-1 = dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorSpec:
        datatype = str(d["datatype"])
        if datatype not in DATATYPES:
            raise ValueError(f"tensor {d.get('name')!r}: unknown datatype {datatype!r}")
        return cls(name=str(d["name"]), datatype=datatype, shape=tuple(int(x) for x in d["shape"]))


@dataclass(frozen=True)
class Signature:
    """A version's inputs and outputs, in the order the model declares them."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in the registry."""
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        return cls(
            inputs=tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            outputs=tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
        )


def _dim(value: object) -> int:
    # onnxruntime reports symbolic dims as str and unknown ones as None; both are dynamic.
    if isinstance(value, int) and value >= 0:
        return value
    return -1


def _spec(arg: Any, kind: str) -> TensorSpec:
    datatype = ORT_TO_DATATYPE.get(arg.type)
    if datatype is None:
        raise InvalidArtifact(f"{kind} {arg.name!r} has unsupported type {arg.type!r}")
    if not datatype.servable:
        # NOTE: see registry.datatypes: no numpy form, so no request could ever be served.
        raise InvalidArtifact(
            f"{kind} {arg.name!r} is {datatype.name} ({arg.type}), which onnxgate cannot "
            f"serve: numpy and onnxruntime's Python API have no {datatype.name} arrays; "
            "cast to FP32 or FP16 at the graph's inputs and outputs (inside is fine)"
        )
    shape = tuple(_dim(d) for d in arg.shape)
    return TensorSpec(name=arg.name, datatype=datatype.name, shape=shape)


def signature_from_session(session: onnxruntime.InferenceSession) -> Signature:
    """Read the signature of an already loaded session."""
    return Signature(
        inputs=tuple(_spec(a, "input") for a in session.get_inputs()),
        outputs=tuple(_spec(a, "output") for a in session.get_outputs()),
    )


def signature_from_bytes(data: bytes) -> Signature:
    """Load ``data`` with onnxruntime on CPU and read its signature.

    Raises :class:`InvalidArtifact` if onnxruntime cannot load it: loading is the check,
    since a model onnx can parse may still be one onnxruntime refuses.
    """
    import onnxruntime

    if not data:
        raise InvalidArtifact("artifact is empty, expected an ONNX model")
    options = onnxruntime.SessionOptions()
    # Only the signature is needed: skip graph optimisation and stay on one thread.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 4
    try:
        # NOTE: onnxruntime print()s an "EP Error" banner to stdout when loading fails with
        # a ValueError (e.g. a name that is not UTF-8), then retries; our error says it all.
        with contextlib.redirect_stdout(io.StringIO()):
            session = onnxruntime.InferenceSession(
                data, sess_options=options, providers=["CPUExecutionProvider"]
            )
        return signature_from_session(session)
    except InvalidArtifact:
        raise
    except UnicodeDecodeError as exc:
        raise InvalidArtifact(
            "an input or output name (or other text) in the artifact is not valid UTF-8"
        ) from exc
    except Exception as exc:  # onnxruntime raises several unrelated exception types
        reason = " ".join(str(exc).split())[:_MAX_REASON]
        raise InvalidArtifact(f"onnxruntime cannot load the artifact as ONNX: {reason}") from exc


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _input_problems(old: TensorSpec, new: TensorSpec) -> list[str]:
    name = old.name
    problems: list[str] = []
    if old.datatype != new.datatype:
        problems.append(f"input {name!r} datatype changed {old.datatype} -> {new.datatype}")
    if len(old.shape) != len(new.shape):
        problems.append(
            f"input {name!r} rank changed {len(old.shape)} -> {len(new.shape)} "
            f"({_shape(old.shape)} -> {_shape(new.shape)})"
        )
        return problems
    for axis, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
        # Fixed -> dynamic widens what is accepted and is fine; anything else that
        # differs (fixed -> other fixed, dynamic -> fixed) rejects requests that work today.
        if a != b and b != -1:
            problems.append(f"input {name!r} dim {axis} changed {a} -> {b}")
    return problems


def incompatibilities(current: Signature, new: Signature) -> list[str]:
    """Human-readable reasons why callers of ``current`` would break on ``new``.

    Checked: inputs missing or newly required, input datatype/rank changes, input
    dimensions that become fixed or change size, outputs missing or changing datatype.
    An empty list means ``new`` can replace ``current``.
    """
    problems: list[str] = []
    new_inputs = {t.name: t for t in new.inputs}
    old_inputs = {t.name: t for t in current.inputs}
    for old in current.inputs:
        candidate = new_inputs.get(old.name)
        if candidate is None:
            problems.append(f"input {old.name!r} is missing")
        else:
            problems.extend(_input_problems(old, candidate))
    for extra in new.inputs:
        if extra.name not in old_inputs:
            problems.append(f"input {extra.name!r} is new and callers do not send it")
    new_outputs = {t.name: t for t in new.outputs}
    for old in current.outputs:
        candidate = new_outputs.get(old.name)
        if candidate is None:
            problems.append(f"output {old.name!r} is missing")
        elif candidate.datatype != old.datatype:
            problems.append(
                f"output {old.name!r} datatype changed {old.datatype} -> {candidate.datatype}"
            )
    return problems
