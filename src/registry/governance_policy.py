"""The governance policy: what a version needs before it may serve, and how long it is kept.

One policy per registry, stored in the registry itself (table ``governance_policy``) rather
than in each process's settings: the rules are enforced inside the registry's write
transactions, so every writer — the CLI, each gateway replica, the governor — must see the
same rules, and a process started with a different config file must not bypass them.
Changing the policy is an audited write (``policy.set``, before and after). Operators edit
it as TOML (``onnxgate policy set FILE``)::

    [policy]
    required_metadata = ["owner", "license", "training_data", "metric:auc"]
    license_denylist = ["GPL-*", "AGPL-*", "CC-BY-SA-*"]
    require_profile = false
    require_validation = true
    approvals_required = 2
    unapproved_max_share = 0.05     # of traffic, for a version short of approvals
    retention_days = 90             # keep retired versions this long...
    retention_keep_last = 3         # ...and always the last 3 retired per model
    prediction_log_days = 183       # prediction-log files are kept at least this long
    conversion_tolerance = 1e-4     # max |Δ| a converted/optimised version may differ by
    optimization_tolerance = 0.05   # max |Δ| a quantised/optimised child may differ by
    trust_pickle = false            # load pickled/joblib models (they run code) without a flag

    [signing]                       # model-signing bundles (registry.signing)
    required = true                 # refuse unsigned or untrusted versions
    trusted_keys = ["keys/ml-team.pub"]             # PEM public keys: file paths or PEM text
    # trusted_keys = { ml-team = "keys/ml-team.pub" }  # ...or named: "signed by ml-team"
    trusted_certificates = ["keys/root-ca.pem"]     # roots a signing certificate chains to

Key and certificate files are read when the policy is parsed (relative to the working
directory), and the policy stores their PEM text, so every process checks the same trust.

The defaults are permissive (no approvals, validation recorded but not enforced), so a
registry without a policy behaves as it did before governance existed.

Not the governor's per-model *rollout* policy (``gateway.governor.rollout.RolloutPolicy``:
canary steps, gates), which is stored by :mod:`registry.governor_store`.
"""

from __future__ import annotations

import fnmatch
import math
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from registry.models import GovernancePolicyRow, utcnow

__all__ = ["METADATA_FIELDS", "GovernancePolicy", "load_policy", "store_policy"]

POLICY_ROW_ID = 1

METADATA_FIELDS = frozenset(
    {
        "description",
        "owner",
        "license",
        "training_data",
        "training_data_sha256",
        "code_ref",
        "parent",
        "hyperparameters",
        "metrics",
        "tags",
    }
)
"""Names ``required_metadata`` may use; also ``metric:NAME`` and ``tag:KEY``."""


@dataclass(frozen=True)
class GovernancePolicy:
    """The rules; see the module docstring for the TOML form."""

    required_metadata: tuple[str, ...] = ()
    license_denylist: tuple[str, ...] = ()
    require_profile: bool = False
    require_validation: bool = False
    approvals_required: int = 0
    unapproved_max_share: float = 1.0
    retention_days: float | None = None
    retention_keep_last: int | None = None
    # The prediction log's floor: `retention apply` removes a log file only past it (and
    # none while unset); gateway.predictionlog.retention.
    prediction_log_days: float | None = None
    conversion_tolerance: float = 1e-4
    optimization_tolerance: float = 0.05
    trust_pickle: bool = False
    signing_required: bool = False
    signing_trusted_keys: tuple[tuple[str, str], ...] = ()  # (name, PEM public key)
    signing_trusted_certificates: tuple[str, ...] = ()  # PEM certificates

    def __post_init__(self) -> None:
        for item in self.required_metadata:
            kind, sep, rest = item.partition(":")
            if sep and kind in ("metric", "tag") and rest:
                continue
            if item not in METADATA_FIELDS:
                known = ", ".join(sorted(METADATA_FIELDS))
                raise ValueError(
                    f"required_metadata: {item!r} is not one of {known}, metric:NAME or tag:KEY"
                )
        if isinstance(self.approvals_required, bool) or self.approvals_required < 0:
            raise ValueError("approvals_required must be an integer >= 0")
        share = self.unapproved_max_share
        if not (isinstance(share, int | float) and math.isfinite(share) and 0 <= share <= 1):
            raise ValueError("unapproved_max_share must be a fraction in [0, 1]")
        if self.retention_days is not None and not self.retention_days >= 0:
            raise ValueError("retention_days must be >= 0")
        if self.retention_keep_last is not None and self.retention_keep_last < 0:
            raise ValueError("retention_keep_last must be >= 0")
        if self.prediction_log_days is not None and not self.prediction_log_days >= 0:
            raise ValueError("prediction_log_days must be >= 0")
        for key in ("conversion_tolerance", "optimization_tolerance"):
            tol = getattr(self, key)
            if not (isinstance(tol, int | float) and math.isfinite(tol) and tol >= 0):
                raise ValueError(f"{key} must be a finite number >= 0")

    # -- checks ---------------------------------------------------------------------

    def denied_license(self, license_id: str) -> str | None:
        """The deny-list pattern ``license_id`` matches (case-insensitive globs), if any."""
        if not license_id:
            return None
        for pattern in self.license_denylist:
            if fnmatch.fnmatchcase(license_id.lower(), pattern.lower()):
                return pattern
        return None

    @property
    def retention_enabled(self) -> bool:
        return self.retention_days is not None or self.retention_keep_last is not None

    # -- (de)serialisation ----------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["required_metadata"] = list(self.required_metadata)
        d["license_denylist"] = list(self.license_denylist)
        for key in _SIGNING_KEYS:
            d.pop(f"signing_{key}")
        d["signing"] = {
            "required": self.signing_required,
            "trusted_keys": dict(self.signing_trusted_keys),
            "trusted_certificates": list(self.signing_trusted_certificates),
        }
        return d

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> GovernancePolicy:
        """Build and validate a policy; unknown keys and wrong types are refused by name."""
        outer = doc
        table = doc.get("policy", doc)
        if not isinstance(table, Mapping):
            raise ValueError(f"expected a [policy] table of keys, got {type(table).__name__}")
        doc = dict(table)
        signing = doc.pop("signing", None) or outer.get("signing") or {}
        if not isinstance(signing, Mapping):
            raise ValueError("expected a [signing] table of keys")
        bad = sorted(set(signing) - set(_SIGNING_KEYS))
        if bad:
            raise ValueError(f"unknown [signing] key(s): {', '.join(bad)}")
        for key, value in signing.items():
            doc[f"signing_{key}"] = value
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(doc) - set(known))
        if unknown:
            raise ValueError(f"unknown policy key(s): {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in doc.items():
            try:
                values[name] = _coerce(name, value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"policy key {name}: {exc}") from None
        return cls(**values)

    @classmethod
    def to_set(cls, doc: Mapping[str, Any]) -> GovernancePolicy:
        """The policy an operator sets from ``doc``: :meth:`from_dict`, except that an empty
        document (no keys, or an empty ``[policy]`` table) is refused.

        NOTE: an empty document would silently replace the rules in force with the
        permissive defaults (no approvals, no retention); resetting must be spelled out.
        """
        if not doc or (set(doc) == {"policy"} and not doc["policy"]):
            raise ValueError(EMPTY_POLICY)
        return cls.from_dict(doc)

    @classmethod
    def from_toml(cls, text: str) -> GovernancePolicy:
        """An operator's TOML document (see :meth:`to_set`)."""
        try:
            return cls.to_set(tomllib.loads(text))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"policy is not valid TOML: {exc}") from None


EMPTY_POLICY = (
    "the policy document is empty; it would replace the policy in force with the "
    "permissive defaults. Write the keys you mean (e.g. approvals_required = 0 to "
    "require no approvals)"
)


_SIGNING_KEYS = ("required", "trusted_keys", "trusted_certificates")


def _pem(value: Any, kind: str) -> str:
    """PEM text as given, or read from the file ``value`` names."""
    if not isinstance(value, str):
        raise TypeError(f"expected PEM text or a file path for a {kind}")
    if value.lstrip().startswith("-----BEGIN"):
        return value.strip() + "\n"
    try:
        text = Path(value).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read {kind} {value}: {exc.strerror or exc}") from None
    if "-----BEGIN" not in text:
        raise ValueError(f"{value} is not a PEM {kind}")
    return text.strip() + "\n"


def _coerce(name: str, value: Any) -> Any:
    if name == "signing_trusted_keys":
        if isinstance(value, Mapping):
            return tuple((str(k), _pem(v, "public key")) for k, v in value.items())
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise TypeError("expected a list of public keys or a table of name = key")
        pems = [_pem(v, "public key") for v in value]
        return tuple((f"key{i + 1}", pem) for i, pem in enumerate(pems))
    if name == "signing_trusted_certificates":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise TypeError("expected a list of certificates")
        return tuple(_pem(v, "certificate") for v in value)
    if name in ("required_metadata", "license_denylist"):
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            raise TypeError("expected a list of strings")
        return tuple(value)
    if name in ("require_profile", "require_validation", "trust_pickle", "signing_required"):
        if not isinstance(value, bool):
            raise TypeError("expected true or false")
        return value
    if value is None and (name.startswith("retention_") or name == "prediction_log_days"):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    if name in ("approvals_required", "retention_keep_last"):
        if not math.isfinite(value) or value != int(value):
            raise ValueError("expected a whole number")
        return int(value)
    return float(value)


def load_policy(session: Session) -> GovernancePolicy:
    """The registry's policy, read in the caller's transaction (defaults if none is set)."""
    row = session.get(GovernancePolicyRow, POLICY_ROW_ID)
    return GovernancePolicy() if row is None else GovernancePolicy.from_dict(row.document)


def store_policy(session: Session, policy: GovernancePolicy, actor: str) -> GovernancePolicy:
    """Replace the policy in the caller's transaction; returns the previous one."""
    row = session.get(GovernancePolicyRow, POLICY_ROW_ID)
    previous = GovernancePolicy() if row is None else GovernancePolicy.from_dict(row.document)
    if row is None:
        row = GovernancePolicyRow(id=POLICY_ROW_ID, document={})
        session.add(row)
    row.document = policy.to_dict()
    row.updated_at = utcnow()
    row.updated_by = actor
    return previous
