"""Winoground (``facebook/winoground``, gated; 400 pairs): the reference's A/B protocol (``eval/winoground.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks.common import (
    PAIR_METRICS_IMAGE,
    QUIRK_FALLBACK_A,
    REFERENCE_AB_FALLBACK_A,
    REFERENCE_COMMON_QUIRKS,
    REFERENCE_GENERATION,
    STRICT_AB,
    STRICT_GENERATION,
    pair_queries,
    prepare,
)
from focus_integrations.harness.spec import Benchmark, Layout, Protocol, Query, RowContext

SYSTEM = "You are an evaluator tasked with comparing images and captions to answer the question."
TEMPLATES = {
    "text": "Does this image depict: (A): {caption_0} or (B): {caption_1}? Answer with A or B.",
    "image": "Which image better aligns with the description: {caption}? The (A): first or the (B): second image? "
    "Answer with A or B.",
}


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    image_0, image_1 = prepare([row["image_0"], row["image_1"]], protocol)
    tag = {"tag": str(row["collapsed_tag"])} if row.get("collapsed_tag") is not None else {}
    return pair_queries(
        ctx, protocol, [image_0], [image_1], (row["caption_0"], row["caption_1"]), breakdown=tag
    )


BENCHMARK = Benchmark(
    name="winoground",
    hub_id="facebook/winoground",
    revision="main (a parquet revision: data/test-*.parquet; the old loading-script revisions do not load)",
    licence="Winoground licence (gated on the hub; research use only; images by Getty Images): never bundled",
    gated=True,
    layout=Layout(
        "parquet",
        ("data/test-*.parquet",),
        "data/test-*.parquet with columns id, image_0, image_1, caption_0, caption_1, tag, secondary_tag, "
        "num_main_preds, collapsed_tag (huggingface-cli download facebook/winoground --repo-type dataset "
        "--local-dir DIR, after accepting the conditions)",
        ("id", "image_0", "image_1", "caption_0", "caption_1"),
    ),
    protocols={
        "reference": Protocol(
            "reference",
            TEMPLATES,
            REFERENCE_AB_FALLBACK_A,
            system=SYSTEM,
            generation=REFERENCE_GENERATION,
            quirks=(QUIRK_FALLBACK_A, *REFERENCE_COMMON_QUIRKS),
        ),
        # Winoground has no official LVLM prompt (its own metric compares similarity scores): strict keeps
        # the authors' prompt and changes the decoding and the reading.
        "strict": Protocol("strict", TEMPLATES, STRICT_AB, system=SYSTEM, generation=STRICT_GENERATION),
    },
    queries=queries,
    primary="group",
    metrics=PAIR_METRICS_IMAGE,
    breakdowns=("tag",),
    row_id="id",
    notes=(
        "text queries show one image, so FOCUS is inactive on them (text scores of vanilla and FOCUS differ only "
        "by sampling)",
    ),
)
