"""Fixtures for the supply-chain tests: signing keys and certificates made here with the
``cryptography`` package, a small ONNX model file, and the CLI against the test registry."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from shared import clear_onnxgate_env

from registry.governance_policy import GovernancePolicy
from registry.registry import Registry


@pytest.fixture(autouse=True)
def _no_onnxgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    clear_onnxgate_env(monkeypatch)


def write_key_pair(where: Path, name: str) -> tuple[Path, Path]:
    """An EC P-256 private key (PEM) and its public key, as files ``name.pem``/``name.pub``."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = where / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = where / f"{name}.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def write_cert_chain(where: Path) -> tuple[Path, Path, Path]:
    """A root CA certificate, and a code-signing leaf (key, certificate) issued by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Root CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ml-team")]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name("ml-team@example.com")]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, leaf_file, leaf_key_file = where / "ca.crt", where / "leaf.crt", where / "leaf.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    leaf_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    leaf_key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, leaf_key_file, leaf_file


def sign_with_key(model: Path, private_key: Path) -> Path:
    import model_signing

    bundle = model.with_suffix(model.suffix + ".sig")
    model_signing.signing.Config().use_elliptic_key_signer(private_key=private_key).sign(
        model, bundle
    )
    return bundle


def trust(registry: Registry, *, required: bool = False, **signing: Any) -> None:
    """Set a policy whose [signing] table is ``signing`` (paths are read as PEM files)."""
    doc = {"signing": {"required": required, **signing}}
    registry.governance.set_policy(GovernancePolicy.from_dict(doc), actor="test")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    return {name: write_key_pair(tmp_path, name) for name in ("alice", "mallory")}


def linear_onnx(initializer: Any = None) -> Any:
    """y = x @ W for x of 4 features (the ModelProto, to alter before saving)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = initializer or numpy_helper.from_array(
        np.arange(8, dtype=np.float32).reshape(4, 2) / 8, "W"
    )
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(linear_onnx().SerializeToString())
    return path
