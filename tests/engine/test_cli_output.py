"""What the ``focus`` command prints: the answer on stdout, and on stderr only its own lines.

A normal run shows no progress bar, log line or warning of transformers / huggingface_hub; any bad input is
exactly one ``focus: error: ...`` line (status 2), an unexpected failure one ``focus: error: unexpected ...``
line (status 1), never a traceback; ``--verbose`` shows everything. The key cases run in real subprocesses
(the shape a user sees); the rest call ``main()`` with the process's file descriptors captured (``capfd``:
tqdm bars and transformers' log handler write to fd 2 directly).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from focus_integrations.cli import main
from focus_integrations.default_model import default_model_path
from focus_integrations.store import bundled_catalog_path

ROOT = Path(__file__).resolve().parents[2]
CATALOG = bundled_catalog_path()
BLUE, RED = str(CATALOG / "blue-circle-pendant.png"), str(CATALOG / "red-triangle-pennant.png")
QUESTION = "What color is the shape in image 2? Answer with one word, or none if there is no shape."


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FOCUS_STORE_PATH"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return env


def focus(*args: str | bytes, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "focus_integrations.cli", *args],
        capture_output=True,
        timeout=300,
        env=_env(tmp_path),
        cwd=tmp_path,
    )


def one_error_line(stderr: bytes | str) -> str:
    """The single stderr line, checked to be a ``focus: error:`` line (no traceback, bar or warning before)."""
    text = stderr.decode("utf-8", "backslashreplace") if isinstance(stderr, bytes) else stderr
    lines = text.splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("focus: error: "), text
    return lines[0]


def test_a_normal_run_prints_the_answer_and_one_summary_line(tmp_path: Path) -> None:
    result = focus(
        "ask", "--image", BLUE, "--image", RED, "--max-new-tokens", "8", QUESTION, tmp_path=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.decode().splitlines()) == 1  # the answer
    stderr = result.stderr.decode()
    assert stderr.startswith("[focus: 2 images, 3 rows, ") and stderr.count("\n") == 1, stderr


def test_undecodable_question_bytes_are_one_line_in_every_command(tmp_path: Path) -> None:
    question = b"caf\xe9 au lait"  # Latin-1 bytes: not UTF-8, so Python's argv holds a lone surrogate
    for args in (("query", question, "--store", "s"), ("ask", "--image", BLUE, question)):
        result = focus(*args, tmp_path=tmp_path)
        assert result.returncode == 2
        line = one_error_line(result.stderr)
        assert "not valid UTF-8 text (byte 0xe9 at position 3)" in line, line
    result = focus("query", "red", "--search", b"\xff", "--store", "s", tmp_path=tmp_path)
    assert "argument --search" in one_error_line(result.stderr)


def test_usage_mistakes_are_one_line(tmp_path: Path) -> None:
    result = focus("ask", "--image", BLUE, "--seed", "abc", "q", tmp_path=tmp_path)
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "focus: error: argument --seed: invalid int value: 'abc' (see 'focus ask --help')"
    )


def test_undecodable_file_names_are_printed_as_their_bytes(tmp_path: Path) -> None:
    target = os.fsdecode(b"caf\xe9-catalog")  # a folder name that is not UTF-8
    result = focus("catalog", target, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert b"caf\xe9-catalog" in result.stdout  # the bytes of the name, as `ls` would print them
    assert (tmp_path / target / "catalog.json").is_file()


# ------------------------------------------------------------------------------------------ in-process


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("FOCUS_STORE_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line(capfd: pytest.CaptureFixture[str]) -> str:
    return one_error_line(capfd.readouterr().err)


@pytest.mark.parametrize(
    "args",
    [
        ["ask", "--image", BLUE, "--image", RED, "--seed", "-1", "q"],
        ["ask", "--image", BLUE, "--device", "cuda:7", "q"],
        ["ask", "--image", BLUE, "--image", "missing.png", "q"],
        ["ask", "--image", BLUE, "--max-new-tokens", "0", "q"],
        ["query", "q", "--k", "0"],
        ["query", "q", "--where", "{not json"],
        ["index", "no-such-folder", "--store", "s"],
        ["catalog", str(CATALOG / "catalog.json")],
    ],
)
def test_bad_input_is_one_line(home: Path, capfd: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert main(args) in (1, 2)
    _one_line(capfd)


def test_model_side_failures_are_one_line_without_the_bar_or_the_tokenizer_warning(home: Path, capfd) -> None:
    assert main(["ask", "--image", BLUE, "what " * 3000]) == 2  # transformers warns "Token indices ..."
    assert "context holds" in _one_line(capfd)
    model = home / "model"
    shutil.copytree(default_model_path(), model, ignore=shutil.ignore_patterns("__init__.py", "__pycache__"))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a truncated download
    assert main(["ask", "--model", str(model), "--image", BLUE, "q"]) in (1, 2)
    _one_line(capfd)


def test_query_without_a_store_says_where_it_looked_and_creates_nothing(home: Path, capfd) -> None:
    assert main(["query", "a blue pendant", "--k", "2"]) == 2
    line = _one_line(capfd)
    default = home / ".cache" / "focus_integrations" / "store"
    assert f"no image store at {default}" in line and "--store PATH" in line
    assert not default.exists()  # a read never makes a store
    assert main(["query", "a blue pendant", "--store", "typo"]) == 2
    assert "no image store at typo" in _one_line(capfd) and not (home / "typo").exists()


def test_an_unexpected_failure_is_one_line_and_verbose_shows_the_traceback(
    home: Path, capfd, monkeypatch: pytest.MonkeyPatch
) -> None:
    import focus_integrations.images

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(focus_integrations.images, "load_image", broken)
    assert main(["ask", "--image", BLUE, "q"]) == 1
    assert _one_line(capfd) == (
        "focus: error: unexpected ZeroDivisionError: a bug (run again with --verbose for the traceback)"
    )
    with pytest.raises(ZeroDivisionError):
        main(["ask", "--image", BLUE, "q", "--verbose"])
    with pytest.raises(ZeroDivisionError):
        main(["--verbose", "ask", "--image", BLUE, "q"])


def test_library_warnings_are_dropped_and_our_own_are_one_line(home: Path, capfd, monkeypatch) -> None:
    import warnings

    import focus_integrations.store.commands as commands

    def noisy(args) -> int:
        warnings.warn("third-party chatter", FutureWarning, stacklevel=1)  # attributed to this test file
        from focus_integrations.console import _PACKAGE_DIR

        warnings.warn_explicit("the store is\nalmost full", UserWarning, f"{_PACKAGE_DIR}/store/x.py", 1)
        import logging

        logging.getLogger("some.library").warning("a library log line")
        return 0

    monkeypatch.setattr(commands, "run_catalog", noisy)  # a sub-command that warns and logs
    assert main(["catalog", "x"]) == 0
    assert capfd.readouterr().err == "focus: warning: the store is almost full\n"


def test_the_command_line_starts_without_torch(tmp_path: Path) -> None:
    # Every sub-command's parser is built at start: none may import torch/transformers (seconds) just to
    # print --help or a usage error.
    probe = (
        "import sys\nfrom focus_integrations.cli import build_parser\nbuild_parser()\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'chromadb'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=_env(tmp_path), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
