"""Adversarial cases of the command-line entry points, judged like the library's (``adversarial.judge``).

A bad input must end as ONE ``focus: error: ...`` line on stderr with status 2 (``adversarial.
run_cli_in_process``); a good one runs (status 0).

* ``run_eval_cli``: ``focus eval winoground --data`` on the bundled default model: wrong layouts, a missing
  column, a corrupt or empty parquet, bad options.
* ``run_store_cli``: ``focus index`` / ``focus query`` with bad stores, folders and arguments.
* ``run_serve_cli``: ``focus serve`` with bad flags, each in its own process (a flag that is wrongly accepted
  starts a server: it is killed at the deadline and counted as an accepted bad input).

``focus ask`` is in ``adversarial`` (its cases are drawn with hypothesis).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from focus_integrations.testing.adversarial import CliRefusal, Tally, judge, run_cli_in_process
from focus_integrations.testing.adversarial_cases import BAD, EITHER, GOOD, good_image

SERVE_DEADLINE_S = 60.0  # one `focus serve` process: start, read the flags, refuse them


def _eval_fixtures(tmp: Path) -> dict[str, Path]:
    """Winoground in its layout, and broken copies of it (missing column, corrupt parquet, wrong layouts)."""
    import pyarrow.parquet as pq

    from focus_integrations.testing import benchmark_data

    good = benchmark_data.winoground(tmp / "wino", n=3)
    (parquet,) = sorted(good.rglob("*.parquet"))
    relative = parquet.relative_to(good)
    broken: dict[str, Path] = {"good": good}

    def copy(name: str) -> Path:
        target = tmp / name
        shutil.copytree(good, target)
        return target

    missing = copy("missing-column")
    table = pq.read_table(missing / relative)
    pq.write_table(table.drop(["caption_1"]), missing / relative)
    broken["missing column caption_1"] = missing
    wrong_type = copy("wrong-type-column")
    table = pq.read_table(wrong_type / relative)
    index = table.column_names.index("caption_0")
    import pyarrow as pa

    numbers = pa.array(list(range(table.num_rows)), type=pa.int64())
    pq.write_table(table.set_column(index, "caption_0", numbers), wrong_type / relative)
    broken["caption_0 holds numbers"] = wrong_type  # EITHER: column types are not checked (read as text)
    corrupt = copy("corrupt-parquet")
    (corrupt / relative).write_bytes(b"PAR1" + bytes(200))
    broken["corrupt parquet"] = corrupt
    empty = tmp / "empty"
    empty.mkdir()
    broken["empty folder"] = empty
    broken["missing folder"] = tmp / "nope"
    a_file = tmp / "a-file.txt"
    a_file.write_text("not a folder")
    broken["a file"] = a_file
    broken["another benchmark's layout"] = benchmark_data.mantis(tmp / "mantis")
    no_rows = copy("no-rows")
    pq.write_table(pq.read_table(no_rows / relative).slice(0, 0), no_rows / relative)
    broken["zero rows"] = no_rows
    return broken


def run_eval_cli(tmp: Path, tally: Tally) -> None:
    """``focus eval winoground`` in-process on the bundled default model: a run (status 0) for good inputs,
    one ``focus: error:`` line with status 2 for bad ones."""
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp / "hf-datasets-cache"))
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    from focus_integrations import cli

    data = _eval_fixtures(tmp / "eval-data")
    fast = ["--limit", "2", "--max-new-tokens", "2", "--alpha", "0.1"]
    good = str(data["good"])
    a_file = tmp / "eval-data" / "out-is-a-file"
    a_file.write_text("x")
    cases: list[tuple[str, list[str], str]] = [
        ("good", ["--data", good, *fast], GOOD),
        ("good, alpha search", ["--data", good, "--limit", "2", "--max-new-tokens", "2",
                                "--alpha-grid", "0.1", "0.5", "--val-fraction", "0.5"], GOOD),
        ("good, modes vcd", ["--data", good, *fast, "--modes", "vanilla", "vcd"], GOOD),
        ("good, shard 1/2", ["--data", good, *fast, "--shard", "1/2"], GOOD),
    ]  # fmt: skip
    cases += [
        (name, ["--data", str(path), *fast], EITHER if "holds numbers" in name else BAD)
        for name, path in data.items()
        if name != "good"
    ]
    bad_flags = [
        ["--alpha", "inf"], ["--alpha", "nan"], ["--alpha", "-1"], ["--alpha", "abc"],
        ["--alpha-grid", "nan", "0.1"], ["--alpha-grid", "-0.5"], ["--vcd-alpha", "nan"], ["--vcd-alpha", "-1"],
        ["--val-fraction", "1.5"], ["--val-fraction", "-0.1"], ["--val-fraction", "nan"],
        ["--limit", "0"], ["--limit", "-1"], ["--shard", "2/2"], ["--shard", "0/0"], ["--shard", "-1/2"],
        ["--shard", "x"], ["--seed", "-1"], ["--seed", str(2**70)], ["--max-new-tokens", "0"],
        ["--max-new-tokens", "-3"], ["--category", "no-such-category"], ["--modes", "greedy"],
        ["--protocol", "bogus"], ["--noise", "bogus"], ["--model", str(tmp / "no-such-model")],
        ["--device", "no-such-device"], ["--dtype", "float7"], ["--out", str(a_file)],
    ]  # fmt: skip
    for flags in bad_flags:
        cases.append(
            (" ".join(flags), ["--data", good, "--limit", "2", "--max-new-tokens", "2", *flags], BAD)
        )

    for serial, (name, args, label) in enumerate(cases):
        argv = ["eval", "winoground", *args]
        if "--out" not in args:
            argv += ["--out", str(tmp / "eval-runs" / f"run-{serial}")]

        def call(argv: list[str] = argv) -> Any:
            return run_cli_in_process(cli.main, argv)

        tally.add(judge("CLI (focus eval)", name, label, call))


def run_store_cli(tmp: Path, tally: Tally) -> None:
    """``focus index`` and ``focus query`` in-process on an embedded store of three good images."""
    from focus_integrations import cli

    folder = tmp / "store-cli-images"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        good_image(40 + i).save(folder / f"shape-{i}.png")
    store = str(tmp / "store-cli-store")
    a_file = tmp / "store-cli-a-file"
    a_file.write_text("x")
    cases: list[tuple[str, list[str], str]] = [
        ("index a folder", ["index", str(folder), "--store", store, "--no-progress"], GOOD),
        ("query", ["query", "a shape", "--store", store, "--retrieve-only"], GOOD),
        ("query --k 2 --where", ["query", "a shape", "--store", store, "--retrieve-only", "--k", "2",
                                 "--where", '{"focus_source": {"$ne": "x"}}'], EITHER),
        ("index a missing folder", ["index", str(tmp / "nope"), "--store", store], BAD),
        ("index a file as the folder", ["index", str(a_file), "--store", store], BAD),
        ("index into a file as the store", ["index", str(folder), "--store", str(a_file)], BAD),
        ("index --batch-size 0", ["index", str(folder), "--store", store, "--batch-size", "0"], BAD),
        ("index --chroma-timeout nan", ["index", str(folder), "--chroma-url", "http://127.0.0.1:9",
                                        "--chroma-timeout", "nan"], BAD),
        ("index --chroma-timeout -1", ["index", str(folder), "--chroma-url", "http://127.0.0.1:9",
                                       "--chroma-timeout", "-1"], BAD),
        ("index a stopped server", ["index", str(folder), "--chroma-url", "http://127.0.0.1:9",
                                    "--chroma-timeout", "2"], BAD),
        ("index a bad collection name", ["index", str(folder), "--store", store, "--collection", "a"], BAD),
        ("index --embedder bogus", ["index", str(folder), "--store", str(tmp / "s2"), "--embedder", "bogus"], BAD),
        ("query a missing store", ["query", "red", "--store", str(tmp / "no-store"), "--retrieve-only"], BAD),
        ("query --k 0", ["query", "red", "--store", store, "--retrieve-only", "--k", "0"], BAD),
        ("query --k -1", ["query", "red", "--store", store, "--retrieve-only", "--k", "-1"], BAD),
        ("query --where not JSON", ["query", "red", "--store", store, "--retrieve-only", "--where", "{x"], BAD),
        ("query --where a list", ["query", "red", "--store", store, "--retrieve-only", "--where", "[1]"], BAD),
        ("query --where bad operator", ["query", "red", "--store", store, "--retrieve-only",
                                        "--where", '{"$bogus": 1}'], BAD),
        ("query empty text", ["query", "", "--store", store, "--retrieve-only"], BAD),
        ("query --like a missing image", ["query", "red", "--store", store, "--retrieve-only",
                                          "--like", str(tmp / "nope.png")], BAD),
        ("query --like a corrupt image", ["query", "red", "--store", store, "--retrieve-only",
                                          "--like", str(a_file)], BAD),
        ("query --collection missing", ["query", "red", "--store", store, "--retrieve-only",
                                        "--collection", "no-such-collection"], BAD),
    ]  # fmt: skip
    for name, argv, label in cases:
        entry = "CLI (focus index)" if argv[0] == "index" else "CLI (focus query)"
        tally.add(judge(entry, name, label, lambda argv=argv: run_cli_in_process(cli.main, argv)))


def run_serve_cli(model_path: str, tally: Tally, only: int | None = None) -> None:
    """``focus serve`` with bad flags: each must be refused before the model loads or a socket opens.
    ``only``: the first ``only`` cases (each costs a process start)."""
    base = ["serve", "--model", model_path, "--host", "127.0.0.1"]
    bad_flags = [
        ["--port", "99999"], ["--remote-image-timeout", "nan"], ["--port", "-1"], ["--port", "x"],
        ["--engine", "bogus"], ["--max-rows", "0"], ["--join", "bogus"], ["--max-images-per-request", "0"],
        ["--max-request-bytes", "-1"], ["--max-total-tokens", "1"], ["--remote-image-timeout", "0"],
        ["--remote-image-max-bytes", "0"], ["--remote-image-max-redirects", "-1"],
        ["--allowed-local-media-path", "/nonexistent/folder"], ["--alpha", "inf"], ["--mode", "greedy"],
        ["--model", "/nonexistent/model"],
    ]  # fmt: skip
    for flags in bad_flags[:only]:
        argv = [*base, *flags]
        tally.add(
            judge("CLI (focus serve)", " ".join(flags), BAD, lambda argv=argv: _serve(argv), SERVE_DEADLINE_S)
        )


def _serve(argv: list[str]) -> int:
    """``focus serve`` in a process of its own; a server still running before the deadline is killed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "focus_integrations.cli", *argv]
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SERVE_DEADLINE_S - 10)
    except subprocess.TimeoutExpired:
        return 0  # it served: the flags were accepted
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == 2 and len(lines) == 1 and lines[0].startswith("focus: error:"):
        raise CliRefusal(lines[0])
    raise AssertionError(f"status {done.returncode}, stderr: {lines[-4:]}")
