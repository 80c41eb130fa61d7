"""The ``focus`` command line.

    focus ask --model PATH_OR_ID --image A --image B [--video CLIP] [--mode focus|vanilla|vcd] [--alpha]
              [--noise] [--num-frames] [--fps] [--video-masking frame|video] [--max-new-tokens] [--seed]
              [--temperature] [--chat-template-kwargs JSON] [--generate-kwargs JSON] [loading flags]
              [--stream] "question"

Sub-commands of the optional parts (``index``, ``query``, ``catalog``, ``eval``, ``demo``, ``serve``) register
themselves when their modules are importable.

What every sub-command prints on stderr: its own progress lines, and for any bad input (a usage mistake, a
:class:`FocusError`) exactly one ``focus: error: ...`` line, exit status 2; anything unexpected is one
``focus: error: unexpected ...`` line, status 1. Never a traceback, and no progress bars, log lines or warnings
of transformers, huggingface_hub or other libraries (:func:`focus_integrations.console.quiet_libraries`).
``--verbose`` (on every sub-command) shows all of that, tracebacks included.
"""

from __future__ import annotations

import argparse
import codecs
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from focus_integrations.cli_options import (
    add_decoding_arguments,
    add_loading_arguments,
    decoding_options,
    loading_options,
)
from focus_integrations.errors import FocusError
from focus_integrations.options import VIDEO_MASKING

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


class UsageError(FocusError, ValueError):
    """A command line argparse refused (unknown option, missing or malformed value)."""


class CommandParser(argparse.ArgumentParser):
    """argparse, with its errors raised as :class:`UsageError` (one line) instead of usage + exit.

    Sub-parsers made by ``add_subparsers().add_parser`` are of the same class, so every ``focus`` sub-command
    reports usage mistakes the same way.
    """

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise UsageError(f"{message} (see '{self.prog} --help')")


def text_argument(value: str) -> str:
    """argparse ``type=`` for text (a question, a search): undecodable bytes in argv are a clear error.

    Python turns argv bytes that are not valid in the locale's encoding into lone surrogates; a path keeps
    them (they map back to the same file name), but text for a model or an embedder cannot.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start]
        what = (
            f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"lone surrogate {bad!r}"
        )
        shown = value.encode("utf-8", "backslashreplace").decode("utf-8")
        raise argparse.ArgumentTypeError(
            f"'{shown}' is not valid UTF-8 text ({what} at position {err.start}): use a UTF-8 locale or pass "
            "UTF-8 text"
        ) from None
    return value


def _add_ask(subparsers: argparse._SubParsersAction) -> None:
    ask = subparsers.add_parser("ask", help="answer a question about one or more images")
    ask.add_argument("question", type=text_argument)
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
    ask.add_argument("--system", type=text_argument, default=None, help="optional system prompt")
    add_decoding_arguments(ask)
    add_loading_arguments(ask)
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
    from focus_integrations.images import load_image
    from focus_integrations.options import DecodingOptions

    if not args.image and not args.video:
        raise FocusError("give at least one --image or --video")
    options = decoding_options(args)
    # Options and images are checked before the weights load: a typo costs nothing.
    DecodingOptions.from_layers(options)
    media: dict[str, Any] = {
        "images": [load_image(path) for path in args.image] or None,
        "videos": args.video or None,
    }
    decoder = FocusDecoder.from_pretrained(resolve_model(args.model), **loading_options(args))
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
    parser = CommandParser(prog="focus", description="FOCUS multi-image decoding for vision-language models")
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_ask(subparsers)
    for module_name, function_name in _COMMAND_GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue  # that optional part (or its extra) is not installed
        getattr(module, function_name)(subparsers)
    add_verbose_flags(parser)
    return parser


_VERBOSE_HELP = "show library progress bars, logs, warnings and tracebacks"


def add_verbose_flags(parser: argparse.ArgumentParser) -> None:
    """Give every sub-command (at any depth) a ``--verbose`` flag, so it may follow the sub-command's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                if "--verbose" not in sub._option_string_actions:
                    # SUPPRESS: an absent flag must not reset a `focus --verbose ask ...` given before the name.
                    sub.add_argument(
                        "--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP
                    )
                add_verbose_flags(sub)


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser(), argv)


def run_command(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None = None, prog: str = "focus"
) -> int:
    """Parse ``argv`` and run the chosen sub-command's ``func(args)`` under the output contract above."""
    from focus_integrations.console import quiet_libraries

    _tolerant_output()
    try:
        args = parser.parse_args(argv)
    except FocusError as err:  # UsageError
        return fail(err, prog)
    verbose = bool(getattr(args, "verbose", False))
    try:
        with quiet_libraries(not verbose, prefix=prog):
            return int(args.func(args) or 0)
    except FocusError as err:
        if verbose:
            raise
        return fail(err, prog)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `focus query ... | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 0
    except Exception as err:  # noqa: BLE001 - the last line of defence: a bug, reported in one line
        if verbose:
            raise
        return fail(
            f"unexpected {type(err).__name__}: {err} (run again with --verbose for the traceback)", prog, 1
        )


def fail(error: BaseException | str, prog: str = "focus", status: int = 2) -> int:
    """Print ``error`` as exactly one ``focus: error: ...`` line on stderr; return the exit status."""
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)
    return status


def _output_errors(error: UnicodeError) -> tuple[str | bytes, int]:
    """Codec error handler for stdout/stderr: undecodable file-name bytes go out as they came in
    (surrogateescape); any other unencodable character is written as a backslash escape."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if all(0xDC80 <= ord(c) <= 0xDCFF for c in chunk):
        return bytes(ord(c) - 0xDC00 for c in chunk), error.end
    return chunk.encode("ascii", "backslashreplace").decode("ascii"), error.end


codecs.register_error("focus-output", _output_errors)


def _tolerant_output() -> None:
    # A non-UTF-8 file name in a result line must not turn into a UnicodeEncodeError traceback.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="focus-output")
            except (ValueError, OSError, TypeError):  # a closed or unusual stream: leave it as it is
                pass


if __name__ == "__main__":
    raise SystemExit(main())
