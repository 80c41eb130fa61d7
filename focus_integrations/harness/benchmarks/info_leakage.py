"""The reference's leakage measure (``analysis/information_leakage.py``) on Winoground and/or VisMin pairs.

For each pair the captions are shuffled into options (A) and (B), with (C) = "(A) and (B)"; the model's
first-token probabilities of "A", "B", "C" are read (softmax over the vocabulary, renormalised over the three
letters: the engine's ``score()`` log-probabilities) for each image alone ("For the image, ...") and for both
images ("For the first/second image, ..."). Leakage = P(choose C | two images) - P(choose C | one image) > 0:
the other image's caption bleeds into the answer. Reported per mode, so FOCUS's effect on it is measured too.

The reference's ``load_combined_dataset`` raises NameError (``combined`` is never defined, Winoground is loaded
but never added); the intent, Winoground + VisMin pairs shuffled with ``random.Random(seed)``, is what runs here.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from focus_integrations.harness.benchmarks import vismin, winoground
from focus_integrations.harness.benchmarks.common import QUIRK_LLAVA_OV, REFERENCE_MODE_GENERATION, prepare
from focus_integrations.harness.parsing import StrictLetter
from focus_integrations.harness.spec import Benchmark, Layout, Metric, Protocol, Query, RowContext

SYSTEM = winoground.SYSTEM
TEMPLATES = {
    "options": "The (A): {a} or the (B): {b} or the (C): {a} and {b}. Answer with A or B or C.",
    "i0": "For the first image, which description better aligns with the image context?\n{options}",
    "i1": "For the second image, which description better aligns with the image context?\n{options}",
    "single": "For the image, which description better aligns with the image context?\n{options}",
}


def queries(row: Mapping[str, Any], protocol: Protocol, ctx: RowContext) -> list[Query]:
    image_0, image_1 = prepare([row["image_0"], row["image_1"]], protocol)
    caption_0 = row.get("caption_0", row.get("text_0"))
    caption_1 = row.get("caption_1", row.get("text_1"))
    options = [caption_0, caption_1]
    # Seeded per pair (the reference shuffles with the global RNG once per pair, after set_seed(42)).
    random.Random(f"{ctx.protocol}:{ctx.example_id}").shuffle(options)
    t = protocol.templates
    text = t["options"].format(a=options[0], b=options[1])
    gold = {0: "a" if options[0] == caption_0 else "b", 1: "a" if options[0] == caption_1 else "b"}
    out = []
    for view, image in ((0, image_0), (1, image_1)):
        out.append(
            Query(ctx.example_id, f"i{view}_single", [image], t["single"].format(options=text), gold[view])
        )
        out.append(
            Query(
                ctx.example_id,
                f"i{view}_multi",
                [image_0, image_1],
                t[f"i{view}"].format(options=text),
                gold[view],
            )
        )
    for query in out:
        query.system = protocol.system
        query.choices = ("A", "B", "C")
    return out


_SINGLE = ("i0_single", "i1_single")
_MULTI = ("i0_multi", "i1_multi")
PROTOCOL = Protocol(
    "reference",
    TEMPLATES,
    StrictLetter("abc"),
    system=SYSTEM,
    mode_generation=REFERENCE_MODE_GENERATION,  # the reference's generate_logits takes a flat image list
    quirks=(QUIRK_LLAVA_OV,),
)

BENCHMARK = Benchmark(
    name="info-leakage",
    hub_id="facebook/winoground + mair-lab/vismin-bench",
    revision=f"winoground main; vismin {vismin.PINNED_REVISION}",
    licence="the pair sets' own (Winoground gated)",
    gated=True,
    layout=Layout(
        "parquet",
        (*winoground.BENCHMARK.layout.patterns, *vismin.BENCHMARK.layout.patterns),
        "a local Winoground copy (data/test-*.parquet) or VisMin copy (data/dataset_dict.json save_to_disk tree)",
    ),
    protocols={"reference": PROTOCOL},
    queries=queries,
    primary="leakage_delta",
    metrics={
        "acc_single": Metric(_SINGLE),
        "acc_multi": Metric(_MULTI),
        "c_single": Metric(_SINGLE, answer="c"),
        "c_multi": Metric(_MULTI, answer="c"),
        "c_single_i0": Metric(("i0_single",), answer="c"),
        "c_multi_i0": Metric(("i0_multi",), answer="c"),
        "c_single_i1": Metric(("i1_single",), answer="c"),
        "c_multi_i1": Metric(("i1_multi",), answer="c"),
    },
    deltas={"leakage_delta": ("c_multi", "c_single"), "accuracy_drop": ("acc_single", "acc_multi")},
    reading="probs",
    notes=("first-token probabilities of A/B/C, renormalised over the three letters (no generation)",),
)
