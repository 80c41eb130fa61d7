"""Each table builds the reference's exact prompts from rows read in the real layouts; layouts and splits."""

from __future__ import annotations

from pathlib import Path

import pytest

from focus_integrations.errors import DatasetLayoutError, InvalidOptionError
from focus_integrations.harness.benchmarks import get_benchmark
from focus_integrations.harness.benchmarks.vismin import check_pairing
from focus_integrations.harness.layouts import load_local, validation_indices
from focus_integrations.harness.spec import RowContext


def _queries(name: str, path: Path, protocol: str, row: int = 0, **options):
    table = get_benchmark(name)
    data = load_local(table, path, options)
    return table.queries(data.rows[row], table.protocol(protocol), RowContext(str(row), data.root, protocol))


def test_winoground_reference_prompts(bench_data) -> None:
    queries = {q.key: q for q in _queries("winoground", bench_data("winoground"), "reference")}
    system = "You are an evaluator tasked with comparing images and captions to answer the question."
    assert queries["text_0"].prompt == (
        "Does this image depict: (A): a red circle or (B): a yellow circle? Answer with A or B."
    )
    assert queries["image_1"].prompt == (
        "Which image better aligns with the description: a yellow circle? The (A): first or the (B): second "
        "image? Answer with A or B."
    )
    assert all(q.system == system for q in queries.values())
    assert [len(q.images) for q in queries.values()] == [1, 1, 2, 2]
    assert [q.gold for q in queries.values()] == ["a", "b", "a", "b"]
    assert all(im.mode == "RGB" and im.size == (64, 64) for q in queries.values() for im in q.images)


def test_vismin_prompts_both_protocols(bench_data) -> None:
    ref = {q.key: q for q in _queries("vismin", bench_data("vismin"), "reference")}
    strict = {q.key: q for q in _queries("vismin", bench_data("vismin"), "strict")}
    assert ref["text_0"].prompt.startswith("Does this image depict: (A): a red circle or (B): a blue circle?")
    assert (
        strict["text_1"].prompt
        == "Does this image best match: (A) a red circle, or (B) a blue circle? Choices: A, B."
    )
    assert (
        strict["image_0"].prompt
        == 'Which image better aligns with the description: "a red circle"? Choices: First, Second.'
    )
    assert strict["image_0"].choices == ("First", "Second") and strict["image_0"].system is None
    assert ref["text_0"].breakdown == {"category": "object"}


def test_mantis_reference_uses_list_repr_and_strips_image_tokens(bench_data) -> None:
    [query] = _queries("mantis", bench_data("mantis"), "reference")
    assert query.prompt == (
        "  which image shows a red circle?\nAnswer with the option's letter from the given choices directly. "
        "['(A) the first', '(B) the second']"
    )
    assert query.gold == "a" and query.content is None
    [short] = _queries("mantis", bench_data("mantis"), "reference", row=2)
    assert short.prompt.startswith(
        "Given the images, answer the following short answer vqa question:\nQ: What colour"
    )
    assert short.gold == "yellow"  # scored by the letter regex under the reference: never right


def test_mantis_strict_is_official_and_interleaved(bench_data) -> None:
    [query] = _queries("mantis", bench_data("mantis"), "strict", row=1)
    assert query.prompt == (
        "What colour is the shape in <image>?\n (A) red\n (B) green\n (C) blue\n (D) teal\n (E) gray\n"
        "Answer with the option's letter from the given choices directly."
    )
    kinds = [part["type"] for part in query.content]
    assert kinds == ["image", "text", "image", "text"]  # one image without a placeholder goes first
    assert "<image>" not in "".join(p.get("text", "") for p in query.content)
    assert query.parser.parse("E") == "e"


def test_muirbench_reference_reproduces_image_option_bug(bench_data) -> None:
    [normal] = _queries("muirbench", bench_data("muirbench"), "reference", row=0)
    assert normal.prompt == (
        "Question: How many circles are red?  Choices:\n(A) 0\n(B) 1\n(C) 2\n(D) None of the choices provided"
        "Hint: Please provide the correct option letter, such as A, B, C, D, directly."
    )
    assert all(im.size == (512, 512) for im in normal.images)
    [bugged] = _queries("muirbench", bench_data("muirbench"), "reference", row=1)
    question = "Which image shows a blue circle? "
    expected = "\n".join(["Choices:", *(f"({chr(65 + i)}) {c}" for i, c in enumerate(question))])
    assert (
        bugged.prompt
        == f"Question: {question}{expected}Hint: Please provide the correct option letter, such as A, B, C, D, directly."
    )
    [strict] = _queries("muirbench", bench_data("muirbench"), "strict", row=1)
    assert strict.prompt.endswith(
        "(D) <image>\nHint: Please provide the correct option letter, such as A, B, C, D, directly.\nAnswer:"
    )
    assert sum(p["type"] == "image" for p in strict.content) == 5
    assert all(im.size == (64, 64) for im in strict.images)  # the official protocol does not resize


def test_mirb_instruction_glued_to_question(bench_data) -> None:
    [query] = _queries("mirb", bench_data("mirb"), "reference")
    assert query.prompt == "Answer with a single number.How many circles are there?"
    assert all(im.size == (512, 512) for im in query.images)
    [food] = _queries("mirb", bench_data("mirb"), "strict", row=1)
    assert food.gold == "b" and food.choices[:2] == ("A", "B")


def test_vinoground_frames_from_mp4_and_frame_folders(bench_data) -> None:
    root = bench_data("vinoground")
    video_row = {q.key: q for q in _queries("vinoground", root, "reference", row=0)}
    assert [len(q.images) for q in video_row.values()] == [8, 8, 16, 16]
    assert video_row["video_0"].prompt.startswith("The first 8 frames are from Video A and the next 8 frames")
    assert video_row["video_1"].prompt.endswith('"a circle turns blue then red"? Answer with A or B.')
    from focus_integrations.testing.videos import frame_number

    # uniform indices int(i * 12 / 8) of a 12-frame clip
    assert [frame_number(f) for f in video_row["text_0"].images] == [0, 1, 3, 4, 6, 7, 9, 10]
    folder_row = _queries("vinoground", root, "reference", row=1)
    assert len(folder_row[0].images) == 8


def test_mmlongbench_rows_and_reference_fallbacks(bench_data) -> None:
    table = get_benchmark("mmlongbench")
    data = load_local(table, bench_data("mmlongbench"), {"seed": 42})
    tasks = sorted({row["task"] for row in data.rows})
    assert tasks == [
        "ICL/cars196_K8.json",
        "NIAH/vh_single_test_K8_dep6.jsonl",
        "documentQA/slidevqa_K8.jsonl",
        "vrag/infoseek_K8_dep3.jsonl",
    ]
    vh = [i for i, r in enumerate(data.rows) if r["kind"] == "vh"][0]
    ref = table.queries(data.rows[vh], table.protocol("reference"), RowContext("x", data.root, "reference"))[
        0
    ]
    assert ref.images[2].getpixel((0, 0)) == (128, 128, 128)  # the missing image: gray placeholder
    assert "<image>" not in ref.prompt and ref.metric == "acc"
    # no yes/no read: the default-answer cycle 0,1,1,0 by position (row 0 -> 0 = "no" = its gold)
    assert ref.grade(None, "I cannot tell") == 1.0
    with pytest.raises(DatasetLayoutError, match="missing"):
        table.queries(data.rows[vh], table.protocol("strict"), RowContext("x", data.root, "strict"))


def test_wrong_layout_names_the_expected_one(tmp_path: Path, bench_data) -> None:
    with pytest.raises(DatasetLayoutError, match="data/test-\\*.parquet"):
        load_local(get_benchmark("winoground"), tmp_path)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_local(get_benchmark("muirbench"), tmp_path / "nope")
    with pytest.raises(DatasetLayoutError, match="save_to_disk"):
        load_local(get_benchmark("vismin"), bench_data("winoground"))
    with pytest.raises(DatasetLayoutError, match="columns .*image_list"):
        load_local(get_benchmark("muirbench"), bench_data("winoground"))


def test_hub_cache_snapshot_and_revision(tmp_path: Path, bench_data) -> None:
    import shutil

    snapshot = tmp_path / "datasets--facebook--winoground" / "snapshots" / "0123abcd"
    shutil.copytree(bench_data("winoground"), snapshot)
    data = load_local(get_benchmark("winoground"), tmp_path / "datasets--facebook--winoground")
    assert data.revision == "0123abcd" and len(data) == 3


def test_validation_slice_is_the_datasets_shuffle() -> None:
    from datasets import Dataset

    ds = Dataset.from_dict({"i": list(range(57))})
    expected = ds.shuffle(seed=42).select(range(int(0.1 * 57)))["i"]
    assert validation_indices(57, 42) == expected


def test_vismin_pairing_self_check() -> None:
    def rows(pattern: list[tuple[str, str]]) -> list[dict]:
        return [
            {"example": str(i), "query": f"text_{k}", "parsed": p}
            for i, pair in enumerate(pattern)
            for k, p in enumerate(pair)
        ]

    good = check_pairing(rows([("a", "b")] * 30 + [("b", "a")] * 3 + [("a", "a")] * 10))
    assert good["ok"] and good["canonical_rows"] == 30 and good["reversed_rows"] == 3
    shuffled = check_pairing(rows([("a", "b")] * 16 + [("b", "a")] * 14))
    assert not shuffled["ok"] and "shuffled" in shuffled["message"]


def test_cli_parser_imports_no_dataset_or_plot_library() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\nfrom focus_integrations.cli import build_parser\nbuild_parser()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
        ).stdout.split()
    )
    assert not loaded & {"datasets", "pyarrow", "matplotlib", "rouge_score"}


def test_known_bad_vismin_revision_is_flagged(tmp_path: Path, bench_data) -> None:
    import shutil

    from focus_integrations.harness.report import format_report
    from focus_integrations.harness.runner import data_info

    snapshot = tmp_path / "datasets--mair-lab--vismin-bench" / "snapshots" / "b791454deadbeef"
    shutil.copytree(bench_data("vismin"), snapshot)
    table = get_benchmark("vismin")
    info = data_info(table, load_local(table, snapshot.parent.parent))
    assert info["revision_known_bad"] and info["revision_matches_pin"] is False
    summary = {
        "protocol": "strict",
        "benchmark": "vismin",
        "model": "m",
        "validation": {},
        "test": {"rows": 0, "modes": {}},
        "data": info,
    }
    assert "known to carry wrong labels" in format_report([(tmp_path, summary)])


class _RecordingModel:
    """Stands in for FocusDecoder: records the options each call gets, answers a fixed text."""

    def __init__(self, text: str) -> None:
        self.text, self.calls = text, []

    def generate(self, **kwargs):
        from types import SimpleNamespace

        self.calls.append(kwargs)
        return SimpleNamespace(text=self.text, usage=SimpleNamespace(output_tokens=3))

    def score(self, **kwargs):
        self.calls.append(kwargs)
        return [-2.0, -0.5, -3.0][: len(kwargs["candidates"])]


def test_protocol_settings_reach_the_engine(bench_data) -> None:
    from focus_integrations.harness.answer import ask

    table = get_benchmark("winoground")
    [_, _, image_query, _] = _queries("winoground", bench_data("winoground"), "reference")
    model = _RecordingModel("<think>maybe A</think>\n\nB")
    for mode in ("vanilla", "focus"):
        record = ask(
            model,
            table,
            table.protocol("reference"),
            "generate",
            image_query,
            mode=mode,
            alpha=0.3,
            seed=42,
            options={},
        )
        assert record["parsed"] == "b" and record["raw"].startswith("<think>")  # reasoning stripped first
    vanilla, focus = model.calls
    for call in (vanilla, focus):
        assert (
            call["do_sample"],
            call["temperature"],
            call["max_new_tokens"],
            call["fresh_noise"],
            call["noise_severity"],
        ) == (True, 0.2, 512, True, 3)
        assert call["system"].startswith("You are an evaluator") and len(call["images"]) == 2
    assert vanilla["seed"] == focus["seed"]  # the same noise and samples in every mode
    assert "alpha" not in vanilla and focus["alpha"] == 0.3 and focus["mode"] == "focus"
    # The reference baseline's flat image list (LLaVA-OneVision tiles every image); FOCUS rows stay nested.
    assert vanilla["multi_image_anyres"] is True and "multi_image_anyres" not in focus
    strict = _RecordingModel("B")
    ask(
        strict,
        table,
        table.protocol("strict"),
        "generate",
        image_query,
        mode="focus",
        alpha=0.1,
        seed=42,
        options={"max_new_tokens": 7},
    )
    assert strict.calls[0]["do_sample"] is False and strict.calls[0]["max_new_tokens"] == 7
    assert "multi_image_anyres" not in strict.calls[0]  # strict feeds every mode the same way
    scorer = _RecordingModel("")
    record = ask(
        scorer,
        table,
        table.protocol("strict"),
        "score",
        image_query,
        mode="focus",
        alpha=0.1,
        seed=42,
        options={},
    )
    assert (
        scorer.calls[0]["candidates"] == ["A", "B"] and record["parsed"] == "b" and record["correct"] == 0.0
    )


def test_leakage_measure_scores_the_baseline_on_the_flat_image_list(bench_data) -> None:
    from focus_integrations.harness.answer import ask

    table = get_benchmark("info-leakage")
    multi = next(
        q for q in _queries("info-leakage", bench_data("winoground"), "reference") if "multi" in q.key
    )
    model = _RecordingModel("")
    for mode in ("vanilla", "focus"):
        ask(
            model,
            table,
            table.protocol("reference"),
            "probs",
            multi,
            mode=mode,
            alpha=0.3,
            seed=42,
            options={},
        )
    vanilla, focus = model.calls
    assert vanilla["multi_image_anyres"] is True and "multi_image_anyres" not in focus
    assert vanilla["candidates"] == ["A", "B", "C"] and len(vanilla["images"]) == 2


def test_the_runners_noise_and_frame_flags_reach_every_call(bench_data, tmp_path: Path) -> None:
    """The reference runners' --scale, --severity and --num_frames: --noise-scale, --noise-severity, --num-frames."""
    from focus_integrations.harness.runner import RunConfig, Runner

    table = get_benchmark("vinoground")
    config = RunConfig(
        "vinoground",
        str(bench_data("vinoground")),
        "recording",
        modes=("focus",),
        alpha=0.1,
        val="none",
        limit=1,
        noise_scale=0.5,
        noise_severity=5,
        num_frames=2,
    )
    model = _RecordingModel("A")
    summary = Runner(table, config, model, tmp_path / "run").run()
    assert len(model.calls) == 4
    assert sorted(len(call["images"]) for call in model.calls) == [2, 2, 4, 4]  # 2 frames per video
    assert all((c["noise_scale"], c["noise_severity"]) == (0.5, 5) for c in model.calls)
    assert summary["overrides"] == {"noise_scale": 0.5, "noise_severity": 5, "num_frames": 2}
    with pytest.raises(InvalidOptionError, match="noise-scale"):
        RunConfig("vinoground", "x", "m", alpha=0.1, val="none", noise_scale=1.5).validate(table)
    assert summary["generation_by_mode"] == {
        "vanilla": {"multi_image_anyres": True},
        "focus": {"focus_one_image": True},  # Vinoground's runner adds noise rows to every query
    }
