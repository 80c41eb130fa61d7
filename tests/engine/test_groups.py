"""Image groups and the N-calibrated rule, against the slow reference, for every family."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from PIL import Image

from focus_integrations import FocusDecoder
from focus_integrations.errors import InvalidOptionError
from focus_integrations.logits import build_rule, calibrated_focus_combine, focus_combine
from focus_integrations.options import DecodingOptions
from focus_integrations.testing.tiny_models import FAMILIES, tiny_checkpoint

from .reference import reference_focus_greedy, reference_focus_logprob

PROMPT = "Which product is red?"


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(40, 30), (33, 47), (50, 50), (29, 41)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes[:n]]


@pytest.fixture(scope="module", params=FAMILIES)
def decoder(request) -> FocusDecoder:
    return FocusDecoder.from_pretrained(tiny_checkpoint(request.param), dtype="float32")


def _grouped_messages(images: list[Image.Image], keys: list[str]) -> list[dict]:
    content = [{"type": "image", "image": img, "group": key} for img, key in zip(images, keys)]
    return [{"role": "user", "content": [*content, {"type": "text", "text": PROMPT}]}]


def test_groups_equal_the_slow_reference(decoder: FocusDecoder) -> None:
    """Nested lists and group keys on content items: row k keeps all of group k clean; N = groups."""
    a1, b1, a2 = _images(3, seed=4)
    # Group "a" is split around "b" in the prompt: groups follow keys, not adjacency.
    messages = _grouped_messages([a1, b1, a2], ["a", "b", "a"])
    expected, _ = reference_focus_greedy(
        decoder.model,
        decoder.processor,
        [a1, b1, a2],
        PROMPT,
        alpha=0.4,
        seed=3,
        max_new_tokens=4,
        banned=decoder.banned_token_ids,
        groups=[0, 1, 0],
    )
    out = decoder.generate(messages=messages, alpha=0.4, seed=3, max_new_tokens=4)
    assert out.token_ids == expected[: len(out.token_ids)]
    assert (out.settings["n_images"], out.settings["n_groups"], out.settings["n_rows"]) == (3, 2, 3)
    unshared = decoder.generate(
        messages=messages, alpha=0.4, seed=3, max_new_tokens=4, shared_vision=False, share_prefix=False
    )
    assert unshared.token_ids == out.token_ids

    nested = [[a1, a2], b1]  # the shorthand: a list is one group (prompt order a1, a2, b1)
    ids = decoder.tokenizer("B a", add_special_tokens=False)["input_ids"]
    got = decoder.score_tokens(images=nested, prompt=PROMPT, candidates=["B a"], alpha=0.4, seed=5)[0]
    ref = reference_focus_logprob(
        decoder.model,
        decoder.processor,
        [a1, a2, b1],
        PROMPT,
        ids,
        alpha=0.4,
        seed=5,
        banned=decoder.banned_token_ids,
        groups=[0, 0, 1],
    )
    assert sum(got) == pytest.approx(ref, abs=1e-4)


def test_one_group_per_image_equals_ungrouped(decoder: FocusDecoder) -> None:
    images = _images(3, seed=1)
    kwargs = dict(prompt=PROMPT, seed=2, max_new_tokens=4)
    plain = decoder.generate(images=images, **kwargs)
    assert decoder.generate(images=[[img] for img in images], **kwargs).token_ids == plain.token_ids
    keyed = _grouped_messages(images, ["x", "y", "z"])
    assert decoder.generate(messages=keyed, seed=2, max_new_tokens=4).token_ids == plain.token_ids
    one_group = decoder.generate(images=[images], **kwargs)  # one group: nothing to separate
    vanilla = decoder.generate(images=images, mode="vanilla", **kwargs)
    assert one_group.token_ids == vanilla.token_ids and one_group.settings["rule"] == "vanilla"


def test_groups_share_vision_and_prefix(decoder: FocusDecoder) -> None:
    """One vision pass; row k starts from row 0's cache at the first image of group k."""
    if not decoder.supports_shared_vision:
        pytest.skip("this transformers version has no mm_encoder_outputs")
    a1, a2, b1 = _images(3, seed=6)
    inner = getattr(decoder.model, "model", decoder.model)
    original = inner.get_image_features
    vision_calls: list[int] = []

    @functools.wraps(original)
    def counting(*args, **kwargs):
        vision_calls.append(1)
        return original(*args, **kwargs)

    chunks: list[int] = []

    def record(module, args, kwargs_):
        ids = kwargs_.get("input_ids")
        if ids is not None and ids.shape[1] > 1:
            chunks.append(int(ids.shape[1]))

    inner.get_image_features = counting
    handle = decoder.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        decoder.generate(images=[[a1, a2], [b1]], prompt=PROMPT, seed=0, max_new_tokens=1)
        grouped, grouped_calls = sorted(chunks), len(vision_calls)
        chunks.clear()
        decoder.generate(images=[a1, a2, b1], prompt=PROMPT, seed=0, max_new_tokens=1)
        ungrouped = sorted(chunks)
    finally:
        handle.remove()
        del inner.get_image_features
    assert grouped_calls == 1
    if decoder.model.config.model_type == "gemma3":  # bidirectional image blocks: no prefix to share
        assert grouped == ungrouped and len(grouped) == 1  # one batched prefill of all rows
        return
    # Ungrouped: row 0 (L) and rows starting at images 1, 2, 3; grouped: the row starting at image 2 is gone.
    assert len(ungrouped) == 4 and len(grouped) == 3
    remaining = list(ungrouped)
    for length in grouped:
        remaining.remove(length)
    assert len(remaining) == 1 and remaining[0] < max(ungrouped)


@pytest.mark.parametrize("grouped", [False, True])
def test_calibrated_rule_equals_faithful_at_n_minus_one_over_n(decoder: FocusDecoder, grouped: bool) -> None:
    images = _images(3, seed=8)
    source = [[images[0], images[2]], images[1]] if grouped else images
    n = 2 if grouped else 3
    kwargs = dict(images=source, prompt=PROMPT, seed=9, max_new_tokens=5)
    calibrated = decoder.generate(alpha="n-calibrated", **kwargs)
    faithful = decoder.generate(alpha=(n - 1) / n, **kwargs)
    assert calibrated.token_ids == faithful.token_ids
    assert calibrated.settings["rule"] == "focus-n-calibrated" and faithful.settings["rule"] == "focus"
    assert calibrated.settings["alpha"] == pytest.approx((n - 1) / n)
    scores = dict(images=source, prompt=PROMPT, seed=9, candidates=["A", "B c"])
    assert np.allclose(
        decoder.score(alpha="n-calibrated", **scores), decoder.score(alpha=(n - 1) / n, **scores), atol=1e-4
    )


def test_calibrated_combine_is_the_faithful_formula() -> None:
    logits = torch.randn(5, 11, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(calibrated_focus_combine(logits), focus_combine(logits, 3 / 4), atol=1e-5)
    by_hand = logits[0] + sum(logits[k] - logits[0] for k in range(1, 5))
    assert torch.allclose(calibrated_focus_combine(logits), by_hand, atol=1e-6)


def test_alpha_tables_pick_the_request_n() -> None:
    options = DecodingOptions.resolve(alpha={"2": 0.5, "4": 0.75})  # JSON keys are strings
    assert options.alpha == ((2, 0.5), (4, 0.75))
    assert [options.alpha_for(n) for n in (2, 3, 4, 6)] == [0.5, 0.5, 0.75, 0.75]  # nearest N, ties smaller
    assert build_rule(options, 4).alpha == 0.75
    assert build_rule(options, 4, groups=[0, 0, 1, 1]).alpha == 0.5  # N counts groups
    assert build_rule(DecodingOptions.resolve(alpha="n-calibrated"), 5).alpha == pytest.approx(0.8)
    assert DecodingOptions.resolve(alpha={3: 1}).as_settings()["alpha"] == {3: 1.0}
    for bad in ("bogus", {"two": 0.5}, {2: -1}, {0: 0.5}, {2.5: 0.1}, [(2,)], float("nan")):
        with pytest.raises(InvalidOptionError):
            DecodingOptions.resolve(alpha=bad)
    with pytest.raises(InvalidOptionError):
        DecodingOptions.resolve(mode="vcd", alpha="n-calibrated")


def test_table_from_focus_config_applies_per_request(tmp_path) -> None:
    import json
    import shutil

    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint("qwen2_vl"), folder)
    (folder / "focus_config.json").write_text(json.dumps({"alpha": {"2": 0.25, "3": 0.6}}))
    decoder = FocusDecoder.from_pretrained(folder)
    two = decoder.generate(images=_images(2), prompt=PROMPT, max_new_tokens=1, seed=0)
    three = decoder.generate(images=_images(3), prompt=PROMPT, max_new_tokens=1, seed=0)
    assert (two.settings["alpha"], three.settings["alpha"]) == (0.25, 0.6)
    explicit = decoder.generate(images=_images(3), prompt=PROMPT, max_new_tokens=1, seed=0, alpha=0.1)
    assert explicit.settings["alpha"] == 0.1  # a call's alpha replaces the whole table


def test_bad_groups_are_clear_errors() -> None:
    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_vl"))
    images = _images(2)
    with pytest.raises(InvalidOptionError, match="empty"):
        decoder.generate(images=[[], images[0]], prompt=PROMPT)
    with pytest.raises(InvalidOptionError, match="nested"):
        decoder.generate(images=[[images[0], [images[1]]]], prompt=PROMPT)
    bad_key = [{"role": "user", "content": [{"type": "image", "image": images[0], "group": [1]}, "q"]}]
    with pytest.raises(InvalidOptionError, match="group"):
        decoder.generate(messages=bad_key)


def test_grouped_and_video_requests_batch_like_they_decode_alone(tmp_path) -> None:
    from focus_integrations.testing.videos import make_test_video

    decoder = FocusDecoder.from_pretrained(tiny_checkpoint("qwen2_vl"), dtype="float32")
    a1, a2, b1 = _images(3, seed=2)
    clip = tmp_path / "clip.mp4"
    make_test_video(clip, num_frames=6)
    requests = [
        dict(images=[[a1, a2], [b1]], prompt=PROMPT, seed=1, max_new_tokens=3),
        dict(images=[a1, b1], prompt=PROMPT, seed=2, max_new_tokens=3, alpha="n-calibrated"),
        dict(videos=[str(clip)], images=[a2], prompt=PROMPT, num_frames=2, max_new_tokens=3, seed=3),
    ]
    batched = decoder.generate_batch(requests)
    alone = [decoder.generate(**request) for request in requests]
    assert [out.token_ids for out in batched] == [out.token_ids for out in alone]
    assert [out.settings["n_groups"] for out in batched] == [2, 2, 3]
