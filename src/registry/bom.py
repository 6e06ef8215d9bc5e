"""An ML bill of materials per version: CycloneDX 1.6 JSON (``onnxgate models bom``).

Built with ``cyclonedx-python-lib`` (the ``onnxgate[trust]`` extra) from what the registry
recorded, never from what a caller says now:

- the model (``machine-learning-model``): its sha256, licence, ONNX opsets, the scan's
  result, the signer and bundle digest, the runtime it was validated on (properties
  ``onnxgate:*``);
- its parent, for an optimised or derived child (pedigree ancestor, with its sha256);
- the source file it was converted from and the converter with its version;
- the training data (name, sha256, licence) and the reference sample's profile sha256.

The model depends on each of those (``dependencies``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.convert.native import ConversionError, require

if TYPE_CHECKING:
    from registry.records import VersionRecord
    from registry.registry import Registry

__all__ = ["build_bom"]

_PROPERTY_TAGS = (
    "scan",
    "validated.runtime",
    "signature.signer",
    "signature.method",
    "signature.bundle_sha256",
    "source.signature.signer",
    "source.signature.bundle_sha256",
    "source.scan",
    "converted.by",
    "optimize.method",
)


def build_bom(registry: Registry, model: str, version: str) -> str:
    """The CycloneDX 1.6 JSON document of ``model:version``."""
    try:
        require("cyclonedx", "an ML bill of materials")
    except ConversionError as exc:
        raise ConversionError(str(exc).replace("onnxgate[convert]", "onnxgate[trust]")) from None
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType, Pedigree
    from cyclonedx.output.json import JsonV1Dot6

    rec = registry.get_version(model, version)
    tags = rec.lineage.tags
    properties = [(f"onnxgate:{k}", tags[k]) for k in _PROPERTY_TAGS if tags.get(k)]
    opsets = _opsets(registry.store.read(rec.sha256))
    if opsets:
        properties.append(("onnxgate:onnx.opset", opsets))
    properties.append(("onnxgate:status", rec.status))
    pedigree = None
    if rec.lineage.parent:
        parent_model, _, parent_version = rec.lineage.parent.rpartition(":")
        parent = registry.get_version(parent_model, parent_version)
        pedigree = Pedigree(ancestors=[_model_component(parent, [])])
    main = _model_component(rec, properties, pedigree=pedigree)
    parts: list[Component] = []
    if tags.get("source.file") or tags.get("source.sha256"):
        parts.append(
            _component(
                ComponentType.FILE,
                tags.get("source.file") or "source",
                sha256=tags.get("source.sha256", ""),
                licence=tags.get("source.license", ""),
                ref="source",
                properties=[("onnxgate:source.family", tags.get("source.family", ""))],
            )
        )
    if tags.get("converter"):
        parts.append(
            _component(
                ComponentType.APPLICATION,
                tags["converter"],
                version=tags.get("converter.version", ""),
                ref="converter",
                properties=[("onnxgate:converter.opset", tags.get("converter.opset", ""))],
            )
        )
    if rec.lineage.training_data or rec.lineage.training_data_sha256:
        parts.append(
            _component(
                ComponentType.DATA,
                rec.lineage.training_data or "training data",
                sha256=rec.lineage.training_data_sha256,
                licence=tags.get("training_data.license", ""),
                ref="training-data",
            )
        )
    reference = _reference_sha256(registry, model, version)
    if reference:
        parts.append(
            _component(ComponentType.DATA, "reference profile", sha256=reference, ref="reference")
        )
    bom = Bom()
    bom.metadata.component = main
    for part in parts:
        bom.components.add(part)
        bom.register_dependency(main, [part])
    return str(JsonV1Dot6(bom).output_as_string(indent=2))


def _model_component(
    rec: VersionRecord, properties: list[tuple[str, str]], *, pedigree: Any = None
) -> Any:
    from cyclonedx.model.component import ComponentType

    component = _component(
        ComponentType.MACHINE_LEARNING_MODEL,
        rec.model,
        version=rec.version,
        sha256=rec.sha256,
        licence=rec.lineage.license,
        ref=f"{rec.model}:{rec.version}",
        properties=properties,
        description=rec.description,
    )
    if pedigree is not None:
        component.pedigree = pedigree
    return component


def _component(
    kind: Any,
    name: str,
    *,
    ref: str,
    version: str = "",
    sha256: str = "",
    licence: str = "",
    description: str = "",
    properties: list[tuple[str, str]] | None = None,
) -> Any:
    from cyclonedx.contrib.license.factories import LicenseFactory
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component

    return Component(
        type=kind,
        name=name,
        version=version or None,
        bom_ref=ref,
        description=description or None,
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)] if sha256 else None,
        licenses=[LicenseFactory().make_from_string(licence)] if licence else None,
        properties=[Property(name=k, value=v) for k, v in properties or [] if v] or None,
    )


def _opsets(artifact: bytes) -> str:
    try:
        import onnx
    except ImportError:
        return ""
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(artifact)
    except Exception:  # noqa: BLE001 - a registered artifact parses; be safe anyway
        return ""
    found = sorted({(o.domain or "ai.onnx", o.version) for o in proto.opset_import})
    return ", ".join(f"{domain} {number}" for domain, number in found)


def _reference_sha256(registry: Registry, model: str, version: str) -> str:
    from registry import profiles_store

    stored = registry.get_profile(model, version)
    return "" if stored is None else profiles_store.digest(stored[0])[0]
