"""Per-example cost of `focus eval` runs, measured on the bench-size model (CPU here; GPUs untested).

Runs each benchmark table's real query builder on its synthetic fixture (focus_integrations.testing.benchmark_data)
and times the harness's own call path (``harness.answer.ask``) on the ~25M-parameter Qwen2.5-VL-shaped bench
model (random weights; its processor sizes the fixtures' small images). Every call emits exactly the tokens asked
(``min_new_tokens`` = ``max_new_tokens``): each query is timed at 1 token (prefill: noise, processor, vision,
prefill, first token) and at ``1 + --tokens`` tokens, and the difference gives the per-token step.

Cost model printed with the table (seconds, per example of the benchmark):

    example(mode) = sum over its queries q of [ prefill(q, mode) + T * step(q, mode) ]

with T the answer length in tokens (about 2 for a letter answer; up to 512 under --protocol reference). A run
costs rows x sum over modes + 0.1 x rows x (1 + |alpha grid|) for the alpha search.

    python benchmarks/bench_harness.py [--benchmarks winoground muirbench] [--tokens 16] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

BENCHMARKS = ("winoground", "vismin", "mantis", "muirbench", "mirb", "vinoground", "mmlongbench")


def measure(name: str, decoder, protocol_name: str, tokens: int, repeats: int, root: Path) -> list[dict]:
    from focus_integrations.harness.answer import ask
    from focus_integrations.harness.benchmarks import get_benchmark
    from focus_integrations.harness.layouts import load_local
    from focus_integrations.harness.spec import RowContext
    from focus_integrations.testing import benchmark_data

    table = get_benchmark(name)
    folder = getattr(benchmark_data, name)(root / name)
    data = load_local(table, folder, {"seed": 42})
    protocol = table.protocol(protocol_name)
    results = []
    for mode in ("vanilla", "focus"):
        prefill, step, queries, images = [], [], 0, []
        for index in range(len(data)):
            rows = table.queries(data.rows[index], protocol, RowContext(str(index), data.root, protocol_name))
            queries += len(rows)
            for query in rows:
                images.append(len(query.images))
                times = []
                for new_tokens in (1, 1 + tokens):
                    # min_new_tokens: exactly new_tokens tokens even for a model that would stop early.
                    options = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
                    best = float("inf")
                    for _ in range(repeats):
                        started = time.process_time()
                        ask(
                            decoder,
                            table,
                            protocol,
                            "generate",
                            query,
                            mode=mode,
                            alpha=0.1,
                            seed=42,
                            options=options,
                        )
                        best = min(best, time.process_time() - started)
                    times.append(best)
                prefill.append(times[0])
                step.append((times[1] - times[0]) / tokens)
        results.append(
            {
                "benchmark": name,
                "mode": mode,
                "queries_per_example": queries / len(data),
                "images_per_query": statistics.mean(images),
                "prefill_s": statistics.mean(prefill),
                "step_s": statistics.mean(step),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=BENCHMARKS)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--protocol", default="reference", choices=("reference", "strict"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many timings per query")
    parser.add_argument(
        "--model",
        default="bench",
        help="bench (the ~25M Qwen2.5-VL-shaped bench model), default (the bundled 1.7M model), a tiny family "
        "name (e.g. llava_onevision) or a checkpoint folder",
    )
    args = parser.parse_args()

    import torch

    from focus_integrations import FocusDecoder
    from focus_integrations.testing import tiny_checkpoint

    torch.set_num_threads(args.threads)
    from focus_integrations import default_model_path
    from focus_integrations.testing import FAMILIES

    if args.model == "bench":
        path, label = (
            tiny_checkpoint("qwen2_5_vl", size="bench"),
            "Qwen2.5-VL-shaped bench model, random weights",
        )
    elif args.model == "default":
        path, label = default_model_path(), "the bundled default model"
    elif args.model in FAMILIES:
        path, label = tiny_checkpoint(args.model), f"tiny {args.model}, random weights"
    else:
        path, label = Path(args.model), args.model
    decoder = FocusDecoder.from_pretrained(path)
    params = sum(p.numel() for p in decoder.model.parameters()) / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tmp) / "cache"))
        for name in args.benchmarks:
            rows += measure(name, decoder, args.protocol, args.tokens, args.repeats, Path(tmp))
            print(f"[measured {name}]", file=sys.stderr, flush=True)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} thread(s), "
        f"CPU-time clock; model {params:.1f}M parameters ({label}); "
        f"protocol {args.protocol}; step from {args.tokens} extra tokens; best of {args.repeats}.\n"
    )
    print(
        "| benchmark | mode | queries / example | images / query | prefill / query (s) | per token (ms) | example at T=2 (s) | example at T=512 (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        q = r["queries_per_example"]

        def at(t: int, r: dict = r, q: float = q) -> float:
            return q * (r["prefill_s"] + t * r["step_s"])

        print(
            f"| {r['benchmark']} | {r['mode']} | {q:.2f} | {r['images_per_query']:.1f} | {r['prefill_s']:.3f} | "
            f"{1000 * r['step_s']:.1f} | {at(2):.2f} | {at(512):.1f} |"
        )


if __name__ == "__main__":
    main()
