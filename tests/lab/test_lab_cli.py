"""`focus eval leakage` and `focus demo` through the real console entry point, on the bundled model."""

from __future__ import annotations

import json

import pytest

from focus_integrations.cli import main


def test_eval_leakage_writes_table_json_and_plot(tmp_path, capsys):
    out = tmp_path / "lab"
    code = main(
        [
            "eval",
            "leakage",
            "--n",
            "2",
            "3",
            "--samples",
            "3",
            "--val-samples",
            "2",
            "--alphas",
            "0.5",
            "1",
            "--max-new-tokens",
            "3",
            "--seed",
            "5",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "slot binding" in printed and "noise abstain" in printed and "N-calib acc" in printed
    assert printed.count("N=2: ") == 1 and printed.count("N=3: ") == 1  # one conclusion per N
    result = json.loads((out / "leakage.json").read_text())
    assert result["alpha_by_n"]["2"] in (0.5, 1.0) and result["alpha_by_n"]["3"] in (0.5, 2 / 3, 1.0)
    assert result["alpha_validation"]["split"] == "val"
    assert result["per_n"]["2"]["rules"]["winner"] in ("tie", "faithful", "calibrated", "same rule")
    assert set(result["per_n"]) == {"2", "3"}
    assert result["per_n"]["3"]["vanilla"]["accuracy"]["total"] == 3
    pytest.importorskip("matplotlib")
    assert (out / "leakage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "args",
    [
        ["--n", "7"],
        ["--n", "1"],
        ["--alphas", "-0.5"],
        ["--alpha", "-1"],
        ["--alpha", "0.5", "--alphas", "0.1"],
        ["--max-new-tokens", "0"],
        ["--samples", "0"],
    ],
)
def test_bad_lab_arguments_give_one_line_errors(args, tmp_path, capsys):
    assert main(["eval", "leakage", "--samples", "1", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("focus: error:") and "Traceback" not in err


def test_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "leakage", "--model", str(tmp_path / "nothing"), "--samples", "1"]) == 2
    assert capsys.readouterr().err.startswith("focus: error:")


def test_demo_answers_vanilla_faithful_and_calibrated_side_by_side(capsys):
    assert main(["demo", "--samples", "2"]) == 0
    printed = capsys.readouterr().out
    answers = [
        line.strip().split(":")[0] for line in printed.splitlines() if line.startswith("  ") and "'" in line
    ]
    assert answers == ["vanilla", "FOCUS", "N-calib"] * 4  # each question, the three rules
    assert "Short leakage lab" in printed and "slot binding" in printed
    conclusions = printed.split("What to conclude:")[1]
    assert [line.split(":")[0].strip() for line in conclusions.strip().splitlines()[:3]] == [
        "N=2",
        "N=4",
        "N=6",
    ]


@pytest.mark.parametrize("family", ["qwen2_5_vl", "idefics3"])
def test_the_lab_runs_on_other_families(tiny_checkpoint, family, tmp_path, capsys):
    """Model-agnostic: a tiny random checkpoint of another family goes through the same lab (its answers
    are noise, so only the plumbing and the bookkeeping are checked)."""
    out = tmp_path / family
    args = ["eval", "leakage", "--model", str(tiny_checkpoint(family)), "--n", "2", "--samples", "2"]
    assert main([*args, "--alphas", "0.1", "--max-new-tokens", "4", "--out", str(out)]) == 0
    result = json.loads((out / "leakage.json").read_text())
    row = result["per_n"]["2"]
    assert row["vanilla"]["accuracy"]["total"] == 2 and row["focus"]["accuracy"]["total"] == 2
    assert result["winoground"]["vanilla"]["image"]["total"] == 2
