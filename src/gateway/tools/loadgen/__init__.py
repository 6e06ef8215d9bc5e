"""Load generator for the Open Inference Protocol: ``onnxgate bench`` and ``benchmarks/``.

It speaks ``inference.GRPCInferenceService/ModelInfer`` over ``grpc.aio`` to any server of
that protocol (onnxgate, the echo floor, MLServer, Triton) and measures it:

* **closed loop** (``--concurrency N``): N callers, each sends its next request as soon as
  the previous one returns; throughput is what the server sustains at N in flight.
* **open loop** (``--rate R``): arrivals at R per second, Poisson or uniform, whatever the
  server does; latency counts from the *scheduled* send time (no coordinated omission),
  an arrival finding ``--concurrency`` calls already outstanding is dropped, one sent more
  than ``LATE_S`` after its time is late (the generator could not keep up).

Requests are built once, before the clock starts: inputs come from ModelMetadata (random
values of the right datatype and shape, ``--rows`` rows each) or from ``.npy`` files, and
are serialized to bytes so a call costs the generator no protobuf work. With ``--keys K``
each request carries a ``routing_key`` parameter drawn from a pool of K keys.

``--procs P`` runs P client processes (each with ``--connections`` channels) started
together and merged at the end, so the generator is not what saturates. Only requests
started after ``--warmup`` count; RPS counts responses that arrive inside the window.

Modules: :mod:`.spec` (what a run is), :mod:`.requests` (building them),
:mod:`.client` (one client process), :mod:`.runner` (one or several processes),
:mod:`.report` (progress and summary), :mod:`.cli` (flags and ``main``).
"""

from __future__ import annotations

from gateway.tools.loadgen.cli import add_arguments, main, run_from_args, spec_from_args
from gateway.tools.loadgen.report import format_summary
from gateway.tools.loadgen.requests import build_requests, fetch_metadata
from gateway.tools.loadgen.runner import run
from gateway.tools.loadgen.spec import LoadSpec

__all__ = [
    "LoadSpec",
    "add_arguments",
    "build_requests",
    "fetch_metadata",
    "format_summary",
    "main",
    "run",
    "run_from_args",
    "spec_from_args",
]
