"""Batched decoding across requests against the lock-serial engine, and continuous vs next-batch joining.

Builds the ~25M-parameter "bench" Qwen2.5-VL (random weights, offline, 224 px images = 64 tokens each; end
tokens ignored so every answer is exactly its budget) and decodes the same FOCUS workload three ways, in
this process, interleaved repeat by repeat so all three see the same machine load:

- serial:  one request at a time, first come first served (what one ``FocusDecoder`` behind its lock does);
- step:    ``BatchRunner(join="step")``: new requests join the running batch at the next step (continuous);
- batch:   ``BatchRunner(join="batch")``: new requests wait until the running batch has drained.

Two workloads: ``burst`` (every request arrives at once, equal budgets) and ``arrivals`` (one request every
``--spacing`` decode steps of a lone request, budgets from --tokens/4 to --tokens). Arrival times are on the
benchmark's own clock; with ``--clock cpu`` that is the CPU time of this process (robust to other jobs on a
shared machine; use it with ``--threads 1``), and idle time until the next arrival is skipped, not waited.
Reports aggregate output tokens/s, mean and p90 time to first token and latency (arrival to last token), the
time spent in decode steps, and the ratios.

    python benchmarks/bench_batching.py --clock cpu --threads 1     # what docs/benchmarks.md shows
    python benchmarks/bench_batching.py --tiny                      # seconds: tiny checkpoint (CI smoke)
    python benchmarks/bench_batching.py --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
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

MODES = ("serial", "step", "batch")
WORKLOADS = ("burst", "arrivals")


class Clock:
    """Elapsed or CPU time, plus the idle gaps skipped until the next arrival."""

    def __init__(self, kind: str, device: str) -> None:
        self._read = time.process_time if kind == "cpu" else time.perf_counter
        self._device = device
        self._skipped = 0.0

    def now(self) -> float:
        if self._device.startswith("cuda"):
            import torch

            torch.cuda.synchronize()
        return self._read() + self._skipped

    def skip_to(self, moment: float) -> None:
        self._skipped += max(0.0, moment - self.now())


def workload(kind: str, args: argparse.Namespace, step_time: float) -> list[dict]:
    """Requests with their arrival time (seconds on the benchmark clock) and budget."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    size = 32 if args.tiny else 224
    requests = []
    for i in range(args.requests):
        images = [
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(args.n)
        ]
        if kind == "burst":
            tokens, arrival = args.tokens, 0.0
        else:
            tokens = int(
                args.tokens // 4
                + (args.tokens - args.tokens // 4) * ((i * 5) % args.requests) / max(1, args.requests - 1)
            )
            # One arrival every --spacing decode steps of a lone request (4: the batch is never empty for long).
            arrival = i * args.spacing * step_time
        requests.append(
            dict(
                arrival=arrival,
                kwargs=dict(
                    images=images,
                    prompt=f"Request {i}: which image shows a red object? Answer with its number.",
                    seed=i,
                    max_new_tokens=max(1, tokens),
                    min_new_tokens=max(1, tokens),  # random weights: no early end, exactly its budget
                ),
            )
        )
    return requests


def run_serial(decoder, requests: list[dict], clock: Clock, origin: float) -> list[dict]:
    results = []
    for request in sorted(requests, key=lambda r: r["arrival"]):
        clock.skip_to(origin + request["arrival"])
        stream = decoder.stream(**request["kwargs"])
        first = None
        for _ in stream:
            first = first if first is not None else clock.now()
        done = clock.now()
        results.append(_result(request, origin, first or done, done, stream.output))
    return results


def run_batched(
    decoder, requests: list[dict], clock: Clock, origin: float, join: str, max_rows: int
) -> list[dict]:
    from focus_integrations.batching import BatchRunner, Sink

    class Timed(Sink):
        def __init__(self, request: dict) -> None:
            self.request, self.first, self.result = request, None, None

        def delta(self, text: str) -> None:
            self.first = self.first if self.first is not None else clock.now()

        def done(self, output) -> None:
            now = clock.now()
            self.result = _result(self.request, origin, self.first or now, now, output)

        def fail(self, error: BaseException) -> None:
            raise error

    runner = BatchRunner(decoder, max_rows=max_rows, join=join)
    pending = sorted(requests, key=lambda r: r["arrival"])
    sinks = []
    with decoder._lock:
        while pending or runner.has_work:
            if not runner.has_work:
                clock.skip_to(origin + pending[0]["arrival"])
            while pending and origin + pending[0]["arrival"] <= clock.now():
                request = pending.pop(0)
                sinks.append(Timed(request))
                runner.submit(sinks[-1], **request["kwargs"])
            runner.run_once()
    return [sink.result for sink in sinks]


def _result(request: dict, origin: float, first: float, done: float, output) -> dict:
    arrival = origin + request["arrival"]
    return {
        "tokens": len(output.token_ids),
        "ttft": first - arrival,
        "latency": done - arrival,
        "done": done,
        "token_ids": output.token_ids,
        "seed": request["kwargs"]["seed"],
    }


class StepClock:
    """Time spent in decode steps (forward passes of one new token per row), via forward hooks."""

    def __init__(self, model, clock: Clock) -> None:
        self.seconds, self._start, self._clock = 0.0, None, clock
        self._handles = [
            model.register_forward_pre_hook(self._before, with_kwargs=True),
            model.register_forward_hook(self._after, with_kwargs=True),
        ]

    def _before(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids")
        self._start = self._clock.now() if ids is not None and ids.shape[1] == 1 else None

    def _after(self, module, args, kwargs, output) -> None:
        if self._start is not None:
            self.seconds += self._clock.now() - self._start

    def close(self) -> float:
        for handle in self._handles:
            handle.remove()
        return self.seconds


def summarise(results: list[dict], start: float) -> dict:
    span = max(r["done"] for r in results) - start
    latencies = sorted(r["latency"] for r in results)
    ttfts = sorted(r["ttft"] for r in results)

    def p90(values: list[float]) -> float:
        return values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))]

    return {
        "tokens_per_s": sum(r["tokens"] for r in results) / span,
        "ttft_mean": statistics.fmean(ttfts),
        "ttft_p90": p90(ttfts),
        "latency_mean": statistics.fmean(latencies),
        "latency_p90": p90(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--n", type=int, default=4, help="images per request (FOCUS rows: n + 1)")
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-rows", type=int, default=64)
    parser.add_argument("--spacing", type=float, default=4.0, help="arrivals: lone decode steps between two")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--tiny", action="store_true", help="tiny checkpoint, few tokens: a smoke run")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--json", default=None, help="also write the figures as JSON to this file")
    args = parser.parse_args()
    if args.tiny:
        args.requests, args.tokens, args.repeats = min(args.requests, 4), min(args.tokens, 6), 1

    import torch

    from focus_integrations import FocusDecoder
    from focus_integrations.testing import tiny_checkpoint

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    decoder = FocusDecoder.from_pretrained(
        tiny_checkpoint("qwen2_5_vl", size="tiny" if args.tiny else "bench"),
        device=args.device,
        dtype=args.dtype,
    )
    clock = Clock(args.clock, args.device)

    # One lone request first: warm-up, and the decode step time the arrival schedule is spaced by.
    probe = workload("burst", args, 0.0)[0]["kwargs"] | {"max_new_tokens": 8, "min_new_tokens": 8}
    decoder.generate(**probe)
    start = clock.now()
    decoder.generate(**probe | {"max_new_tokens": 1, "min_new_tokens": 1})
    first = clock.now() - start
    start = clock.now()
    decoder.generate(**probe)
    step_time = max((clock.now() - start - first) / 7, 1e-4)

    figures: dict[str, dict[str, list[dict]]] = {w: {m: [] for m in MODES} for w in args.workloads}
    mismatches: dict[str, int] = {}  # most answers (of one run) that differ from the serial ones
    for _ in range(args.repeats):
        for kind in args.workloads:
            requests = workload(kind, args, step_time)
            answers = {}
            for mode in MODES:  # interleaved: the three modes see the same load, repeat after repeat
                clock = Clock(args.clock, args.device)
                steps = StepClock(decoder.model, clock)
                start = clock.now()
                if mode == "serial":
                    results = run_serial(decoder, requests, clock, start)
                else:
                    results = run_batched(decoder, requests, clock, start, mode, args.max_rows)
                figures[kind][mode].append(summarise(results, start) | {"decode_s": steps.close()})
                answers[mode] = {r["seed"]: r["token_ids"] for r in results}
            for mode in ("step", "batch"):
                differ = sum(answers[mode][seed] != tokens for seed, tokens in answers["serial"].items())
                mismatches[mode] = max(mismatches.get(mode, 0), differ)

    def med(kind: str, mode: str, key: str) -> float:
        return statistics.median(f[key] for f in figures[kind][mode])

    device = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else (platform.processor() or platform.machine())
    )
    lines = [
        f"Machine: {device}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads (torch {torch.__version__}); "
        f"{args.dtype}; {sum(p.numel() for p in decoder.model.parameters()) / 1e6:.1f}M-parameter Qwen2.5-VL "
        f"({'tiny' if args.tiny else 'bench'}, random weights); {args.requests} FOCUS requests, N={args.n} "
        f"({args.n + 1} rows each), {args.clock} clock, median of {args.repeats} interleaved repeats; "
        f"max_rows {args.max_rows}. "
        + (
            "Every batched answer was checked equal to the serial one."
            if not any(mismatches.values())
            else f"Batched answers that differ from the serial ones (of {args.requests}): {mismatches}."
        ),
        "",
        "| workload | engine | output tokens/s | TTFT mean (s) | TTFT p90 (s) | latency mean (s) | latency p90 (s) | in decode steps (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for kind in args.workloads:
        for mode in MODES:
            lines.append(
                f"| {kind} | {mode} | {med(kind, mode, 'tokens_per_s'):.1f} | {med(kind, mode, 'ttft_mean'):.2f} | "
                f"{med(kind, mode, 'ttft_p90'):.2f} | {med(kind, mode, 'latency_mean'):.2f} | {med(kind, mode, 'latency_p90'):.2f} | "
                f"{med(kind, mode, 'decode_s'):.2f} |"
            )
    lines += [
        "",
        "| workload | step / serial throughput | batch / serial throughput | serial / step time in decode steps | step / batch latency mean | step / batch latency p90 |",
        "|---|---|---|---|---|---|",
    ]
    for kind in args.workloads:
        lines.append(
            f"| {kind} | {med(kind, 'step', 'tokens_per_s') / med(kind, 'serial', 'tokens_per_s'):.2f}x | "
            f"{med(kind, 'batch', 'tokens_per_s') / med(kind, 'serial', 'tokens_per_s'):.2f}x | "
            f"{med(kind, 'serial', 'decode_s') / med(kind, 'step', 'decode_s'):.2f}x | "
            f"{med(kind, 'step', 'latency_mean') / med(kind, 'batch', 'latency_mean'):.2f}x | "
            f"{med(kind, 'step', 'latency_p90') / med(kind, 'batch', 'latency_p90'):.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "figures": figures, "mismatches": mismatches}, indent=1)
        )
    # float32: batching must not change a single token (tests/engine/test_batching.py). In bf16 on a GPU the
    # batch shape changes the rounding of the matrix products, which may flip a near-tied greedy choice.
    if any(mismatches.values()) and args.dtype == "float32":
        raise SystemExit("batched answers differ from the serial ones in float32: the engine is not exact")


if __name__ == "__main__":
    main()
