"""Train the project's default vision-language model on easy-vqa (build time only).

The model is made of stock transformers classes only: ``LlavaForConditionalGeneration`` with a small
``CLIPVisionConfig`` tower (64 px, patch 16, CLS kept: 17 tokens per image) and a small Llama text side, a
word-level tokenizer (``tokenizers`` WordLevel in ``PreTrainedTokenizerFast``) covering every prompt the
leakage lab writes, a ``LlavaProcessor`` with the PIL CLIP image processor, and a ChatML-like chat template
that numbers images ("Image 1: <image>", like Qwen2-VL's ``add_vision_id``). ``save_pretrained`` /
``from_pretrained`` round-trip it, so the default exercises the same engine path as real checkpoints.

Recipe (see the model card for the reasons and the measured results):
1. vision stage: the CLIP tower alone learns colour / shape / "noise" from a linear head (head discarded);
2. full training on a task mix built from ``focus_integrations.lab.prompts`` (open colour/shape questions
   about image k, several turns per conversation; MuirBench-style multiple choice; Winoground-style image and
   text scores), with a curriculum on the number of images (2 -> 4; the lab also asks 5 and 6),
   distractors whose colours differ from the target's and from each other, and noise images (the engine's
   own noise functions) whose answer is "none". That last part teaches the model FOCUS's noise-abstention
   precondition: it favours FOCUS. With ``--restate-slot`` (the shipped model) answers about image k start
   by naming it ("image 2: red"), which is what made the model bind questions to images (docs/leakage_lab.md).

Deterministic from ``--seed`` for given ``--steps`` and ``--threads`` (``--minutes`` is only a safety cap
that stops early). The shipped model is the first command below (its training_summary.json has the details).

    python scripts/train_default_model.py --seed 0 --steps 1300 --vision-steps 150 --threads 1 --restate-slot \
        --out focus_integrations/default_model
    python scripts/train_default_model.py --smoke --out /tmp/smoke_model     # CI: < 60 s

The model's parts are built in ``default_model_arch.py``, the training data in ``default_model_tasks.py``;
this script holds the training stages, the quick evaluation and the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from default_model_arch import build_model, build_processor, build_tokenizer, tokens_per_image  # noqa: E402
from default_model_tasks import (  # noqa: E402
    CURRICULUM,
    Encoder,
    Example,
    ImageBank,
    distinct_color_images,
    load_bank,
    max_images_at,
    noise_pixels,
    open_answer,
    sample_example,
)

from focus_integrations.lab import prompts  # noqa: E402

# --------------------------------------------------------------------------------------------- training


def answer_logits(model, input_ids, attention, pixels, positions):
    """Next-token logits at ``positions`` (a bool mask of the label tokens, shifted by one)."""
    out = model.model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels)
    hidden = out.last_hidden_state[:, :-1][positions[:, 1:]]
    return model.lm_head(hidden)


def vision_stage(model, processor, bank: ImageBank, steps: int, batch: int, seed: int, log) -> None:
    """Pre-train the CLIP tower alone: colour (8 + noise) and shape (3 + noise) from CLS and mean token."""
    if steps <= 0:
        return
    tower = model.model.vision_tower
    width = tower.config.hidden_size
    generator = torch.Generator().manual_seed(seed + 1)
    rng = np.random.default_rng(seed + 1)
    head = torch.nn.Linear(2 * width, len(prompts.COLORS) + 1 + len(prompts.SHAPES) + 1)
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=2e-3, weight_decay=0.01)
    color_index = {c: i for i, c in enumerate(prompts.COLORS)}
    shape_index = {s: i for i, s in enumerate(prompts.SHAPES)}
    colors = torch.tensor([color_index[c] for c in bank.colors])
    shapes = torch.tensor([shape_index[s] for s in bank.shapes])
    start = time.time()
    for step in range(steps):
        picks = torch.randint(len(bank.colors), (batch,), generator=generator)
        n_noise = batch // 5
        pixels = torch.cat([bank.pixels[picks[n_noise:]], noise_pixels(processor, n_noise, rng)])
        color_y = torch.cat([colors[picks[n_noise:]], torch.full((n_noise,), len(prompts.COLORS))])
        shape_y = torch.cat([shapes[picks[n_noise:]], torch.full((n_noise,), len(prompts.SHAPES))])
        hidden = tower(pixel_values=pixels).last_hidden_state
        logits = head(torch.cat([hidden[:, 0], hidden[:, 1:].mean(1)], -1))
        color_logits, shape_logits = (
            logits[:, : len(prompts.COLORS) + 1],
            logits[:, len(prompts.COLORS) + 1 :],
        )
        loss = F.cross_entropy(color_logits, color_y) + F.cross_entropy(shape_logits, shape_y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 50 == 0 or step == steps - 1:
            color_acc = (color_logits.argmax(-1) == color_y).float().mean().item()
            shape_acc = (shape_logits.argmax(-1) == shape_y).float().mean().item()
            log(
                f"vision {step:5d} loss {loss.item():.3f} color {color_acc:.2f} shape {shape_acc:.2f} "
                f"{time.time() - start:.0f}s"
            )


@torch.no_grad()
def quick_eval(
    model, encoder: Encoder, bank: ImageBank, samples: int, seed: int, restate: bool = False
) -> dict[str, float]:
    """Greedy first answer token on held-out images: single, multi (N=2,3,4,6), noise target, binding."""
    model.eval()
    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    results: dict[str, float] = {}

    def run(examples: list[Example]) -> list[str]:
        input_ids, attention, _, pixels, lengths = encoder.batch(examples, bank, np_rng, with_answers=False)
        out = model.model(input_ids=input_ids, attention_mask=attention, pixel_values=pixels)
        last = out.last_hidden_state[torch.arange(len(lengths)), torch.tensor(lengths) - 1]
        return encoder.tokenizer.convert_ids_to_tokens(model.lm_head(last).argmax(-1).tolist())

    for n in (1, 2, 3, 4, 6):
        for attribute in ("color", "shape") if n == 1 else ("color",):
            examples, truth, others = [], [], []
            for _ in range(samples):
                images = distinct_color_images(bank, n, rng)
                slot = rng.randrange(n)
                values = getattr(bank, attribute + "s")
                prefix = open_answer("", slot + 1, restate)
                examples.append(
                    Example(list(images), [(prompts.open_question(attribute, slot + 1), "")], None, prefix)
                )
                truth.append(values[images[slot]])
                others.append({values[i] for k, i in enumerate(images) if k != slot})
            answers = run(examples)
            results[f"n{n}_{attribute}"] = float(np.mean([a == t for a, t in zip(answers, truth)]))
            if n > 1:
                results[f"n{n}_leak"] = float(
                    np.mean([a != t and a in o for a, t, o in zip(answers, truth, others)])
                )
    # Noise abstention at N=3: target slot noise, the others clean.
    examples, others = [], []
    for _ in range(samples):
        images: list[int | None] = list(distinct_color_images(bank, 3, rng))
        slot = rng.randrange(3)
        others.append({bank.colors[i] for k, i in enumerate(images) if k != slot})
        images[slot] = None
        prefix = open_answer("", slot + 1, restate)
        examples.append(Example(images, [(prompts.open_question("color", slot + 1), "")], None, prefix))
    answers = run(examples)
    results["n3_noise_none"] = float(np.mean([a == prompts.NONE_ANSWER for a in answers]))
    results["n3_noise_leak"] = float(np.mean([a in o for a, o in zip(answers, others)]))
    model.train()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="where the final checkpoint is saved")
    parser.add_argument("--work-dir", type=Path, default=None, help="log and intermediate checkpoints")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1300, help="main-stage optimiser steps")
    parser.add_argument("--vision-steps", type=int, default=150)
    parser.add_argument("--minutes", type=float, default=60.0, help="safety cap on wall time (stops early)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument(
        "--locate-share", type=float, default=0.0, help="share of 'In which image is the red shape?' examples"
    )
    parser.add_argument(
        "--restate-slot",
        action="store_true",
        help='answer open questions about image k as "image k: <value>" (the model names the slot first)',
    )
    parser.add_argument(
        "--curriculum", type=float, nargs=2, default=CURRICULUM, help="progress where max N becomes 3, then 4"
    )
    parser.add_argument("--text-hidden", type=int, default=128)
    parser.add_argument("--text-layers", type=int, default=4)
    parser.add_argument("--image-size", type=int, default=64, help="the processor's input size (pixels)")
    parser.add_argument(
        "--patch-size", type=int, default=16, help="ViT patch; tokens per image = (size/patch)^2 + 1"
    )
    parser.add_argument("--eval-every", type=int, default=400)
    parser.add_argument("--eval-samples", type=int, default=200)
    parser.add_argument("--checkpoint-every", type=int, default=400)
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads; on a shared, oversubscribed CPU 1 is far faster (2.3 s vs 11-26 s per step measured)",
    )
    parser.add_argument("--smoke", action="store_true", help="a few dozen steps on a handful of images (CI)")
    args = parser.parse_args(argv)
    if args.smoke:
        # A few dozen steps on a handful of images; explicit --steps / --vision-steps still win.
        given = set(argv if argv is not None else sys.argv[1:])
        args.steps = args.steps if "--steps" in given else 20
        args.vision_steps = args.vision_steps if "--vision-steps" in given else 5
        args.batch_size, args.eval_every, args.eval_samples, args.checkpoint_every = 4, 10**9, 4, 10**9
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    work = args.work_dir or args.out.parent / (args.out.name + "_work")
    work.mkdir(parents=True, exist_ok=True)
    log_file = (work / "train.log").open("a")

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    started = time.time()
    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, args.image_size, args.patch_size)
    model = build_model(
        tokenizer, args.seed, args.text_hidden, args.text_layers, args.image_size, args.patch_size
    )
    encoder = Encoder(processor, tokens_per_image(args.image_size, args.patch_size))
    train = load_bank(processor, "train", limit=64 if args.smoke else None)
    # Monitoring uses the lab's validation images (never its test split).
    lab_labels = json.loads(
        (Path(__file__).resolve().parents[1] / "focus_integrations/assets/lab/labels.json").read_text()
    )
    val_ids = [r["id"] for r in lab_labels["images"] if r["split"] == "val"]
    val = load_bank(processor, "test", ids=val_ids[:64] if args.smoke else val_ids)
    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"seed {args.seed} params {n_params} vocab {len(tokenizer)} train images {len(train.colors)} "
        f"torch {torch.__version__} threads {torch.get_num_threads()} {platform.processor() or platform.machine()}"
    )

    vision_stage(model, processor, train, args.vision_steps, 8 if args.smoke else 128, args.seed, log)
    vision_seconds = time.time() - started

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, min(200, args.steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return args.lr * (step + 1) / warmup
        progress = (step - warmup) / max(1, args.steps - warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))

    rng = random.Random(args.seed + 2)
    np_rng = np.random.default_rng(args.seed + 2)
    model.train()
    history, step, running, main_start = [], 0, 0.0, time.time()
    for step in range(args.steps):
        if time.time() - started > args.minutes * 60:
            log(f"time cap of {args.minutes} min reached at step {step}")
            break
        progress = step / args.steps
        curriculum = tuple(args.curriculum)
        examples = [
            sample_example(train, progress, rng, args.locate_share, curriculum, args.restate_slot)
            for _ in range(args.batch_size)
        ]
        input_ids, attention, labels, pixels, _ = encoder.batch(examples, train, np_rng)
        logits = answer_logits(model, input_ids, attention, pixels, labels)
        loss = F.cross_entropy(logits, input_ids[labels])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if step % 50 == 0:
            rate = (time.time() - main_start) / (step + 1)
            log(
                f"step {step:6d} loss {running:.4f} maxN {max_images_at(progress)} lr {lr_at(step):.2e} "
                f"{rate:.2f}s/step elapsed {(time.time() - started) / 60:.1f} min"
            )
        if (step + 1) % args.eval_every == 0 or step == args.steps - 1:
            metrics = quick_eval(model, encoder, val, args.eval_samples, args.seed + 3, args.restate_slot)
            history.append({"step": step + 1, **metrics})
            log(f"eval {step + 1}: " + " ".join(f"{k} {v:.3f}" for k, v in metrics.items()))
        if (step + 1) % args.checkpoint_every == 0:
            model.save_pretrained(work / "checkpoint")
            processor.save_pretrained(work / "checkpoint")
            log(f"checkpoint at step {step + 1} -> {work / 'checkpoint'}")

    final = quick_eval(model, encoder, val, args.eval_samples, args.seed + 3, args.restate_slot)
    log("final: " + " ".join(f"{k} {v:.3f}" for k, v in final.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    summary = {
        "seed": args.seed,
        "steps_planned": args.steps,
        "steps_done": step + 1,
        "vision_steps": args.vision_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "locate_share": args.locate_share,
        "restate_slot": args.restate_slot,
        "curriculum": list(args.curriculum),
        "parameters": n_params,
        "image_size": args.image_size,
        "patch_size": args.patch_size,
        "vocab_size": len(tokenizer),
        "vision_stage_seconds": round(vision_seconds, 1),
        "total_seconds": round(time.time() - started, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "smoke": args.smoke,
        "final_validation": final,
        "history": history,
    }
    (args.out / "training_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(f"saved to {args.out} after {summary['total_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
