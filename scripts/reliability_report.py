"""Run the adversarial cases against every entry point and write the table of docs/reliability.md.

    python scripts/reliability_report.py [--write docs/reliability.md] [--no-server] [--scale 1.0]

The cases are the test suite's (``focus_integrations.testing.adversarial`` and ``adversarial_serving``:
hypothesis with ``derandomize``, the same cases every run; the server's and ``focus eval``'s case tables are
run whole), plus the deadline faults: a hostile loopback HTTP server for remote images and a
real ``chroma run`` server that is frozen (SIGSTOP) and stopped. Prints the table; ``--write`` replaces the
table between its markers in the file; exits 1 if any case failed (and lists the failures).
Offline: a tiny random checkpoint (built on first use) and the bundled MiniLM embedder.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # as the test suite: one torch thread (a shared, small machine)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from focus_integrations.testing.adversarial import (  # noqa: E402
    BAD,
    Tally,
    judge,
    quiet,
    run_cli,
    run_engine,
    run_every_bad_option,
    run_images,
    run_langchain,
    run_llama_index,
    run_store,
)
from focus_integrations.testing.adversarial_cli import run_eval_cli, run_serve_cli, run_store_cli  # noqa: E402
from focus_integrations.testing.adversarial_serving import (  # noqa: E402
    run_batch,
    run_call_arguments,
    run_server,
)

START, END = "<!-- reliability-table:start -->", "<!-- reliability-table:end -->"


def deadline_cases(tally: Tally, *, with_server: bool, tmp: Path) -> None:
    """Remote images against a hostile server, and store calls against a frozen / stopped Chroma server."""
    from focus_integrations.images import RemoteImages, load_image
    from focus_integrations.testing.hostile_http import hostile_http_server

    limits = RemoteImages(timeout=1.0, max_bytes=1 << 20)
    with hostile_http_server(drip_interval=0.05) as url:
        for path in ("/drip", "/slow-headers", "/silent", "/loop", "/chain/9", "/to-file", "/huge-length",
                     "/endless", "/not-found", "/not-an-image"):  # fmt: skip
            tally.add(
                judge(
                    "remote images (hostile server, 1 s)",
                    path,
                    BAD,
                    lambda p=path: load_image(url + p, allow_remote=limits),
                    deadline=3.0,
                )
            )
    if not with_server:
        return
    from focus_integrations.store import ImageItem, ImageStore
    from focus_integrations.store.testing import ChromaServerProcess
    from focus_integrations.testing.adversarial import good_image

    server = ChromaServerProcess(tmp / "chroma")
    server.start()
    try:
        store = ImageStore(url=server.url, collection="faults", timeout=1.0, media_dir=tmp / "media")
        store.add_images([ImageItem(good_image(i), id=f"g{i}", caption=f"shape {i}") for i in range(3)])
        calls = {
            "query": lambda: store.query("shape", k=2),
            "get": lambda: store.get(["g0"]),
            "count": store.count,
            "add_images": lambda: store.add_images([ImageItem(good_image(9), id="g9")]),
            "delete": lambda: store.delete(["g1"]),
            "open": lambda: ImageStore(url=server.url, collection="faults", timeout=1.0),
        }
        server.freeze()
        try:
            for name, call in calls.items():
                tally.add(judge("ImageStore (frozen server, 1 s)", name, BAD, call, deadline=8.0))
        finally:
            server.thaw()
        time.sleep(0.5)
        lost = 3 - len(store.get(["g0", "g1", "g2"]))
        tally.add(judge("ImageStore (frozen server, 1 s)", "data after thaw", "good", lambda: None))
        tally.outcomes[-1].lost_good = lost
        server.stop()
        for name, call in calls.items():
            tally.add(judge("ImageStore (stopped server)", name, BAD, call, deadline=8.0))
    finally:
        server.stop()


def _commit() -> str:
    """The checkout's commit (and ``+changes`` when the work tree differs from it)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True)  # fmt: skip
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" +changes" if dirty.stdout.strip() else "") or "unknown"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def markdown(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row[c]) for c in columns) + " |")
    total = {c: sum(r[c] for r in rows) for c in columns if c not in ("entry point", "slowest (s)")}
    lines.append(
        "| **all** | " + " | ".join(f"**{total[c]}**" if c in total else "" for c in columns[1:]) + " |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, default=None, help="file whose table to replace")
    parser.add_argument("--no-server", action="store_true", help="skip the real chroma run fault cases")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of cases")
    parser.add_argument("--note", default="", help="a sentence about the machine, printed under the table")
    args = parser.parse_args(argv)

    from focus_integrations import FocusDecoder
    from focus_integrations.testing import tiny_checkpoint

    def n(count: int) -> int:
        return max(1, round(count * args.scale))

    tally = Tally()
    started = time.monotonic()
    checkpoint = str(tiny_checkpoint("qwen2_5_vl"))
    decoder = FocusDecoder.from_pretrained(checkpoint)
    with quiet(), tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        from focus_integrations.store import ImageStore

        run_engine(decoder, tally, n(40))
        run_every_bad_option(decoder, tally)
        run_langchain(decoder, tally, n(25))
        run_llama_index(decoder, tally, n(25))
        run_store(ImageStore(tmp / "store", media_dir=tmp / "media"), tmp, tally, n(30))
        run_images(tally, n(60))
        run_cli(checkpoint, tmp, tally, n(10))
        run_call_arguments(decoder, tally)
        run_batch(decoder, tally, n(20))
        run_server(decoder, tmp, tally)
        run_eval_cli(tmp, tally)
        run_store_cli(tmp, tally)
        run_serve_cli(checkpoint, tally)
        deadline_cases(tally, with_server=not args.no_server, tmp=tmp)
    table = markdown(tally.rows())
    stamp = (
        f"\n\n{len(tally.outcomes)} cases in {time.monotonic() - started:.0f} s wall "
        f"(`python scripts/reliability_report.py`; failures listed below the table when there are any), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {_commit()}, "
        f"{platform.machine()} Linux, {os.cpu_count()} CPUs, torch threads {_torch_threads()}. {args.note}\n"
    )
    failures = tally.failures()
    listing = "".join(
        f"\n- {o.entry}: `{o.case[:100]}` ({'bad input' if o.label == BAD else o.label}) -> {o.result}"
        f"{' ' + ' '.join(o.detail.split())[:140] if o.detail else ''}{f', {o.lost_good} good lost' if o.lost_good else ''}"
        for o in failures
    )
    print(table + stamp + listing)
    if args.write is not None:
        text = args.write.read_text()
        before, _, rest = text.partition(START)
        _, _, after = rest.partition(END)
        args.write.write_text(before + START + "\n" + table + stamp + listing + "\n" + END + after)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
