"""Verifying an OpenSSF model-signing bundle against the governance policy's trust.

A bundle is what ``model_signing sign`` writes (a Sigstore bundle holding a DSSE-signed
in-toto statement of the file's sha256). Two kinds verify here, offline:

- **key**: signed with a private key (``model_signing sign key``); trusted when one of the
  policy's ``[signing] trusted_keys`` (PEM public keys) verifies it;
- **certificate**: signed with a key whose certificate chains to one of the policy's
  ``[signing] trusted_certificates`` (``model_signing sign certificate``).

Keyless Sigstore bundles (an OIDC identity, a Fulcio certificate, a Rekor transparency-log
entry) need the public Sigstore services to verify, which a registry cannot assume it
reaches; they are refused with that reason rather than half-checked.

The library is the optional ``onnxgate[trust]`` extra (``model-signing``, ``pyopenssl``).
A verified version records lineage tags ``signature.signer``, ``signature.method`` and
``signature.bundle_sha256``; the bundle itself is kept in the artifact store under that
hash, so the signature can be checked again when the version is approved or loaded.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import PolicyViolation
from registry.governance_policy import GovernancePolicy

__all__ = [
    "BUNDLE_TAG",
    "EXTRA",
    "SIGNER_TAG",
    "SignatureCheck",
    "key_fingerprint",
    "recheck",
    "signer_of",
    "source_signature_tags",
    "verify_bundle",
]

EXTRA = "pip install 'onnxgate[trust]'"
SIGNER_TAG = "signature.signer"
METHOD_TAG = "signature.method"
BUNDLE_TAG = "signature.bundle_sha256"
RULE = "signing"


@dataclass(frozen=True)
class SignatureCheck:
    """Who signed a verified artifact, how, and the bundle's sha256."""

    signer: str
    method: str  # "key" | "certificate"
    bundle_sha256: str

    def tags(self, prefix: str = "") -> dict[str, str]:
        return {
            prefix + SIGNER_TAG: self.signer,
            prefix + METHOD_TAG: self.method,
            prefix + BUNDLE_TAG: self.bundle_sha256,
        }


def refuse(message: str) -> PolicyViolation:
    return PolicyViolation(RULE, message)


def signer_of(tags: Mapping[str, str]) -> str:
    """ "signed by …" for a version's lineage tags (its own or its source's signature)."""
    if SIGNER_TAG in tags:
        return f"signed by {tags[SIGNER_TAG]}"
    if "source." + SIGNER_TAG in tags:
        return f"source signed by {tags['source.' + SIGNER_TAG]}"
    return "unsigned"


def source_signature_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """A parent's (or source's) signature, as the lineage tags of a version made from it."""
    out = {k: v for k, v in tags.items() if k.startswith("source.signature.")}
    out.update({"source." + k: v for k, v in tags.items() if k.startswith("signature.")})
    return out


def key_fingerprint(pem: str) -> str:
    """sha256 of the key's DER SubjectPublicKeyInfo, first 16 hex digits."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_public_key(pem.encode())
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def verify_bundle(artifact: bytes, bundle: bytes, policy: GovernancePolicy) -> SignatureCheck:
    """Verify ``bundle`` over ``artifact`` against ``policy``'s trust, or raise
    :class:`PolicyViolation` (rule ``signing``) saying why in one line."""
    try:
        import model_signing
    except ImportError:
        raise refuse(f"verifying a signature needs model-signing: {EXTRA}") from None
    try:
        material = json.loads(bundle)["verificationMaterial"]
    except (ValueError, KeyError, TypeError):
        raise refuse("the signature is not a Sigstore bundle (model_signing sign)") from None
    if material.get("tlogEntries") or "certificate" in material:
        raise refuse(
            "keyless Sigstore signatures need the public transparency log, which this "
            "registry cannot reach: sign with a key or a certificate chain instead"
        )
    digest = hashlib.sha256(bundle).hexdigest()
    with tempfile.TemporaryDirectory(prefix="onnxgate-sig-") as tmp:
        root = Path(tmp)
        model, sig = root / "model", root / "model.sig"
        model.write_bytes(artifact)
        sig.write_bytes(bundle)
        if "publicKey" in material:
            return _by_key(model_signing, model, sig, root, policy, digest)
        if "x509CertificateChain" in material:
            return _by_certificate(model_signing, model, sig, root, policy, digest, material)
    raise refuse("the bundle carries neither a public-key hint nor a certificate chain")


def recheck(
    tags: Mapping[str, str],
    policy: GovernancePolicy,
    read: Callable[[str], bytes],
    artifact_sha256: str,
) -> None:
    """Check a stored version's signature again (at approval, at load): its own bundle is
    verified over the stored bytes against ``policy``'s current trust; a converted or
    derived version's source signature was verified at registration and is taken as
    recorded. Refuses an unsigned version when the policy requires signatures."""
    bundle = tags.get(BUNDLE_TAG)
    if bundle:
        verify_bundle(read(artifact_sha256), read(bundle), policy)
    elif policy.signing_required and signer_of(tags) == "unsigned":
        raise refuse("the policy requires a trusted signature and this version is unsigned")


def _mismatch(exc: Exception) -> PolicyViolation:
    first = str(exc).split(":", 1)[0]
    return refuse(f"the artifact does not match its signature ({first}: its sha256 differs)")


def _by_key(
    lib: Any, model: Path, sig: Path, root: Path, policy: GovernancePolicy, digest: str
) -> SignatureCheck:
    if not policy.signing_trusted_keys:
        raise refuse("the model is signed with a key, but [signing] trusted_keys is empty")
    for index, (name, pem) in enumerate(policy.signing_trusted_keys):
        key = root / f"key{index}.pub"
        key.write_text(pem, encoding="utf-8")
        try:
            lib.verifying.Config().use_elliptic_key_verifier(public_key=key).verify(model, sig)
        except ValueError as exc:
            if str(exc).startswith("Signature mismatch"):
                raise _mismatch(exc) from None
            continue
        except Exception:  # noqa: BLE001 - another key's InvalidSignature: try the next
            continue
        return SignatureCheck(f"{name} (key {key_fingerprint(pem)})", "key", digest)
    raise refuse("the signature verifies against no key in [signing] trusted_keys (untrusted)")


def _by_certificate(
    lib: Any,
    model: Path,
    sig: Path,
    root: Path,
    policy: GovernancePolicy,
    digest: str,
    material: Mapping[str, Any],
) -> SignatureCheck:
    if not policy.signing_trusted_certificates:
        raise refuse(
            "the model is signed with a certificate, but [signing] trusted_certificates is empty"
        )
    chain = root / "chain.pem"
    chain.write_text("\n".join(policy.signing_trusted_certificates), encoding="utf-8")
    try:
        config = lib.verifying.Config().use_certificate_verifier(certificate_chain=[chain])
        config.verify(model, sig)
    except ValueError as exc:
        if str(exc).startswith("Signature mismatch"):
            raise _mismatch(exc) from None
        raise refuse(f"the certificate chain is not trusted ({_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - pyopenssl's chain errors, InvalidSignature
        raise refuse(f"the certificate chain is not trusted ({_line(exc)})") from None
    return SignatureCheck(_subject(material), "certificate", digest)


def _line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _subject(material: Mapping[str, Any]) -> str:
    from cryptography import x509

    raw = material["x509CertificateChain"]["certificates"][0]["rawBytes"]
    cert = x509.load_der_x509_certificate(base64.b64decode(raw))
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = san.get_values_for_type(x509.RFC822Name)
    except x509.ExtensionNotFound:
        emails = []
    subject = cert.subject.rfc4514_string()
    return f"{emails[0]} ({subject})" if emails else subject
