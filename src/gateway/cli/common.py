"""What every command family shares: settings, the registry, the actor, gateway calls.

Registry commands open the registry named by ``--registry``/``--config``/env directly, and
only ``models register`` (and ``db upgrade``) may create one. Client commands call a gateway
(``--target``) with the same connection options everywhere (:func:`client_opts`): a bearer
token read from the environment or a file, and TLS (a CA to trust, and a client certificate
and key for mTLS).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from gateway.cli.output import CliError
from gateway.settings import Settings

__all__ = [
    "ADMIN_TOKEN_ENV",
    "PREDICT_TOKEN_ENV",
    "TARGET_ENV",
    "actor",
    "call",
    "channel",
    "client_opts",
    "connection_opts",
    "is_unreachable",
    "open_registry",
    "registry_label",
    "refuse_missing",
    "registry_opts",
    "require_driver",
    "settings",
    "tls_material",
    "token_metadata",
    "unreachable",
    "version_dict",
]

ADMIN_TOKEN_ENV = "ONNXGATE_ADMIN_TOKEN"
PREDICT_TOKEN_ENV = "ONNXGATE_PREDICT_TOKEN"
TARGET_ENV = "ONNXGATE_TARGET"
# NOTE: not ONNXGATE_TLS_*: those name the server's settings, which Settings.load reads.
CLIENT_TLS_ENV = {
    "tls_ca": "ONNXGATE_CLIENT_CA",
    "tls_cert": "ONNXGATE_CLIENT_CERT",
    "tls_key": "ONNXGATE_CLIENT_KEY",
}

Metadata = tuple[tuple[str, str], ...]


def registry_opts(sp: argparse.ArgumentParser) -> None:
    """The options of a command that opens the registry itself."""
    sp.add_argument(
        "--registry",
        help="SQLAlchemy URL (default: env ONNXGATE_REGISTRY, else "
        "sqlite:///onnxgate-data/registry.db in the current directory)",
    )
    sp.add_argument(
        "--artifact-dir",
        help="artifact store (default: env ONNXGATE_ARTIFACT_DIR, else onnxgate-data/artifacts)",
    )
    sp.add_argument("--config", help="TOML settings file (default: env ONNXGATE_CONFIG, none)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def client_opts(sp: argparse.ArgumentParser) -> None:
    """The options of a command that calls a gateway: where, how long, token, TLS."""
    sp.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV, "localhost:8001"),
        metavar="HOST:PORT",
        help=f"the gateway to call (env {TARGET_ENV})",
    )
    sp.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    connection_opts(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")


def connection_opts(sp: argparse.ArgumentParser) -> None:
    """The token and TLS options of :func:`client_opts`, alone (``onnxgate bench`` has its
    own --target, --timeout and --json)."""
    sp.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"read the bearer token from FILE (default: env {ADMIN_TOKEN_ENV} for admin "
        f"calls, {PREDICT_TOKEN_ENV} for infer and feedback)",
    )
    sp.add_argument(
        "--tls-ca",
        metavar="FILE",
        help=f"use TLS, trusting this CA (PEM) (default: env {CLIENT_TLS_ENV['tls_ca']}; "
        "plaintext when no TLS option is set)",
    )
    sp.add_argument(
        "--tls-cert",
        metavar="FILE",
        help=f"client certificate (PEM) for mTLS (default: env {CLIENT_TLS_ENV['tls_cert']})",
    )
    sp.add_argument(
        "--tls-key",
        metavar="FILE",
        help=f"client private key (PEM) for mTLS (default: env {CLIENT_TLS_ENV['tls_key']})",
    )


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


def registry_label(url: str) -> str:
    """The registry URL as a person should see it: SQLite paths absolute, no password."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=True)


def _exists(url: str) -> bool:
    """Whether the registry at ``url`` holds a schema (a SQLite file is not created)."""
    from sqlalchemy import inspect
    from sqlalchemy.engine import make_url

    from registry import make_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not path.is_file() or path.stat().st_size == 0:
            return False
    engine = make_engine(url)
    try:
        return bool(inspect(engine).get_table_names())
    finally:
        engine.dispose()


# The package extra that installs a database driver, by the module SQLAlchemy imports.
_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres"}


def require_driver(url: str) -> None:
    """Refuse, in one line naming what to install, a registry URL whose database driver is
    not installed (SQLAlchemy raised ModuleNotFoundError with a traceback)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
        parsed.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError):
        return  # not a URL SQLAlchemy knows: opening it says what is wrong
    except ImportError as exc:
        module = (exc.name or "").partition(".")[0] or parsed.get_driver_name()
        extra = _DRIVER_EXTRAS.get(module)
        how = (
            f"pip install 'onnxgate[{extra}]'"
            if extra
            else f"install the {module!r} package into this environment"
        )
        raise CliError(
            f"registry {registry_label(url)} needs the database driver {module!r}, which is "
            f"not installed: {how}"
        ) from None


def refuse_missing(url: str) -> None:
    """Raise the one-line refusal for a read of a registry that is not there."""
    require_driver(url)
    if not _exists(url):
        raise CliError(
            f"no registry at {registry_label(url)}: pass --registry URL (or set "
            "ONNXGATE_REGISTRY), or run from the directory that holds onnxgate-data/; "
            "`onnxgate models register` creates one"
        )


def open_registry(args: argparse.Namespace, *, create: bool = False) -> Any:
    """The registry the settings name; refuses an outdated one.

    Only a write that starts a registry (``create``: ``models register``) may create an
    empty one; a read of a registry that is not there is refused, naming the URL, rather
    than answering from an empty database made on the spot.
    """
    from registry import open_registry as open_checked

    s = settings(args)
    require_driver(s.registry)
    if not create:
        refuse_missing(s.registry)
    return open_checked(s.registry, s.artifact_dir, s.artifact_store)


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


def _read_pem(args: argparse.Namespace, key: str) -> bytes | None:
    path = getattr(args, key, None) or os.environ.get(CLIENT_TLS_ENV[key])
    if not path:
        return None
    flag = "--" + key.replace("_", "-")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"{flag} {path}: {exc.strerror}") from exc


def tls_material(
    args: argparse.Namespace,
) -> tuple[bytes | None, bytes | None, bytes | None] | None:
    """(CA, certificate, key) PEM bytes from the TLS options; None for plaintext."""
    ca, cert, key = (_read_pem(args, k) for k in ("tls_ca", "tls_cert", "tls_key"))
    if (cert is None) != (key is None):
        raise CliError("--tls-cert and --tls-key go together (mTLS needs both)")
    if ca is None and cert is None:
        return None
    return ca, cert, key


def channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to ``args.target``: TLS when any TLS option is set, plaintext otherwise."""
    material = tls_material(args)
    if material is None:
        return grpc.insecure_channel(args.target)
    ca, cert, key = material
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    return grpc.secure_channel(args.target, creds)


def token_metadata(
    env: str = ADMIN_TOKEN_ENV, *, required: bool = True, args: argparse.Namespace | None = None
) -> Metadata:
    """``authorization: Bearer`` metadata: the token in ``--token-file``, else in ``env``."""
    path = getattr(args, "token_file", None) if args is not None else None
    if path:
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"--token-file {path}: {exc.strerror}") from exc
        if not token:
            raise CliError(f"--token-file {path} is empty")
    else:
        token = os.environ.get(env, "")
    if not token:
        if required:
            raise CliError(f"set {env} to your token (or pass --token-file FILE)")
        return ()
    return (("authorization", f"Bearer {token}"),)


_TRANSPORT_FAILURES = (
    "failed to connect",
    "dns resolution",
    "connection refused",
    "handshake",
    "ssl",
    "socket closed",
    "connection reset",
    "end of tcp stream",
)


def is_unreachable(exc: grpc.RpcError) -> bool:
    """Whether ``exc`` is the channel failing to reach a gateway (not a gateway's answer)."""
    if not hasattr(exc, "code") or exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    detail = (exc.details() or "").lower()
    return any(marker in detail for marker in _TRANSPORT_FAILURES)


def unreachable(args: argparse.Namespace, exc: grpc.RpcError) -> CliError:
    """The one line for a gateway that cannot be reached, naming the target tried."""
    detail = (exc.details() if hasattr(exc, "details") else str(exc)) or ""
    secure = any(getattr(args, k, None) or os.environ.get(v) for k, v in CLIENT_TLS_ENV.items())
    tls = " over TLS" if secure else ""
    if not secure and "socket closed" in detail.lower():
        # NOTE: what a plaintext client sees from a TLS server: it closes the connection.
        return CliError(
            f"cannot reach a gateway at {args.target} in plaintext ({detail}); the gateway "
            f"may have TLS on: pass --tls-ca FILE (the CA of its certificate; or "
            f"{CLIENT_TLS_ENV['tls_ca']}), with --tls-cert/--tls-key where it asks for mTLS"
        )
    return CliError(
        f"cannot reach a gateway at {args.target}{tls} ({detail}); is `onnxgate serve` "
        f"running there? choose another with --target HOST:PORT or {TARGET_ENV}"
    )


def call(
    args: argparse.Namespace,
    stub: Callable[[grpc.Channel], Any],
    method: str,
    request: Any,
    *,
    metadata: Metadata | None = None,
) -> Any:
    """One unary call on ``args.target``, with the admin token unless ``metadata`` is given."""
    md = token_metadata(args=args) if metadata is None else metadata
    with channel(args) as ch:
        try:
            return getattr(stub(ch), method)(request, metadata=md, timeout=args.timeout)
        except grpc.RpcError as exc:
            if is_unreachable(exc):
                if _lost_mid_call(exc) and not method.startswith(_READS):
                    raise lost_during_change(args, method, exc) from None
                raise unreachable(args, exc) from None
            raise


_READS = ("Get", "List", "Verify", "WhoAmI", "Server", "Model", "Explain")
"""Method names that only read: losing the connection during one changed nothing."""

_LOST_MID_CALL = ("socket closed", "connection reset", "end of tcp stream", "stream removed")


def _lost_mid_call(exc: grpc.RpcError) -> bool:
    """The gateway was reached and the connection broke before it answered."""
    detail = (exc.details() or "").lower()
    return any(marker in detail for marker in _LOST_MID_CALL)


def lost_during_change(args: argparse.Namespace, method: str, exc: grpc.RpcError) -> CliError:
    """A change whose answer never came: it may have been applied (committed, then the
    gateway went away), so say so rather than "cannot reach a gateway"."""
    return CliError(
        f"the connection to the gateway at {args.target} broke during {method} "
        f"({exc.details()}); the change may have been applied before it went: check "
        "`onnxgate traffic show MODEL` and `onnxgate audit MODEL` before retrying"
    )
