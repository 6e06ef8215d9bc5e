"""Registry, traffic and governor commands through the real entry point: the traps of a
newcomer's first hour (a registry made on a read, silent duplicates, a champion at 0 %, a
rolled-back candidate still shown as ramping)."""

from __future__ import annotations

import pytest
from cli_support import onnxgate
from shared import ADMIN_TOKEN

from gateway.tools import modelzoo
from registry.deployment import Role

ADMIN = {"ONNXGATE_ADMIN_TOKEN": ADMIN_TOKEN}


def _err(done) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_read_in_an_empty_directory_creates_nothing_and_names_the_registry(tmp_path):
    reads = (("models", "list"), ("models", "show", "fraud"), ("audit", "verify"), ("db", "status"))
    for command in reads:
        line = _err(onnxgate(*command, cwd=tmp_path))
        assert f"no registry at sqlite:///{tmp_path}/onnxgate-data/registry.db" in line
        assert "--registry" in line
    assert list(tmp_path.iterdir()) == []


def test_models_list_says_which_registry_it_read(tmp_path):
    (tmp_path / "lin.onnx").write_bytes(modelzoo.linear(4, 2, seed=3))
    assert onnxgate("models", "register", "lin", "lin.onnx", cwd=tmp_path).returncode == 0
    done = onnxgate("models", "list", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0] == f"registry sqlite:///{tmp_path}/onnxgate-data/registry.db"


def test_registering_the_same_bytes_again_is_refused_unless_allowed(registry_url, tmp_path):
    (tmp_path / "lin.onnx").write_bytes(modelzoo.linear(4, 2, seed=3))
    flags = ("--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts"))
    assert onnxgate("models", "register", "lin", "lin.onnx", *flags, cwd=tmp_path).returncode == 0
    line = _err(onnxgate("models", "register", "lin", "lin.onnx", *flags, cwd=tmp_path))
    assert "lin:1 already has this artifact (sha256 " in line and "--allow-duplicate" in line
    again = onnxgate(
        "models", "register", "lin", "lin.onnx", "--allow-duplicate", *flags, cwd=tmp_path
    )
    assert again.returncode == 0 and again.stdout.startswith("registered lin:2 ")


@pytest.fixture
def two_versions(registry):
    registry.register_version("fraud", modelzoo.linear(4, 2, seed=1), actor="t")
    registry.register_version("fraud", modelzoo.linear(4, 2, seed=2), actor="t")
    return registry


def test_traffic_set_refuses_a_champion_at_zero(two_versions, make_gateway):
    gw = make_gateway(metrics_port=-1)
    line = _err(
        onnxgate("traffic", "set", "fraud", "1=0", "2=100", "--target", gw.target, env=ADMIN)
    )
    assert "version 1 is the champion of fraud and would get 0%" in line
    assert "onnxgate promote fraud 2" in line
    assert two_versions.get_deployment("fraud").revision == 1  # nothing changed
    ok = onnxgate(
        "traffic", "set", "fraud", "2=10", "1=90", "--role", "2=canary", "--target", gw.target,
        env=ADMIN,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    # Tables list the champion first, whatever order the command named the versions in.
    rows = [line.split() for line in ok.stdout.splitlines()[3:]]
    assert rows == [["1", "champion", "90.0%"], ["2", "canary", "10.0%"]]
    history = onnxgate("history", "fraud", "--target", gw.target, env=ADMIN).stdout
    assert "1(champ)=90% 2(canar)=10%" in history
    assert {a.version: a.role for a in two_versions.get_deployment("fraud").arms} == {
        "1": Role.CHAMPION,
        "2": Role.CANARY,
    }
    # Naming a new champion at 0 % is the same mistake.
    line = _err(
        onnxgate(
            "traffic",
            "set",
            "fraud",
            "1=100",
            "2=0",
            "--role",
            "2=champion",
            "--target",
            gw.target,
            env=ADMIN,
        )  # fmt: skip
    )
    assert "version 2 is the champion" in line


POLICY = """
[canary]
steps = [20, 50]
"""


def test_governor_status_after_a_rollback_shows_no_candidate(two_versions, make_gateway):
    two_versions.governor.set_policy("fraud", POLICY, actor="t")
    gw = make_gateway(metrics_port=-1, governor=False)
    # What the governor leaves behind after rolling canary 2 back at its second step.
    two_versions.governor.save_state(
        "fraud",
        {"candidate": "2", "step": 1, "rolled_back": ["2"], "consecutive_failures": 0},
        last_decision={
            "at": "2026-12-01T10:00:00+00:00",
            "decision": {"kind": "rollback", "reasons": ["error rate 0.2 > 0.05"], "gates": []},
        },
        next_evaluation_at=None,
    )
    done = onnxgate("governor", "status", "fraud", "--target", gw.target, env=ADMIN)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "candidate none" in lines
    assert any(line.startswith("last decision rollback at 2026-12-01T10:00") for line in lines)
    assert "rolled back (not promoted again): 2" in lines
    assert "step 2/2" not in done.stdout


def test_a_version_spelt_v1_gets_the_hint_that_versions_are_numbers(two_versions, make_gateway):
    gw = make_gateway(metrics_port=-1)
    for command in (
        ("traffic", "set", "fraud", "v1=90", "v2=10"),
        ("promote", "fraud", "v2"),
        ("shadow", "add", "fraud", "v2"),
    ):
        line = _err(onnxgate(*command, "--target", gw.target, env=ADMIN))
        assert line.startswith("onnxgate: NOT_FOUND: ") and "versions are numbers: write " in line
    assert two_versions.get_deployment("fraud").revision == 1  # nothing changed


def test_expected_revision_help_does_not_read_as_revision_zero():
    done = onnxgate("traffic", "set", "--help")
    text = " ".join(done.stdout.split())
    assert "(default: 0)" not in text
    assert "at this revision (default: none, any revision)" in text


@pytest.mark.parametrize(
    "command",
    [("models", "list"), ("db", "status"), ("serve", "--port", "0", "--metrics-port", "-1")],
)
def test_a_missing_postgres_driver_names_the_extra_in_one_line(command, tmp_path):
    """Without the ``postgres`` extra a ``postgresql+psycopg://`` registry printed a
    ModuleNotFoundError traceback, from ``serve`` and from registry commands alike."""
    import subprocess
    import sys

    from cli_support import clean_env

    url = "postgresql+psycopg://onnxgate:secret@127.0.0.1:1/registry"
    # An environment without psycopg: the import fails as it does where it is not installed.
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from gateway.cli import main\n"
        f"sys.exit(main({[*command, '--registry', url]!r}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(),
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    line = _err(done)
    assert "needs the database driver 'psycopg'" in line
    assert "pip install 'onnxgate[postgres]'" in line and "secret" not in line
