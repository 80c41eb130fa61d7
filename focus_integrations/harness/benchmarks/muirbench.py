"""MuirBench (``MUIRBENCH/MUIRBENCH``, cc-by-4.0; 2,600 questions, 2-9 images, 4-5 options): the reference's
``eval/muirbench.py`` and the official prompt (``muirbench/MuirBench``, ``eval/utils/preprocess.py``)."""

from __future__ import annotations

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
from focus_integrations.harness.benchmarks.mantis import LETTERS
from focus_integrations.harness.parsing import ReferenceLetter, StrictLetter, reference_gold
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

HINT = "Hint: Please provide the correct option letter, such as A, B, C, D, directly."
TEMPLATES = {"question": "Question: {question}", "hint": HINT, "answer": "Answer:"}


def reference_choices(question: str, options: list[str]) -> list[str] | str:
    """The reference's options. Its ``if "<image>" in choices`` tests LIST membership: when an option is
    exactly ``"<image>"`` the options become the question string, enumerated character by character (bug
    reproduced)."""
    if "<image>" in options:
        return question.replace("<image>", "")
    return options


def choices_text(choices: list[str] | str) -> str:
    return "\n".join(["Choices:", *(f"({chr(ord('A') + i)}) {c}" for i, c in enumerate(choices))])


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    images = prepare(row["image_list"], protocol)
    options = list(row["options"])
    breakdown = {"n_images": str(len(images)), "task": str(row.get("task"))}
    gold = reference_gold(row["answer"])
    t = protocol.templates
    if protocol.name == "reference":
        question = row["question"].replace("<image>", "")
        # Three parts glued with no separator and no "Answer:" (the official joins with "\n" and adds it).
        prompt = (
            t["question"].format(question=question)
            + choices_text(reference_choices(question, options))
            + t["hint"]
        )
        return single_query(ctx, images, prompt, gold, breakdown=breakdown)
    # strict: the official prompt; images at each <image> of the question and options (VLMEvalKit's
    # split_MUIR), the rest first.
    prompt = "\n".join(
        [t["question"].format(question=row["question"]), choices_text(options), t["hint"], t["answer"]]
    )
    letters = LETTERS[: len(options)]
    return single_query(
        ctx, images, prompt, gold, breakdown=breakdown, letters=letters, content=interleave(prompt, images)
    )


BENCHMARK = Benchmark(
    name="muirbench",
    hub_id="MUIRBENCH/MUIRBENCH",
    revision="main",
    licence="cc-by-4.0",
    gated=False,
    layout=Layout(
        "parquet",
        ("data/test-*.parquet",),
        "data/test-*.parquet with columns idx, task, image_relation, image_type, question, options, answer, "
        "image_list, counterpart_idx",
        ("question", "options", "answer", "image_list"),
    ),
    protocols={
        "reference": Protocol(
            "reference",
            TEMPLATES,
            ReferenceLetter(ABCD_UNBOUNDED, "abcd"),
            resize=(512, 512),
            generation=REFERENCE_GENERATION,
            mode_generation=REFERENCE_MODE_GENERATION_NOISED,
            quirks=(
                "when an option is exactly '<image>', the options become the question's characters "
                "(list-membership bug)",
                "question, choices and hint glued with no separator and no 'Answer:'",
                "the option-letter regex \\(?([abcd])\\)? is not word-bounded and cannot read E (5-option "
                "items lose that option); an unreadable answer reads as 'abcd' (always wrong)",
                "images resized to 512x512 before noise; <image> removed; all images first",
                *REFERENCE_NOISED_QUIRKS,
            ),
        ),
        "strict": Protocol(
            "strict",
            TEMPLATES,
            StrictLetter(),
            generation=STRICT_GENERATION,
            image_placement="interleaved",
        ),
    },
    queries=queries,
    primary="accuracy",
    breakdowns=("n_images", "task"),
    row_id="idx",
    category_column="task",
)
