"""The GPU suite's tiny mode runs here on CPU: the same code path as on a GPU, in seconds.

(Its serving part calls ``benchmarks/bench_serve.py``, whose own tiny mode tests/server/test_bench_serve.py
runs; it is skipped here so the load test does not run twice.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PUBLISHED_PARAMETERS = {"qwen2_5_vl_7b": 8.29e9, "llava_onevision_7b": 8.03e9, "internvl3_8b": 7.94e9}
TOKENS_PER_IMAGE = {"qwen2_5_vl_7b": 256, "llava_onevision_7b": 729, "internvl3_8b": 256}


@pytest.mark.slow
def test_gpu_suite_tiny_mode(tmp_path: Path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_suite.py", "--tiny", "--n", "2", "--skip-serve", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["real_size"]) == set(PUBLISHED_PARAMETERS)
    for name, entry in report["real_size"].items():
        # The committed config builds the published architecture (counted on the meta device).
        assert entry["parameters_full_size"] == pytest.approx(PUBLISHED_PARAMETERS[name], rel=0.005)
        rows = {row["method"]: row for row in entry["rows"]}
        assert set(rows) == {"vanilla", "focus", "reference"} and not entry["skipped"]
        assert rows["vanilla"]["rows"] == 1 and rows["focus"]["rows"] == rows["reference"]["rows"] == 3
        # Real image geometry: two images of the real token count each, plus the text.
        assert 2 * TOKENS_PER_IMAGE[name] < rows["focus"]["prompt_tokens"] < 2 * TOKENS_PER_IMAGE[name] + 200
        assert all(row["ttft_s"] > 0 and row["per_token_ms"] > 0 for row in rows.values())
    assert report["batching"]["status"] == 0
    assert "checked equal to the serial one" in report["batching"]["output"]
    text = (out / "report.md").read_text()
    assert "Qwen2.5-VL-7B shape: 8.29B parameters" in text and "| 2 | focus | 3 |" in text
