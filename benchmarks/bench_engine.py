"""Speed and memory of FOCUS decoding against vanilla decoding and a reference-style implementation.

Builds a ~25M-parameter Qwen2.5-VL-shaped model from its config (random weights, offline; 224 px images ->
64 image tokens each) and, for N = 2, 4, 8 images, measures three ways of answering:

- vanilla:    one row, all N images clean (plain multi-image decoding);
- focus:      this library: N+1 rows in one batch with one KV cache, decoded in lockstep, vision features
              computed once per distinct image (N clean + N noise encodes);
- reference:  what the paper's reference code computes: the same N+1-row batch and KV cache, but fresh noise
              for every row and every row's images encoded (N(N+1) encodes).

For each: time to first token (a 1-token generate: noise, processor, vision, prefill), time per further
output token, vision encoder work (images encoded, seconds), and peak memory (GPU: max allocated; CPU: peak
RSS above the loaded model, each configuration in its own process). Prints a markdown table and the ratios the
targets are stated in. Time to first token is the best of ``--repeats`` runs after a warm-up run; time per output token is the median
interval between consecutive decode steps over all repeats (both robust to other load on the machine).

    python benchmarks/bench_engine.py [--n 2 4 8] [--tokens 32] [--repeats 3] [--device cuda --dtype bfloat16]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

METHODS = {
    "vanilla": {"mode": "vanilla"},
    "focus": {"mode": "focus"},
    "reference": {"mode": "focus", "fresh_noise": True, "shared_vision": False},
}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(
    n_images: int, method: str, tokens: int, repeats: int, device: str, dtype: str, clock: str
) -> dict:
    """One configuration, in this process. Returns the figures as a dict."""
    import numpy as np
    import torch
    from PIL import Image

    # wall: elapsed time. cpu: CPU time of this process, which counts the work done whatever else runs on a
    # shared machine (use with --threads 1, where it equals the elapsed time on an idle machine).
    now = time.process_time if clock == "cpu" else time.perf_counter

    from focus_integrations import FocusDecoder
    from focus_integrations.testing import tiny_checkpoint

    torch.manual_seed(0)
    decoder = FocusDecoder.from_pretrained(
        tiny_checkpoint("qwen2_5_vl", size="bench"), device=device, dtype=dtype
    )
    inner = decoder.model.model
    vision = {"images": 0, "seconds": 0.0}
    original = inner.get_image_features

    @functools.wraps(original)
    def timed(*args, **kwargs):
        sync(device)
        start = now()
        out = original(*args, **kwargs)
        sync(device)
        vision["seconds"] += now() - start
        grid = kwargs.get("image_grid_thw", args[1] if len(args) > 1 else None)
        vision["images"] += int(grid.shape[0]) if grid is not None else 0
        return out

    inner.get_image_features = timed
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)) for _ in range(n_images)]
    ask = dict(images=images, prompt="Which image shows a red object? Answer with its number.", seed=0)
    options = METHODS[method]

    def timed_generate(max_new_tokens: int) -> float:
        sync(device)
        start = now()
        # min_new_tokens: random weights never end early, every run decodes exactly its budget.
        decoder.generate(max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, **ask, **options)
        sync(device)
        return now() - start

    # Per output token: the time from one cached decode step to the next (forward + combine + choose), taken
    # inside the runs, so it does not depend on the noise, processor and prefill around it.
    step_starts: list[float] = []

    def on_forward(module, args, kwargs):
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            sync(device)
            step_starts.append(now())

    rss_loaded = _rss_mb()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    timed_generate(tokens)  # warm-up
    vision.update(images=0, seconds=0.0)
    ttft = min(timed_generate(1) for _ in range(repeats))  # best of: robust to other load on the machine
    vision_per_call = {k: v / repeats for k, v in vision.items()}
    intervals: list[float] = []
    handle = decoder.model.register_forward_pre_hook(on_forward, with_kwargs=True)
    for _ in range(repeats):
        step_starts.clear()
        timed_generate(tokens)
        intervals += [b - a for a, b in zip(step_starts, step_starts[1:])]
    handle.remove()
    per_token = statistics.median(intervals)
    peak = (
        (torch.cuda.max_memory_allocated() - base_gpu) / 2**20
        if device.startswith("cuda")
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_loaded
    )
    return {
        "n": n_images,
        "method": method,
        "rows": 1 if method == "vanilla" else n_images + 1,
        "ttft_s": ttft,
        "per_token_s": per_token,
        "vision_images": vision_per_call["images"],
        "vision_s": vision_per_call["seconds"],
        "peak_mb": peak,
        "params_m": sum(p.numel() for p in decoder.model.parameters()) / 1e6,
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def machine(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads (torch {torch.__version__})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument(
        "--clock", choices=["wall", "cpu"], default="wall", help="elapsed time or process CPU time"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: run one config, print JSON
    args = parser.parse_args()

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.one:
        n, method = args.one.split(":")
        print(
            json.dumps(
                measure(int(n), method, args.tokens, args.repeats, args.device, args.dtype, args.clock)
            )
        )
        return

    from focus_integrations.testing import tiny_checkpoint

    tiny_checkpoint("qwen2_5_vl", size="bench")  # build once before the subprocesses race for it
    rows = []
    for n in args.n:
        for method in METHODS:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                f"{n}:{method}",
                "--tokens",
                str(args.tokens),
                "--repeats",
                str(args.repeats),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--clock",
                args.clock,
            ] + (["--threads", str(args.threads)] if args.threads else [])
            result = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(
                f"  N={n} {method:9s} ttft {r['ttft_s']:.3f}s  per token {1000 * r['per_token_s']:.1f} ms",
                file=sys.stderr,
            )

    by = {(r["n"], r["method"]): r for r in rows}
    lines = [
        f"Machine: {machine(args.device)}; dtype {args.dtype}; model {rows[0]['params_m']:.1f}M parameters "
        f"(Qwen2.5-VL-shaped, random weights), {args.clock} clock, 224x224 images (64 tokens each), {args.tokens} output tokens, "
        f"TTFT best of {args.repeats} runs, per-token median step interval.",
        "",
        "| N | method | rows | time to first token (s) | per output token (ms) | images encoded | vision (s) | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['method']} | {r['rows']} | {r['ttft_s']:.3f} | {1000 * r['per_token_s']:.1f} | "
            f"{r['vision_images']:.0f} | {r['vision_s']:.3f} | {r['peak_mb']:.0f} |"
        )
    lines += [
        "",
        "| N | FOCUS / vanilla per token | FOCUS / reference time to first token | FOCUS / reference peak memory |",
        "|---|---|---|---|",
    ]
    for n in args.n:
        f, v, ref = by[(n, "focus")], by[(n, "vanilla")], by[(n, "reference")]
        lines.append(
            f"| {n} | {f['per_token_s'] / v['per_token_s']:.2f}x | {f['ttft_s'] / ref['ttft_s']:.2f}x | "
            f"{f['peak_mb'] / max(ref['peak_mb'], 1e-9):.2f}x |"
        )
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
