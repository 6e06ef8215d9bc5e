"""``onnxgate models ...`` and ``onnxgate infer`` end to end, through ``gateway.cli.main``.

The CLI writes the same SQLite registry a running gateway polls, so a model registered
from the command line is served without a restart.
"""

from __future__ import annotations

import json
import time

import grpc
import numpy as np
import pytest
from shared import clear_onnxgate_env

from gateway import cli
from gateway._proto import grpc_service_pb2 as pb
from gateway.tools import modelzoo


@pytest.fixture(autouse=True)
def _no_onnxgate_env(monkeypatch):
    """The CLI reads ONNXGATE_* from the environment; these tests pass everything as flags."""
    clear_onnxgate_env(monkeypatch)


@pytest.fixture
def onnxgate(registry_url, tmp_path):
    """Run ``onnxgate models ...`` against the test registry; returns the exit code."""
    flags = ["--registry", registry_url, "--artifact-dir", str(tmp_path / "artifacts")]

    def run(*args: str) -> int:
        return cli.main([*args, *flags])

    return run


@pytest.fixture
def lin_file(tmp_path):
    path = tmp_path / "lin.onnx"
    path.write_bytes(modelzoo.linear(4, 2, seed=3))
    return path


def _one_error_line(capfd) -> str:
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("onnxgate: ")
    assert out == ""
    return lines[0]


def test_register_list_and_show_as_tables(onnxgate, lin_file, registry_url, capsys):
    assert onnxgate("models", "register", "lin", str(lin_file)) == 0
    out = capsys.readouterr().out
    assert out.startswith("registered lin:1 sha256=")
    assert (
        onnxgate("models", "register", "lin", str(lin_file), "--version", "v2", "--allow-duplicate")
        == 0
    )
    capsys.readouterr()

    assert onnxgate("models", "list") == 0
    registry_line, *lines = capsys.readouterr().out.splitlines()
    assert registry_line == f"registry {registry_url}"
    assert lines[0].split() == ["MODEL", "VERSIONS", "CHAMPION", "REVISION"]
    assert set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["lin", "1,v2", "1", "1"]
    assert len(lines) == 3

    assert onnxgate("models", "show", "lin:v2") == 0
    rows = [(line[:12].strip(), line[13:]) for line in capsys.readouterr().out.splitlines()]
    fields = dict(row for row in rows if row[0] not in ("input", "output"))
    assert fields["model"] == "lin"
    assert fields["version"] == "v2"
    assert len(fields["sha256"]) == 64
    assert fields["owner"] == ""
    assert ("input", "x FP32 [-1, 4]") in rows
    assert ("output", "y FP32 [-1, 2]") in rows


def test_json_output_is_parseable(onnxgate, lin_file, capsys):
    assert onnxgate("models", "register", "lin", str(lin_file), "--json", "--owner", "ana") == 0
    registered = json.loads(capsys.readouterr().out)
    assert registered["model"] == "lin"
    assert registered["version"] == "1"
    assert registered["owner"] == "ana"
    assert registered["size_bytes"] == lin_file.stat().st_size

    assert onnxgate("models", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"name": "lin", "versions": ["1"], "champion": "1", "revision": 1}
    ]

    assert onnxgate("models", "show", "lin", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["sha256"] == registered["sha256"]
    assert shown["signature"] == registered["signature"]


def test_missing_file_fails_with_one_line(onnxgate, tmp_path, capfd):
    assert onnxgate("models", "register", "lin", str(tmp_path / "absent.onnx")) == 1
    assert "absent.onnx" in _one_error_line(capfd)


def test_non_onnx_file_fails_with_one_line(onnxgate, tmp_path, capfd):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model\n" * 50)
    assert onnxgate("models", "register", "lin", str(junk)) == 1
    assert "ONNX" in _one_error_line(capfd)
    assert onnxgate("models", "list", "--json") == 0
    assert json.loads(capfd.readouterr().out) == []


def test_duplicate_version_fails_with_one_line(onnxgate, lin_file, capfd):
    assert onnxgate("models", "register", "lin", str(lin_file), "--version", "7") == 0
    capfd.readouterr()
    assert onnxgate("models", "register", "lin", str(lin_file), "--version", "7") == 1
    line = _one_error_line(capfd)
    assert "'7'" in line and "already registered" in line


def test_show_unknown_model_fails_with_one_line(registry, onnxgate, capfd):
    assert onnxgate("models", "show", "ghost") == 1
    assert "ghost" in _one_error_line(capfd)


def test_running_gateway_serves_a_model_registered_later_through_the_cli(
    onnxgate, lin_file, make_gateway, registry, tmp_path, capsys
):
    registry.register_version("first", modelzoo.identity("FP32"), actor="test")
    gw = make_gateway(metrics_port=-1)
    stub = gw.stub()
    assert stub.ModelReady(pb.ModelReadyRequest(name="lin"), timeout=5).ready is False

    assert onnxgate("models", "register", "lin", str(lin_file)) == 0
    capsys.readouterr()
    # The point is "without a restart", not speed: poll is 0.2 s, the bound is generous for
    # a loaded CI box.
    deadline = time.monotonic() + 20.0
    while not stub.ModelReady(pb.ModelReadyRequest(name="lin"), timeout=5).ready:
        assert time.monotonic() < deadline, "gateway did not pick up the new model within 20 s"
        time.sleep(0.05)

    x = np.random.default_rng(0).standard_normal((3, 4))  # float64, as .npy files often are
    data = tmp_path / "x.npy"
    np.save(data, x)
    expected = x.astype(np.float32) @ modelzoo.linear_weights(4, 2, seed=3)

    assert cli.main(["infer", "lin", "--data", str(data), "--target", gw.target, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["model"] == "lin"
    assert payload["version"] == "1"
    assert payload["role"] == "champion"
    np.testing.assert_allclose(np.array(payload["outputs"]["y"]), expected, rtol=1e-5)

    assert cli.main(["infer", "lin", "--data", f"x={data}", "--target", gw.target]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "served by lin:1 (champion)"
    assert out[1].startswith("request id ")
    assert out[2] == "y float32 [3, 2]"
    printed = np.array(
        [float(v) for v in " ".join(out[3:]).replace("[", " ").replace("]", " ").split()]
    )
    np.testing.assert_allclose(printed.reshape(3, 2), expected, atol=1e-4)


def test_infer_against_unknown_model_fails_with_one_line(make_gateway, registry, tmp_path, capsys):
    registry.register_version("first", modelzoo.identity("FP32"), actor="test")
    gw = make_gateway(metrics_port=-1)
    data = tmp_path / "x.npy"
    np.save(data, np.zeros((1, 3), np.float32))
    assert cli.main(["infer", "ghost", "--data", str(data), "--target", gw.target]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"onnxgate: {grpc.StatusCode.NOT_FOUND.name}: ")
    assert "ghost" in lines[0]


def test_infer_sends_and_prints_bytes_tensors(make_gateway, registry, tmp_path, capsys):
    """A .npy of strings goes out as BYTES (length-prefixed elements) and comes back as text."""
    registry.register_version("text", modelzoo.identity("BYTES"), actor="test")
    gw = make_gateway(metrics_port=-1)
    data = tmp_path / "words.npy"
    np.save(data, np.array([["a", "bb", "h\u00e9llo"]]))
    rc = cli.main(["infer", "text", "--data", str(data), "--target", gw.target, "--json"])
    out, err = capsys.readouterr()
    assert (rc, err) == (0, "")
    assert json.loads(out)["outputs"] == {"y": [["a", "bb", "h\u00e9llo"]]}
