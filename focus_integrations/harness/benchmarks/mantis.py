"""Mantis-Eval (``TIGER-Lab/Mantis-Eval``, config ``mantis_eval``, apache-2.0; 217 rows): the reference's
``eval/mantis.py`` and the official Mantis prompt (``TIGER-AI-Lab/Mantis``, ``mantis/benchmark/eval.py``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks.common import (
    ABCD_UNBOUNDED,
    REFERENCE_COMMON_QUIRKS,
    REFERENCE_GENERATION,
    STRICT_GENERATION,
    prepare,
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


def interleave(question: str, images: list[Any]) -> list[dict[str, Any]]:
    """User content with images at each ``<image>`` of the text; images without a placeholder go first."""
    pieces = question.split("<image>")
    placed = min(len(pieces) - 1, len(images))
    extra = images[: len(images) - placed]
    content: list[dict[str, Any]] = [{"type": "image", "image": im} for im in extra]
    slots = images[len(extra) :]
    for i, piece in enumerate(pieces):
        if piece:
            content.append({"type": "text", "text": piece})
        if i < len(slots):
            content.append({"type": "image", "image": slots[i]})
    return content


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
        return [
            Query(ctx.example_id, "q", images, prompt, reference_gold(row["answer"]), breakdown=breakdown)
        ]
    # strict: the official prompt, images at their <image> placeholders
    if kind == "multi-choice":
        text = protocol.templates[kind].format(question=question, options=official_options(options))
        letters = LETTERS[: len(options)]
        return [
            Query(
                ctx.example_id,
                "q",
                images,
                text,
                reference_gold(row["answer"]),
                choices=tuple(letters),
                breakdown=breakdown,
                content=interleave(text, images),
                parser=StrictLetter(letters.lower()),
            )
        ]
    text = protocol.templates[kind].format(question=question)
    return [
        Query(
            ctx.example_id,
            "q",
            images,
            text,
            normalize_answer(row["answer"]),
            breakdown=breakdown,
            content=interleave(text, images),
            parser=StrictExact(),
        )
    ]


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
            quirks=(
                "the option-letter regex \\(?([abcd])\\)? is not word-bounded (the 'a' of 'based' counts) and "
                "cannot read E; an unreadable answer reads as 'abcd' (always wrong)",
                "options are written as the Python list repr after the instruction",
                "short-answer questions are scored by that letter match too (almost always wrong)",
                "<image> placeholders are removed; all images go first",
                *REFERENCE_COMMON_QUIRKS,
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
