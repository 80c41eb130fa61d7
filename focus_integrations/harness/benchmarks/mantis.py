"""Mantis-Eval (``TIGER-Lab/Mantis-Eval``, config ``mantis_eval``, apache-2.0; 217 rows): the reference's
``eval/mantis.py`` and the official Mantis prompt (``TIGER-AI-Lab/Mantis``, ``mantis/benchmark/eval.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks.common import (
    ABCD_UNBOUNDED,
    REFERENCE_GENERATION,
    REFERENCE_MODE_GENERATION_NOISED,
    REFERENCE_NOISED_QUIRKS,
    STRICT_GENERATION,
    interleave,
    prepare,
    single_query,
)
from focus_integrations.harness.parsing import (
    MANTIS_CUES,
    ReferenceLetter,
    StrictExact,
    StrictLetter,
    normalize_answer,
    reference_gold,
)
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

REFERENCE_TEMPLATES = {
    "multi-choice": "{question}\nAnswer with the option's letter from the given choices directly. {options}",
    "short-answer": "Given the images, answer the following short answer vqa question:\nQ: {question}\n"
    'You can first give your analysis, and then give your final answer as "Final Answer:"',
}
OFFICIAL_TEMPLATES = {
    "multi-choice": "{question}{options}\nAnswer with the option's letter from the given choices directly.",
    "short-answer": REFERENCE_TEMPLATES["short-answer"],
}
LETTERS = "ABCDEFGHIJ"


def official_options(options: list[str]) -> str:
    """Official Mantis: ``"\\n (A) option"`` per option unless it is already lettered (``A)``, ``A:``, ``A.``)."""
    parts = []
    for letter, option in zip(LETTERS, options):
        lettered = re.match(rf"^\s*\(?{letter}[).:]", option)
        parts.append(f"\n {option}" if lettered else f"\n ({letter}) {option}")
    return "".join(parts)


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    images = prepare(row["images"], protocol)
    kind = row["question_type"]
    options = list(row.get("options") or [])
    breakdown = {"n_images": str(len(images)), "category": str(row.get("category"))}
    question = row["question"]
    if protocol.name == "reference":
        text = question.replace("<image>", "")
        # The options are written as the Python list repr, e.g. "['(A) red', '(B) blue']".
        prompt = protocol.templates[kind].format(question=text, options=str(options))
        return single_query(ctx, images, prompt, reference_gold(row["answer"]), breakdown=breakdown)
    # strict: the official prompt, images at their <image> placeholders
    if kind == "multi-choice":
        text = protocol.templates[kind].format(question=question, options=official_options(options))
        letters = LETTERS[: len(options)]
        gold = reference_gold(row["answer"])
        return single_query(
            ctx, images, text, gold, breakdown=breakdown, letters=letters, content=interleave(text, images)
        )
    text = protocol.templates[kind].format(question=question)
    gold = normalize_answer(row["answer"])
    content = interleave(text, images)
    return single_query(ctx, images, text, gold, breakdown=breakdown, content=content, parser=StrictExact())


BENCHMARK = Benchmark(
    name="mantis",
    hub_id="TIGER-Lab/Mantis-Eval",
    revision="main (config mantis_eval)",
    licence="apache-2.0",
    gated=False,
    layout=Layout(
        "parquet",
        ("mantis_eval/test-*.parquet", "human_eval/test-*.parquet", "data/test-*.parquet"),
        "mantis_eval/test-*.parquet with columns id, question_type, question, images, options, answer, category, "
        "data_source",
        ("question_type", "question", "images", "options", "answer"),
    ),
    protocols={
        "reference": Protocol(
            "reference",
            REFERENCE_TEMPLATES,
            ReferenceLetter(ABCD_UNBOUNDED, "abcd", MANTIS_CUES),
            generation=REFERENCE_GENERATION,
            mode_generation=REFERENCE_MODE_GENERATION_NOISED,
            quirks=(
                "the option-letter regex \\(?([abcd])\\)? is not word-bounded (the 'a' of 'based' counts) and "
                "cannot read E; an unreadable answer reads as 'abcd' (always wrong)",
                "options are written as the Python list repr after the instruction",
                "short-answer questions are scored by that letter match too (almost always wrong)",
                "<image> placeholders are removed; all images go first",
                *REFERENCE_NOISED_QUIRKS,
            ),
        ),
        "strict": Protocol(
            "strict",
            OFFICIAL_TEMPLATES,
            StrictLetter(),
            generation=STRICT_GENERATION | {"max_new_tokens": 128},
            image_placement="interleaved",
        ),
    },
    queries=queries,
    primary="accuracy",
    breakdowns=("n_images", "category"),
    row_id="id",
    category_column="category",
)
