"""``onnxgate explain NAME[:VERSION] --data ROWS | --id ID``: attributions from a gateway.

Rows come from a ``.npy``, ``.npz`` or CSV file (with a header line), laid out like the
version's reference sample; ``--id`` explains a prediction the gateway served earlier
under that request id instead. ``--json`` prints one object (model, version, output,
method, features, base_value, attributions, output_value); the default is a table of each
row's output and its largest attributions. Calls carry the predict token
(``ONNXGATE_PREDICT_TOKEN``) when one is set, as ``infer`` does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from gateway.cli.common import PREDICT_TOKEN_ENV, channel, client_opts, token_metadata
from gateway.cli.output import EXIT_OK, CliError, emit, print_table

__all__ = ["add_commands", "cmd_explain", "importance_payload"]

ROWS_PER_CALL = 256  # the gateway's default explain_max_rows


def _rows(path: Path) -> np.ndarray[Any, np.dtype[np.float64]]:
    from gateway.monitoring.reference import read_reference

    try:
        rows, _ = read_reference(path)
    except ValueError as exc:
        raise CliError(f"--data {path}: {exc}") from exc
    return rows


def _request(args: argparse.Namespace, model: str, version: str) -> Any:
    from gateway._proto import explain_pb2 as pb

    req = pb.ExplainRequest(
        model=model, version=version, output=args.output_name or "", timeout_s=args.timeout
    )
    if args.output is not None:
        req.output_index = args.output
        req.has_output_index = True
    return req


def _merge(parts: list[Any]) -> dict[str, Any]:
    first = parts[0]
    n = len(first.features)
    attributions: list[list[float]] = []
    for p in parts:
        attributions.extend(np.asarray(p.attributions).reshape(-1, n).tolist())
    return {
        "model": first.model,
        "version": first.version,
        "output": first.output,
        "method": first.method,
        "features": list(first.features),
        "base_value": [v for p in parts for v in p.base_value],
        "attributions": attributions,
        "output_value": [v for p in parts for v in p.output_value],
    }


def _table(payload: dict[str, Any], top: int) -> None:
    print(
        f"{payload['model']}:{payload['version']}  {payload['output']}  "
        f"method {payload['method']}  base value {payload['base_value'][0]:.6g}"
    )
    rows = []
    for i, (value, attrs) in enumerate(
        zip(payload["output_value"], payload["attributions"], strict=True)
    ):
        order = np.argsort(-np.abs(attrs))[:top]
        cells = [f"{payload['features'][j]} {attrs[j]:+.4g}" for j in order]
        rows.append([i, f"{value:.6g}", ", ".join(cells)])
    print_table(rows, ["row", "output", f"top {top} attributions"])


def importance_payload(
    args: argparse.Namespace, model: str, version: str, *, strict: bool = False
) -> dict[str, Any]:
    """version -> {rows, features, mean_abs} from the gateway's importance sampler; empty
    (unless ``strict``) when the gateway cannot say (an older gateway, a refused token)."""
    import grpc

    from gateway._proto import explain_pb2 as pb
    from gateway._proto import explain_pb2_grpc as pb_grpc

    metadata = token_metadata(PREDICT_TOKEN_ENV, required=False, args=args)
    request = pb.GetImportanceRequest(model=model, version=version)
    try:
        with channel(args) as ch:
            resp = pb_grpc.ExplainStub(ch).GetImportance(
                request, metadata=metadata, timeout=args.timeout
            )
    except grpc.RpcError:
        if strict:
            raise
        return {}
    return {
        v.version: {"rows": v.rows, "features": list(v.features), "mean_abs": list(v.mean_abs)}
        for v in resp.versions
    }


def _importance_table(payload: dict[str, Any], top: int) -> None:
    if not payload:
        print("no sampled rows explained yet (explain_sample_rate, a reference sample)")
    for version, imp in payload.items():
        print(f"version {version}: mean |attribution| over {imp['rows']} sampled rows")
        pairs = sorted(zip(imp["features"], imp["mean_abs"], strict=True), key=lambda p: -p[1])
        print_table([[f, f"{v:.6g}"] for f, v in pairs[:top]], ["feature", "importance"])


def cmd_explain(args: argparse.Namespace) -> int:
    from gateway._proto import explain_pb2_grpc as pb_grpc

    model, _, version = args.ref.partition(":")
    if args.importance:
        found = importance_payload(args, model, version, strict=True)
        emit(args, found, lambda: _importance_table(found, max(args.top, 10)))
        return EXIT_OK
    if (args.data is None) == (args.id is None):
        raise CliError("give exactly one of --data FILE and --id ID (or --importance)")
    metadata = token_metadata(PREDICT_TOKEN_ENV, required=False, args=args)
    requests = []
    if args.id is not None:
        req = _request(args, model, version)
        req.id = args.id
        requests.append(req)
    else:
        rows = _rows(Path(args.data))
        for start in range(0, rows.shape[0], ROWS_PER_CALL):
            chunk = rows[start : start + ROWS_PER_CALL]
            req = _request(args, model, version)
            req.rows.extend(chunk.reshape(-1).tolist())
            req.shape.extend(chunk.shape)
            requests.append(req)
    with channel(args) as ch:
        stub = pb_grpc.ExplainStub(ch)
        parts = [stub.Explain(requests[0], metadata=metadata, timeout=args.timeout)]
        for r in requests[1:]:
            r.version = parts[0].version  # every chunk explains the version the first did
            parts.append(stub.Explain(r, metadata=metadata, timeout=args.timeout))
    payload = _merge(parts)
    emit(args, payload, lambda: _table(payload, args.top))
    return EXIT_OK


def add_commands(sub: Any) -> None:
    """Add ``explain`` to the top-level subcommands."""
    ex = sub.add_parser("explain", help="why a model version decided what it did (attributions)")
    ex.add_argument("ref", metavar="NAME[:VERSION]")
    ex.add_argument("--data", metavar="ROWS", help="rows to explain: .npy, .npz or .csv")
    ex.add_argument("--id", help="explain the prediction served earlier under this request id")
    ex.add_argument("--output", type=int, metavar="N", help="class index (output column)")
    ex.add_argument("--output-name", metavar="NAME", help="output tensor (default: first float)")
    ex.add_argument("--top", type=int, default=3, help="attributions per row in the table")
    ex.add_argument(
        "--importance", action="store_true", help="global importance from sampled traffic"
    )
    client_opts(ex)
    ex.set_defaults(func=cmd_explain, timeout=120.0)
