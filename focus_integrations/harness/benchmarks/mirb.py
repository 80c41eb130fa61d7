"""MIRB (``VLLMs/MIRB-hf``, MIT): the reference's ``eval/mirb.py`` (``--mode response``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focus_integrations.errors import DatasetLayoutError
from focus_integrations.harness.benchmarks.common import (
    REFERENCE_GENERATION,
    REFERENCE_MODE_GENERATION_NOISED,
    REFERENCE_NOISED_QUIRKS,
    STRICT_GENERATION,
    prepare,
    single_query,
)
from focus_integrations.harness.parsing import (
    ReferenceExact,
    StrictExact,
    normalize_answer,
    reference_gold,
)
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

_WORD = "Answer with a single word."
_OPTION = "Answer with the option symbol."
_TITLE = "Answer with the paper title."
_NUMBER = "Answer with a single number."
_SCENE = "The following images are different views of the same 3D scene. Answer with a single number."
# The reference's get_task_instruction, as data.
INSTRUCTIONS = {
    **dict.fromkeys(
        (
            "analogy",
            "attribute",
            "plot_code",
            "visual_chain",
            "plot_text",
            "sightseeing",
            "image_needles_concat",
        ),
        _WORD,
    ),
    **dict.fromkeys(("codeu", "food", "image_jigsaw", "codeu_text"), _OPTION),
    **dict.fromkeys(("arxiv", "arxiv_text"), _TITLE),
    **dict.fromkeys(("count", "count_concat"), _NUMBER),
    **dict.fromkeys(("3d_scene", "3d_scene_concat"), _SCENE),
}
OPTION_SUBSETS = frozenset(k for k, v in INSTRUCTIONS.items() if v == _OPTION)


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    subset = row["subset"]
    if subset not in INSTRUCTIONS:
        # The reference crashes here (UnboundLocalError): say which subset instead.
        raise DatasetLayoutError(
            f"MIRB subset {subset!r} has no instruction; known: {', '.join(sorted(INSTRUCTIONS))}"
        )
    images = prepare(row["image_list"], protocol)
    breakdown = {"subset": subset, "n_images": str(len(images))}
    # Instruction and question with no space between them, as the reference builds it.
    prompt = INSTRUCTIONS[subset] + row["questions"]
    answer = str(row["answers"])
    if protocol.name == "reference":
        return single_query(ctx, images, prompt, reference_gold(answer), breakdown=breakdown)
    if subset in OPTION_SUBSETS:
        return single_query(ctx, images, prompt, reference_gold(answer), breakdown=breakdown, letters="ABCDE")
    return single_query(
        ctx, images, prompt, normalize_answer(answer), breakdown=breakdown, parser=StrictExact()
    )


BENCHMARK = Benchmark(
    name="mirb",
    hub_id="VLLMs/MIRB-hf",
    revision="main",
    licence="MIT",
    gated=False,
    layout=Layout(
        "parquet",
        ("data/test-*.parquet", "data/*.parquet", "*.parquet"),
        "data/test-*.parquet (the parquet conversion VLLMs/MIRB-hf) with columns image_list, questions, answers, "
        "subset",
        ("image_list", "questions", "answers", "subset"),
    ),
    protocols={
        "reference": Protocol(
            "reference",
            INSTRUCTIONS,
            ReferenceExact(),
            resize=(512, 512),
            generation=REFERENCE_GENERATION,
            mode_generation=REFERENCE_MODE_GENERATION_NOISED,
            quirks=(
                "the WHOLE lowercased answer (',' and '.' removed) must equal the gold: not comparable with "
                "lmms-eval's extraction",
                "images resized to 512x512; the CoT and SoFA modes of the reference are not run",
                *REFERENCE_NOISED_QUIRKS,
            ),
        ),
        "strict": Protocol("strict", INSTRUCTIONS, StrictExact(), generation=STRICT_GENERATION),
    },
    queries=queries,
    primary="accuracy",
    breakdowns=("subset", "n_images"),
    row_id="question_id",
    category_column="subset",
)
