"""Quiet output for command lines and scripts: only what this library means to say reaches the terminal.

transformers draws a "Loading weights" progress bar for every ``from_pretrained`` and logs warnings such as
"Token indices sequence length is longer than the specified maximum sequence length" before this library's
own, clearer error; huggingface_hub draws download bars; other libraries emit Python warnings and log
records. Inside :func:`quiet_libraries` none of that is shown; this library's own warnings still are, as one
``focus: warning: ...`` line each. Everything is restored on exit, so a test or a notebook that calls the CLI
in-process keeps its settings.

The ``focus`` command runs every sub-command inside it unless ``--verbose`` is given; the examples use it too::

    from focus_integrations.console import quiet_libraries

    with quiet_libraries():
        main()
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
# Environment variables the libraries read when they are first imported (and subprocesses inherit).
_QUIET_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}


@contextlib.contextmanager
def quiet_libraries(enabled: bool = True, *, prefix: str = "focus") -> Iterator[None]:
    """While active: no progress bars, log messages or warnings from third-party libraries.

    ``enabled=False`` changes nothing (a ``--verbose`` run). Warnings raised by this library are printed as
    ``{prefix}: warning: <message>`` on stderr; the rest are dropped.
    """
    if not enabled:
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environment(_QUIET_ENVIRONMENT))
        stack.enter_context(_transformers_quiet())
        stack.enter_context(_huggingface_hub_quiet())
        stack.enter_context(_logging_quiet())
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("default")  # every warning reaches showwarning once per place...
        warnings.showwarning = _own_warnings_only(prefix)  # ...which keeps only this library's own
        yield


def _own_warnings_only(prefix: str) -> Any:
    def show(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        if not os.path.abspath(filename).startswith(_PACKAGE_DIR):
            return
        text = " ".join(str(message).split())
        print(f"{prefix}: warning: {text}", file=file or sys.stderr)

    return show


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)  # a user's own setting wins
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _transformers_quiet() -> Iterator[None]:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def _huggingface_hub_quiet() -> Iterator[None]:
    try:
        from huggingface_hub import utils as hub_utils
    except ImportError:
        yield
        return
    disabled = hub_utils.are_progress_bars_disabled()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if not disabled:
            hub_utils.enable_progress_bars()


@contextlib.contextmanager
def _logging_quiet() -> Iterator[None]:
    # Records of loggers nobody configured reach logging's last resort (stderr, WARNING and up): drop them.
    # Loggers with handlers of their own (a server's access log) are left alone.
    previous = logging.lastResort
    logging.lastResort = logging.NullHandler()
    try:
        yield
    finally:
        logging.lastResort = previous
