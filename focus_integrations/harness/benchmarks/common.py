"""Pieces several benchmark tables share: generation settings, image preparation, pair scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from focus_integrations.harness.parsing import ReferenceLetter, StrictLetter
from focus_integrations.harness.spec import Metric, Protocol, Query, RowContext

# The reference runners: do_sample=True, temperature=0.2, max_new_tokens=512 (seeded per question by the
# harness), fresh noise for every row and image (the engine's default shares one draw per slot across rows),
# NoiseProcessor(severity=3) (shot / impulse / speckle). Everything else comes from the checkpoint's
# generation_config through the engine, as model.generate() gives it to the authors.
REFERENCE_GENERATION = {
    "do_sample": True,
    "temperature": 0.2,
    "max_new_tokens": 512,
    "fresh_noise": True,
    "noise_severity": 3,
}
# The reference's baseline calls processor(images=[a, b], text=prompt): a FLAT list, so LLaVA-OneVision tiles
# every image (anyres); its FOCUS rows pass nested lists (one base-resolution view per image, the engine's
# default). Families whose processors treat both alike are unaffected (families.FamilySpec.flat_list_anyres).
REFERENCE_MODE_GENERATION = {"vanilla": {"multi_image_anyres": True}}
# Runners that add noise rows to every query (MIRB, Mantis, MuirBench, MMLongBench, Vinoground) run FOCUS on
# one-image rows too: rows [noise] and [clean] are a batch of 2, and their patched sampler contrasts any batch
# larger than 1. Winoground's and VisMin's text queries pass one image without noise: plain decoding.
REFERENCE_MODE_GENERATION_NOISED = REFERENCE_MODE_GENERATION | {"focus": {"focus_one_image": True}}
# Strict: greedy, short answers (lmms-eval's MuirBench/MIRB use 16/64 greedy tokens).
STRICT_GENERATION = {"do_sample": False, "max_new_tokens": 64}

AB_WORD = r"\b([ab])\b"
ABCD_UNBOUNDED = r"\(?([abcd])\)?"

PAIR_METRICS_IMAGE = {
    "text": Metric(("text_0", "text_1"), "all"),
    "image": Metric(("image_0", "image_1"), "all"),
    "group": Metric(("text_0", "text_1", "image_0", "image_1"), "all"),
}

STRICT_AB = StrictLetter("ab")
REFERENCE_AB_FALLBACK_A = ReferenceLetter(AB_WORD, "a")

QUIRK_FALLBACK_A = "an answer without a standalone a/b reads as 'a' (the reference fallback): a free hit on every A-gold query"
QUIRK_SAMPLING = (
    "sampling at temperature 0.2 (512 tokens); FOCUS sums N rows, so its effective temperature is about 0.2/N"
)
QUIRK_SEED = (
    "seeded per question (seed, example id, query) instead of once per process, so shards and resumed runs "
    "draw the same noise and samples as one uninterrupted run"
)
QUIRK_LLAVA_OV = (
    "LLaVA-OneVision: vanilla tiles every image of a multi-image query (anyres, the reference baseline's flat "
    "image list) while FOCUS rows get one base-resolution view per image (its nested lists), as in the "
    "reference: the two modes see different resolutions (strict feeds both the same way)"
)
REFERENCE_COMMON_QUIRKS = (QUIRK_SAMPLING, QUIRK_SEED, QUIRK_LLAVA_OV)
QUIRK_ONE_IMAGE = (
    "FOCUS runs on one-image rows too (rows [noise] and [clean]: z_1 - alpha * z_0), as the runner adds noise rows "
    "to every query and its sampler contrasts any batch of two or more (strict: one-image rows decode plainly)"
)
# The runners that add noise rows to every query (REFERENCE_MODE_GENERATION_NOISED).
REFERENCE_NOISED_QUIRKS = (*REFERENCE_COMMON_QUIRKS, QUIRK_ONE_IMAGE)


def rgb(image: Any, resize: tuple[int, int] | None = None) -> Image.Image:
    """A dataset image as RGB (the runners' ``.convert("RGB")``), resized where the protocol resizes."""
    if not isinstance(image, Image.Image):
        from focus_integrations.images import load_image

        image = load_image(image)
    image = image.convert("RGB")
    return image.resize(resize) if resize else image


def prepare(images: Sequence[Any], protocol: Protocol) -> list[Image.Image]:
    return [rgb(image, protocol.resize) for image in images]


def single_query(
    ctx: RowContext,
    images: list[Image.Image],
    prompt: str,
    gold: str,
    *,
    breakdown: dict[str, str],
    letters: str = "",
    content: list[dict[str, Any]] | None = None,
    parser: Any = None,
) -> list[Query]:
    """The one query of a one-question row. ``letters`` (e.g. ``"ABCD"``) makes it multiple choice: the
    score reading compares those letters and, unless ``parser`` is given, the strict letter parser reads them."""
    if letters and parser is None:
        parser = StrictLetter(letters.lower())
    return [
        Query(
            ctx.example_id,
            "q",
            images,
            prompt,
            gold,
            choices=tuple(letters.upper()),
            breakdown=breakdown,
            content=content,
            parser=parser,
        )
    ]


def interleave(text: str, images: list[Any]) -> list[dict[str, Any]]:
    """User content with images at each ``<image>`` of the text; images without a placeholder go first."""
    pieces = text.split("<image>")
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


def ab_protocols(
    templates: dict[str, str],
    system: str,
    mode_generation: dict[str, dict[str, Any]] = REFERENCE_MODE_GENERATION,
) -> dict[str, Protocol]:
    """The A/B pair protocols (Winoground, Vinoground): the authors' prompt under both; strict changes only
    the decoding and the reading (these benchmarks have no official LVLM prompt)."""
    return {
        "reference": Protocol(
            "reference",
            templates,
            REFERENCE_AB_FALLBACK_A,
            system=system,
            generation=REFERENCE_GENERATION,
            mode_generation=mode_generation,
            quirks=(
                QUIRK_FALLBACK_A,
                *(
                    REFERENCE_NOISED_QUIRKS
                    if mode_generation.get("focus", {}).get("focus_one_image")
                    else REFERENCE_COMMON_QUIRKS
                ),
            ),
        ),
        "strict": Protocol("strict", templates, STRICT_AB, system=system, generation=STRICT_GENERATION),
    }


def pair_queries(
    ctx: RowContext,
    protocol: Protocol,
    first: list[Image.Image],
    second: list[Image.Image],
    captions: tuple[str, str],
    *,
    image_key: str = "image",
    breakdown: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Query]:
    """Winoground-style queries: ``text_k`` = the captions asked of item k alone (gold a, b); ``image_k`` =
    both items, which one shows caption k (gold a, b). ``first``/``second`` are each item's images (one image,
    or a video's frames)."""
    caption_0, caption_1 = captions
    templates = protocol.templates
    fields = {"caption_0": caption_0, "caption_1": caption_1, "n": len(first)} | (extra or {})
    text_prompt = templates["text"].format(**fields)
    image_choices = tuple(protocol.templates.get("image_choices", "A B").split())
    queries = []
    for k, (images, gold) in enumerate(((first, "a"), (second, "b"))):
        queries.append(
            Query(
                ctx.example_id,
                f"text_{k}",
                images,
                text_prompt,
                gold,
                system=protocol.system,
                choices=("A", "B"),
                breakdown=dict(breakdown or {}),
            )
        )
    for k, (caption, gold) in enumerate(((caption_0, "a"), (caption_1, "b"))):
        queries.append(
            Query(
                ctx.example_id,
                f"{image_key}_{k}",
                first + second,
                templates["image"].format(**(fields | {"caption": caption})),
                gold,
                system=protocol.system,
                choices=image_choices,
                breakdown=dict(breakdown or {}),
            )
        )
    return queries
