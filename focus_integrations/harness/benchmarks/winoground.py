"""Winoground (``facebook/winoground``, gated; 400 pairs): the reference's A/B protocol (``eval/winoground.py``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks.common import (
    PAIR_METRICS_IMAGE,
    ab_protocols,
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
    protocols=ab_protocols(TEMPLATES, SYSTEM),
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
