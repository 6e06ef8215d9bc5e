"""``onnxgate serve|infer|bench``: the data plane — run a gateway, send it requests.

``serve`` builds the gateway from settings (one process, or ``--workers`` sharing a port);
``infer`` sends one Open Inference Protocol request (inputs from ``.npy`` files, shapes and
datatypes from the model's metadata); ``bench`` is the load generator
(:mod:`gateway.tools.loadgen`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gateway.cli import common
from gateway.cli.common import client_opts
from gateway.cli.output import EXIT_OK, CliError, emit
from gateway.settings import Settings

__all__ = ["add_commands"]


def cmd_infer(args: argparse.Namespace) -> int:
    import numpy as np

    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc
    from gateway.transport import converters
    from registry.datatypes import DATATYPE_TO_NUMPY

    with common.channel(args.target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        meta = stub.ModelMetadata(
            pb.ModelMetadataRequest(name=args.name, version=args.version or ""),
            timeout=args.timeout,
        )
        arrays: dict[str, Any] = {}
        for item in args.data:
            name, sep, path = item.rpartition("=")
            if not sep:
                if len(meta.inputs) != 1:
                    names = [i.name for i in meta.inputs]
                    raise CliError(f"model has inputs {names}: pass --data NAME=FILE.npy for each")
                name = meta.inputs[0].name
            try:
                arrays[name] = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise CliError(f"cannot read {path}: {exc}") from exc
        request = pb.ModelInferRequest(model_name=args.name, model_version=args.version or "")
        if args.routing_key:
            request.parameters["routing_key"].string_param = args.routing_key
        for spec in meta.inputs:
            if spec.name not in arrays:
                raise CliError(f"no --data for input '{spec.name}'")
            want = DATATYPE_TO_NUMPY[spec.datatype]
            arr = arrays[spec.name]
            request.inputs.add(name=spec.name, datatype=spec.datatype, shape=arr.shape)
            if spec.datatype == "BYTES":
                request.raw_input_contents.append(converters.encode_bytes(arr))
                continue
            if arr.dtype != want and np.can_cast(arr.dtype, want, casting="same_kind"):
                arr = arr.astype(want)  # .npy files are often float64; the model says FP32
            request.raw_input_contents.append(np.ascontiguousarray(arr).tobytes())
        response = stub.ModelInfer(request, timeout=args.timeout)
    role = response.parameters["role"].string_param if "role" in response.parameters else ""
    outputs = {}
    for out, raw in zip(response.outputs, response.raw_output_contents, strict=True):
        shape = tuple(out.shape)
        if out.datatype == "BYTES":
            outputs[out.name] = converters.decode_bytes(raw, shape)
        else:
            dtype = DATATYPE_TO_NUMPY[out.datatype]
            outputs[out.name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    payload = {
        "model": response.model_name,
        "version": response.model_version,
        "role": role,
        "outputs": {k: v.tolist() for k, v in outputs.items()},
    }

    def table() -> None:
        print(f"served by {response.model_name}:{response.model_version} ({role or 'n/a'})")
        for k, v in outputs.items():
            print(f"{k} {v.dtype} {list(v.shape)}")
            print(np.array2string(v, precision=4, threshold=50))

    emit(args, payload, table)
    return EXIT_OK


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway.tools import loadgen

    return loadgen.run_from_args(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.server import serve
    from gateway.workers import serve_workers

    overrides: dict[str, Any] = {
        "registry": args.registry,
        "artifact_dir": args.artifact_dir,
        "host": args.host,
        "port": args.port,
        "metrics_port": args.metrics_port,
        "http_port": args.http_port,
        "workers": args.workers,
        "providers": args.providers,
        "batching": False if args.no_batching else None,
        "max_batch_size": args.max_batch_size,
        "max_delay_us": args.max_delay_us,
    }
    settings = Settings.load(toml_path=args.config, overrides=overrides)
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1:
        serve_workers(settings)
    else:
        serve(settings)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``serve``, ``infer`` and ``bench``."""
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config")
    s.add_argument("--registry")
    s.add_argument("--artifact-dir")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--metrics-port", type=int)
    s.add_argument("--http-port", type=int, help="OIP v2 over HTTP and the console; -1: off")
    s.add_argument("--workers", type=int)
    s.add_argument("--providers", help="comma-separated onnxruntime execution providers")
    s.add_argument("--no-batching", action="store_true")
    s.add_argument("--max-batch-size", type=int)
    s.add_argument("--max-delay-us", type=int)
    s.set_defaults(func=cmd_serve)

    inf = sub.add_parser("infer", help="send one request to a gateway")
    inf.add_argument("name")
    inf.add_argument("--data", action="append", required=True, metavar="[INPUT=]FILE.npy")
    inf.add_argument("--version")
    inf.add_argument("--routing-key")
    client_opts(inf)
    inf.set_defaults(func=cmd_infer)

    from gateway.tools import loadgen

    be = sub.add_parser("bench", help="load-test a gateway (closed or open loop)")
    loadgen.add_arguments(be)
    be.set_defaults(func=cmd_bench)
