"""Audit and history commands of the ``onnxgate`` CLI, straight against the registry.

``audit verify`` (exit 1 and the problems when the hash chain is broken), ``audit export
--since ... --format jsonl`` (hashes included, so the export can be re-verified offline),
``audit pack NAME --since ... --until ... --out DIR`` (the auditor's folder, mapped to AI
Act Art. 11/12/19: :mod:`gateway.auditpack`), ``audit NAME`` (a table for people),
``deployment at NAME TIME`` (what served then),
``retention apply [--dry-run]`` and ``db upgrade|status``. Registered by
:func:`gateway.cli.parser.build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    actor,
    open_registry,
    refuse_missing,
    registry_opts,
    require_driver,
    settings,
)
from gateway.cli.output import EXIT_FAILED, EXIT_OK, CliError, arm_order, emit, print_table

__all__ = ["add_commands"]


def _detail(e: Any) -> str:
    after = e.after if isinstance(e.after, dict) else {}
    if e.action.startswith("deployment.") and "arms" in after:
        total = sum(a["weight"] for a in after["arms"]) or 1.0
        arms = " ".join(
            f"{a['version']}({a['role'][:5]})={100 * a['weight'] / total:.0f}%"
            for a in sorted(after["arms"], key=lambda a: arm_order(a["version"], a["role"]))
        )
        return f"rev {after.get('revision')}: {arms}"
    if e.action == "governance.refused":
        return f"rule {after.get('rule')} refused {after.get('attempted')}"
    if "status" in after:
        before = e.before.get("status") if isinstance(e.before, dict) else None
        extra = f" ({after['approvals']}/{after['required']})" if "approvals" in after else ""
        return f"{before or '-'} -> {after['status']}{extra}"
    return ""


def cmd_audit(args: argparse.Namespace) -> int:
    if args.target_name == "verify":
        return _audit_verify(args)
    if args.target_name == "export":
        return _audit_export(args)
    if args.target_name == "pack":
        return _audit_pack(args)
    subject = args.target_name
    reg = open_registry(args)
    try:
        events = reg.audit_events(subject, args.limit or None)
    finally:
        reg.close()
    payload = [
        {"seq": e.seq, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
         "subject": e.subject, "before": e.before, "after": e.after, "reason": e.reason,
         "hash": e.hash}
        for e in events
    ]  # fmt: skip
    rows = [
        (e.seq, e.at.isoformat()[:19], e.actor, e.action, e.subject, _detail(e), e.reason)
        for e in events
    ]
    header = ("SEQ", "AT (UTC)", "ACTOR", "ACTION", "SUBJECT", "CHANGE", "REASON")
    emit(args, payload, lambda: print_table(rows, header))
    return EXIT_OK


def _audit_verify(args: argparse.Namespace) -> int:
    reg = open_registry(args)
    try:
        problems = reg.verify_audit_chain()
        last = reg.audit_events(limit=1)
        count = last[0].seq if last else 0
    finally:
        reg.close()
    payload = {"intact": not problems, "events": count, "problems": problems}

    def table() -> None:
        if not problems:
            print(f"audit chain intact: {count} event(s), every hash and link checked")
            return
        print(f"audit chain BROKEN: {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")

    emit(args, payload, table)
    return EXIT_OK if not problems else EXIT_FAILED


def _audit_export(args: argparse.Namespace) -> int:
    from registry import parse_instant

    try:
        since = parse_instant(args.since) if args.since else None
        until = parse_instant(args.until) if args.until else None
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    reg = open_registry(args)
    try:
        events = reg.governance.audit_export(since, until)
    finally:
        reg.close()
    lines = "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in events)
    if args.output:
        try:
            Path(args.output).write_text(lines, encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.output}: {exc.strerror}") from exc
        print(f"exported {len(events)} event(s) to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(lines)
    return EXIT_OK


def _audit_pack(args: argparse.Namespace) -> int:
    from gateway.auditpack import gather, write_pack
    from gateway.cli.log import log_directory, log_location
    from registry import NotFoundError, parse_instant, utcnow

    if not args.name or not args.out:
        raise CliError("audit pack needs a model name and --out DIR")
    try:
        since = parse_instant(args.since) if args.since else None
        until = parse_instant(args.until) if args.until else None
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    location = log_location(args, args.log_dir)
    artifacts = Path(settings(args).artifact_dir)
    log_dir = None if location is None else log_directory(location, artifacts, fresh=True)
    reg = open_registry(args)
    try:
        evidence = gather(
            reg, args.name, since=since, until=until, log_dir=log_dir, actor=actor(), now=utcnow()
        )
    except NotFoundError as exc:
        raise CliError(str(exc)) from exc
    finally:
        reg.close()
    try:
        result = write_pack(evidence, Path(args.out))
    except (OSError, FileExistsError) as exc:
        raise CliError(f"cannot write the pack: {exc}") from exc
    index = result.index
    files = [{k: f[k] for k in ("path", "sha256", "articles")} for f in index["files"]]
    payload = {"out": str(result.out), "verified": result.verified, "files": files}

    def table() -> None:
        state = "verified" if result.verified else "verification FAILED (see verification.json)"
        print(f"audit pack of {args.name} written to {result.out}: {len(index['files'])} "
              f"file(s), {state}; open index.html or index.md")  # fmt: skip

    emit(args, payload, table)
    return EXIT_OK if result.verified else EXIT_FAILED


def cmd_deployment_at(args: argparse.Namespace) -> int:
    from registry import parse_instant

    try:
        at = parse_instant(args.when)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    reg = open_registry(args)
    try:
        found = reg.governance.deployment_at(args.name, at)
    finally:
        reg.close()
    dep, rec = found.record.deployment, found.record
    payload = {
        "model": dep.model,
        "at": at.isoformat(),
        "revision": dep.revision,
        "since": rec.created_at.isoformat(),
        "until": None if found.until is None else found.until.isoformat(),
        "actor": rec.actor,
        "reason": rec.reason,
        "arms": [a.to_dict() for a in dep.arms],
        "shadows": [s.to_dict() for s in dep.shadows],
    }

    def table() -> None:
        until = "still current" if found.until is None else f"until {found.until.isoformat()}"
        print(f"model {dep.model} at {at.isoformat()}: revision {dep.revision}")
        print(f"in force since {rec.created_at.isoformat()} ({until})")
        print(f"set by {rec.actor}" + (f": {rec.reason}" if rec.reason else ""))
        total = sum(a.weight for a in dep.arms) or 1.0
        rows: list[tuple[Any, ...]] = [
            (a.version, a.role.value, f"{100 * a.weight / total:.1f}%")
            for a in sorted(dep.arms, key=lambda a: arm_order(a.version, a.role.value))
        ]
        rows += [(s.version, "shadow", f"{100 * s.fraction:.1f}% mirrored") for s in dep.shadows]
        print_table(rows, ("VERSION", "ROLE", "TRAFFIC"))

    emit(args, payload, table)
    return EXIT_OK


def _log_directory(args: argparse.Namespace) -> Path | None:
    """The prediction log's directory retention looks after: ``--log-dir``, else the first
    Parquet sink of ``prediction_log`` (None: no log here)."""
    if args.log_dir:
        return Path(args.log_dir)
    from gateway.predictionlog.build import parquet_dirs

    dirs = parquet_dirs(settings(args).prediction_log)
    return dirs[0] if dirs and dirs[0].is_dir() else None


def cmd_retention(args: argparse.Namespace) -> int:
    from gateway.predictionlog.retention import remove_expired

    directory = _log_directory(args)
    reg = open_registry(args)
    try:
        items = reg.governance.retention(apply=not args.dry_run, actor=actor())
        logged = None
        if directory is not None:
            floor = reg.governance.policy().prediction_log_days
            logged = remove_expired(directory, reg, floor_days=floor, actor=actor(),
                                    now=datetime.now(UTC), dry_run=args.dry_run)  # fmt: skip
    finally:
        reg.close()
    payload: dict[str, Any] = {"dry_run": args.dry_run, "items": [i.to_dict() for i in items]}
    if logged is not None:
        payload["prediction_log"] = {"floor_days": logged.floor_days,
                                     "removed": logged.removed, "kept": logged.kept}  # fmt: skip

    def table() -> None:
        deleting = sum(i.action == "delete" for i in items)
        verb = "would delete" if args.dry_run else "deleted"
        print(f"retention ({'dry run, nothing changed' if args.dry_run else 'applied'}): "
              f"{verb} {deleting} of {len(items)} retired version(s)")  # fmt: skip
        rows = [
            (i.model, i.version, (i.retired_at.isoformat()[:19] if i.retired_at else "-"),
             i.action, i.artifact, i.reason)
            for i in items
        ]  # fmt: skip
        print_table(rows, ("MODEL", "VERSION", "RETIRED", "ACTION", "ARTIFACT", "REASON"))
        if logged is not None:
            floor = ("no prediction_log_days floor set: every file kept"
                     if logged.floor_days is None
                     else f"floor {logged.floor_days:g} days")  # fmt: skip
            verb = "would remove" if args.dry_run else "removed"
            print(f"prediction log ({floor}): {verb} {len(logged.removed)} file(s), "
                  f"kept {logged.kept}")  # fmt: skip

    emit(args, payload, table)
    return EXIT_OK


def cmd_db(args: argparse.Namespace) -> int:
    from registry import make_engine, schema_status, upgrade_engine

    url = settings(args).registry
    require_driver(url)
    if args.db_command == "status":
        refuse_missing(url)  # a status check must not leave an empty database behind
    engine = make_engine(url)
    try:
        before = schema_status(engine)
        if args.db_command == "upgrade":
            upgrade_engine(engine)
        after = schema_status(engine)
    finally:
        engine.dispose()
    was, now = ", ".join(before.current) or "empty", ", ".join(after.current) or "empty"
    payload = {"before": list(before.current), "current": list(after.current),
               "head": list(after.head), "up_to_date": after.up_to_date}  # fmt: skip
    if args.db_command == "upgrade":
        text = f"registry schema at {now}" + (f" (upgraded from {was})" if was != now else "")
    else:
        text = after.describe() + ("" if after.up_to_date else "; run `onnxgate db upgrade`")
    emit(args, payload, lambda: print(text))
    return EXIT_OK if after.up_to_date else EXIT_FAILED


def add_commands(sub: Any) -> None:
    """Add ``audit``, ``deployment at``, ``retention apply`` and ``db upgrade|status``."""
    au = sub.add_parser("audit", help="audit trail: verify | export | pack NAME | NAME[:VERSION]")
    au.add_argument("target_name", metavar="verify|export|pack|NAME")
    au.add_argument("name", nargs="?", help="pack: the model")
    au.add_argument("--since", help="export, pack: ISO 8601 time (e.g. 2026-03-01T00:00Z)")
    au.add_argument("--until", help="export, pack: ISO 8601 time, exclusive")
    au.add_argument("--out", metavar="DIR", help="pack: the folder to write (new or empty)")
    au.add_argument(
        "--log-dir",
        help="pack: the prediction log's folder or s3://BUCKET/PREFIX (default: prediction_log's)",
    )
    au.add_argument("--format", choices=["jsonl"], default="jsonl", help="export format")
    au.add_argument("--output", metavar="FILE", help="export: write here, not stdout")
    au.add_argument("--limit", type=int, default=0, help="NAME: most recent N events")
    registry_opts(au)
    au.set_defaults(func=cmd_audit)

    dep = sub.add_parser("deployment", help="deployment history").add_subparsers(
        dest="deployment_command", required=True
    )
    at = dep.add_parser("at", help="what served NAME at a time, e.g. 2026-03-03T10:00Z")
    at.add_argument("name")
    at.add_argument("when")
    registry_opts(at)
    at.set_defaults(func=cmd_deployment_at)

    ret = sub.add_parser("retention", help="delete retired versions past retention")
    rsub = ret.add_subparsers(dest="retention_command", required=True)
    ra = rsub.add_parser("apply", help="apply the policy's retention (see --dry-run)")
    ra.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    ra.add_argument("--log-dir", help="prediction-log directory (default: prediction_log's)")
    registry_opts(ra)
    ra.set_defaults(func=cmd_retention)

    db = sub.add_parser("db", help="registry database schema").add_subparsers(
        dest="db_command", required=True
    )
    for name, helptext in (
        ("upgrade", "migrate the registry database to this onnxgate's schema"),
        ("status", "the schema revision (exit 1 if it needs an upgrade)"),
    ):
        p = db.add_parser(name, help=helptext)
        registry_opts(p)
        p.set_defaults(func=cmd_db)
