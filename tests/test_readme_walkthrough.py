"""The README's command-line walkthrough, run as written: offline, default model, bundled catalog.

Each command between the ``walkthrough:start`` / ``walkthrough:end`` markers runs in a real subprocess in an
empty folder with its own HOME (so the default store in the home folder is a fresh one), exactly as a user
types it after ``pip install``; ``focus`` is this checkout's console entry point.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- walkthrough:start -->\s*```bash\n(.*?)```\s*<!-- walkthrough:end -->", re.S)


def walkthrough_commands() -> list[list[str]]:
    """The block's commands: continuation lines joined, comments dropped, split as a shell would."""
    match = BLOCK.search((ROOT / "README.md").read_text(encoding="utf-8"))
    assert match, "README.md has no walkthrough block"
    joined = match.group(1).replace("\\\n", " ")
    return [
        shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)
    ]


@pytest.mark.slow
def test_the_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    commands = walkthrough_commands()
    assert [c[:2] for c in commands] == [
        ["focus", "catalog"],
        ["focus", "index"],
        ["focus", "query"],
        ["focus", "query"],
        ["focus", "ask"],
    ]
    env = {k: v for k, v in os.environ.items() if k != "FOCUS_STORE_PATH"}
    env.update(PYTHONPATH=str(ROOT), HOME=str(tmp_path), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    outputs = []
    for command in commands:
        result = subprocess.run(
            [sys.executable, "-m", "focus_integrations.cli", *command[1:]],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=600,
        )
        assert result.returncode == 0, (command, result.stderr)
        for noise in ("Traceback", "Loading weights", "it/s]", "Warning", "warning"):
            assert noise not in result.stderr, (command, result.stderr)
        outputs.append(result)
    catalog, index, retrieve, query, ask = outputs
    from focus_integrations.store import bundled_catalog_path

    photos = len(list(bundled_catalog_path().glob("*.png")))
    assert f"({photos} photos, catalog.json)" in catalog.stdout
    assert f"added {photos}, updated 0, unchanged 0, failed 0; {photos} images in store" in index.stdout
    hits = retrieve.stdout.splitlines()
    assert len(hits) == 3 and "blue circle pendant" in hits[0]
    assert query.stdout.startswith("image 1 :") and len(query.stderr.splitlines()) == 3  # the 3 retrieved
    assert ask.stdout.startswith("image 2 :")
    assert ask.stderr.startswith("[focus: 2 images, 3 rows, ") and ask.stderr.count("\n") == 1
    assert not (tmp_path / ".cache").exists()  # nothing was written outside the folder the commands name
