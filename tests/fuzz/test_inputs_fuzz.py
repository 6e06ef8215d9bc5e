"""Registration inputs and policy documents fuzzed in process: each is accepted or refused
with the one error its reader documents, never another exception, and a refused
registration records nothing and leaves no bytes.

* ONNX artifacts truncated or with bytes flipped: :class:`RegistryError`.
* CSV references of any text: :class:`ValueError` (the CLI prints it on one line).
* Governance policy TOML: :class:`ValueError`; rollout policy TOML: :class:`RolloutPolicyError`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from test_api_fuzz import rollout_documents

from gateway.governor.rollout import RolloutPolicyError, parse_rollout_policy
from gateway.monitoring.reference import read_reference
from gateway.tools import modelzoo
from registry.errors import RegistryError
from registry.governance_policy import GovernancePolicy
from registry.registry import Registry

MODEL = modelzoo.linear(4, 2, seed=5)


@pytest.fixture
def reg(tmp_path: Path):
    registry = Registry.open(f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "artifacts")
    yield registry
    registry.close()


@st.composite
def damaged_models(draw: st.DrawFn) -> bytes:
    data = bytearray(MODEL)
    if draw(st.booleans()):
        return bytes(data[: draw(st.integers(0, len(data) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@given(artifact=damaged_models())
@example(artifact=b"")
@example(artifact=MODEL[:1])
@example(artifact=MODEL[: len(MODEL) // 2])
def test_damaged_onnx_is_refused_cleanly(reg, tmp_path, artifact):
    events = len(reg.audit_events())
    try:
        reg.register_version("fuzzed", artifact, actor="fuzz")
    except RegistryError:
        assert len(reg.audit_events()) == events
        stored = {v.sha256 for m in reg.list_models() for v in reg.list_versions(m.name)}
        on_disk = {
            p.parent.name + p.name for p in (tmp_path / "artifacts").rglob("*") if p.is_file()
        }
        assert on_disk <= stored  # nothing left behind by the refusal
    else:
        # A flipped byte inside a weight still makes a valid model: then it is registered.
        assert reg.read_artifact("fuzzed", reg.list_versions("fuzzed")[-1].version) == artifact
    assert reg.verify_audit_chain() == []


csv_text = st.one_of(
    st.text(max_size=80),
    st.lists(
        st.lists(
            st.one_of(
                st.floats().map(repr),
                st.integers().map(str),
                st.sampled_from(["", " ", "nan", "inf", "-", "1e999", '"1"', "x"]),
            ),
            min_size=1,
            max_size=4,
        ),
        max_size=5,
    ).map(lambda rows: "\n".join(",".join(r) for r in rows)),
)


@given(text=csv_text)
@example(text="")
@example(text="a,b\n")
@example(text="a,b\n1,2\n3")
@example(text='a,"b\n1,2')
@example(text="a\n1e999\n")
@example(text="\x00")
def test_csv_reference_is_read_or_refused_with_a_value_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("csv") / "ref.csv"
    path.write_text(text, encoding="utf-8")
    try:
        data, names = read_reference(path)
    except ValueError as exc:
        assert "\n" not in str(exc).strip()  # one line
        return
    assert data.ndim == 2 and data.shape[0] > 0 and data.dtype == np.float64
    assert names is not None and len(names) == data.shape[1]


@given(text=st.one_of(st.text(max_size=60), rollout_documents()))
@example(text="[policy]\napprovals_required = inf\n")
@example(text="[policy]\nretention_keep_last = nan\n")
@example(text="[policy]\nrequired_metadata = 3\n")
@example(text="policy = 3\n")
def test_governance_policy_toml_is_parsed_or_a_value_error(text):
    try:
        GovernancePolicy.from_toml(text)
    except ValueError:
        pass


@given(text=st.one_of(rollout_documents(), st.text(max_size=60)))
@example(text="canary = 3\n")
@example(text="[canary]\nsteps = [nan]\n")
@example(text="[gates]\nsoft_failures = 1e400\n")
def test_rollout_policy_toml_is_parsed_or_a_rollout_policy_error(text):
    try:
        parse_rollout_policy(text)
    except RolloutPolicyError:
        pass
