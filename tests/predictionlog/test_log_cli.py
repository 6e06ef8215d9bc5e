"""``onnxgate log verify | query | show`` over the files a real gateway wrote, and the
settings that turn the log on."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

from gateway.settings import Settings, SettingsError
from gateway.tools import modelzoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import onnxgate


def test_settings_turn_the_log_on_from_the_environment() -> None:
    s = Settings.load(
        {
            "ONNXGATE_PREDICTION_LOG": "file:/var/log/preds, http://collector:8080/events",
            "ONNXGATE_PREDICTION_LOG_SAMPLE": "0.25",
            "ONNXGATE_PREDICTION_LOG_INPUTS": "false",
        }
    )
    assert s.prediction_log == ("file:/var/log/preds", "http://collector:8080/events")
    assert (s.prediction_log_sample, s.prediction_log_inputs) == (0.25, False)
    assert Settings.load({}).prediction_log == ()  # off unless set
    with pytest.raises(SettingsError, match="prediction_log_sample"):
        Settings.load({"ONNXGATE_PREDICTION_LOG_SAMPLE": "1.5"})


def test_verify_query_and_show(registry, registry_url, make_gateway, tmp_path: Path) -> None:
    registry.register_version("lin", modelzoo.linear(4, 2, seed=3), actor="test")
    log_dir = tmp_path / "log"
    gw = make_gateway(prediction_log=(str(log_dir),))
    for i in range(5):
        body = {"id": f"c-{i}", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4],
                                            "data": [i, 1, 2, 3]}]}  # fmt: skip
        assert httpx.post(f"{gw.http_url}/v2/models/lin/infer", json=body).status_code == 200
    gw.stop()
    where = ("--registry", registry_url, "--dir", str(log_dir))

    done = onnxgate("log", "verify", *where)
    assert done.returncode == 0, done.stderr
    assert "intact: 1 file(s)" in done.stdout

    done = onnxgate(
        "log", "query", "select request_id, status from log order by request_id", "--json", *where
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"request_id": f"c-{i}", "status": "OK"} for i in range(5)]

    # The directory from the setting, as a gateway's environment would give it.
    done = onnxgate(
        "log", "show", "c-3", "--json", "--registry", registry_url,
        env={"ONNXGATE_PREDICTION_LOG": f"file:{log_dir}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)
    assert record["model"] == "lin" and record["status"] == "OK"
    assert record["inputs"]["x"] == {"datatype": "FP32", "shape": [1, 4], "data": [[3, 1, 2, 3]]}
    assert [t["shape"] for t in record["outputs"].values()] == [[1, 2]]

    assert onnxgate("log", "show", "nope", *where).returncode == 1

    (only,) = list(log_dir.rglob("*.parquet"))
    only.rename(only.with_name("renamed.parquet"))
    done = onnxgate("log", "verify", *where)
    assert done.returncode == 1
    assert "missing" in done.stdout and "added" in done.stdout
