"""The load test's tiny mode runs end to end: real server processes, answers checked, overload gives 429s."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def bench_serve(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_serve

    yield bench_serve
    sys.modules.pop("bench_serve", None)


def test_answer_check_fails_on_mix_ups_and_on_drift_only_when_exact(bench_serve) -> None:
    compare = bench_serve.compare_answers
    solo = {0: "a", 1: "b", 2: "c"}
    assert compare(solo, dict(solo), 3)["ok"]
    swapped = compare(solo, {0: "b", 1: "a", 2: "c"}, 3, exact=False)
    assert (swapped["swapped"], swapped["ok"]) == (2, False)
    drifted = {0: "a", 1: "b", 2: "c!"}  # not anyone's answer: rounding drift in bf16, a defect in fp32
    assert compare(solo, drifted, 3, exact=False)["ok"]
    assert not compare(solo, drifted, 3)["ok"]
    assert not compare(solo, {0: "a", 1: "b"}, 3, exact=False)["ok"]  # dropped


def test_the_verdict_names_the_8_client_target_and_whether_it_is_met(bench_serve) -> None:
    def report(batched_speed: float, batched_p99: float) -> dict:
        levels = [
            {"engine": "serial", "clients": 8, "tokens_per_s": 10.0, "p99_s": 12.0},
            {"engine": "batched", "clients": 8, "tokens_per_s": batched_speed, "p99_s": batched_p99},
        ]
        return {"levels": levels}

    assert "target" in bench_serve.verdict(report(16.0, 11.0)) and " MET: 1.60x" in bench_serve.verdict(
        report(16.0, 11.0)
    )
    assert "NOT MET: 1.40x" in bench_serve.verdict(report(14.0, 11.0))  # too slow
    assert "NOT MET: 1.60x" in bench_serve.verdict(report(16.0, 13.0))  # p99 worse than serial
    assert "not measured" in bench_serve.verdict({"levels": report(16.0, 11.0)["levels"][:1]})


@pytest.mark.slow
def test_bench_serve_tiny_mode(tmp_path: Path, bench_serve) -> None:
    report_path = tmp_path / "report.json"
    status = bench_serve.main(["--tiny", "--threads", "1", "--clients", "1", "3", "--json", str(report_path)])
    report = json.loads(report_path.read_text())
    assert status == 0
    assert {(r["engine"], r["clients"]) for r in report["levels"]} >= {("serial", 1), ("serial", 3)}
    for level in report["levels"]:
        assert level["errors"] == 0 and level["tokens"] == level["requests"] * 6
    assert set(report["check"]) == {report["engines"][-1]}  # the batched engine against serial solo answers
    for check in report["check"].values():
        assert check["ok"] and check["concurrent_answered"] == check["requests"] == 8
    for engine in report["engines"]:
        overload = report["overload"][engine]
        assert overload["rejected_429"] > 0 and overload["ok"] > 0 and not overload["other"]
