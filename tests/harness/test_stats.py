"""Statistics against scipy and hand-computed values; scores from records against hand counts."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from focus_integrations.harness.benchmarks import info_leakage, mantis, winoground
from focus_integrations.harness.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap_ci
from focus_integrations.harness.summary import compare, metric_values, score_block


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (3, 7), (10, 10), (0, 12), (25, 40), (5, 1)])
def test_mcnemar_exact_matches_scipy(b: int, c: int) -> None:
    baseline = [True] * b + [False] * c + [True] * 4 + [False] * 3
    other = [False] * b + [True] * c + [True] * 4 + [False] * 3
    result = mcnemar_exact(baseline, other)
    assert (result["b"], result["c"]) == (b, c)
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert result["p_value"] == pytest.approx(expected, rel=1e-12)


def test_mcnemar_by_hand() -> None:
    # b=1, c=4: p = 2 * (C(5,0) + C(5,1)) / 2^5 = 12/32
    assert mcnemar_exact([1, 0, 0, 0, 0], [0, 1, 1, 1, 1])["p_value"] == pytest.approx(0.375)


def test_bootstrap_interval() -> None:
    assert bootstrap_ci([1.0] * 10) == (1.0, 1.0)
    assert bootstrap_ci([]) is None
    values = [1.0] * 60 + [0.0] * 40
    low, high = bootstrap_ci(values)
    assert low < 0.6 < high
    # normal approximation of a proportion: 0.6 +- 1.96 * sqrt(.24/100) = [0.504, 0.696]
    assert low == pytest.approx(0.504, abs=0.03) and high == pytest.approx(0.696, abs=0.03)
    assert bootstrap_ci(values) == bootstrap_ci(values)  # deterministic
    low, high = paired_bootstrap_ci([1, 1, 1, 0], [0, 1, 1, 0])
    assert low <= 0.25 <= high


def _record(example: str, query: str, correct: bool, parsed: str = "a", n_images: int = 2) -> dict:
    return {
        "id": f"{example}/{query}",
        "example": example,
        "query": query,
        "correct": float(correct),
        "parsed": parsed,
        "n_images": n_images,
        "breakdown": {"tag": "x" if example in "01" else "y"},
    }


def test_winoground_scores_by_hand() -> None:
    # row 0: all right; row 1: text right, one image query wrong; row 2: text wrong, image right
    right = {
        "0": (1, 1, 1, 1),
        "1": (1, 1, 1, 0),
        "2": (0, 1, 1, 1),
    }
    records = [
        _record(ex, key, bool(v), n_images=1 if key.startswith("text") else 2)
        for ex, flags in right.items()
        for key, v in zip(("text_0", "text_1", "image_0", "image_1"), flags)
    ]
    block = score_block(winoground.BENCHMARK, records)
    assert block["metrics"]["text"]["value"] == pytest.approx(2 / 3)
    assert block["metrics"]["image"]["value"] == pytest.approx(2 / 3)
    assert block["metrics"]["group"]["value"] == pytest.approx(1 / 3)
    assert block["metrics"]["group"]["n"] == 3
    assert block["breakdowns"]["tag"]["x"]["group"]["value"] == pytest.approx(0.5)
    assert block["breakdowns"]["tag"]["y"]["text"]["value"] == 0.0


def test_comparison_pairs_items() -> None:
    base = [_record(str(i), "q", i < 5) for i in range(10)]
    other = [_record(str(i), "q", i < 5 or i in (7, 8, 9)) for i in range(10)]
    result = compare(mantis.BENCHMARK, base, other)["accuracy"]
    assert result["n"] == 10 and result["difference"] == pytest.approx(0.3)
    assert result["mcnemar"] == {"b": 0, "c": 3, "p_value": pytest.approx(0.25)}


def test_leakage_rates_and_delta_by_hand() -> None:
    rows = []
    # two pairs; chose C: single never; multi: pair 0 both views, pair 1 one view
    for ex, multi_c in (("0", (True, True)), ("1", (True, False))):
        for view in (0, 1):
            rows.append(_record(ex, f"i{view}_single", True, parsed="a"))
            rows.append(_record(ex, f"i{view}_multi", False, parsed="c" if multi_c[view] else "b"))
    block = score_block(info_leakage.BENCHMARK, rows)
    assert block["metrics"]["c_single"]["value"] == 0.0
    assert block["metrics"]["c_multi"]["value"] == pytest.approx(0.75)
    assert block["metrics"]["acc_single"]["value"] == 1.0
    assert block["deltas"]["leakage_delta"]["value"] == pytest.approx(0.75)
    assert block["deltas"]["leakage_delta"]["n"] == 2
    values = metric_values(info_leakage.BENCHMARK, rows)
    assert np.mean(list(values["c_multi_i1"].values())) == pytest.approx(0.5)


def test_row_scores_count_a_row_by_its_largest_query() -> None:
    records = [
        _record("0", key, True, n_images=1 if key.startswith("text") else 2)
        for key in ("text_0", "text_1", "image_0", "image_1")
    ]
    block = score_block(winoground.BENCHMARK, records)
    by_images = block["breakdowns"]["n_images"]
    assert set(by_images) == {"2"} and by_images["2"]["group"]["n"] == 1
