"""``focus eval leakage`` and ``focus demo``: the lab's command-line entry points.

    focus eval leakage [--model PATH_OR_ID] [--n 2 3 4 5 6] [--samples 100] [--seed 0]
                       [--alphas 0 0.1 0.3 0.5 1 | --alpha A] [--out DIR] [--quick]
    focus demo [--model PATH_OR_ID] [--seed 0]

Both default to the bundled default model (``focus_integrations.default_model``), so they run offline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from focus_integrations.cli_options import add_loading_arguments, json_object, loading_options
from focus_integrations.errors import InvalidOptionError
from focus_integrations.options import DecodingOptions

QUICK = {"n": (2, 4, 6), "samples": 30, "alphas": (0.1, 0.5, 1.0)}
DEMO_IMAGE_COUNTS = (2, 3, 4, 5)


def add_lab_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``eval leakage`` and ``demo`` on the ``focus`` parser."""
    from focus_integrations.cli import command_group

    evals = command_group(subparsers, "eval", help="evaluations", dest="eval_command")
    leak = evals.add_parser(
        "leakage",
        help="measure cross-image leakage and FOCUS's preconditions for a model",
        description="Builds easy-vqa prompts in plain language, answers them vanilla and with FOCUS (alpha chosen "
        "on a validation split), and reports accuracy, leakage, slot binding and noise abstention per number of "
        "images with 95%% confidence intervals.",
    )
    leak.add_argument(
        "--model", default=None, help="hub id or local folder (default: the bundled default model)"
    )
    leak.add_argument(
        "--n", type=int, nargs="+", default=None, help="numbers of images (2..6; default 2 3 4 5 6)"
    )
    leak.add_argument(
        "--samples", type=int, default=None, help="questions per N on the test split (default 100)"
    )
    leak.add_argument("--val-samples", type=int, default=None, help="questions per N for choosing alpha")
    leak.add_argument("--seed", type=int, default=0)
    leak.add_argument(
        "--alphas",
        type=float,
        nargs="+",
        default=None,
        help="alpha grid searched per N on val; (N-1)/N is always added (default 0 .1 .3 .5 1)",
    )
    leak.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="use this alpha for the faithful rule at every N instead of choosing it on val",
    )
    leak.add_argument("--max-new-tokens", type=int, default=16)
    leak.add_argument(
        "--out", type=Path, default=Path("leakage_lab"), help="folder for leakage.json / leakage.png"
    )
    leak.add_argument(
        "--quick", action="store_true", help="N in 2 4 6, 30 questions, 3 alphas (a few minutes)"
    )
    leak.add_argument(
        "--chat-template-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help='chat template options, e.g. \'{"add_vision_id": true}\' (Qwen2/2.5-VL: "Picture k:" labels)',
    )
    add_loading_arguments(leak)
    leak.set_defaults(func=_run_leakage)

    demo = subparsers.add_parser(
        "demo",
        help="the default model answers multi-image questions vanilla vs FOCUS, then a short lab table",
    )
    demo.add_argument(
        "--model", default=None, help="hub id or local folder (default: the bundled default model)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--samples", type=int, default=30, help="questions per N in the short lab table")
    demo.add_argument(
        "--alpha", type=float, default=None, help="FOCUS alpha (default: the model card's value)"
    )
    demo.set_defaults(func=_run_demo)


def _model_path(name: str | None) -> str:
    if name:
        return name
    from focus_integrations.default_model import default_model_path

    return str(default_model_path())


def _progress(message: str) -> None:
    print(f"[lab] {message}", file=sys.stderr, flush=True)


def _run_leakage(args: argparse.Namespace) -> int:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.lab.leakage import (
        DEFAULT_ALPHAS,
        DEFAULT_N_VALUES,
        decoder_answer_function,
        run_leakage_lab,
    )
    from focus_integrations.lab.report import format_table, write_json, write_plot

    n_values = tuple(args.n or (QUICK["n"] if args.quick else DEFAULT_N_VALUES))
    if any(n < 2 or n > 6 for n in n_values):
        raise InvalidOptionError(f"--n takes numbers of images from 2 to 6, got {list(n_values)}")
    samples = args.samples if args.samples is not None else (QUICK["samples"] if args.quick else 100)
    # Checked before the model loads, so a typo costs nothing.
    if samples < 1 or (args.val_samples is not None and args.val_samples < 1):
        raise InvalidOptionError("--samples and --val-samples must be >= 1")
    alphas = tuple(args.alphas or (QUICK["alphas"] if args.quick else DEFAULT_ALPHAS))
    if any(a < 0 for a in alphas):
        raise InvalidOptionError(f"--alphas must be >= 0, got {list(alphas)}")
    if args.alpha is not None and (args.alpha < 0 or args.alphas):
        raise InvalidOptionError("--alpha takes one number >= 0, and replaces --alphas (give one of them)")
    if args.max_new_tokens < 1:
        raise InvalidOptionError("--max-new-tokens must be >= 1")
    model = _model_path(args.model)
    template_kwargs = DecodingOptions.from_layers({"chat_template_kwargs": args.chat_template_kwargs})
    decoder = FocusDecoder.from_pretrained(model, **loading_options(args))
    result = run_leakage_lab(
        decoder_answer_function(
            decoder,
            max_new_tokens=args.max_new_tokens,
            chat_template_kwargs=template_kwargs.chat_template_kwargs,
        ),
        n_values=n_values,
        samples=samples,
        val_samples=args.val_samples,
        seed=args.seed,
        alphas=alphas,
        fixed_alpha=args.alpha,
        model_name=args.model or "default model",
        progress=_progress,
    )
    result.settings["chat_template_kwargs"] = template_kwargs.chat_template_kwargs
    print(format_table(result))
    from focus_integrations.lab.report import conclusions

    print("\n".join(conclusions(result)))
    json_path = write_json(result, args.out / "leakage.json")
    plot_path = write_plot(result, args.out / "leakage.png")
    print(f"wrote {json_path}")
    print(
        f"wrote {plot_path}"
        if plot_path
        else "no plot: matplotlib is missing (pip install 'focus-integrations[lab]')"
    )
    return 0


def _demo_alpha(model: str) -> float:
    """The faithful rule's one alpha for every N: the best single alpha on val in the lab run written next
    to the model (``lab_summary.json``), else the engine's default."""
    import json

    card = Path(model) / "lab_summary.json"
    if card.is_file():
        return float(json.loads(card.read_text())["single_alpha"])
    return 0.1


DEMO_RULES = (
    ("vanilla", "vanilla", None),
    ("FOCUS", "focus", "alpha"),  # the faithful rule at one alpha for every N
    ("N-calib", "focus", "n-calibrated"),
)


def _run_demo(args: argparse.Namespace) -> int:
    from focus_integrations.decoder import FocusDecoder
    from focus_integrations.lab.data import load_lab_images
    from focus_integrations.lab.leakage import decoder_answer_function, run_leakage_lab
    from focus_integrations.lab.parsing import parse_open
    from focus_integrations.lab.prompts import COLORS
    from focus_integrations.lab.report import conclusions, format_table
    from focus_integrations.lab.tasks import item_seed, open_items

    started = time.perf_counter()
    model = _model_path(args.model)
    decoder = FocusDecoder.from_pretrained(model)
    alpha = args.alpha if args.alpha is not None else _demo_alpha(model)
    print(f"Model: {args.model or 'bundled default model'} ({decoder.model.num_parameters():,} parameters)")
    print(
        "Each FOCUS answer decodes N+1 rows (row k: image k clean, the others noise; row 0: all noise).\n"
        f"  FOCUS   = the faithful rule sum_k z_k - alpha*N*z_0 with one alpha for every N (alpha={alpha})\n"
        "  N-calib = the same rule at alpha = (N-1)/N, i.e. z_0 + sum_k (z_k - z_0)\n"
    )

    pool = load_lab_images("test")
    questions: list[Any] = []
    for n in DEMO_IMAGE_COUNTS:
        # n questions with slots 1..n in shuffled order: the first asks about a random slot.
        questions.append(open_items(pool, n, n, seed=item_seed("demo", args.seed, n))[0])
    for item in questions:
        colors = ", ".join(f"image {k + 1}: {im.color} {im.shape}" for k, im in enumerate(item.images))
        print(f"{item.n} images ({colors})")
        print(f"  Q: {item.prompt()}")
        for label, mode, rule_alpha in DEMO_RULES:
            out = decoder.generate(
                images=item.clean_images(),
                prompt=item.prompt(),
                mode=mode,
                alpha=alpha if rule_alpha == "alpha" else rule_alpha,
                seed=item.seed,
                max_new_tokens=8,
            )
            answer = parse_open(out.text, COLORS)
            verdict = (
                "right"
                if answer == item.truth
                else "LEAK (another image's colour)"
                if answer in item.other_answers
                else "wrong"
            )
            print(f"  {label:>7}: {out.text.strip()!r:<16} {verdict}")
        print(f"  truth: {item.truth}\n")

    print(
        "Short leakage lab (test split; FOCUS alpha fixed as above; run `focus eval leakage` for the full one):"
    )
    result = run_leakage_lab(
        decoder_answer_function(decoder, max_new_tokens=8),
        n_values=(2, 4, 6),
        samples=args.samples,
        seed=args.seed,
        fixed_alpha=alpha,
        include_choice=False,
        pairs=0,
        model_name=args.model or "default model",
    )
    print(format_table(result, short=True))
    print("\nWhat to conclude:")
    for line in conclusions(result):
        print(f"  {line}")
    print(f"\n[demo took {time.perf_counter() - started:.0f} s]")
    return 0
