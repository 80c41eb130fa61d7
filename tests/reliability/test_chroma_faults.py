"""A real `chroma run` server that freezes (SIGSTOP), stops and restarts: every store call ends by its deadline
with a documented error, and the data survives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("chromadb")

from focus_integrations.errors import InvalidOptionError  # noqa: E402
from focus_integrations.store import (  # noqa: E402
    ImageStore,
    StoreConnectionError,
    StoreTimeoutError,
)

pytestmark = pytest.mark.slow  # one real `chroma run` for the module (its start-up is the cost)

TIMEOUT = 1.5
SLACK = 5.0  # client-side work (embedding the query) on a loaded 2-core machine; a hang is unbounded


def _timed(call):
    start = time.monotonic()
    try:
        return call(), time.monotonic() - start
    except Exception as err:  # noqa: BLE001 - the tests check which
        return err, time.monotonic() - start


def test_a_frozen_server_costs_each_call_its_deadline_and_nothing_else(chroma_process, shapes_dir, minilm):
    store = ImageStore(url=chroma_process.url, collection="frozen", embedder=minilm, timeout=TIMEOUT)
    assert len(store.add_folder(shapes_dir).added) == 6
    chroma_process.freeze()
    try:
        for call in (
            lambda: store.query("a red circle", k=2),
            lambda: store.get(["red_circle.png"]),
            lambda: store.count(),
            lambda: store.add_folder(shapes_dir),
            lambda: store.delete(["red_circle.png"]),
            lambda: ImageStore(url=chroma_process.url, collection="frozen", embedder=minilm, timeout=TIMEOUT),
        ):
            outcome, seconds = _timed(call)
            assert isinstance(outcome, StoreTimeoutError), outcome
            assert isinstance(outcome, TimeoutError) and "did not answer" in str(outcome), outcome
            assert seconds < TIMEOUT + SLACK
    finally:
        chroma_process.thaw()
    # Thawed, the same store object works again and nothing was lost.
    deadline = time.monotonic() + 20
    while True:
        try:
            assert store.count() == 6
            break
        except StoreConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert store.query("a red circle", k=1)[0].id == "red_circle.png"


def test_the_cli_ends_on_a_frozen_server_with_one_line(chroma_process, shapes_dir, minilm, tmp_path):
    ImageStore(url=chroma_process.url, collection="frozen-cli", embedder=minilm).add_folder(shapes_dir)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "focus_integrations.cli", "query", "a red circle", "--retrieve-only"]
    command += ["--chroma-url", chroma_process.url, "--collection", "frozen-cli", "--chroma-timeout", "1"]
    chroma_process.freeze()
    try:
        start = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
        seconds = time.monotonic() - start
    finally:
        chroma_process.thaw()
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("focus: error:") and "did not answer" in lines[0], lines
    # Start-up (imports) dominates; the frozen server itself costs the 1 s deadline of the first call.
    assert seconds < 60


def test_a_stopped_server_is_a_connection_error_and_a_restart_resumes(chroma_process, shapes_dir, minilm):
    store = ImageStore(url=chroma_process.url, collection="restart", embedder=minilm, timeout=TIMEOUT)
    store.add_folder(shapes_dir)
    chroma_process.stop()
    outcome, seconds = _timed(lambda: store.query("a blue square", k=1))
    assert isinstance(outcome, StoreConnectionError) and seconds < TIMEOUT + SLACK, outcome
    outcome, _ = _timed(lambda: ImageStore(url=chroma_process.url, collection="restart", embedder=minilm))
    assert isinstance(outcome, StoreConnectionError) and "cannot reach" in str(outcome)
    chroma_process.start()
    assert store.count() == 6  # the same object reconnects; the data persisted on the server's disk
    assert store.query("a blue square", k=1)[0].id == "blue_square.png"
    assert len(store.add_folder(shapes_dir).skipped_unchanged) == 6


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), "30", True])
def test_bad_timeout_is_an_invalid_option(tmp_path: Path, minilm, bad) -> None:
    with pytest.raises(InvalidOptionError, match="timeout"):
        ImageStore(tmp_path / "s", embedder=minilm, timeout=bad)
