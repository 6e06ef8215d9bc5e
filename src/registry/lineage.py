"""Where a version came from — training data, code, parent, hyperparameters, metrics,
licence, tags — and searching versions by it.

:class:`Lineage` is validated before it is stored, so that searches and model cards can
trust it: hashes are sha256 hex, metrics are finite floats, tags and metric names follow one
naming rule, hyperparameters are JSON scalars. Metrics and tags are stored in their own
tables (``version_metric``, ``version_tag``) so a search is portable SQL on SQLite and
PostgreSQL alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Executable, and_, select
from sqlalchemy.orm import Session

from registry.errors import InvalidLineage, NotFoundError
from registry.models import Model, ModelVersion, VersionMetric, VersionTag

__all__ = [
    "Lineage",
    "MetricFilter",
    "apply_lineage",
    "lineage_of",
    "parse_key_value",
    "resolve_parent",
    "search_statement",
    "user_tags",
]

Scalar = str | int | float | bool | None

_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_TAG_VALUE = 256
_MAX_REF = 2048


@dataclass(frozen=True)
class Lineage:
    """Structured provenance of one version; every field is optional."""

    training_data: str = ""  # a URI or path naming the training data set
    training_data_sha256: str = ""  # content hash of that data set
    code_ref: str = ""  # e.g. the git commit that trained it
    parent: str = ""  # "model:version" it was derived from (fine-tuned, retrained)
    license: str = ""  # SPDX id where there is one
    hyperparameters: Mapping[str, Scalar] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def validated(self) -> Lineage:
        """A copy with normalised values, or :class:`InvalidLineage` naming the field."""
        sha = self.training_data_sha256.strip().lower()
        if sha and not _SHA256.fullmatch(sha):
            raise InvalidLineage("training_data_sha256 must be 64 hex digits (a sha256)")
        for name, given, limit in (
            ("training_data", self.training_data, _MAX_REF),
            ("code_ref", self.code_ref, 256),
            ("license", self.license, 128),
            ("parent", self.parent, 257),
        ):
            if not isinstance(given, str) or len(given) > limit or "\n" in given:
                raise InvalidLineage(f"{name} must be one line of at most {limit} characters")
        metrics: dict[str, float] = {}
        for name, value in self.metrics.items():
            _check_key("metric", name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidLineage(f"metric {name!r} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise InvalidLineage(f"metric {name!r} must be finite, got {value!r}")
            metrics[name] = float(value)
        tags: dict[str, str] = {}
        for key, text in self.tags.items():
            _check_key("tag", key)
            if not isinstance(text, str) or len(text) > _MAX_TAG_VALUE or "\n" in text:
                raise InvalidLineage(f"tag {key!r} must be one line of at most 256 characters")
            tags[key] = text
        params: dict[str, Scalar] = {}
        for key, scalar in self.hyperparameters.items():
            _check_key("hyperparameter", key)
            if scalar is not None and not isinstance(scalar, str | int | float | bool):
                raise InvalidLineage(f"hyperparameter {key!r} must be a scalar, got {scalar!r}")
            if isinstance(scalar, float) and not math.isfinite(scalar):
                raise InvalidLineage(f"hyperparameter {key!r} must be finite")
            params[key] = scalar
        return Lineage(
            training_data=self.training_data.strip(),
            training_data_sha256=sha,
            code_ref=self.code_ref.strip(),
            parent=self.parent.strip(),
            license=self.license.strip(),
            hyperparameters=params,
            metrics=metrics,
            tags=tags,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "training_data": self.training_data,
            "training_data_sha256": self.training_data_sha256,
            "code_ref": self.code_ref,
            "parent": self.parent,
            "license": self.license,
            "hyperparameters": dict(self.hyperparameters),
            "metrics": dict(self.metrics),
            "tags": dict(self.tags),
        }


REGISTRY_TAGS = ("scan", "validated.", "signature.", "source.signature.", "converted.by")
"""Tags the registry sets itself (scan result, runtime, signatures); callers cannot."""


def is_registry_tag(key: str) -> bool:
    return key == "scan" or key.startswith(REGISTRY_TAGS[1:])


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """``tags`` without those the registry set (:data:`REGISTRY_TAGS`)."""
    return {k: v for k, v in tags.items() if not is_registry_tag(k)}


def _check_key(kind: str, key: object) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidLineage(
            f"{kind} name {key!r} is invalid: use 1-128 letters, digits, '_', '.', '-' or '/'"
        )


def parse_key_value(kind: str, spec: str) -> tuple[str, str]:
    """Split a CLI ``key=value`` token, naming ``kind`` and the token on failure."""
    key, sep, value = spec.partition("=")
    key = key.strip()
    if not sep or not key:
        raise InvalidLineage(f"{kind} {spec!r} is not of the form KEY=VALUE")
    return key, value.strip()


def resolve_parent(session: Session, model: str, parent: str) -> str:
    """Normalise ``parent`` ("version" or "model:version") to "model:version"; it must exist."""
    if not parent:
        return ""
    name, sep, version = parent.rpartition(":")
    if not sep:
        name, version = model, parent
    row = session.scalar(
        select(ModelVersion.id)
        .join(Model, Model.id == ModelVersion.model_id)
        .where(Model.name == name, ModelVersion.version == version)
    )
    if row is None:
        raise NotFoundError(f"parent version {name}:{version} is not registered")
    return f"{name}:{version}"


def apply_lineage(row: ModelVersion, lineage: Lineage) -> None:
    """Copy validated ``lineage`` onto a new version row (columns and child rows)."""
    row.training_data = lineage.training_data
    row.training_data_sha256 = lineage.training_data_sha256
    row.code_ref = lineage.code_ref
    row.parent = lineage.parent
    row.license = lineage.license
    row.hyperparameters = dict(lineage.hyperparameters)
    row.metric_rows = [VersionMetric(name=k, value=v) for k, v in sorted(lineage.metrics.items())]
    row.tag_rows = [VersionTag(key=k, value=v) for k, v in sorted(lineage.tags.items())]


def lineage_of(row: ModelVersion) -> Lineage:
    """The lineage stored for a version row."""
    return Lineage(
        training_data=row.training_data or "",
        training_data_sha256=row.training_data_sha256 or "",
        code_ref=row.code_ref or "",
        parent=row.parent or "",
        license=row.license or "",
        hyperparameters=dict(row.hyperparameters or {}),
        metrics={m.name: m.value for m in row.metric_rows},
        tags={t.key: t.value for t in row.tag_rows},
    )


_METRIC_FILTER = re.compile(r"\s*([A-Za-z0-9_][A-Za-z0-9_.\-/]{0,127})\s*(>=|<=|==|>|<|=)\s*(.+)")


@dataclass(frozen=True)
class MetricFilter:
    """``name op value``, e.g. ``auc>0.9``; ``=`` and ``==`` mean equal."""

    name: str
    op: str
    value: float

    @classmethod
    def parse(cls, spec: str) -> MetricFilter:
        match = _METRIC_FILTER.fullmatch(spec)
        if match is None:
            raise InvalidLineage(
                f"metric filter {spec!r} is not NAME OP NUMBER with OP one of > >= < <= ="
            )
        name, op, raw = match.groups()
        try:
            value = float(raw)
        except ValueError:
            raise InvalidLineage(f"metric filter {spec!r}: {raw!r} is not a number") from None
        return cls(name, "=" if op == "==" else op, value)

    def condition(self) -> Any:
        column = VersionMetric.value
        return {
            ">": column > self.value,
            ">=": column >= self.value,
            "<": column < self.value,
            "<=": column <= self.value,
            "=": column == self.value,
        }[self.op]


def search_statement(
    *,
    model: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    metrics: Sequence[MetricFilter] = (),
    status: str | None = None,
    license: str | None = None,
) -> Executable:
    """Versions matching every filter (AND), as (model name, row), by model then id."""
    stmt = select(Model.name, ModelVersion).join(Model, Model.id == ModelVersion.model_id)
    if model is not None:
        stmt = stmt.where(Model.name == model)
    if status is not None:
        stmt = stmt.where(ModelVersion.status == status)
    if license is not None:
        stmt = stmt.where(ModelVersion.license == license)
    for key, value in tags:
        stmt = stmt.where(
            ModelVersion.id.in_(
                select(VersionTag.version_id).where(
                    and_(VersionTag.key == key, VersionTag.value == value)
                )
            )
        )
    for f in metrics:
        stmt = stmt.where(
            ModelVersion.id.in_(
                select(VersionMetric.version_id).where(
                    and_(VersionMetric.name == f.name, f.condition())
                )
            )
        )
    return stmt.order_by(Model.name, ModelVersion.id)
