"""The ``focus`` command line.

    focus ask --model PATH_OR_ID --image A --image B [--video CLIP] [--mode focus|vanilla|vcd] [--alpha]
              [--noise] [--num-frames] [--fps] [--video-masking frame|video] [--max-new-tokens] [--seed]
              [--stream] "question"

Sub-commands of the optional parts (``index``, ``query``, ``eval``, ``demo``, ``serve``) register themselves when their
modules are importable. Errors print one line (``focus: error: ...``) and exit with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from focus_integrations.errors import FocusError
from focus_integrations.noise import NOISE_MODES
from focus_integrations.options import MODES, VIDEO_MASKING, parse_alpha

# Optional command groups: module -> function that adds its sub-commands to the parser.
_COMMAND_GROUPS = (
    ("focus_integrations.store.commands", "add_store_commands"),
    ("focus_integrations.lab.commands", "add_lab_commands"),
    ("focus_integrations.server.cli", "add_serve_commands"),
    ("focus_integrations.harness.commands", "add_harness_commands"),
)


def command_group(
    subparsers: argparse._SubParsersAction, name: str, *, help: str, dest: str
) -> argparse._SubParsersAction:
    """The sub-command group ``name`` (e.g. ``eval``), created on first use, so that several optional
    parts can add their commands to it (``eval leakage`` from the lab, ``eval <benchmark>`` from the harness)."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        parser.set_defaults(_command_group=parser.add_subparsers(dest=dest, required=True))
    return parser.get_default("_command_group")


def alpha_argument(text: str) -> float | str:
    """``--alpha``: a number, or ``n-calibrated`` (argparse reports a bad value in one line)."""
    try:
        return parse_alpha(text)
    except FocusError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_ask(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser("ask", help="answer a question about one or more images")
    ask.add_argument("question")
    ask.add_argument(
        "--model", default=None, help="hub id or local folder (default: the bundled default model)"
    )
    ask.add_argument("--image", action="append", default=[], help="image path; repeat for several")
    ask.add_argument(
        "--video", action="append", default=[], help="video file (frames sampled with PyAV); repeatable"
    )
    ask.add_argument("--num-frames", type=int, default=None, help="frames per video (default 8)")
    ask.add_argument("--fps", type=float, default=None, help="sample videos at this rate instead")
    ask.add_argument(
        "--video-masking",
        choices=VIDEO_MASKING,
        default=None,
        help="frame: every frame its own FOCUS slot (the reference, default); video: one group per video",
    )
    ask.add_argument("--system", default=None, help="optional system prompt")
    ask.add_argument("--mode", choices=MODES, default="focus")
    ask.add_argument(
        "--alpha", type=alpha_argument, default=None, help="a number, or n-calibrated (alpha = (N-1)/N)"
    )
    ask.add_argument("--noise", choices=sorted(NOISE_MODES), default=None)
    ask.add_argument("--max-new-tokens", type=int, default=128)
    ask.add_argument(
        "--temperature", type=float, default=None, help="sample with this temperature (default greedy)"
    )
    ask.add_argument("--seed", type=int, default=None)
    ask.add_argument("--device", default=None)
    ask.add_argument("--dtype", default=None)
    ask.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    ask.set_defaults(func=_run_ask)


def resolve_model(name: str | None) -> str:
    """``--model`` or the bundled default model's folder."""
    if name:
        return name
    from focus_integrations.default_model import default_model_path

    return str(default_model_path())


def _run_ask(args: argparse.Namespace) -> int:
    from focus_integrations.decoder import FocusDecoder

    if not args.image and not args.video:
        raise FocusError("give at least one --image or --video")
    decoder = FocusDecoder.from_pretrained(resolve_model(args.model), device=args.device, dtype=args.dtype)
    options = {
        "mode": args.mode,
        "alpha": args.alpha,
        "noise": args.noise,
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "num_frames": args.num_frames,
        "fps": args.fps,
        "video_masking": args.video_masking,
    }
    media = {"images": args.image or None, "videos": args.video or None}
    if args.temperature is not None:
        options |= {"do_sample": True, "temperature": args.temperature}
    if args.stream:
        stream = decoder.stream(**media, prompt=args.question, system=args.system, **options)
        for delta in stream:
            print(delta, end="", flush=True)
        print()
        output = stream.output
    else:
        output = decoder.generate(**media, prompt=args.question, system=args.system, **options)
        print(output.text)
    settings = output.settings
    print(
        f"[{settings['rule']}: {settings['n_images']} images, "
        + (f"{settings['n_groups']} groups, " if settings["n_groups"] != settings["n_images"] else "")
        + f"{settings['n_rows']} rows, "
        f"{output.usage.output_tokens} tokens, finish={output.finish_reason}]",
        file=sys.stderr,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="focus", description="FOCUS multi-image decoding for vision-language models"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_ask(subparsers)
    for module_name, function_name in _COMMAND_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # that optional part (or its extra) is not installed
        getattr(module, function_name)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except FocusError as err:
        print(f"focus: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("focus: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `focus query ... | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
