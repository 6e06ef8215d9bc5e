"""The ``onnxgate`` command: serve, manage the registry, operate traffic, send requests.

Registry commands (``models ...``) talk to the registry URL directly and need no gateway;
traffic commands go through a gateway's authenticated admin API (``--target``, token from
``ONNXGATE_ADMIN_TOKEN``). Output is a table for people, ``--json`` for scripts. Exit codes:
0 ok, 1 the operation failed (one line on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from gateway.settings import Settings, SettingsError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A failure to report as one line and exit 1."""


def _print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _emit(args: argparse.Namespace, payload: Any, table: Callable[[], None]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(payload, indent=2, default=str))
    else:
        table()


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "registry": getattr(args, "registry", None),
        "artifact_dir": getattr(args, "artifact_dir", None),
    }
    return Settings.load(toml_path=getattr(args, "config", None), overrides=overrides)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


# -- registry commands -----------------------------------------------------------------------


def _open_registry(args: argparse.Namespace) -> Any:
    # Creates an empty database; refuses an outdated one ("run `onnxgate db upgrade`").
    from registry.schema_check import open_registry

    s = _settings(args)
    return open_registry(s.registry, s.artifact_dir)


def _version_dict(v: Any) -> dict[str, Any]:
    return {
        "model": v.model,
        "version": v.version,
        "sha256": v.sha256,
        "size_bytes": v.size_bytes,
        "status": v.status,
        "description": v.description,
        "owner": v.owner,
        "metadata": dict(v.metadata),
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "signature": v.signature.to_dict(),
        "lineage": v.lineage.to_dict(),
        "validation": v.validation,
    }


def cmd_models_register(args: argparse.Namespace) -> int:
    from gateway.cli import governance as cli_governance

    meta: dict[str, str] = {}
    for item in args.meta or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"--meta {item!r}: expected key=value")
        meta[key] = value
    path = Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    profile = None
    if getattr(args, "reference", None):
        from gateway.cli.monitoring import reference_doc

        profile = reference_doc(Path(args.reference), data, meta)
    reg = _open_registry(args)
    try:
        rec = reg.register_version(
            args.name,
            data,
            version=args.version,
            description=args.description or "",
            owner=args.owner or "",
            metadata=meta,
            actor=_actor(),
            force=args.force,
            lineage=cli_governance.lineage_from_args(args),
        )
        if profile is not None:
            doc, summary = profile
            reg.set_profile(
                rec.model, rec.version, doc, source="reference", actor=_actor(), summary=summary
            )
            rec = cli_governance.revalidate_if_profile_required(reg, rec, _actor())
    finally:
        reg.close()
    _emit(
        args,
        _version_dict(rec),
        lambda: print(f"registered {rec.model}:{rec.version} sha256={rec.sha256[:16]}…"),
    )
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace) -> int:
    reg = _open_registry(args)
    try:
        models = reg.list_models()
    finally:
        reg.close()
    payload = [
        {
            "name": m.name,
            "versions": list(m.versions),
            "champion": m.champion,
            "revision": m.revision,
        }
        for m in models
    ]
    _emit(
        args,
        payload,
        lambda: _print_table(
            [(m.name, ",".join(m.versions), m.champion or "-", m.revision) for m in models],
            ("MODEL", "VERSIONS", "CHAMPION", "REVISION"),
        ),
    )
    return EXIT_OK


def cmd_models_show(args: argparse.Namespace) -> int:
    name, _, version = args.ref.partition(":")
    reg = _open_registry(args)
    try:
        rec = reg.get_version(name, version or None)
    finally:
        reg.close()
    info = _version_dict(rec)

    def table() -> None:
        for key in (
            "model",
            "version",
            "sha256",
            "size_bytes",
            "status",
            "owner",
            "description",
            "created_at",
            "created_by",
        ):
            print(f"{key:12} {info[key]}")
        for k, v in sorted(rec.metadata.items()):
            print(f"{'meta':12} {k}={v}")
        for label, specs in (("input", rec.signature.inputs), ("output", rec.signature.outputs)):
            for s in specs:
                print(f"{label:12} {s.name} {s.datatype} {list(s.shape)}")

    _emit(args, info, table)
    return EXIT_OK


# -- gateway client commands ---------------------------------------------------------------


def _channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target)


def _admin_call(args: argparse.Namespace, method: str, request: Any) -> Any:
    from gateway._proto import admin_pb2_grpc

    token = os.environ.get("ONNXGATE_ADMIN_TOKEN", "")
    if not token:
        raise CliError("set ONNXGATE_ADMIN_TOKEN to an admin token")
    with _channel(args.target) as channel:
        stub = admin_pb2_grpc.AdminServiceStub(channel)
        return getattr(stub, method)(
            request, metadata=(("authorization", f"Bearer {token}"),), timeout=args.timeout
        )


def _deployment_out(args: argparse.Namespace, dep: Any) -> None:
    total = sum(a.weight for a in dep.arms) or 1.0
    payload = {
        "model": dep.model,
        "revision": dep.revision,
        "arms": [{"version": a.version, "role": a.role, "weight": a.weight} for a in dep.arms],
        "shadows": [{"version": s.version, "fraction": s.fraction} for s in dep.shadows],
        "loaded_versions": list(dep.loaded_versions),
    }

    def table() -> None:
        print(f"model {dep.model}  revision {dep.revision}")
        rows: list[tuple[Any, ...]] = [
            (a.version, a.role, f"{100 * a.weight / total:.1f}%") for a in dep.arms
        ]
        rows += [(s.version, "shadow", f"{100 * s.fraction:.1f}% mirrored") for s in dep.shadows]
        _print_table(rows, ("VERSION", "ROLE", "TRAFFIC"))

    _emit(args, payload, table)


def cmd_traffic_show(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    resp = _admin_call(args, "GetDeployment", pb.GetDeploymentRequest(model=args.name))
    _deployment_out(args, resp.deployment)
    return EXIT_OK


def cmd_traffic_set(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb
    from registry.deployment import parse_weights
    from registry.errors import InvalidDeployment

    try:
        weights = parse_weights(args.weights)
    except InvalidDeployment as exc:
        raise CliError(str(exc)) from exc
    roles: dict[str, str] = {}
    for item in args.role or []:
        version, sep, role = item.partition("=")
        if not sep:
            raise CliError(f"--role {item!r}: expected VERSION=ROLE")
        roles[version] = role
    resp = _admin_call(
        args,
        "SetWeights",
        pb.SetWeightsRequest(
            model=args.name,
            weights=weights,
            roles=roles,
            reason=args.reason or "",
            expected_revision=getattr(args, "expected_revision", 0) or 0,
        ),
    )
    _deployment_out(args, resp.deployment)
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.PromoteRequest(
        model=args.name, version=args.version, keep_old=args.keep_old, reason=args.reason or ""
    )
    _deployment_out(args, _admin_call(args, "Promote", req).deployment)
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.RollbackRequest(model=args.name, reason=args.reason or "")
    _deployment_out(args, _admin_call(args, "Rollback", req).deployment)
    return EXIT_OK


def cmd_shadow_add(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.AddShadowRequest(
        model=args.name, version=args.version, fraction=args.fraction, reason=args.reason or ""
    )
    _deployment_out(args, _admin_call(args, "AddShadow", req).deployment)
    return EXIT_OK


def cmd_shadow_remove(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    req = pb.RemoveShadowRequest(model=args.name, version=args.version, reason=args.reason or "")
    _deployment_out(args, _admin_call(args, "RemoveShadow", req).deployment)
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from gateway._proto import admin_pb2 as pb

    resp = _admin_call(
        args, "ListHistory", pb.ListHistoryRequest(model=args.name, limit=args.limit)
    )
    payload = [
        {
            "revision": e.deployment.revision,
            "at": e.created_at,
            "actor": e.actor,
            "reason": e.reason,
            "arms": {a.version: [a.role, a.weight] for a in e.deployment.arms},
            "shadows": {s.version: s.fraction for s in e.deployment.shadows},
        }
        for e in resp.entries
    ]

    def table() -> None:
        rows = []
        for e in resp.entries:
            total = sum(a.weight for a in e.deployment.arms) or 1.0
            arms = " ".join(
                f"{a.version}({a.role[:5]})={100 * a.weight / total:.0f}%"
                for a in e.deployment.arms
            )
            shadows = " ".join(f"{s.version}~{s.fraction:g}" for s in e.deployment.shadows)
            rows.append(
                (e.deployment.revision, e.created_at[:19], e.actor, arms, shadows, e.reason)
            )
        _print_table(rows, ("REV", "AT (UTC)", "ACTOR", "ARMS", "SHADOWS", "REASON"))

    _emit(args, payload, table)
    return EXIT_OK


def cmd_infer(args: argparse.Namespace) -> int:
    import numpy as np

    from gateway._proto import grpc_service_pb2 as pb
    from gateway._proto import grpc_service_pb2_grpc as pb_grpc
    from gateway.transport import converters

    with _channel(args.target) as channel:
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
            want = converters.DATATYPE_TO_NUMPY[spec.datatype]
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
            dtype = converters.DATATYPE_TO_NUMPY[out.datatype]
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

    _emit(args, payload, table)
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


# -- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="onnxgate", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def registry_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--registry", help="SQLAlchemy URL (env ONNXGATE_REGISTRY)")
        sp.add_argument("--artifact-dir", help="artifact store (env ONNXGATE_ARTIFACT_DIR)")
        sp.add_argument("--config", help="TOML settings file (env ONNXGATE_CONFIG)")
        sp.add_argument("--json", action="store_true", help="machine-readable output")

    def client_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--target", default=os.environ.get("ONNXGATE_TARGET", "localhost:8001"))
        sp.add_argument("--timeout", type=float, default=30.0)
        sp.add_argument("--json", action="store_true", help="machine-readable output")

    s = sub.add_parser("serve", help="run the gateway")
    s.add_argument("--config")
    s.add_argument("--registry")
    s.add_argument("--artifact-dir")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--metrics-port", type=int)
    s.add_argument("--workers", type=int)
    s.add_argument("--providers", help="comma-separated onnxruntime execution providers")
    s.add_argument("--no-batching", action="store_true")
    s.add_argument("--max-batch-size", type=int)
    s.add_argument("--max-delay-us", type=int)
    s.set_defaults(func=cmd_serve)

    models = sub.add_parser("models", help="the model registry").add_subparsers(
        dest="models_command", required=True
    )
    r = models.add_parser("register", help="register a new version of a model")
    r.add_argument("name")
    r.add_argument("file")
    r.add_argument("--version")
    r.add_argument("--description")
    r.add_argument("--owner")
    r.add_argument("--meta", action="append", metavar="KEY=VALUE")
    r.add_argument("--force", action="store_true", help="accept an incompatible signature")
    r.add_argument("--reference", metavar="FILE", help="reference sample (.npy/.npz/.csv)")
    registry_opts(r)
    r.set_defaults(func=cmd_models_register)
    ls = models.add_parser("list", help="list models")
    registry_opts(ls)
    ls.set_defaults(func=cmd_models_list)
    sh = models.add_parser("show", help="show one version (NAME or NAME:VERSION)")
    sh.add_argument("ref")
    registry_opts(sh)
    sh.set_defaults(func=cmd_models_show)

    inf = sub.add_parser("infer", help="send one request to a gateway")
    inf.add_argument("name")
    inf.add_argument("--data", action="append", required=True, metavar="[INPUT=]FILE.npy")
    inf.add_argument("--version")
    inf.add_argument("--routing-key")
    client_opts(inf)
    inf.set_defaults(func=cmd_infer)

    traffic = sub.add_parser("traffic", help="traffic weights").add_subparsers(
        dest="traffic_command", required=True
    )
    ts = traffic.add_parser("show")
    ts.add_argument("name")
    client_opts(ts)
    ts.set_defaults(func=cmd_traffic_show)
    tset = traffic.add_parser("set", help="e.g. traffic set NAME v1=90 v2=10 --role v2=canary")
    tset.add_argument("name")
    tset.add_argument("weights", nargs="+", metavar="VERSION=WEIGHT")
    tset.add_argument("--role", action="append", metavar="VERSION=ROLE")
    tset.add_argument("--reason")
    client_opts(tset)
    tset.set_defaults(func=cmd_traffic_set)

    pr = sub.add_parser("promote", help="make VERSION the champion")
    pr.add_argument("name")
    pr.add_argument("version")
    pr.add_argument("--keep-old", action="store_true", help="keep old champion as challenger")
    pr.add_argument("--reason")
    client_opts(pr)
    pr.set_defaults(func=cmd_promote)

    rb = sub.add_parser("rollback", help="restore the previous deployment revision")
    rb.add_argument("name")
    rb.add_argument("--reason")
    client_opts(rb)
    rb.set_defaults(func=cmd_rollback)

    shadow = sub.add_parser("shadow", help="mirrored traffic").add_subparsers(
        dest="shadow_command", required=True
    )
    sa = shadow.add_parser("add")
    sa.add_argument("name")
    sa.add_argument("version")
    sa.add_argument("--fraction", type=float, default=1.0)
    sa.add_argument("--reason")
    client_opts(sa)
    sa.set_defaults(func=cmd_shadow_add)
    sr = shadow.add_parser("remove")
    sr.add_argument("name")
    sr.add_argument("version")
    sr.add_argument("--reason")
    client_opts(sr)
    sr.set_defaults(func=cmd_shadow_remove)
    from gateway.cli import monitoring as cli_monitoring

    cli_monitoring.add_parsers(sub, shadow)  # drift, shadow report

    hi = sub.add_parser("history", help="deployment history of a model")
    hi.add_argument("name")
    hi.add_argument("--limit", type=int, default=0)
    client_opts(hi)
    hi.set_defaults(func=cmd_history)

    from gateway.tools import loadgen

    be = sub.add_parser("bench", help="load-test a gateway (closed or open loop)")
    loadgen.add_arguments(be)
    be.set_defaults(func=cmd_bench)
    from gateway.cli import governor as cli_governor

    cli_governor.add_commands(sub, client_opts)  # feedback, governor, policy
    from gateway.cli import governance as cli_governance

    cli_governance.install(  # models search|card|..., approve, audit, deployment, retention, db
        sub, models=models, register=r, traffic_set=tset, registry_opts=registry_opts,
        client_opts=client_opts,
    )  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from registry.errors import RegistryError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (CliError, RegistryError, SettingsError) as exc:
        print(f"onnxgate: {exc}", file=sys.stderr)
    except grpc.RpcError as exc:
        status = exc.code().name if hasattr(exc, "code") else "ERROR"
        detail = exc.details() if hasattr(exc, "details") else str(exc)
        print(f"onnxgate: {status}: {detail}", file=sys.stderr)
    except KeyboardInterrupt:
        print("onnxgate: interrupted", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
