"""Validation at registration, approvals (four-eyes, distinct approvers) and the rules the
registry enforces on every deployment change — on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.tools import modelzoo
from governance.support import linear, random_output, set_policy
from registry.deployment import Arm, Role
from registry.errors import InvalidLineage, NotFoundError, PermissionRefused, PolicyViolation
from registry.lineage import Lineage
from registry.registry import Registry

CH, CL = Role.CHAMPION, Role.CHALLENGER


def checks(reg: Registry, model: str, version: str) -> dict[str, bool]:
    doc = reg.get_version(model, version).validation
    assert doc is not None
    return {c["name"]: c["passed"] for c in doc["checks"]}


def test_registration_is_validated_and_recorded(reg: Registry) -> None:
    reg.register_version("m", linear(1), actor="alice")
    v2 = reg.register_version("m", linear(2), actor="alice")
    assert v2.status == "validated"
    assert checks(reg, "m", "2") == dict.fromkeys(
        ("loads", "inference", "deterministic", "signature", "metadata", "license", "profile"),
        True,
    )
    event = reg.audit_events("m:2")[0]
    assert event.action == "version.register"
    assert event.after["status"] == "validated" and event.after["validation"]["passed"]


@pytest.mark.parametrize(
    ("artifact", "failed"),
    [(modelzoo.failing_at_run(), "inference"), (random_output(), "deterministic")],
    ids=["fails-at-run", "nondeterministic"],
)
def test_failed_validation_keeps_status_registered(
    reg: Registry, artifact: bytes, failed: str
) -> None:
    reg.register_version("m", linear(1))
    rec = reg.register_version("m", artifact, force=True)
    assert rec.status == "registered"
    assert checks(reg, "m", rec.version)[failed] is False
    assert checks(reg, "m", rec.version)["loads"] is True


def test_policy_metadata_licence_and_profile(reg: Registry) -> None:
    reg.register_version("m", linear(0))  # the champion, before the policy
    set_policy(
        reg,
        required_metadata=("owner", "training_data", "metric:auc", "tag:team"),
        license_denylist=("GPL-*", "CC-BY-SA-*"),
        require_profile=True,
    )
    lineage = Lineage(license="CC-BY-SA-4.0", training_data="s3://d", metrics={"auc": 0.9})
    rec = reg.register_version("m", linear(1), lineage=lineage)
    assert rec.status == "registered"
    doc = {c["name"]: c for c in (rec.validation or {})["checks"]}
    assert doc["metadata"]["detail"] == "missing: owner, tag:team"
    assert "deny-list entry 'CC-BY-SA-*'" in doc["license"]["detail"]
    assert not doc["profile"]["passed"]
    # Fix what can be fixed on a new version; the profile comes after registration.
    good = Lineage(
        license="Apache-2.0", training_data="s3://d", metrics={"auc": 0.9}, tags={"team": "risk"}
    )
    rec = reg.register_version("m", linear(2), owner="ana", lineage=good)
    assert checks(reg, "m", rec.version)["profile"] is False  # required, not there yet
    assert rec.status == "registered"
    assert checks(reg, "m", rec.version) | {"profile": True} == dict.fromkeys(
        checks(reg, "m", rec.version), True
    )
    reg.set_profile("m", rec.version, {"format": 1}, source="reference", actor="ana")
    report = reg.governance.validate("m", rec.version, actor="ana")
    assert report.passed and reg.get_version("m", rec.version).status == "validated"
    assert reg.audit_events(f"m:{rec.version}")[-1].action == "version.validate"


def test_lineage_is_validated(reg: Registry) -> None:
    with pytest.raises(InvalidLineage, match="sha256"):
        reg.register_version("m", linear(1), lineage=Lineage(training_data_sha256="abc"))
    with pytest.raises(InvalidLineage, match="finite"):
        reg.register_version("m", linear(1), lineage=Lineage(metrics={"auc": float("nan")}))
    with pytest.raises(NotFoundError, match="parent version m:7"):
        reg.register_version("m", linear(1), lineage=Lineage(parent="7"))
    assert reg.list_models() == []


def test_four_eyes_and_distinct_approvers(reg: Registry) -> None:
    reg.register_version("m", linear(1), actor="cli:alice")
    reg.register_version("m", linear(2), actor="cli:alice")
    with pytest.raises(PermissionRefused, match="rule 'four-eyes'.*'alice' registered m:2"):
        reg.governance.approve("m", "2", approver="alice")
    reg.governance.approve("m", "2", approver="bob", comment="looks good")
    with pytest.raises(PolicyViolation, match="rule 'distinct-approvers'"):
        reg.governance.approve("m", "2", approver="bob")
    assert [(a.approver, a.comment) for a in reg.governance.approvals("m", "2")] == [
        ("bob", "looks good")
    ]
    assert reg.get_version("m", "2").status == "approved"
    refused = [e for e in reg.audit_events("m:2") if e.action == "governance.refused"]
    assert [e.after["rule"] for e in refused] == ["four-eyes", "distinct-approvers"]
    assert [e.actor for e in refused] == ["alice", "bob"]
    assert reg.verify_audit_chain() == []


def test_unvalidated_version_cannot_be_approved(reg: Registry) -> None:
    reg.register_version("m", linear(1))
    reg.register_version("m", modelzoo.failing_at_run(), force=True)
    with pytest.raises(PolicyViolation, match="rule 'validation'.*inference"):
        reg.governance.approve("m", "2", approver="bob")


def test_approvals_rule_on_share_and_champion(reg: Registry) -> None:
    reg.register_version("m", linear(1), actor="alice")
    reg.register_version("m", linear(2), actor="alice")
    set_policy(reg, approvals_required=2, unapproved_max_share=0.1)
    # Up to 10% is allowed without approvals.
    reg.set_weights("m", {"1": 90, "2": 10}, actor="op")
    with pytest.raises(PolicyViolation, match=r"rule 'approvals'.*'2'.*0 of 2.*50\.0%"):
        reg.set_weights("m", {"1": 50, "2": 50}, actor="op")
    with pytest.raises(PolicyViolation, match="rule 'approvals'.*become champion"):
        reg.promote("m", "2", actor="op")
    reg.governance.approve("m", "2", approver="bob")
    with pytest.raises(PolicyViolation, match="1 of 2"):
        reg.promote("m", "2", actor="op")
    assert reg.get_deployment("m").revision == 2  # refusals changed nothing
    reg.governance.approve("m", "2", approver="carol")
    dep = reg.promote("m", "2", actor="op", keep_old=True)
    assert dep.champion.version == "2"
    # Version 1 was never approved: it may keep its (lower) share but not grow past 10%.
    reg.set_weights("m", {"1": 5, "2": 95}, actor="op")
    with pytest.raises(PolicyViolation, match="'1'.*take 50.0%"):
        reg.set_weights("m", {"1": 50, "2": 50}, actor="op")
    refused = [e for e in reg.audit_events("m") if e.action == "governance.refused"]
    assert len(refused) == 4 and all(e.after["rule"] == "approvals" for e in refused)
    assert reg.verify_audit_chain() == []


def test_statuses_follow_the_deployment(reg: Registry) -> None:
    reg.register_version("m", linear(1))
    reg.register_version("m", linear(2))
    reg.register_version("m", linear(3))
    reg.set_deployment("m", [Arm("1", CH, 90), Arm("2", CL, 10)], actor="op")
    status = {v.version: v.status for v in reg.list_versions("m")}
    assert status == {"1": "champion", "2": "challenger", "3": "validated"}
    reg.promote("m", "2", actor="op")
    status = {v.version: v.status for v in reg.list_versions("m")}
    assert status == {"1": "retired", "2": "champion", "3": "validated"}
    event = reg.audit_events("m")[-1]
    assert event.after["status_changes"] == {
        "1": ["champion", "retired"],
        "2": ["challenger", "champion"],
    }
    reg.rollback("m", actor="op")  # a retired version may serve again
    assert reg.get_version("m", "1").status == "champion"
    with pytest.raises(PolicyViolation, match="rule 'lifecycle'.*serving"):
        reg.governance.retire("m", "1", actor="op")
    assert reg.governance.retire("m", "3", actor="op", reason="superseded").status == "retired"


def test_first_version_withheld_until_approved(reg: Registry) -> None:
    set_policy(reg, approvals_required=1, require_validation=True)
    rec = reg.register_version("m", linear(1), actor="alice")
    assert rec.status == "validated"
    with pytest.raises(NotFoundError, match="no deployment"):
        reg.get_deployment("m")
    assert "withheld by rule 'approvals'" in reg.audit_events("m:1")[0].after["deployment"]
    with pytest.raises(PolicyViolation, match="rule 'approvals'"):
        reg.set_weights("m", {"1": 1}, {"1": CH}, actor="op")
    reg.governance.approve("m", "1", approver="bob")
    dep = reg.set_weights("m", {"1": 1}, {"1": CH}, actor="op")
    assert dep.revision == 1 and reg.get_version("m", "1").status == "champion"


def test_require_validation_refuses_unvalidated_versions(reg: Registry) -> None:
    reg.register_version("m", linear(1))
    reg.register_version("m", modelzoo.failing_at_run(), force=True)
    set_policy(reg, require_validation=True)
    with pytest.raises(PolicyViolation, match="rule 'validation'.*'2'"):
        reg.set_weights("m", {"1": 99, "2": 1}, actor="op")


def test_policy_round_trip_and_audit(reg: Registry) -> None:
    assert reg.governance.policy().approvals_required == 0
    set_policy(reg, approvals_required=2, license_denylist=("AGPL-*",), retention_keep_last=3)
    policy = reg.governance.policy()
    assert (policy.approvals_required, policy.license_denylist) == (2, ("AGPL-*",))
    [event] = reg.audit_events("policy")
    assert event.before["approvals_required"] == 0 and event.after["approvals_required"] == 2
