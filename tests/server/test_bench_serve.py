"""The load test's tiny mode runs end to end: real server processes, answers checked, overload gives 429s."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_bench_serve_tiny_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_serve

    report_path = tmp_path / "report.json"
    status = bench_serve.main(["--tiny", "--threads", "1", "--clients", "1", "3", "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    assert status == 0
    assert {(r["engine"], r["clients"]) for r in report["levels"]} >= {("serial", 1), ("serial", 3)}
    for level in report["levels"]:
        assert level["errors"] == 0 and level["tokens"] == level["requests"] * 6
    for engine in report["engines"]:
        check = report["check"][engine]
        assert check["ok"] and check["concurrent_answered"] == check["requests"] == 8
        overload = report["overload"][engine]
        assert overload["rejected_429"] > 0 and overload["ok"] > 0 and not overload["other"]
    sys.modules.pop("bench_serve", None)
