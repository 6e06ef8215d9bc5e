"""What every command family shares: settings, the registry, the actor, gateway calls.

Registry commands open the registry named by ``--registry``/``--config``/env directly;
client commands call a gateway (``--target``) with the bearer token from the environment.
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from typing import Any

import grpc

from gateway.cli.output import CliError
from gateway.settings import Settings

__all__ = [
    "ADMIN_TOKEN_ENV",
    "PREDICT_TOKEN_ENV",
    "actor",
    "call",
    "channel",
    "client_opts",
    "open_registry",
    "registry_opts",
    "settings",
    "token_metadata",
    "version_dict",
]

ADMIN_TOKEN_ENV = "ONNXGATE_ADMIN_TOKEN"
PREDICT_TOKEN_ENV = "ONNXGATE_PREDICT_TOKEN"

Metadata = tuple[tuple[str, str], ...]


def registry_opts(sp: argparse.ArgumentParser) -> None:
    """The options of a command that opens the registry itself."""
    sp.add_argument("--registry", help="SQLAlchemy URL (env ONNXGATE_REGISTRY)")
    sp.add_argument("--artifact-dir", help="artifact store (env ONNXGATE_ARTIFACT_DIR)")
    sp.add_argument("--config", help="TOML settings file (env ONNXGATE_CONFIG)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def client_opts(sp: argparse.ArgumentParser) -> None:
    """The options of a command that calls a gateway."""
    sp.add_argument("--target", default=os.environ.get("ONNXGATE_TARGET", "localhost:8001"))
    sp.add_argument("--timeout", type=float, default=30.0)
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def settings(args: argparse.Namespace) -> Settings:
    overrides = {
        "registry": getattr(args, "registry", None),
        "artifact_dir": getattr(args, "artifact_dir", None),
    }
    return Settings.load(toml_path=getattr(args, "config", None), overrides=overrides)


def actor() -> str:
    """Who the audit log names for a registry write made from this CLI."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def open_registry(args: argparse.Namespace) -> Any:
    """The registry the settings name; creates an empty database, refuses an outdated one."""
    from registry import open_registry as open_checked

    s = settings(args)
    return open_checked(s.registry, s.artifact_dir)


def version_dict(v: Any) -> dict[str, Any]:
    """A registry ``VersionRecord`` as JSON-ready data."""
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


def channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target)


def token_metadata(env: str = ADMIN_TOKEN_ENV, *, required: bool = True) -> Metadata:
    """``authorization: Bearer`` metadata from the token in ``env`` (none if optional)."""
    token = os.environ.get(env, "")
    if not token:
        if required:
            raise CliError(f"set {env} to your token")
        return ()
    return (("authorization", f"Bearer {token}"),)


def call(
    args: argparse.Namespace,
    stub: Callable[[grpc.Channel], Any],
    method: str,
    request: Any,
    *,
    metadata: Metadata | None = None,
) -> Any:
    """One unary call on ``args.target``, with the admin token unless ``metadata`` is given."""
    md = token_metadata() if metadata is None else metadata
    with channel(args.target) as ch:
        return getattr(stub(ch), method)(request, metadata=md, timeout=args.timeout)
