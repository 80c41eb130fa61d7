"""Command-line flags for the loading and decoding options, shared by every ``focus`` sub-command that loads a
model (``ask``, ``query``, ``eval``, ...). An absent flag is "not set": the checkpoint's configs decide."""

from __future__ import annotations

import argparse
import json
from typing import Any

from focus_integrations.errors import FocusError
from focus_integrations.noise import NOISE_MODES
from focus_integrations.options import MODES, parse_alpha


def add_loading_arguments(parser: argparse.ArgumentParser) -> None:
    """transformers loading options (see docs/engine.md, "Loading options"); absent flags are not set."""
    group = parser.add_argument_group("loading")
    group.add_argument("--device", default=None, help="move the model there: cpu, cuda, cuda:1, ...")
    group.add_argument("--dtype", default=None, help="float32, bfloat16, float16, auto")
    group.add_argument("--device-map", default=None, help="accelerate placement while loading, e.g. auto")
    group.add_argument("--attn-implementation", default=None, help="sdpa, eager, flash_attention_2, ...")
    group.add_argument("--revision", default=None, help="hub branch, tag or commit")
    group.add_argument("--cache-dir", default=None, help="Hugging Face cache folder")
    group.add_argument("--trust-remote-code", action="store_true", default=None)
    group.add_argument("--local-files-only", action="store_true", default=None)
    group.add_argument("--quantization-config", type=json_object, default=None, metavar="JSON")
    group.add_argument("--model-kwargs", type=json_object, default=None, metavar="JSON")
    group.add_argument("--processor-kwargs", type=json_object, default=None, metavar="JSON")


def add_decoding_arguments(parser: argparse.ArgumentParser, *, max_new_tokens: int | None = None) -> None:
    """Decoding options; an absent flag is "not set" (the checkpoint's configs decide)."""
    parser.add_argument("--mode", choices=MODES, default=None, help="focus (default), vanilla or vcd")
    parser.add_argument(
        "--alpha", type=alpha_argument, default=None, help="a number, or n-calibrated (alpha = (N-1)/N)"
    )
    parser.add_argument("--noise", choices=sorted(NOISE_MODES), default=None)
    parser.add_argument("--noise-scale", type=float, default=None)
    parser.add_argument("--noise-severity", type=int, choices=range(1, 6), default=None)
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens)
    parser.add_argument("--temperature", type=float, default=None, help="0: greedy; > 0: sample")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=None)
    parser.add_argument("--repetition-penalty", type=float, default=None)
    parser.add_argument("--stop", action="append", default=None, help="stop string; repeat for several")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--chat-template-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help="keyword arguments for the chat template, e.g. '{\"add_vision_id\": true}'",
    )
    parser.add_argument(
        "--generate-kwargs",
        type=json_object,
        default=None,
        metavar="JSON",
        help="any other decoding option, e.g. '{\"min_new_tokens\": 2}'",
    )


_LOADING_ARGS = (
    "device",
    "dtype",
    "device_map",
    "attn_implementation",
    "revision",
    "cache_dir",
    "trust_remote_code",
    "local_files_only",
    "quantization_config",
    "model_kwargs",
    "processor_kwargs",
)
_DECODING_ARGS = (
    "mode",
    "alpha",
    "noise",
    "noise_scale",
    "noise_severity",
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "repetition_penalty",
    "stop",
    "seed",
    "chat_template_kwargs",
    "num_frames",  # the video flags of the sub-commands that have them
    "fps",
    "video_masking",
)


def loading_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in _LOADING_ARGS if getattr(args, name, None) is not None}


def decoding_options(args: argparse.Namespace) -> dict[str, Any]:
    """The decoding flags as one layer of the engine's vocabulary (generate-kwargs below the named flags)."""
    from focus_integrations.vocabulary import combine_layers

    named = {name: getattr(args, name, None) for name in _DECODING_ARGS}
    return combine_layers(getattr(args, "generate_kwargs", None) or {}, named)


def alpha_argument(text: str) -> float | str:
    """``--alpha``: a number, or ``n-calibrated`` (argparse reports a bad value in one line)."""
    try:
        return parse_alpha(text)
    except FocusError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
