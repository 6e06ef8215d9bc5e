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
from gateway.cli.output import EXIT_OK, emit
from gateway.settings import Settings

__all__ = ["add_commands"]


def cmd_infer(args: argparse.Namespace) -> int:
    import grpc
    import numpy as np

    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc
    from gateway.cli.arrays import cast_for_input, match_inputs, read_data
    from gateway.transport import converters
    from registry.datatypes import DATATYPE_TO_NUMPY

    files = read_data(args.data)  # local files first: their errors need no gateway
    token = common.token_metadata(common.PREDICT_TOKEN_ENV, required=False, args=args)
    with common.channel(args) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        try:
            meta = stub.ModelMetadata(
                pb.ModelMetadataRequest(name=args.name, version=args.version or ""),
                metadata=token,
                timeout=args.timeout,
            )
        except grpc.RpcError as exc:
            if common.is_unreachable(exc):
                raise common.unreachable(args, exc) from None
            raise
        matched = match_inputs(files, [i.name for i in meta.inputs])
        request = pb.ModelInferRequest(
            model_name=args.name, model_version=args.version or "", id=args.id or _new_id()
        )
        if args.routing_key:
            request.parameters["routing_key"].string_param = args.routing_key
        for spec in meta.inputs:
            _, path, arr = matched[spec.name]
            want = DATATYPE_TO_NUMPY[spec.datatype]
            arr = cast_for_input(arr, spec.datatype, want, f"--data {spec.name}={path}")
            request.inputs.add(name=spec.name, datatype=spec.datatype, shape=arr.shape)
            if spec.datatype == "BYTES":
                request.raw_input_contents.append(converters.encode_bytes(arr))
            else:
                request.raw_input_contents.append(np.ascontiguousarray(arr).tobytes())
        response = stub.ModelInfer(request, metadata=token, timeout=args.timeout)
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
        "id": response.id,
        "outputs": {k: v.tolist() for k, v in outputs.items()},
    }

    def table() -> None:
        print(f"served by {response.model_name}:{response.model_version} ({role or 'n/a'})")
        print(f"request id {response.id}  (for feedback and explain --id)")
        for k, v in outputs.items():
            print(f"{k} {v.dtype} {list(v.shape)}")
            print(np.array2string(v, precision=4, threshold=50))

    emit(args, payload, table)
    return EXIT_OK


def _new_id() -> str:
    import uuid

    return uuid.uuid4().hex


def cmd_bench(args: argparse.Namespace) -> int:
    from gateway.tools import loadgen

    token = common.token_metadata(common.PREDICT_TOKEN_ENV, required=False, args=args)
    return loadgen.run_from_args(args, metadata=tuple(token), tls=common.tls_material(args))


def _probe_port(host: str, port: int, what: str, setting: str) -> None:
    """Refuse, in one line naming the setting, a port that something else listens on."""
    import socket

    from gateway.settings import listen_error

    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not busy
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise listen_error(what, f"{host}:{port}", setting, exc.strerror) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from gateway.workers import serve, serve_workers

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
    common.require_driver(settings.registry)  # one line, not the gateway's traceback
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks, every start
    if settings.workers == 1:
        # NOTE: probed here, not only in Gateway.start: grpc's own bind failure also prints a
        # C-core log line, and workers > 1 share the port on purpose (SO_REUSEPORT).
        _probe_port(settings.host, settings.port, "gRPC", "port")
    if settings.metrics_port > 0:
        _probe_port(settings.host, settings.metrics_port, "metrics", "metrics_port")
    if settings.workers > 1:
        serve_workers(settings)
    else:
        serve(settings)
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``serve``, ``infer`` and ``bench``."""
    d = Settings()
    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config", help="TOML settings file (default: env ONNXGATE_CONFIG, none)")
    s.add_argument("--registry", help=f"SQLAlchemy URL of the registry (default: {d.registry})")
    s.add_argument("--artifact-dir", help=f"artifact store (default: {d.artifact_dir})")
    s.add_argument("--host", help=f"listen address (default: {d.host})")
    s.add_argument("--port", type=int, help=f"gRPC port (default: {d.port})")
    s.add_argument(
        "--metrics-port",
        type=int,
        help=f"Prometheus /metrics port, -1 for none (default: {d.metrics_port})",
    )
    s.add_argument(
        "--http-port",
        type=int,
        help=f"OIP v2 over HTTP and the console, -1 for none (default: {d.http_port})",
    )
    s.add_argument("--workers", type=int, help=f"processes sharing the port (default: {d.workers})")
    s.add_argument(
        "--providers",
        help=f"comma-separated onnxruntime execution providers (default: {','.join(d.providers)})",
    )
    s.add_argument("--no-batching", action="store_true", help="turn dynamic batching off")
    s.add_argument(
        "--max-batch-size", type=int, help=f"rows per batch (default: {d.max_batch_size})"
    )
    s.add_argument(
        "--max-delay-us",
        type=int,
        help=f"longest wait to fill a batch, microseconds (default: {d.max_delay_us})",
    )
    s.set_defaults(func=cmd_serve)

    inf = sub.add_parser("infer", help="send one request to a gateway")
    inf.add_argument("name", help="model name")
    inf.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="[INPUT=]FILE",
        help="an input's rows: a .npy array, or a .csv file with a header line; INPUT= may be "
        "left out for one-input models (repeat for several inputs)",
    )
    inf.add_argument(
        "--id",
        help="the request's id, which feedback and explain --id refer to (default: a new "
        "random id; printed either way)",
    )
    inf.add_argument("--version", help="pin this version (default: routed by weight)")
    inf.add_argument(
        "--routing-key",
        help="sticky routing: the same key reaches the same version (default: none)",
    )
    client_opts(inf)
    inf.set_defaults(func=cmd_infer)

    from gateway.tools import loadgen

    be = sub.add_parser("bench", help="load-test a gateway (closed or open loop)")
    loadgen.add_arguments(be)
    common.connection_opts(be)  # the predict token and TLS, as infer takes them
    be.set_defaults(func=cmd_bench)
