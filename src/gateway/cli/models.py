"""``onnxgate models register|list|show|bom``: the model registry, opened directly.

These commands need no gateway: they open the registry the settings name. The governance
family adds ``models search|card|approvals|validate|retire`` and the lineage flags of
``register`` (:mod:`gateway.cli.governance`).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    actor,
    open_registry,
    registry_label,
    registry_opts,
    settings,
    version_dict,
)
from gateway.cli.convert import converted_artifact, is_trained_model
from gateway.cli.governance import lineage_from_args, revalidate_if_profile_required
from gateway.cli.monitoring import reference_doc
from gateway.cli.output import EXIT_OK, CliError, emit, print_table

__all__ = ["add_commands"]


def _refuse_duplicate(reg: Any, model: str, version: str | None, data: bytes) -> None:
    """Refuse bytes that a version of ``model`` already holds: a new version would be a
    copy that routing, drift and the governor treat as a different model."""
    from registry.errors import NotFoundError

    sha = hashlib.sha256(data).hexdigest()
    try:
        versions = reg.list_versions(model)
    except NotFoundError:
        return
    if version in {v.version for v in versions}:
        return  # the registry refuses the taken version name, which says more
    same = [v.version for v in versions if v.sha256 == sha]
    if same:
        raise CliError(
            f"refused: {model}:{same[0]} already has this artifact (sha256 {sha}); "
            "pass --allow-duplicate to register the same bytes as a new version"
        )


def _read_bundle(name: str | None) -> bytes | None:
    if name is None:
        return None
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read --signature {name}: {exc.strerror}") from exc


def _trust(bundle: bytes | None, source: bytes | None) -> Any:
    from registry import Trust

    return None if bundle is None else Trust(bundle=bundle, signed_source=source)


def cmd_models_register(args: argparse.Namespace) -> int:
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
    lineage = lineage_from_args(args)
    bundle = _read_bundle(args.signature)
    source = data
    trained = is_trained_model(path)
    if trained:  # model.pkl|.joblib|.txt|.json: convert it (gateway.cli.convert)
        data, lineage = converted_artifact(args, path, lineage)
    profile = None
    labelled = getattr(args, "reference_labels", None) or getattr(args, "label_column", None)
    if labelled and not getattr(args, "reference", None):
        raise CliError("--reference-labels and --label-column need --reference")
    if getattr(args, "reference", None):
        labels = getattr(args, "reference_labels", None)
        profile = reference_doc(
            Path(args.reference),
            data,
            meta,
            labels=Path(labels) if labels else None,
            label_column=getattr(args, "label_column", None),
        )
    reg = open_registry(args, create=True)
    try:
        if not args.allow_duplicate:
            _refuse_duplicate(reg, args.name, args.version, data)
        rec = reg.register_version(
            args.name,
            data,
            version=args.version,
            description=args.description or "",
            owner=args.owner or "",
            metadata=meta,
            actor=actor(),
            force=args.force,
            lineage=lineage,
            # A trained model's bundle signs the file handed over, not its conversion.
            trust=_trust(bundle, source if trained else None),
        )
        if profile is not None:
            doc, summary = profile
            reg.set_profile(
                rec.model, rec.version, doc, source="reference", actor=actor(), summary=summary
            )
            rec = revalidate_if_profile_required(reg, rec, actor())
    finally:
        reg.close()
    where = registry_label(settings(args).registry)
    emit(
        args,
        version_dict(rec),
        lambda: print(f"registered {rec.model}:{rec.version} sha256={rec.sha256[:16]}… in {where}"),
    )
    return EXIT_OK


def cmd_models_list(args: argparse.Namespace) -> int:
    reg = open_registry(args)
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

    def table() -> None:
        print(f"registry {registry_label(settings(args).registry)}")
        print_table(
            [(m.name, ",".join(m.versions), m.champion or "-", m.revision) for m in models],
            ("MODEL", "VERSIONS", "CHAMPION", "REVISION"),
        )

    emit(args, payload, table)
    return EXIT_OK


def cmd_models_show(args: argparse.Namespace) -> int:
    from registry import signer_of

    name, _, version = args.ref.partition(":")
    reg = open_registry(args)
    try:
        rec = reg.get_version(name, version or None)
    finally:
        reg.close()
    info = version_dict(rec)

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
        print(f"{'trust':12} {signer_of(rec.lineage.tags)}")
        print(
            f"{'scan':12} {rec.lineage.tags.get('scan', 'not scanned (registered before scans)')}"
        )
        for k, v in sorted(rec.metadata.items()):
            print(f"{'meta':12} {k}={v}")
        for label, specs in (("input", rec.signature.inputs), ("output", rec.signature.outputs)):
            for s in specs:
                print(f"{label:12} {s.name} {s.datatype} {list(s.shape)}")

    emit(args, info, table)
    return EXIT_OK


def cmd_models_bom(args: argparse.Namespace) -> int:
    from registry import build_bom

    name, _, version = args.ref.partition(":")
    if not version:
        raise CliError(f"{args.ref!r}: expected NAME:VERSION")
    reg = open_registry(args)
    try:
        document = build_bom(reg, name, version)
    finally:
        reg.close()
    if args.out:
        try:
            Path(args.out).write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
        print(f"wrote the CycloneDX 1.6 bill of materials of {name}:{version} to {args.out}")
    else:
        print(document)
    return EXIT_OK


def add_commands(sub: Any) -> tuple[Any, argparse.ArgumentParser]:
    """Add ``models``; return its sub-commands and ``models register`` for other families."""
    models = sub.add_parser("models", help="the model registry").add_subparsers(
        dest="models_command", required=True
    )
    r = models.add_parser("register", help="register a new version of a model")
    r.add_argument("name")
    r.add_argument("file")
    r.add_argument("--version", help="version name (default: the next whole number, 1, 2, ...)")
    r.add_argument("--description", help="one line about this version")
    r.add_argument("--owner", help="who is responsible for it")
    r.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata (repeatable)")
    r.add_argument("--force", action="store_true", help="accept an incompatible signature")
    r.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="register bytes that a version of this model already has (refused otherwise)",
    )
    r.add_argument("--reference", metavar="FILE", help="reference sample (.npy/.npz/.csv)")
    r.add_argument(
        "--signature", metavar="BUNDLE",
        help="model-signing bundle over FILE (`model_signing sign key|certificate`), "
        "verified against the policy's [signing] trust",
    )  # fmt: skip
    r.add_argument(
        "--reference-labels",
        metavar="FILE",
        help="the reference's labels, one class id per row (.npy/.csv): label-free "
        "performance estimates (onnxgate performance)",
    )
    r.add_argument(
        "--label-column", metavar="COL", help="the CSV reference's column holding the labels"
    )
    registry_opts(r)
    r.set_defaults(func=cmd_models_register)
    ls = models.add_parser("list", help="list models")
    registry_opts(ls)
    ls.set_defaults(func=cmd_models_list)
    sh = models.add_parser("show", help="show one version (NAME or NAME:VERSION)")
    sh.add_argument("ref")
    registry_opts(sh)
    sh.set_defaults(func=cmd_models_show)
    bom = models.add_parser("bom", help="CycloneDX 1.6 ML bill of materials of NAME:VERSION")
    bom.add_argument("ref", metavar="NAME:VERSION")
    bom.add_argument("--out", metavar="FILE", help="write it to FILE (default: standard output)")
    registry_opts(bom)
    bom.set_defaults(func=cmd_models_bom)
    return models, r
