"""benchmarks/explain.py runs with tiny sizes and writes sane JSON (structure, never speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "explain.py"


def test_explain_benchmark_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "explain.json"
    argv = [sys.executable, str(BENCH), "--features", "4", "12", "--rows", "2"]
    proc = subprocess.run(
        [*argv, "--naive-rows", "1", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [case["features"] for case in doc["cases"]] == [4, 12]
    for case in doc["cases"]:
        assert case["onnxgate"]["explanations"] == 2 and case["row_by_row"]["explanations"] == 1
        assert case["onnxgate"]["per_s"] > 0 and case["row_by_row"]["p99_ms"] > 0
        # Same explainer, same seed, same background: only the batching differs.
        assert case["max_abs_difference"] < 1e-6
    assert "speed-up" in proc.stdout
