"""The ``onnxgate log`` commands: read and check the prediction log's Parquet files.

``log verify`` recomputes every file's sha256 against the ``log.segment`` events chained
into the registry's audit log (exit 1, naming each missing, altered or added file);
``log query "SQL"`` runs DuckDB over the files (the table is ``log``); ``log show ID``
prints one record with its tensors decoded; ``log erase --id ID | --segment KEY --reason
WHY`` rewrites the files holding those records and records it in the audit chain; ``log
replay NAME --version V [--since ISO] [--until ISO]`` runs a candidate version (the registry
artifact, onnxruntime) over the logged inputs of a period and reports its agreement with
what was served (:mod:`gateway.predictionlog.replay`). The
directory is ``--dir``, else the first Parquet sink of the ``prediction_log`` setting.
Needs the ``log`` extra (pyarrow, duckdb). Registered by
:func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.common import actor, open_registry, registry_opts, settings
from gateway.cli.output import EXIT_FAILED, EXIT_OK, CliError, emit, print_table

__all__ = ["add_commands"]


def log_location(args: argparse.Namespace, where: str | None) -> str | None:
    """``where`` (a folder or ``s3://BUCKET/PREFIX``), else the first file or s3 sink of
    ``prediction_log``; None when there is none."""
    if where:
        return where
    spec = settings(args).prediction_log
    return next((item for item in spec if not item.startswith(("http://", "https://"))), None)


def log_directory(location: str, artifact_dir: Path, *, fresh: bool = False) -> Path:
    """The local directory of the log at ``location``. A bucket is mirrored into a cache
    beside ``artifact_dir`` first (``fresh``: every object downloaded again, for verify)."""
    from gateway.predictionlog.build import parquet_dirs

    if not location.startswith("s3://"):
        return parquet_dirs([location])[0]
    from gateway.predictionlog.objectstore import mirror, parse_url

    bucket, prefix, _ = parse_url(location)
    cache = artifact_dir.parent / "prediction-log-cache" / bucket / prefix
    try:
        return mirror(location, cache, fresh=fresh)
    except Exception as exc:
        raise CliError(f"cannot read the prediction log in {location}: {exc}") from exc


def _directory(args: argparse.Namespace, *, fresh: bool = False) -> Path:
    location = log_location(args, args.dir)
    if location is None:
        raise CliError("no prediction-log directory: pass --dir or set prediction_log")
    directory = log_directory(location, Path(settings(args).artifact_dir), fresh=fresh)
    if not directory.is_dir():
        raise CliError(f"prediction-log directory {directory} does not exist")
    return directory


def _relation_sql(directory: Path) -> str:
    glob = (directory / "**" / "*.parquet").as_posix().replace("'", "''")
    return f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"


def _run(
    directory: Path, sql: str, params: list[Any] | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    try:
        import duckdb
    except ImportError as exc:
        raise CliError("log query needs the log extra: pip install 'onnxgate[log]'") from exc
    if not any(directory.rglob("*.parquet")):
        raise CliError(f"no closed prediction-log files under {directory} yet")
    con = duckdb.connect()
    try:
        con.execute(f"create view log as select * from {_relation_sql(directory)}")
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description or ()]
        return names, cursor.fetchall()
    except duckdb.Error as exc:
        raise CliError(f"query failed: {exc}") from exc
    finally:
        con.close()


def cmd_verify(args: argparse.Namespace) -> int:
    from gateway.predictionlog.chain import recorded_segments, verify

    directory = _directory(args, fresh=True)
    reg = open_registry(args)
    try:
        segments = recorded_segments(reg.audit_events())
        found = verify(directory, segments, reg.verify_audit_chain())
    finally:
        reg.close()
    payload = {
        "ok": found.ok,
        "checked": found.checked,
        "missing": found.missing,
        "altered": found.altered,
        "added": found.added,
        "chain_problems": found.chain_problems,
    }

    def table() -> None:
        if found.ok:
            print(f"prediction log intact: {found.checked} file(s) match the audit chain")
            return
        print("prediction log NOT intact:")
        for kind in ("missing", "altered", "added"):
            for path in getattr(found, kind):
                print(f"  {kind:8} {path}")
        for problem in found.chain_problems:
            print(f"  chain    {problem}")

    emit(args, payload, table)
    return EXIT_OK if found.ok else EXIT_FAILED


def cmd_query(args: argparse.Namespace) -> int:
    names, rows = _run(_directory(args), args.sql)
    payload = [dict(zip(names, row, strict=True)) for row in rows]
    emit(args, payload, lambda: print_table([[_cell(v) for v in row] for row in rows], names))
    return EXIT_OK


def _cell(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if isinstance(value, list) and value and isinstance(value[0], dict) and "data" in value[0]:
        return ",".join(f"{t['name']}{list(t['shape'])}" for t in value)
    return str(value)


def cmd_show(args: argparse.Namespace) -> int:
    from gateway.predictionlog.record import decode_tensors

    directory = _directory(args)
    names, rows = _run(directory, "select * from log where request_id = ?", [args.id])
    if not rows:
        raise CliError(f"no record with request id {args.id!r} under {directory}")
    records = []
    for row in rows:
        record = dict(zip(names, row, strict=True))
        for side in ("inputs", "outputs"):
            tensors = decode_tensors(record[side] or [])
            record[side] = {
                name: {"datatype": entry["datatype"], "shape": list(entry["shape"]),
                       "data": _plain(tensors[name])}
                for name, entry in ((e["name"], e) for e in record[side] or [])
            }  # fmt: skip
        records.append(record)

    def table() -> None:
        for record in records:
            for key, value in record.items():
                if key in ("inputs", "outputs"):
                    for name, tensor in value.items():
                        print(f"{key[:-1]:>17} {name} {tensor['datatype']}{tensor['shape']}: "
                              f"{tensor['data']}")  # fmt: skip
                else:
                    print(f"{key:>17} {value}")

    emit(args, records, table)
    return EXIT_OK


def cmd_erase(args: argparse.Namespace) -> int:
    from gateway.predictionlog.erasure import erase

    if bool(args.id) == (args.segment is not None):
        raise CliError("name either --id (one or more) or --segment")
    directory = _directory(args)
    reg = open_registry(args)
    try:
        done = erase(directory, reg, request_ids=args.id or (), segment=args.segment,
                     actor=actor(), reason=args.reason)  # fmt: skip
    finally:
        reg.close()
    location = log_location(args, args.dir) or ""
    if location.startswith("s3://"):
        from gateway.predictionlog.objectstore import push_back

        # NOTE: after the chain records the new digests: until this upload ends, `verify`
        # reports the rewritten objects as altered (never the reverse).
        push_back(location, directory, done.rewritten, done.removed)
    payload = {"erased": done.erased, "rewritten": done.rewritten, "removed": done.removed}
    emit(args, payload, lambda: print(
        f"erased {done.erased} record(s): {len(done.rewritten)} file(s) rewritten, "
        f"{len(done.removed)} removed; recorded in the audit log (log.erasure)"
    ))  # fmt: skip
    return EXIT_OK


def _when(text: str | None, flag: str) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"{flag}: not an ISO 8601 time: {text!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def cmd_replay(args: argparse.Namespace) -> int:
    from gateway.predictionlog.replay import logged_batches, onnx_candidate, replay

    directory = _directory(args)
    since, until = _when(args.since, "--since"), _when(args.until, "--until")
    reg = open_registry(args)
    try:
        artifact = reg.read_artifact(args.name, args.version)
    finally:
        reg.close()
    candidate, kinds = onnx_candidate(artifact)
    report = replay(logged_batches(directory, args.name, since, until), candidate, kinds)
    payload = {"model": args.name, "candidate": args.version, **report.to_dict()}

    def share(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    def table() -> None:
        served = ", ".join(f"{v} ({n})" for v, n in sorted(report.served_versions.items()))
        print(f"replayed {report.records} record(s) ({report.rows} rows) of {args.name} on "
              f"version {args.version} in {report.seconds:.2f}s")  # fmt: skip
        print(f"served by version(s): {served or '-'}")
        print(f"exact match: {share(report.exact_share)}   label agreement: "
              f"{share(report.label_agreement)}   failed: {report.failed}")  # fmt: skip
        rows = [(name, o.compared, share(o.to_dict()["exact_share"]), f"{o.max_abs_diff:.6g}")
                for name, o in sorted(report.outputs.items())]  # fmt: skip
        print_table(rows, ("OUTPUT", "COMPARED", "EXACT", "MAX |DIFF|"))

    emit(args, payload, table)
    return EXIT_OK


def _plain(array: Any) -> Any:
    if array.dtype.kind == "O":
        return [b.decode("utf-8", "replace") for b in array.reshape(-1)]
    return array.tolist()


def add_commands(sub: Any) -> None:
    """Add ``log verify | query SQL | show ID | erase | replay``."""
    log = sub.add_parser(
        "log", help="the prediction log: verify | query SQL | show ID | erase | replay"
    )
    lsub = log.add_subparsers(dest="log_command", required=True)
    commands = (
        ("verify", "check every file against the audit chain (exit 1 if not intact)", cmd_verify),
        ("query", 'DuckDB SQL over the log (table "log"), e.g. "select count(*) from log"',
         cmd_query),
        ("show", "one record by request id, tensors decoded", cmd_show),
        ("erase", "remove records by request id or segment (GDPR Art. 17), audited",
         cmd_erase),
        ("replay", "run a candidate version over logged inputs; agreement with what served",
         cmd_replay),
    )  # fmt: skip
    for name, helptext, func in commands:
        sp = lsub.add_parser(name, help=helptext)
        if name == "query":
            sp.add_argument("sql")
        elif name == "show":
            sp.add_argument("id")
        elif name == "replay":
            sp.add_argument("name", help="the model")
            sp.add_argument("--version", required=True, help="the candidate version to run")
            sp.add_argument("--since", help="ISO 8601 time (inclusive; UTC unless given)")
            sp.add_argument("--until", help="ISO 8601 time (exclusive)")
        elif name == "erase":
            sp.add_argument("--id", action="append", help="a request id to erase (repeatable)")
            sp.add_argument("--segment", help="erase every record of this segment")
            sp.add_argument("--reason", required=True, help="why (kept in the audit log)")
        sp.add_argument(
            "--dir",
            help="the log's directory or s3://BUCKET/PREFIX "
            "(default: prediction_log's first file or s3 sink)",
        )
        registry_opts(sp)
        sp.set_defaults(func=func)
