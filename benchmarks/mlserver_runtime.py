"""The peer under comparison: a minimal MLServer 1.7.1 runtime serving an ONNX file.

Loaded by MLServer (its own virtualenv, ``.venv-mlserver``) from ``model-settings.json``
as ``"implementation": "mlserver_runtime.OnnxRuntimeModel"``, with ``parameters.uri``
naming the ``.onnx`` file. It mirrors what onnxgate does per request with batching off:
decode each input to numpy, one ``InferenceSession.run``, encode each output.

NOTE: ``predict`` calls onnxruntime on the event loop, as MLServer's own runtimes
(mlserver-sklearn, mlserver-xgboost) do; MLServer's answer to that is parallel workers,
which ``compare.py`` also tries. Not imported by the onnxgate code or its tests.
"""

from __future__ import annotations

import os

import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntimeModel(MLModel):
    """One ONNX model in one onnxruntime session, threads sized like onnxgate's."""

    async def load(self) -> bool:
        uri = await get_model_uri(self._settings)
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("BENCH_INTRA_OP_THREADS", "0"))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(
            uri, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._output_names = [o.name for o in self._session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        feeds = {inp.name: NumpyCodec.decode_input(inp) for inp in payload.inputs}
        values = self._session.run(None, feeds)
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                NumpyCodec.encode_output(name, value)
                for name, value in zip(self._output_names, values, strict=True)
            ],
        )
