"""VisMin (``mair-lab/vismin-bench``, cc-by-4.0; 2,084 rows): the reference's ``eval/vismin.py`` and the
official MLLM prompts of ``rabiulcste/vismin``; with a self-check of the label pairing.

The pairing history matters: the Nov-2024 release shuffled about half of the image/caption pairs (hidden in
the solution files); the Jan-2025 fix (GitHub ``680a3ee``) is canonical, image_k <-> text_k, which every
protocol here assumes. The self-check reads it from the model's own answers: under canonical pairing a
capable model rarely answers BOTH text queries of a row the reversed way; with shuffled labels about half of
the rows it reads confidently come out reversed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks.common import (
    AB_WORD,
    PAIR_METRICS_IMAGE,
    REFERENCE_COMMON_QUIRKS,
    REFERENCE_GENERATION,
    REFERENCE_MODE_GENERATION,
    STRICT_GENERATION,
    pair_queries,
    prepare,
)
from focus_integrations.harness.benchmarks.winoground import SYSTEM
from focus_integrations.harness.parsing import ReferenceLetter, StrictLetter
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

REFERENCE_TEMPLATES = {
    "text": "Does this image depict: (A): {caption_0} or (B): {caption_1}? Answer with A or B.",
    "image": "Which image better aligns with the description: {caption}? The (A): first or the (B): second image? "
    "Answer with A or B.",
}
# rabiulcste/vismin TaskPrompts (official MLLM protocol).
OFFICIAL_TEMPLATES = {
    "text": "Does this image best match: (A) {caption_0}, or (B) {caption_1}? Choices: A, B.",
    "image": 'Which image better aligns with the description: "{caption}"? Choices: First, Second.',
    "image_choices": "First Second",
}
CATEGORIES = ("object", "attribute", "relation", "counting")
# The HF revision after the re-pairing fix. [UNCONFIRMED which HF commit first carries the canonical order:
# b791454 (2024-11-21) is the shuffled release's; 2f379d5 is the later "fixes" commit.]
PINNED_REVISION = "2f379d5"
SHUFFLED_REVISIONS = ("b791454",)
REVERSED_SHARE_LIMIT = 0.25


def _sorted_keys(row: Mapping[str, Any], prefix: str) -> list[str]:
    keys = [k for k in row if re.fullmatch(rf"{prefix}_\d+", k)]
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    # The reference reads every image_<k> / text_<k> column, sorted numerically (there are two).
    images = prepare([row[k] for k in _sorted_keys(row, "image")], protocol)
    captions = [row[k] for k in _sorted_keys(row, "text")]
    return pair_queries(
        ctx,
        protocol,
        [images[0]],
        [images[1]],
        (captions[0], captions[1]),
        breakdown={"category": str(row.get("category"))},
    )


def check_pairing(records: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Rows whose two text queries were both answered, canonical (a, b) vs reversed (b, a)."""
    by_row: dict[str, dict[str, Any]] = {}
    for record in records:
        by_row.setdefault(record["example"], {})[record["query"]] = record.get("parsed")
    canonical = sum(1 for r in by_row.values() if (r.get("text_0"), r.get("text_1")) == ("a", "b"))
    reversed_ = sum(1 for r in by_row.values() if (r.get("text_0"), r.get("text_1")) == ("b", "a"))
    decided = canonical + reversed_
    share = reversed_ / decided if decided else 0.0
    ok = decided < 20 or share <= REVERSED_SHARE_LIMIT
    message = (
        f"label pairing: {canonical} rows read canonical, {reversed_} reversed ({share:.0%} of decided rows)"
        + (
            ""
            if ok
            else f"; above {REVERSED_SHARE_LIMIT:.0%}: the labels look shuffled (the Nov-2024 release?); "
            f"use revision {PINNED_REVISION} or later"
        )
        + (" (too few decided rows to judge)" if decided < 20 else "")
    )
    return {
        "ok": ok,
        "canonical_rows": canonical,
        "reversed_rows": reversed_,
        "reversed_share": share,
        "message": message,
    }


BENCHMARK = Benchmark(
    name="vismin",
    hub_id="mair-lab/vismin-bench",
    revision=PINNED_REVISION,
    licence="cc-by-4.0",
    gated=False,
    layout=Layout(
        "arrow",
        ("data/dataset_dict.json", "dataset_dict.json", "data/test/state.json", "test/state.json"),
        "a save_to_disk tree: data/dataset_dict.json + data/test/data-*.arrow, dataset_info.json, state.json; "
        "columns id, image_0, text_0, image_1, text_1, text_question_0/1, image_question_0/1, category",
        ("image_0", "image_1", "text_0", "text_1", "category"),
    ),
    protocols={
        "reference": Protocol(
            "reference",
            REFERENCE_TEMPLATES,
            ReferenceLetter(AB_WORD, "ab"),
            system=SYSTEM,
            generation=REFERENCE_GENERATION,
            mode_generation=REFERENCE_MODE_GENERATION,
            quirks=(
                "an unreadable answer reads as 'ab' (the reference fallback; always wrong)",
                "the reference evaluates one --category per run (default object); here every category is run "
                "and reported per category (--category restricts)",
                *REFERENCE_COMMON_QUIRKS,
            ),
        ),
        "strict": Protocol(
            "strict",
            OFFICIAL_TEMPLATES,
            StrictLetter("ab", words=(("first", "a"), ("second", "b"))),
            generation=STRICT_GENERATION,
        ),
    },
    queries=queries,
    primary="group",
    metrics=PAIR_METRICS_IMAGE,
    breakdowns=("category",),
    row_id="id",
    category_column="category",
    check=check_pairing,
    bad_revisions=SHUFFLED_REVISIONS,
    notes=(
        "labels must be the canonical (Jan-2025) pairing; see the pairing self-check in the summary",
        "text queries show one image, so FOCUS is inactive on them",
    ),
)
