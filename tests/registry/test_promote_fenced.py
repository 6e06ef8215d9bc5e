"""``promote`` is fenced like every other deployment write: with ``expected_revision`` it
applies only to the revision its caller judged (a governor leader paused past its lease
cannot promote over its successor's change)."""

from __future__ import annotations

import pytest

from registry.errors import StaleRevision


def test_promote_with_a_stale_revision_is_refused(reg, model_v1, make_model):
    reg.register_version("m", model_v1, actor="t")
    reg.register_version("m", make_model(seed=2), actor="t")
    judged = reg.get_deployment("m").revision
    reg.set_weights("m", {"1": 90, "2": 10}, actor="successor")
    with pytest.raises(StaleRevision):
        reg.promote("m", "2", actor="paused-leader", expected_revision=judged)
    current = reg.get_deployment("m")
    promoted = reg.promote("m", "2", actor="leader", expected_revision=current.revision)
    assert [a.version for a in promoted.arms if a.weight] == ["2"]
