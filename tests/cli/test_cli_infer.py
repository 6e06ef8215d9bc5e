"""``onnxgate infer`` through the real entry point against a real gateway: what it sends,
what it refuses before sending, and how it says it cannot reach a gateway."""

from __future__ import annotations

import json
import socket

import numpy as np
import pytest
from cli_support import onnxgate

from gateway.tools import modelzoo


@pytest.fixture
def lin(registry):
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="t")


def _err(done) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("onnxgate: ")
    return lines[0]


@pytest.mark.parametrize("values", [np.array([["0", "1", "2", "3"]]), np.ones((1, 4), complex)])
def test_arrays_that_do_not_cast_safely_are_refused_naming_both_types(
    lin, make_gateway, tmp_path, values
):
    gw = make_gateway(metrics_port=-1)
    np.save(tmp_path / "rows.npy", values)
    line = _err(
        onnxgate("infer", "lin", "--data", str(tmp_path / "rows.npy"), "--target", gw.target)
    )
    assert str(values.dtype) in line and "FP32" in line


def test_float64_and_int_rows_are_cast_to_the_inputs_fp32(lin, make_gateway, tmp_path):
    gw = make_gateway(metrics_port=-1)
    for values in (np.full((2, 4), 0.5), np.ones((2, 4), np.int64)):
        np.save(tmp_path / "rows.npy", values)
        done = onnxgate(
            "infer", "lin", "--data", f"x={tmp_path / 'rows.npy'}", "--target", gw.target, "--json"
        )
        assert done.returncode == 0, done.stderr
        answer = json.loads(done.stdout)
        assert answer["version"] == "1" and len(answer["outputs"]["y"]) == 2


def test_a_text_file_is_not_a_npy_array_and_pickles_are_never_suggested(tmp_path):
    (tmp_path / "x.npy").write_text("1,2,3,4\n")
    line = _err(onnxgate("infer", "lin", "--data", str(tmp_path / "x.npy")))
    assert "not a .npy array" in line
    assert "pickle=" not in line and "unsafe" not in line


def test_an_unknown_input_name_lists_the_models_inputs(lin, make_gateway, tmp_path):
    gw = make_gateway(metrics_port=-1)
    np.save(tmp_path / "rows.npy", np.ones((1, 4), np.float32))
    line = _err(
        onnxgate("infer", "lin", "--data", f"Y={tmp_path / 'rows.npy'}", "--target", gw.target)
    )
    assert "no input 'Y'" in line and "inputs: 'x'" in line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_gateway_names_the_target_and_how_to_choose_another(tmp_path):
    np.save(tmp_path / "rows.npy", np.ones((1, 4), np.float32))
    target = f"127.0.0.1:{_free_port()}"
    for command in (
        ("infer", "lin", "--data", str(tmp_path / "rows.npy")),
        ("traffic", "show", "lin"),
    ):
        env = {"ONNXGATE_ADMIN_TOKEN": "t"}
        line = _err(onnxgate(*command, "--target", target, "--timeout", "5", env=env))
        assert f"cannot reach a gateway at {target}" in line
        assert "--target" in line and "ONNXGATE_TARGET" in line


def test_local_files_are_read_before_connecting(tmp_path):
    line = _err(
        onnxgate("infer", "lin", "--data", str(tmp_path / "missing.npy"), "--target", "127.0.0.1:1")
    )
    assert "missing.npy: no such file" in line


def test_infer_sends_the_predict_token_from_env_or_file(lin, make_gateway, tmp_path):
    gw = make_gateway(metrics_port=-1, predict_tokens={"app-token": "billing-app"})
    np.save(tmp_path / "rows.npy", np.ones((1, 4), np.float32))
    base = ("infer", "lin", "--data", str(tmp_path / "rows.npy"), "--target", gw.target)
    assert "UNAUTHENTICATED" in _err(onnxgate(*base))
    assert onnxgate(*base, env={"ONNXGATE_PREDICT_TOKEN": "app-token"}).returncode == 0
    (tmp_path / "token").write_text("app-token\n")
    assert onnxgate(*base, "--token-file", str(tmp_path / "token")).returncode == 0


def test_infer_sends_the_given_id_or_a_new_one_and_prints_it(lin, make_gateway, tmp_path):
    """Without an id, feedback and explain --id could not be tried from the CLI alone."""
    gw = make_gateway(metrics_port=-1)
    np.save(tmp_path / "rows.npy", np.ones((1, 4), np.float32))
    base = ("infer", "lin", "--data", str(tmp_path / "rows.npy"), "--target", gw.target)
    given = onnxgate(*base, "--id", "order-17", "--json")
    assert given.returncode == 0, given.stderr
    assert json.loads(given.stdout)["id"] == "order-17"
    table = onnxgate(*base, "--id", "order-18")
    assert "request id order-18" in table.stdout.splitlines()[1]
    made = [json.loads(onnxgate(*base, "--json").stdout)["id"] for _ in range(2)]
    assert all(made) and made[0] != made[1]


def test_infer_takes_csv_rows_like_explain(lin, make_gateway, tmp_path):
    gw = make_gateway(metrics_port=-1)
    (tmp_path / "rows.csv").write_text("a,b,c,d\n1,2,3,4\n0.5,0.5,0.5,0.5\n")
    done = onnxgate(
        "infer", "lin", "--data", str(tmp_path / "rows.csv"), "--target", gw.target, "--json"
    )
    assert done.returncode == 0, done.stderr
    np.save(tmp_path / "rows.npy", np.array([[1, 2, 3, 4], [0.5] * 4], np.float32))
    same = onnxgate(
        "infer", "lin", "--data", str(tmp_path / "rows.npy"), "--target", gw.target, "--json"
    )
    assert json.loads(done.stdout)["outputs"] == json.loads(same.stdout)["outputs"]
    (tmp_path / "bad.csv").write_text("a,b,c,d\n1,2,x,4\n")
    line = _err(onnxgate("infer", "lin", "--data", str(tmp_path / "bad.csv")))
    assert "line 2, column 'c'" in line


def test_infer_into_a_closed_pipe_exits_quietly(lin, make_gateway, tmp_path):
    """``onnxgate infer ... | head -1`` printed a BrokenPipeError traceback and exited 1."""
    import os
    import subprocess
    import sys

    from cli_support import clean_env

    gw = make_gateway(metrics_port=-1)
    np.save(tmp_path / "rows.npy", np.ones((200, 4), np.float32))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line: every write fails (EPIPE)
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "infer",
                "lin",
                "--data",
                str(tmp_path / "rows.npy"),
                "--target",
                gw.target,
            ],  # fmt: skip
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            timeout=120,
        )
    finally:
        os.close(write)
    assert done.returncode == 0
    assert done.stderr == ""


def test_bench_input_file_sends_every_row_of_it(tmp_path):
    """With --input the generator sent only 16 distinct rows (``--samples``): a shadow fed
    those looked drifted in the console. Every row of the file is a request now."""
    from gateway._proto import grpc_service_pb2 as pb
    from gateway.tools.loadgen import LoadSpec, build_requests

    rows = np.arange(100 * 4, dtype=np.float64).reshape(100, 4)
    np.save(tmp_path / "rows.npy", rows)
    meta = pb.ModelMetadataResponse(name="lin")
    meta.inputs.add(name="x", datatype="FP32", shape=[-1, 4])
    for per_request, expected in ((1, 100), (3, 34)):
        spec = LoadSpec(target="-", model="lin", rows=per_request,
                        inputs=(("", str(tmp_path / "rows.npy")),))  # fmt: skip
        pool = [pb.ModelInferRequest.FromString(b) for b in build_requests(spec, meta)]
        assert len(pool) == expected
        sent = np.concatenate(
            [np.frombuffer(r.raw_input_contents[0], np.float32).reshape(-1, 4) for r in pool]
        )
        assert {tuple(r) for r in sent} == {tuple(r) for r in rows.astype(np.float32)}
