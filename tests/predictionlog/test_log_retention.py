"""The retention floor: ``retention apply`` removes prediction-log files only past the
policy's ``prediction_log_days``, records each removal in the audit chain, and ``log
verify`` stays clean afterwards."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from gateway.predictionlog import Batch, ParquetSink, audit_closer, table_of
from gateway.predictionlog.retention import expired_files
from gateway.serving.taps import TapRecord
from registry import Registry
from registry.governance_policy import GovernancePolicy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))
from cli_support import onnxgate


def _day(days_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def _write_days(directory: Path, registry: Registry, ages: list[int]) -> None:
    """One closed, chained file per age (days ago) for model ``m``."""
    sink = ParquetSink(directory, on_closed=audit_closer(registry))
    for age in ages:
        x = np.full((1, 2), age, dtype=np.float32)
        record = TapRecord("m", "1", "champion", f"r-{age}", {}, {"x": x}, {"y": x}, None,  # type: ignore[arg-type]
                           "OK", 1, time.time_ns() // 1000, 1, "ab" * 32, "http", "")  # fmt: skip
        sink.write(Batch("m", _day(age), table_of([record], keep_inputs=True)))
    sink.close()


def test_expired_files_respect_the_floor_to_the_day(tmp_path: Path) -> None:
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        folder = tmp_path / "model=m" / f"date={day}"
        folder.mkdir(parents=True)
        (folder / "a.parquet").write_bytes(b"x")
        (folder / "b.parquet.tmp").write_bytes(b"x")  # still being written: never
    (tmp_path / "stray.parquet").write_bytes(b"x")  # no date partition: never
    now = datetime(2026, 1, 13, 0, 0, tzinfo=UTC)
    # 2026-01-02 ended 2026-01-03T00:00, exactly 10 days before now: past the floor.
    assert expired_files(tmp_path, 10, now) == [
        "model=m/date=2026-01-01/a.parquet",
        "model=m/date=2026-01-02/a.parquet",
    ]
    assert expired_files(tmp_path, 10.5, now) == ["model=m/date=2026-01-01/a.parquet"]
    assert expired_files(tmp_path, None, now) == []  # no floor: nothing ever goes


def test_policy_refuses_a_negative_floor() -> None:
    with pytest.raises(ValueError, match="prediction_log_days"):
        GovernancePolicy.from_dict({"prediction_log_days": -1})
    assert GovernancePolicy.from_toml("prediction_log_days = 183").prediction_log_days == 183


def test_retention_never_undercuts_the_floor_and_verify_stays_clean(
    registry: Registry, registry_url: str, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    _write_days(log_dir, registry, [400, 200, 100, 0])
    where = ("--registry", registry_url, "--log-dir", str(log_dir))
    verify = ("log", "verify", "--registry", registry_url, "--dir", str(log_dir))
    assert onnxgate(*verify).returncode == 0

    # A short version retention and no log floor: the log is never touched.
    registry.governance.set_policy(GovernancePolicy(retention_days=1), actor="test")
    done = onnxgate("retention", "apply", *where)
    assert done.returncode == 0, done.stderr
    assert "every file kept" in done.stdout
    assert len(list(log_dir.rglob("*.parquet"))) == 4

    # Version retention of 1 day, log floor of 183: only the files past 183 days go.
    policy = GovernancePolicy(retention_days=1, prediction_log_days=183)
    registry.governance.set_policy(policy, actor="test")
    dry = json.loads(onnxgate("retention", "apply", "--dry-run", "--json", *where).stdout)
    assert len(dry["prediction_log"]["removed"]) == 2
    assert len(list(log_dir.rglob("*.parquet"))) == 4  # a dry run changes nothing
    done = onnxgate("retention", "apply", "--json", *where)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["prediction_log"]
    removed_days = sorted(Path(p).parent.name for p in report["removed"])
    assert removed_days == sorted(f"date={_day(age)}" for age in (400, 200))
    days_left = sorted(p.parent.name for p in log_dir.rglob("*.parquet"))
    assert days_left == sorted(f"date={_day(age)}" for age in (100, 0))
    assert report["kept"] == 2

    # The removals are in the chain: verify reports nothing missing, the chain holds.
    verified = onnxgate(*verify, "--json")
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["missing"] == []
    assert onnxgate("audit", "verify", "--registry", registry_url).returncode == 0
    events = [e for e in registry.audit_events() if e.action == "log.retention"]
    assert len(events) == 2 and all(e.after["removed"] for e in events)

    # Files removed outside policy are still caught.
    next(log_dir.rglob("*.parquet")).unlink()
    assert onnxgate(*verify).returncode == 1
