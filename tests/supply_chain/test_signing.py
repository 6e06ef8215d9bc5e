"""Signed models at registration: a bundle from ``model_signing sign key|certificate`` is
verified against the policy's ``[signing]`` trust; the signer goes into lineage, the audit
event and the card; ``required = true`` refuses unsigned and untrusted versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registry.cards import build_card
from registry.errors import ArtifactIntegrityError, PolicyViolation
from registry.registration import Trust
from registry.registry import Registry
from supply_chain.conftest import sign_with_key, trust, write_cert_chain


def _one_error_line(capfd: pytest.CaptureFixture[str]) -> str:
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_signed_model_registers_and_lineage_names_the_signer(
    onnxgate, registry: Registry, keys, model_file: Path, capfd
):
    private, public = keys["alice"]
    trust(registry, required=True, trusted_keys={"alice": str(public)})
    bundle = sign_with_key(model_file, private)
    assert onnxgate("models", "register", "m", str(model_file), "--signature", str(bundle)) == 0
    capfd.readouterr()
    tags = registry.get_version("m", "1").lineage.tags
    assert tags["signature.signer"].startswith("alice (key ")
    assert tags["signature.method"] == "key"
    assert len(tags["signature.bundle_sha256"]) == 64
    assert tags["scan"].startswith("passed: 1 nodes")
    event = [e for e in registry.audit_events() if e.action == "version.register"][-1]
    assert event.after["lineage"]["tags"]["signature.signer"] == tags["signature.signer"]
    # The CLI shows it per version.
    assert onnxgate("models", "show", "m:1") == 0
    out = capfd.readouterr().out
    assert "signed by alice (key " in out and "scan" in out
    card = build_card(registry, "m", "1").markdown()
    assert f"**Signature:** signed by {tags['signature.signer']}" in card
    assert tags["signature.bundle_sha256"] in card
    # Loading from the store checks it again: fine while trusted...
    assert registry.read_artifact("m", "1") == model_file.read_bytes()
    # ...refused once the key is no longer trusted.
    trust(registry, trusted_keys={"other": str(keys["mallory"][1])})
    with pytest.raises(ArtifactIntegrityError, match="verifies against no key"):
        registry.read_artifact("m", "1")


def test_one_byte_changed_is_refused(onnxgate, registry: Registry, keys, model_file, capfd):
    private, public = keys["alice"]
    trust(registry, trusted_keys=[str(public)])
    bundle = sign_with_key(model_file, private)
    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0x01  # the graph's name: still a valid model, different bytes
    model_file.write_bytes(bytes(data))
    assert onnxgate("models", "register", "m", str(model_file), "--signature", str(bundle)) == 1
    line = _one_error_line(capfd)
    assert "rule 'signing'" in line and "does not match its signature" in line
    assert registry.list_models() == []


def test_unsigned_is_refused_when_required(onnxgate, registry: Registry, keys, model_file, capfd):
    trust(registry, required=True, trusted_keys=[str(keys["alice"][1])])
    assert onnxgate("models", "register", "m", str(model_file)) == 1
    assert "requires a trusted signature" in _one_error_line(capfd)
    # Not required: unsigned registers and says so.
    trust(registry, trusted_keys=[str(keys["alice"][1])])
    assert onnxgate("models", "register", "m", str(model_file)) == 0
    assert onnxgate("models", "show", "m:1") == 0
    assert "unsigned" in capfd.readouterr().out


def test_untrusted_key_is_refused(onnxgate, registry: Registry, keys, model_file, capfd):
    trust(registry, trusted_keys=[str(keys["alice"][1])])
    bundle = sign_with_key(model_file, keys["mallory"][0])
    assert onnxgate("models", "register", "m", str(model_file), "--signature", str(bundle)) == 1
    assert "verifies against no key in [signing] trusted_keys" in _one_error_line(capfd)


def test_required_refuses_approval_of_unsigned_version(registry: Registry, keys, model_file):
    data = model_file.read_bytes()
    registry.register_version("m", data)
    trust(registry, required=True, trusted_keys=[str(keys["alice"][1])])
    with pytest.raises(PolicyViolation, match="unsigned"):
        registry.governance.approve("m", "1", approver="reviewer")


def test_certificate_chain_is_verified_offline(registry: Registry, tmp_path, model_file):
    import model_signing

    ca, leaf_key, leaf = write_cert_chain(tmp_path)
    bundle = tmp_path / "cert.sig"
    model_signing.signing.Config().use_certificate_signer(
        private_key=leaf_key, signing_certificate=leaf, certificate_chain=[ca]
    ).sign(model_file, bundle)
    data, sig = model_file.read_bytes(), bundle.read_bytes()
    with pytest.raises(PolicyViolation, match="trusted_certificates is empty"):
        registry.register_version("m", data, trust=Trust(bundle=sig))
    trust(registry, trusted_certificates=[str(ca)])
    rec = registry.register_version("m", data, trust=Trust(bundle=sig))
    assert rec.lineage.tags["signature.signer"].startswith("ml-team@example.com (CN=ml-team")
    assert rec.lineage.tags["signature.method"] == "certificate"


def test_keyless_bundles_are_refused_with_the_reason(registry: Registry, model_file, keys):
    private, public = keys["alice"]
    trust(registry, trusted_keys=[str(public)])
    doc = json.loads(sign_with_key(model_file, private).read_text())
    doc["verificationMaterial"] = {"certificate": {"rawBytes": ""}, "tlogEntries": [{}]}
    keyless = json.dumps(doc).encode()
    with pytest.raises(PolicyViolation, match="transparency log"):
        registry.register_version("m", model_file.read_bytes(), trust=Trust(bundle=keyless))


def test_callers_cannot_forge_signature_tags(registry: Registry, model_file):
    from registry.errors import InvalidLineage
    from registry.lineage import Lineage

    forged = Lineage(tags={"signature.signer": "alice"})
    with pytest.raises(InvalidLineage, match="set by the registry"):
        registry.register_version("m", model_file.read_bytes(), lineage=forged)


def test_retention_keeps_the_bundles_versions_name(registry: Registry, keys, model_file):
    private, public = keys["alice"]
    trust(registry, trusted_keys=[str(public)])
    bundle = sign_with_key(model_file, private)
    rec = registry.register_version(
        "m", model_file.read_bytes(), trust=Trust(bundle=bundle.read_bytes())
    )
    swept = registry.governance.retention(apply=True, actor="test")
    assert swept == [], swept
    assert registry.store.exists(rec.lineage.tags["signature.bundle_sha256"])


def test_required_refuses_approval_once_the_signer_is_untrusted(
    registry: Registry, keys, model_file
):
    private, public = keys["alice"]
    trust(registry, required=True, trusted_keys=[str(public)])
    bundle = sign_with_key(model_file, private).read_bytes()
    registry.register_version("m", model_file.read_bytes(), trust=Trust(bundle=bundle))
    trust(registry, required=True, trusted_keys=[str(keys["mallory"][1])])
    with pytest.raises(PolicyViolation, match="untrusted"):
        registry.governance.approve("m", "1", approver="reviewer")
