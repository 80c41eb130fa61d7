"""Load test of ``focus serve``: batched vs lock-serial engine, FOCUS with N=4 images, on loopback.

Starts one server process per engine (the ~25M-parameter "bench" Qwen2.5-VL, random weights; requests ask
for ``min_new_tokens`` = ``max_tokens`` so every answer is exactly ``--tokens`` long) and, for each number of
concurrent clients, runs the serial and the batched engine one after the other (interleaved, so both see the
same machine load), then:

- aggregate output tokens/s (all completion tokens / wall time of the level) and p50 / p99 latency;
- after each level, the batched / serial ratios of tokens/s and p99 latency; at the end a one-line verdict
  for issue 12's CPU target (8 clients: at least 1.5x the serial tokens/s, p99 no worse than serial);
- a check under ``--check-clients`` concurrent clients: every request has its own images, and every answer
  of the batched server must equal that request's solo answer (each request decoded alone, one at a time,
  by the serial engine first) - no dropped, duplicated or mixed-up answers;
- overload: a burst of 3x the server's queue limit (small requests: one 32 px image, one token) answers 200
  or 429 (with Retry-After), never a 5xx or a dropped connection.

Bounded: each level sends at most ``max(4, clients)`` requests and stops launching new ones after
``--level-timeout`` seconds; the whole run keeps within ``--max-minutes`` (default 14): levels start only
in its first 60% (later ones are skipped, and said so), the check's phases share the rest; every HTTP call
has a timeout. Loopback only. The full default run takes about 8-9 minutes on an idle 2-core CPU.

    python benchmarks/bench_serve.py                       # the full table (1..32 clients)
    python benchmarks/bench_serve.py --clients 8 32        # what the GPU suite runs
    python benchmarks/bench_serve.py --clients 8 --tokens 128 --check-clients 8   # longer answers
    python benchmarks/bench_serve.py --tiny                # seconds: the tiny checkpoint, CI's smoke run
    python benchmarks/bench_serve.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ENGINES = ("serial", "batched")
MODEL_ID = "bench"


# ---------------------------------------------------------------------------------------------- server child


def serve_child(args: argparse.Namespace) -> None:
    """The server process: load the model, ignore end-of-text, serve with the chosen engine."""
    import torch
    import uvicorn

    from focus_integrations import FocusDecoder
    from focus_integrations.server import Limits, ServerConfig, create_app, make_engine

    if args.threads:
        torch.set_num_threads(args.threads)
    decoder = FocusDecoder.from_pretrained(args.model_path, device=args.device, dtype=args.dtype)
    join = args.join if args.engine == "batched" else None
    engine = make_engine(decoder, args.engine, max_rows=args.max_rows, join=join)
    limits = Limits(max_queued_requests=args.queue, max_output_tokens=max(args.tokens, 16))
    app = create_app(engine, ServerConfig(model_id=MODEL_ID, limits=limits))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


def server_process(args: argparse.Namespace, engine: str, queue: int, port: int):
    """The server child for ``engine`` on ``port`` (a context manager: ready on entry, stopped on exit)."""
    from focus_integrations.testing.http_process import http_process

    command = [sys.executable, __file__, "--serve-child", "--engine", engine, "--port", str(port)]
    command += ["--model-path", args.model_path, "--queue", str(queue), "--tokens", str(args.tokens)]
    for flag in ("threads", "device", "dtype", "max_rows", "join"):
        value = getattr(args, flag)
        if value is not None:
            command += [f"--{flag.replace('_', '-')}", str(value)]
    env = {"PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return http_process(command, f"http://127.0.0.1:{port}/health", env=env, timeout=300)


# ---------------------------------------------------------------------------------------------- requests


def request_images(index: int, n_images: int, size: int) -> list[str]:
    """Request ``index``'s own images (distinct per request and per slot), as PNG data URIs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1000 + index)
    uris = []
    for _ in range(n_images):
        base = rng.integers(0, 256, size=3)
        pixels = np.clip(base + rng.integers(-40, 40, size=(size // 8, size // 8, 3)), 0, 255).astype("uint8")
        image = Image.fromarray(pixels).resize((size, size), Image.NEAREST)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        uris.append("data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    return uris


def body(images: list[str], tokens: int, index: int) -> dict:
    content = [{"type": "image_url", "image_url": {"url": url}} for url in images]
    # The request's number in its text too: answers differ per request, so a mix-up cannot go unseen.
    content.append({"type": "text", "text": f"Order {index}: which of these products is the cheapest?"})
    return {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": tokens,
        "min_new_tokens": tokens,  # random weights: no early end token, every answer is exactly max_tokens
        "seed": 0,
        "mode": "focus",
    }


async def one(client, url: str, payload: dict) -> tuple[float, dict | None, int]:
    started = time.perf_counter()
    response = await client.post(f"{url}/v1/chat/completions", json=payload)
    elapsed = time.perf_counter() - started
    return elapsed, (response.json() if response.status_code == 200 else None), response.status_code


async def level(url: str, payloads: list[dict], clients: int, timeout: float) -> dict:
    """``clients`` concurrent clients, each sending requests back to back until ``payloads`` run out."""
    import httpx

    todo = list(enumerate(payloads))
    results: list[tuple[int, float, dict | None, int]] = []
    deadline = time.monotonic() + timeout

    async def client_loop(client: httpx.AsyncClient) -> None:
        while todo and time.monotonic() < deadline:
            index, payload = todo.pop(0)
            elapsed, answer, status = await one(client, url, payload)
            results.append((index, elapsed, answer, status))

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=timeout + 60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.perf_counter() - started
    ok = [r for r in results if r[3] == 200]
    latencies = sorted(r[1] for r in ok)
    tokens = sum(r[2]["usage"]["completion_tokens"] for r in ok)
    return {
        "clients": clients,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "tokens": tokens,
        "wall_s": wall,
        "tokens_per_s": tokens / wall if wall else 0.0,
        "p50_s": _percentile(latencies, 50),
        "p99_s": _percentile(latencies, 99),
        "answers": {r[0]: r[2]["choices"][0]["message"]["content"] for r in ok},
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else values[-1]


def small_request(tokens: int = 1) -> dict:
    """A cheap request (one 32 px image, ``tokens`` tokens) for the overload burst: 429s are what it tests."""
    return body(request_images(0, 1, 32), tokens, 0)


def compare_answers(
    mine: dict[int, str], theirs: dict[int, str], requests: int, *, exact: bool = True
) -> dict:
    """Solo answers ``mine`` against concurrent answers ``theirs`` (request index -> text).

    ``swapped``: a concurrent answer that is another request's solo answer and not its own (a mix-up).
    ``exact=False`` (bf16/fp16: batch-size-dependent kernels round differently, so a few answers may drift
    with no fault of the server) reports differing answers without failing on them; dropped and swapped
    answers fail either way.
    """
    mismatched = [i for i in range(requests) if theirs.get(i) != mine.get(i)]
    swapped = [i for i in mismatched if theirs.get(i) in {a for a in mine.values() if a != mine.get(i)}]
    answered = len(theirs) == len(mine) == requests
    return {
        "requests": requests,
        "solo_answered": len(mine),
        "concurrent_answered": len(theirs),
        "mismatched": len(mismatched),
        "swapped": len(swapped),
        "distinct_answers": len(set(mine.values())),
        "exact": exact,
        "ok": answered and not swapped and (not mismatched or not exact),
    }


async def overload(url: str, payload: dict, burst: int, timeout: float) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=burst + 4)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/v1/chat/completions", json=payload) for _ in range(burst)),
            return_exceptions=True,
        )
    statuses = [r.status_code if isinstance(r, httpx.Response) else type(r).__name__ for r in responses]
    retry_after = all(
        "retry-after" in r.headers
        for r in responses
        if isinstance(r, httpx.Response) and r.status_code == 429
    )
    return {
        "burst": burst,
        "ok": statuses.count(200),
        "rejected_429": statuses.count(429),
        "other": [s for s in statuses if s not in (200, 429)],
        "retry_after_on_every_429": retry_after,
    }


# ---------------------------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict:
    from focus_integrations.server.engines import batched_engine_available
    from focus_integrations.testing import tiny_checkpoint

    args.model_path = args.model_path or str(
        tiny_checkpoint("qwen2_5_vl") if args.tiny else tiny_checkpoint("qwen2_5_vl", size="bench")
    )
    engines = [e for e in ENGINES if e == "serial" or batched_engine_available()]
    queue = max(args.check_clients, max(args.clients)) + 8
    from focus_integrations.testing.http_process import free_port

    started = time.monotonic()
    end = started + 60 * args.max_minutes  # the whole run, servers' start included
    deadline = started + 0.6 * 60 * args.max_minutes  # no level starts after this: the rest is the check's

    def budget(share: float) -> float:
        """Seconds for one check phase: ``share`` of what is left, at most --level-timeout, at least 30."""
        return max(30.0, min(args.level_timeout, share * (end - time.monotonic())))

    urls = {}
    with contextlib.ExitStack() as stack:
        for engine in engines:
            port = free_port()
            stack.enter_context(server_process(args, engine, queue, port))
            urls[engine] = f"http://127.0.0.1:{port}"
        variants = [
            body(request_images(i, args.images, args.image_size), args.tokens, i)
            for i in range(args.check_clients)
        ]
        report: dict = {
            "machine": machine(args),
            "engines": engines,
            "queue": queue,
            "levels": [],
            "skipped_levels": [],
            "check": {},
            "overload": {},
        }
        for engine in engines:  # the first request of a process pays one-off costs: not in any level
            asyncio.run(level(urls[engine], [body(_images_of(variants[0]), 2, 0)], 1, args.level_timeout))
        for clients in args.clients:
            if time.monotonic() > deadline:
                report["skipped_levels"].append(clients)
                print(
                    f"{clients:>3} clients: skipped (--max-minutes {args.max_minutes} spent)", file=sys.stderr
                )
                continue
            count = max(4, clients)
            payloads = [variants[i % len(variants)] for i in range(count)]
            pair = {}
            for engine in engines:  # interleaved: serial, batched, serial, ...
                load = os.getloadavg()[0]
                result = asyncio.run(level(urls[engine], payloads, clients, args.level_timeout))
                result.pop("answers")
                report["levels"].append({"engine": engine, "load_average": load, **result})
                pair[engine] = result
                print(_row(engine, result), file=sys.stderr, flush=True)
            if len(pair) == 2:
                print(
                    f"{clients:>3} clients  ratio: {_ratio_text(pair['serial'], pair['batched'])}",
                    file=sys.stderr,
                )
        check_payloads = [body(_images_of(v), args.check_tokens, i) for i, v in enumerate(variants)]
        exact = (args.dtype or "float32") in ("float32", "fp32", "torch.float32")
        # The reference: each request alone, one at a time, on the lock-serial engine (FocusDecoder's decode).
        # Shares of the time left: the solo pass and the concurrent pass take about the same; overload little.
        solo = asyncio.run(level(urls["serial"], check_payloads, 1, budget(0.5)))["answers"]
        for engine in engines:
            if engine != "serial":
                together = asyncio.run(level(urls[engine], check_payloads, len(check_payloads), budget(0.8)))
                report["check"][engine] = compare_answers(
                    solo, together["answers"], len(check_payloads), exact=exact
                )
            report["overload"][engine] = asyncio.run(
                overload(urls[engine], small_request(), 3 * queue, budget(0.5))
            )
        if len(engines) == 1:  # no batched engine: the serial engine's own answers, all at once
            together = asyncio.run(level(urls["serial"], check_payloads, len(check_payloads), budget(0.8)))
            report["check"]["serial"] = compare_answers(
                solo, together["answers"], len(check_payloads), exact=exact
            )
        return report


TARGET_CLIENTS, TARGET_RATIO = 8, 1.5  # issue 12, the 2-core CPU target


def _ratio_text(serial: dict, batched: dict) -> str:
    speed = batched["tokens_per_s"] / serial["tokens_per_s"] if serial["tokens_per_s"] else float("nan")
    p99 = batched["p99_s"] / serial["p99_s"] if serial["p99_s"] else float("nan")
    return (
        f"batched/serial tokens/s {speed:.2f}x; p99 batched {batched['p99_s']:.2f} s vs serial "
        f"{serial['p99_s']:.2f} s ({p99:.2f}x, {'no worse' if p99 <= 1 else 'WORSE'})"
    )


def verdict(report: dict) -> str:
    """One line: does the batched engine meet the 8-client target (>= 1.5x tokens/s, p99 no worse)?"""
    by = {(r["engine"], r["clients"]): r for r in report["levels"]}
    serial, batched = by.get(("serial", TARGET_CLIENTS)), by.get(("batched", TARGET_CLIENTS))
    if serial is None or batched is None:
        return f"verdict: not measured ({TARGET_CLIENTS} clients not in this run, or no batched engine)"
    speed = batched["tokens_per_s"] / serial["tokens_per_s"] if serial["tokens_per_s"] else float("nan")
    met = speed >= TARGET_RATIO and batched["p99_s"] <= serial["p99_s"]
    return (
        f"verdict: {TARGET_CLIENTS} clients target (>= {TARGET_RATIO}x serial tokens/s, p99 no worse) "
        f"{'MET' if met else 'NOT MET'}: {speed:.2f}x tokens/s, p99 {batched['p99_s']:.2f} s vs "
        f"{serial['p99_s']:.2f} s (load average {batched.get('load_average', float('nan')):.1f})"
    )


def _images_of(payload: dict) -> list[str]:
    return [p["image_url"]["url"] for p in payload["messages"][0]["content"] if p["type"] == "image_url"]


def _row(engine: str, r: dict) -> str:
    return (
        f"{r['clients']:>3} clients {engine:>7}: {r['tokens_per_s']:7.1f} tok/s  p50 {r['p50_s']:6.2f} s  "
        f"p99 {r['p99_s']:6.2f} s  ({r['requests']} requests, {r['errors']} errors)"
    )


def machine(args: argparse.Namespace) -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads_per_server": args.threads or torch.get_num_threads(),
        "device": args.device or "cpu",
        "dtype": args.dtype or "float32",
        "model": "tiny qwen2_5_vl" if args.tiny else "bench qwen2_5_vl (~25M params)",
        "images_per_request": args.images,
        "image_size": args.image_size,
        "output_tokens": args.tokens,
        "load_average": os.getloadavg()[0],
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"Machine: {m['platform']}, {m['cpus']} CPUs, torch {m['torch']}, {m['threads_per_server']} threads per server, "
        f"{m['device']} {m['dtype']}; model {m['model']}; FOCUS with {m['images_per_request']} images of "
        f"{m['image_size']} px per request, {m['output_tokens']} output tokens; load average (1 min) at start {m['load_average']:.1f}, at the end "
        f"{m.get('load_average_end', float('nan')):.1f}.",
        "",
        "| clients | engine | requests | output tokens/s | p50 latency (s) | p99 latency (s) | errors | load average |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["levels"]:
        lines.append(
            f"| {r['clients']} | {r['engine']} | {r['requests']} | {r['tokens_per_s']:.1f} | {r['p50_s']:.2f} | "
            f"{r['p99_s']:.2f} | {r['errors']} | {r.get('load_average', float('nan')):.1f} |"
        )
    if "batched" in report["engines"]:
        lines += ["", "| clients | batched / serial tokens/s | batched / serial p99 |", "|---|---|---|"]
        by = {(r["engine"], r["clients"]): r for r in report["levels"]}
        for clients in sorted({r["clients"] for r in report["levels"]}):
            s, b = by[("serial", clients)], by[("batched", clients)]
            lines.append(
                f"| {clients} | {b['tokens_per_s'] / s['tokens_per_s']:.2f}x | {b['p99_s'] / s['p99_s']:.2f}x |"
            )
    if report.get("skipped_levels"):
        lines += ["", f"Skipped (time budget spent): {report['skipped_levels']} clients."]
    lines.append("")
    for engine, check in report["check"].items():
        lines.append(
            f"- {engine}: {check['requests']} concurrent requests, {check['concurrent_answered']} answered, "
            f"{check['mismatched']} differ from their solo answer (the serial engine's, one at a time), "
            f"{check['swapped']} are another request's "
            f"({check['distinct_answers']} distinct solo answers"
            + ("" if check.get("exact", True) else "; reduced precision: differences reported, not failed")
            + ")"
        )
    for engine, result in report["overload"].items():
        lines.append(
            f"- {engine} overload: burst of {result['burst']} at a queue of {report['queue']}: "
            f"{result['ok']} answered, {result['rejected_429']} got 429 (Retry-After on every one: "
            f"{result['retry_after_on_every_429']}), other outcomes: {result['other'] or 'none'}"
        )
    lines += ["", verdict(report)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, nargs="+", default=None, help="default 1 2 4 8 16 32 (tiny: 1 2 4)"
    )
    parser.add_argument("--tokens", type=int, default=32, help="output tokens per request")
    parser.add_argument("--images", type=int, default=4, help="images per request (FOCUS N)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--check-clients", type=int, default=64)
    parser.add_argument("--check-tokens", type=int, default=8)
    parser.add_argument(
        "--level-timeout", type=float, default=300.0, help="seconds per level (then no new requests)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per server (default: torch's)"
    )
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--max-rows", type=int, default=None, help="batched engine row cap")
    parser.add_argument("--join", choices=("step", "batch"), default=None, help="batched engine joining")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=14.0,
        help="time budget of the whole run: levels start only in its first 60%%, the check shares the rest",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoint, few requests: a smoke run")
    parser.add_argument("--json", default=None, help="also write the report here")
    # server child (internal)
    parser.add_argument("--serve-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--queue", type=int, default=64, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_child:
        serve_child(args)
        return 0
    if args.clients is None:
        args.clients = [1, 2, 4] if args.tiny else [1, 2, 4, 8, 16, 32]
    if args.tiny:
        args.tokens, args.check_clients, args.check_tokens = (
            min(args.tokens, 6),
            min(args.check_clients, 8),
            4,
        )
        args.images, args.image_size = min(args.images, 2), 32
    report = run(args)
    report["machine"]["load_average_end"] = os.getloadavg()[0]
    print(markdown(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    failures = [e for e, c in report["check"].items() if not c["ok"]]
    failures += [e for e, o in report["overload"].items() if o["other"] or not o["retry_after_on_every_429"]]
    failures += [f"{r['engine']}@{r['clients']}" for r in report["levels"] if r["errors"]]
    if failures:
        print(f"bench_serve: FAILED checks: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
