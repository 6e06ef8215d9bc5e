"""Deployment values: validation, normalisation, derived revisions and weight parsing."""

from __future__ import annotations

import math

import pytest

from registry.deployment import (
    Arm,
    Deployment,
    Role,
    Shadow,
    parse_weights,
    validate_deployment,
)
from registry.errors import InvalidDeployment

CH, CL, CA = Role.CHAMPION, Role.CHALLENGER, Role.CANARY


def test_valid_deployment_passes() -> None:
    validate_deployment([Arm("1", CH, 90), Arm("2", CL, 10), Arm("3", CA, 0)], [Shadow("4", 0.5)])


@pytest.mark.parametrize(
    ("arms", "shadows", "match"),
    [
        ([], [], "at least one arm"),
        ([Arm("1", CL, 1), Arm("2", CA, 1)], [], "no champion.*1, 2"),
        ([Arm("1", CH, 1), Arm("2", CH, 1)], [], "one champion.*1, 2"),
        ([Arm("1", CH, 1), Arm("2", CL, -1)], [], "version '2'.*>= 0"),
        ([Arm("1", CH, math.nan)], [], "version '1'.*finite"),
        ([Arm("1", CH, math.inf)], [], "version '1'.*finite"),
        ([Arm("1", CH, 0), Arm("2", CL, 0)], [], "total weight is 0.*1, 2"),
        ([Arm("1", CH, 1), Arm("1", CL, 1)], [], "version '1' appears in more than one arm"),
        ([Arm("1", CH, 1)], [Shadow("1", 0.5)], "version '1' cannot be both"),
        ([Arm("1", CH, 1)], [Shadow("2", 0.0)], "version '2'.*\\(0, 1\\]"),
        ([Arm("1", CH, 1)], [Shadow("2", 1.5)], "version '2'.*\\(0, 1\\]"),
        ([Arm("1", CH, 1)], [Shadow("2", 0.1), Shadow("2", 0.2)], "version '2'.*more than"),
    ],
)
def test_invalid_deployments_name_the_problem(
    arms: list[Arm], shadows: list[Shadow], match: str
) -> None:
    with pytest.raises(InvalidDeployment, match=match):
        validate_deployment(arms, shadows)


def test_invalid_deployment_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        validate_deployment([])


def test_champion_versions_and_normalised() -> None:
    d = Deployment("m", 3, (Arm("1", CH, 3), Arm("2", CL, 1)), (Shadow("3", 0.2),))
    assert d.champion == Arm("1", CH, 3)
    assert d.versions() == frozenset({"1", "2", "3"})
    n = d.normalised()
    assert [a.weight for a in n.arms] == [0.75, 0.25]
    assert n.revision == 3 and n.shadows == d.shadows


def test_champion_missing_raises() -> None:
    with pytest.raises(InvalidDeployment, match="no champion"):
        _ = Deployment("m", 1, (Arm("1", CL, 1),)).champion


def test_reweighted_keeps_roles_and_defaults_new_to_challenger() -> None:
    d = Deployment("m", 1, (Arm("1", CH, 1), Arm("2", CA, 1)), (Shadow("3", 0.5),))
    new = d.reweighted({"1": 80, "2": 10, "3": 10})
    assert new.revision == 2
    assert new.arms == (Arm("1", CH, 80), Arm("2", CA, 10), Arm("3", CL, 10))
    assert new.shadows == ()


def test_reweighted_with_new_champion_demotes_old() -> None:
    d = Deployment("m", 1, (Arm("1", CH, 1),))
    new = d.reweighted({"1": 50, "2": 50}, {"2": CH})
    assert new.arms == (Arm("1", CL, 50), Arm("2", CH, 50))


def test_reweighted_role_without_weight_is_refused() -> None:
    with pytest.raises(InvalidDeployment, match="'9'"):
        Deployment("m", 1, (Arm("1", CH, 1),)).reweighted({"1": 1}, {"9": CA})


@pytest.mark.parametrize(
    ("keep_old", "arms"),
    [
        (False, (Arm("2", CH, 100), Arm("3", CA, 5))),
        (True, (Arm("2", CH, 100), Arm("3", CA, 5), Arm("1", CL, 0.0))),
    ],
)
def test_promoted(keep_old: bool, arms: tuple[Arm, ...]) -> None:
    d = Deployment("m", 4, (Arm("1", CH, 90), Arm("2", CL, 10), Arm("3", CA, 5)))
    new = d.promoted("2", keep_old=keep_old)
    assert new.revision == 5 and new.arms == arms


def test_promoted_shadow_takes_champion_weight() -> None:
    d = Deployment("m", 1, (Arm("1", CH, 7),), (Shadow("2", 0.5),))
    new = d.promoted("2")
    assert new.arms == (Arm("2", CH, 7),) and new.shadows == ()


@pytest.mark.parametrize(("version", "match"), [("1", "already the champion"), ("9", "'9'")])
def test_promoted_refuses(version: str, match: str) -> None:
    with pytest.raises(InvalidDeployment, match=match):
        Deployment("m", 1, (Arm("1", CH, 1),)).promoted(version)


def test_parse_weights() -> None:
    assert parse_weights(["v1=90", " v2 = 10.5 ", "v3=0"]) == {"v1": 90.0, "v2": 10.5, "v3": 0.0}
    assert parse_weights([]) == {}


@pytest.mark.parametrize(
    ("token", "match"),
    [
        ("v1", "'v1' is not of the form"),
        ("=5", "'=5' is not of the form"),
        ("v1=", "'v1=' is not of the form"),
        ("v1=abc", "'v1=abc'.*not a number"),
        ("v1=-5", "'v1=-5'.*>= 0"),
        ("v1=nan", "'v1=nan'.*finite"),
        ("v1=inf", "'v1=inf'.*finite"),
    ],
)
def test_parse_weights_errors_name_the_token(token: str, match: str) -> None:
    with pytest.raises(InvalidDeployment, match=match):
        parse_weights([token])


def test_parse_weights_refuses_duplicates() -> None:
    with pytest.raises(InvalidDeployment, match="'v1' given twice"):
        parse_weights(["v1=1", "v1=2"])
