"""The GPU suite: FOCUS at real model size on one GPU, and the serving load test, in under 8 minutes.

1. **Real-size architectures** built from their public configs (``benchmarks/configs/*.json``: Qwen2.5-VL-7B,
   LLaVA-OneVision-7B, InternVL3-8B shapes; random bf16 weights, nothing downloaded; sources in
   ``benchmarks/configs/README.md``), each with its real image geometry (448 px -> 256 tokens per image for
   Qwen2.5-VL and InternVL3, 384 px -> 729 for LLaVA-OneVision). For N = 2, 4, 8, 16 images, three ways:
   vanilla (one row, every image clean), FOCUS (this library: N+1 rows, one KV cache, vision once per
   distinct image, prefix sharing) and reference (what the authors' code computes: N+1 rows, fresh noise per
   row, every row's images encoded, every row prefilled in full). Time to first token (call to the first
   decode step: noise, processor, vision, prefill, first token; best of ``--repeats``), time per output token
   (median interval between decode steps) and peak GPU memory above the weights.
2. **Batched vs serial engine** (``bench_batching.py``) on the ~25M-parameter bench model.
3. **The serving load test** at 8 and 32 clients (``bench_serve.py``: batched vs lock-serial server).

A time budget keeps part 1 bounded: configurations still waiting when it runs out are listed as skipped.
``--tiny`` runs everything on CPU in seconds with the SAME code path: the same configs shrunk in width and
depth only (vocabulary, image geometry and token counts kept), N = 2 and 3, and parts 2 and 3 in their tiny
modes. CI runs it (``tests/engine/test_gpu_suite.py``), so the suite is known to work before a GPU exists.

    benchmarks/gpu_suite.sh                      # on the GPU machine (bf16, cuda)
    benchmarks/gpu_suite.sh --tiny               # anywhere, CPU
    python benchmarks/gpu_suite.py --arch qwen2_5_vl_7b --n 2 4 --skip-serve
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PROMPT = "Which image shows a red object? Answer with its number."
METHODS: dict[str, dict[str, Any]] = {
    "vanilla": {"mode": "vanilla"},
    "focus": {"mode": "focus"},
    "reference": {"mode": "focus", "fresh_noise": True, "shared_vision": False, "share_prefix": False},
}


def _qwen_images() -> Any:
    from transformers import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil()  # patch 14, merge 2: 448 px -> 32 x 32 patches -> 256 tokens


def _llava_onevision_images(config: dict[str, Any]) -> Any:
    from transformers import LlavaOnevisionImageProcessorPil

    # 384 px tiles; with several images per prompt each image is one tile of 27 x 27 = 729 tokens.
    return LlavaOnevisionImageProcessorPil(image_grid_pinpoints=config["image_grid_pinpoints"])


def _internvl_images() -> Any:
    from transformers import GotOcr2ImageProcessorPil

    # One 448 px tile per image (no dynamic tiling: several images per prompt), 256 tokens after pixel shuffle.
    return GotOcr2ImageProcessorPil(size={"height": 448, "width": 448}, crop_to_patches=False)


@dataclass(frozen=True)
class Arch:
    """One real-size architecture: its family (processor, chat template), config file and image geometry."""

    family: str
    config: str
    title: str
    image_size: int
    image_processor: Callable[[dict[str, Any]], Any]
    processor_kwargs: dict[str, Any] = field(default_factory=dict)


ARCHS: dict[str, Arch] = {
    "qwen2_5_vl_7b": Arch("qwen2_5_vl", "qwen2_5_vl_7b.json", "Qwen2.5-VL-7B", 448, lambda c: _qwen_images()),
    "llava_onevision_7b": Arch(
        "llava_onevision",
        "llava_onevision_7b.json",
        "LLaVA-OneVision-7B",
        384,
        _llava_onevision_images,
        {"num_image_tokens": 729, "vision_feature_select_strategy": "full"},
    ),
    "internvl3_8b": Arch(
        "internvl",
        "internvl3_8b.json",
        "InternVL3-8B",
        448,
        lambda c: _internvl_images(),
        {"image_seq_length": 256},
    ),
}

# --tiny: width and depth only; the vocabulary, image geometry and hence every token count stay real.
_SMALL_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_window_layers": 2,
}
_SMALL_VISION = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "depth": 2,
    "num_attention_heads": 2,
    "num_heads": 2,
}


def load_config(arch: Arch, ids: dict[str, int], *, tiny: bool) -> dict[str, Any]:
    """The committed config, with the offline tokenizer's special-token ids (and shrunk with ``tiny``)."""
    config = json.loads((HERE / "configs" / arch.config).read_text())
    text = config.get("text_config", config)  # Qwen2.5-VL's published config keeps the text fields on top
    for name, value in ids.items():
        (text if name in ("bos_token_id", "eos_token_id", "pad_token_id") else config)[name] = value
    if tiny:
        text.update({k: v for k, v in _SMALL_TEXT.items() if k in text})
        text["head_dim"] = _SMALL_TEXT["hidden_size"] // _SMALL_TEXT["num_attention_heads"]
        if "mrope_section" in text.get("rope_scaling", {}):
            text["rope_scaling"] = dict(text["rope_scaling"], mrope_section=[2, 3, 3])  # sums to head_dim / 2
        vision = config["vision_config"]
        vision.update({k: v for k, v in _SMALL_VISION.items() if k in vision})
        if "out_hidden_size" in vision:
            vision["out_hidden_size"] = _SMALL_TEXT["hidden_size"]
        if "fullatt_block_indexes" in vision:
            vision["fullatt_block_indexes"] = [1]
    return config


def full_size_parameters(arch: Arch) -> float:
    """Parameters of the real-size config (built on the meta device: no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = json.loads((HERE / "configs" / arch.config).read_text())
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**config))
    return sum(p.numel() for p in model.parameters())


def build_decoder(arch: Arch, *, tiny: bool, device: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    from focus_integrations import FocusDecoder
    from focus_integrations.testing import family_processor

    raw = json.loads((HERE / "configs" / arch.config).read_text())
    processor, ids = family_processor(arch.family, arch.image_processor(raw), **arch.processor_kwargs)
    config = AutoConfig.for_model(**load_config(arch, ids, tiny=tiny))
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    decoder = FocusDecoder(model.eval(), processor, model_name=arch.title)
    return decoder


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(decoder: Any, n: int, method: str, args: argparse.Namespace, image_size: int) -> dict[str, Any]:
    """One configuration: best time to first decode step, median step interval, peak memory above weights."""
    import numpy as np
    import torch
    from PIL import Image

    rng = np.random.default_rng(n)
    images = [
        Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8)) for _ in range(n)
    ]
    ask = dict(images=images, prompt=PROMPT, seed=0, **METHODS[method])
    steps: list[float] = []

    def on_forward(module: Any, fargs: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids")
        if ids is not None and ids.shape[1] == 1:
            _sync(args.device)
            steps.append(time.perf_counter())

    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    # min_new_tokens: random weights never end early, every run decodes exactly its budget.
    decoder.generate(max_new_tokens=2, min_new_tokens=2, **ask)  # warm-up: kernels and allocator
    handle = decoder.model.register_forward_pre_hook(on_forward, with_kwargs=True)
    ttfts, intervals = [], []
    try:
        for _ in range(args.repeats):
            steps.clear()
            _sync(args.device)
            start = time.perf_counter()
            out = decoder.generate(max_new_tokens=args.tokens, min_new_tokens=args.tokens, **ask)
            ttfts.append(steps[0] - start)
            intervals += [b - a for a, b in zip(steps, steps[1:])]
    finally:
        handle.remove()
    return {
        "n": n,
        "method": method,
        "rows": out.settings["n_rows"],
        "prompt_tokens": out.usage.input_tokens,
        "ttft_s": min(ttfts),
        "per_token_ms": 1000 * statistics.median(intervals),
        "peak_mib": (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else None,
    }


def part_real_size(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    dtype = getattr(torch, args.dtype)
    deadline = time.monotonic() + args.budget
    results: dict[str, Any] = {}
    for name in args.arch:
        arch = ARCHS[name]
        started = time.monotonic()
        entry: dict[str, Any] = {"title": arch.title, "rows": [], "skipped": []}
        entry["parameters_full_size"] = full_size_parameters(arch)
        if time.monotonic() > deadline:
            entry["skipped"] = [f"N={n} {m}" for n in args.n for m in METHODS]
            results[name] = entry
            continue
        decoder = build_decoder(arch, tiny=args.tiny, device=args.device, dtype=dtype)
        entry["parameters_built"] = sum(p.numel() for p in decoder.model.parameters())
        entry["build_s"] = time.monotonic() - started
        log(
            f"{arch.title}: built {entry['parameters_built'] / 1e9:.2f}B parameters in {entry['build_s']:.0f} s"
        )
        for n in args.n:
            for method in METHODS:
                if time.monotonic() > deadline:
                    entry["skipped"].append(f"N={n} {method}")
                    continue
                try:
                    row = measure(decoder, n, method, args, arch.image_size)
                except torch.OutOfMemoryError:
                    entry["skipped"].append(f"N={n} {method} (out of memory)")
                    continue
                entry["rows"].append(row)
                log(
                    f"  N={n:2d} {method:9s} rows {row['rows']:2d}  ttft {row['ttft_s']:.3f} s  "
                    f"per token {row['per_token_ms']:.1f} ms  peak {row['peak_mib'] or 0:.0f} MiB"
                )
        del decoder
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
        results[name] = entry
    return results


def run_script(script: str, script_args: list[str], timeout: float) -> dict[str, Any]:
    """Run another benchmark script of this folder; its stdout (a markdown table) and status."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, str(HERE / script), *script_args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        status, output = done.returncode, done.stdout.strip()
        if done.returncode:
            output += "\n\n" + done.stderr.strip()[-2000:]
    except subprocess.TimeoutExpired:
        status, output = "timeout", f"(stopped after {timeout:.0f} s)"
    return {"status": status, "seconds": time.monotonic() - started, "output": output}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# GPU suite ({'tiny mode, CPU' if report['tiny'] else 'real size'})",
        "",
        report["machine"],
        "",
    ]
    for entry in report["real_size"].values():
        built = entry.get("parameters_built")
        lines += [
            f"## {entry['title']} shape: {entry['parameters_full_size'] / 1e9:.2f}B parameters at full size"
            + (f", built here with {built / 1e6:.1f}M" if built is not None and report["tiny"] else ""),
            "",
            "| N | method | rows | prompt tokens | time to first token (s) | per output token (ms) | peak memory above weights (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in entry["rows"]:
            peak = "n/a (CPU)" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"
            lines.append(
                f"| {r['n']} | {r['method']} | {r['rows']} | {r['prompt_tokens']} | {r['ttft_s']:.3f} | "
                f"{r['per_token_ms']:.1f} | {peak} |"
            )
        by = {(r["n"], r["method"]): r for r in entry["rows"]}
        ratios = []
        for n in sorted({r["n"] for r in entry["rows"]}):
            f, v, ref = by.get((n, "focus")), by.get((n, "vanilla")), by.get((n, "reference"))
            if f and v and ref:
                mem = (
                    f"{f['peak_mib'] / max(ref['peak_mib'], 1e-9):.2f}x"
                    if f["peak_mib"] is not None and ref["peak_mib"]
                    else "n/a"
                )
                ratios.append(
                    f"| {n} | {f['per_token_ms'] / v['per_token_ms']:.2f}x | {f['ttft_s'] / ref['ttft_s']:.2f}x | {mem} |"
                )
        if ratios:
            lines += [
                "",
                "| N | FOCUS / vanilla per token | FOCUS / reference time to first token | FOCUS / reference peak memory |",
                "|---|---|---|---|",
                *ratios,
            ]
        if entry["skipped"]:
            lines += ["", f"Skipped (time budget or memory): {', '.join(entry['skipped'])}."]
        lines.append("")
    for key, title in (("batching", "Batched vs serial engine"), ("serve", "Serving load test")):
        part = report.get(key)
        if part is None:
            continue
        lines += [
            f"## {title} (exit status {part['status']}, {part['seconds']:.0f} s)",
            "",
            part["output"],
            "",
        ]
    lines.append(f"Total: {report['seconds']:.0f} s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="CPU, shrunk widths and depths: a smoke run")
    parser.add_argument("--arch", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    parser.add_argument(
        "--n", type=int, nargs="+", default=None, help="images per request (default 2 4 8 16)"
    )
    parser.add_argument("--tokens", type=int, default=None, help="output tokens per run (default 24)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per configuration (default 2)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for part 1 (default 220)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    parser.add_argument("--skip-batching", action="store_true")
    parser.add_argument("--skip-serve", action="store_true")
    parser.add_argument("--out", default=None, help="folder for report.md and report.json")
    args = parser.parse_args(argv)
    tiny = args.tiny
    args.n = args.n or ([2, 3] if tiny else [2, 4, 8, 16])
    args.tokens = args.tokens or (4 if tiny else 24)
    args.repeats = args.repeats or (1 if tiny else 2)
    args.budget = args.budget if args.budget is not None else (600.0 if tiny else 220.0)
    args.device = args.device or ("cpu" if tiny else "cuda")
    args.dtype = args.dtype or ("float32" if args.device == "cpu" else "bfloat16")

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_suite: no CUDA device here; run with --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    machine = (
        f"{torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB)"
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    )
    report: dict[str, Any] = {
        "tiny": tiny,
        "machine": f"Machine: {machine}; torch {torch.__version__}; {args.dtype}; {args.tokens} output tokens; "
        f"time to first token best of {args.repeats}; random weights (timings only, no answers).",
    }

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    started = time.monotonic()
    report["real_size"] = part_real_size(args, log)
    hardware = [] if tiny else ["--device", args.device, "--dtype", args.dtype]
    if not args.skip_batching:
        log("batched vs serial engine ...")
        extra = (
            ["--tiny", "--threads", "1"] if tiny else ["--requests", "8", "--tokens", "32", "--repeats", "1"]
        )
        report["batching"] = run_script("bench_batching.py", [*extra, *hardware], timeout=120 if tiny else 60)
    if not args.skip_serve:
        log("serving load test ...")
        extra = ["--tiny", "--threads", "1", "--clients", "2"] if tiny else ["--clients", "8", "32"]
        report["serve"] = run_script(
            "bench_serve.py", [*extra, "--level-timeout", "30", *hardware], timeout=240 if tiny else 150
        )
    report["seconds"] = time.monotonic() - started
    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(text)
        (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    failed = [k for k in ("batching", "serve") if k in report and report[k]["status"] != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
