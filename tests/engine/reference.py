"""A slow, obviously correct FOCUS reference for the tests.

Every step re-runs EACH row on its own, on the whole sequence so far, with no KV cache and no batching, and
combines the rows' last logits by hand with the formula written out. Nothing here is shared with the engine
except the noise generator (so both see the same noise pixels) and the processor/model objects.
"""

from __future__ import annotations

import numpy as np
import torch

from focus_integrations.noise import make_noise


def row_images(images, seed, noise="imagenet+uniform", scale=1.0, groups=None, reference_scale=None):
    """Row 0 all noise, row k image k clean: one noise draw per slot, drawn in slot order from ``seed``.

    ``groups`` (group number per image, numbered by first appearance): row k keeps every image of group k
    clean instead. ``reference_scale``: row 0 has draws of its own at that scale (the reference code's
    all-noise row stays at scale 1 while the masked images of rows 1..N use ``scale``), drawn first."""
    rng = np.random.default_rng(seed)
    reference = None
    if reference_scale is not None:
        reference = [make_noise(img, noise, reference_scale, rng) for img in images]
    noise_imgs = [make_noise(img, noise, scale, rng) for img in images]
    n = len(images)
    groups = list(range(n)) if groups is None else list(groups)
    rows = [list(reference or noise_imgs)]
    for k in range(max(groups) + 1):
        rows.append([images[j] if groups[j] == k else noise_imgs[j] for j in range(n)])
    return rows


def render(processor, images, prompt):
    messages = [
        {"role": "user", "content": [{"type": "image"}] * len(images) + [{"type": "text", "text": prompt}]}
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bos = getattr(processor.tokenizer, "bos_token", None)
    return text, not (bos and text.startswith(bos))


def encode_one_row(processor, text, images, add_special_tokens):
    return dict(
        processor(text=[text], images=[images], return_tensors="pt", add_special_tokens=add_special_tokens)
    )


@torch.no_grad()
def uncached_last_logits(model, inputs, generated):
    """Logits after prompt + generated tokens, from one full forward without a cache."""
    extra = torch.tensor([generated], dtype=torch.long)
    batch = dict(inputs)
    batch["input_ids"] = torch.cat([inputs["input_ids"], extra], dim=1)
    batch["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(extra)], dim=1)
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in batch:
            batch[key] = torch.cat([batch[key], torch.zeros_like(extra)], dim=1)
    return model(**batch, use_cache=False).logits[0, -1].float()


def focus_by_hand(z, alpha, banned=()):
    n = len(z) - 1
    total = z[1].clone()
    for k in range(2, n + 1):
        total = total + z[k]
    total = total - alpha * n * z[0]
    for token in banned:  # image placeholders are never generated
        total[token] = float("-inf")
    return total


def reference_focus_greedy(
    model, processor, images, prompt, *, alpha, seed, max_new_tokens, banned=(), groups=None, **noise_kwargs
):
    """Greedy FOCUS decode, the slow way. Returns (token ids, combined logits per step).

    ``noise_kwargs``: ``noise``, ``scale``, ``reference_scale`` of :func:`row_images`."""
    text, add_special = render(processor, images, prompt)
    rows = [
        encode_one_row(processor, text, imgs, add_special)
        for imgs in row_images(images, seed, groups=groups, **noise_kwargs)
    ]
    generated: list[int] = []
    steps = []
    for _ in range(max_new_tokens):
        z = [uncached_last_logits(model, row, generated) for row in rows]
        combined = focus_by_hand(z, alpha, banned)
        steps.append(combined)
        generated.append(int(torch.argmax(combined)))
    return generated, steps


def reference_focus_logprob(
    model, processor, images, prompt, answer_ids, *, alpha, seed, banned=(), groups=None
):
    """log p_FOCUS(answer) by teacher forcing, the slow way."""
    text, add_special = render(processor, images, prompt)
    rows = [
        encode_one_row(processor, text, imgs, add_special) for imgs in row_images(images, seed, groups=groups)
    ]
    total = 0.0
    for t, token in enumerate(answer_ids):
        z = [uncached_last_logits(model, row, list(answer_ids[:t])) for row in rows]
        total += float(torch.log_softmax(focus_by_hand(z, alpha, banned), dim=-1)[token])
    return total
