"""``focus eval <benchmark>``, ``focus eval report``, ``focus eval merge``: the harness's command line.

    focus eval muirbench --model Qwen/Qwen2.5-VL-7B-Instruct --data ./MUIRBENCH --modes vanilla focus vcd \\
        --alpha-grid 0.03 0.1 0.3 0.5 --protocol reference --out runs/muir-qwen7b
    focus eval winoground --data ./winoground --limit 20          # smoke run on the bundled default model
    focus eval report runs/muir-qwen7b runs/muir-llava7b          # one table + plots over runs
    focus eval merge runs/muir-0 runs/muir-1 --out runs/muir      # shards -> one run
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from focus_integrations.errors import InvalidOptionError
from focus_integrations.noise import NOISE_MODES

DEFAULT_ALPHA_GRID = (0.03, 0.1, 0.3, 0.5)  # the values of the reference's scripts and README


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard takes i/k (e.g. 0/4), got {text!r}") from None
    return index, count


def add_harness_commands(subparsers: argparse._SubParsersAction) -> None:
    from focus_integrations.cli import command_group
    from focus_integrations.harness.benchmarks import benchmarks

    evals = command_group(subparsers, "eval", help="evaluations", dest="eval_command")
    for name, table in benchmarks().items():
        sub = evals.add_parser(
            name,
            help=f"{table.hub_id} from a local copy ({table.licence.split(':')[0]})",
            description=f"Evaluate on a LOCAL copy of {table.hub_id}; expected layout: {table.layout.description}. "
            "Nothing is downloaded.",
        )
        _add_run_arguments(sub, name)
    report = evals.add_parser("report", help="one table + plots over finished runs (protocols never mixed)")
    report.add_argument("runs", nargs="+", type=Path)
    report.add_argument("--out", type=Path, default=None, help="folder for report.txt / report.png")
    report.set_defaults(func=_run_report)
    merge = evals.add_parser("merge", help="merge the shards of one run (--shard i/k) into one run folder")
    merge.add_argument("shards", nargs="+", type=Path)
    merge.add_argument("--out", type=Path, required=True)
    merge.set_defaults(func=_run_merge)


def _add_run_arguments(sub: argparse.ArgumentParser, name: str) -> None:
    sub.add_argument("--data", required=True, type=Path, help="the local copy (folder in the hub layout)")
    sub.add_argument(
        "--model", default=None, help="hub id or local folder (default: the bundled default model)"
    )
    sub.add_argument(
        "--protocol",
        choices=("reference", "strict", "score"),
        default="reference",
        help="reference: the authors' exact protocol; strict: greedy, official prompt, strict parsing; "
        "score: score() over the option letters (multiple choice only)",
    )
    sub.add_argument("--modes", nargs="+", default=["vanilla", "focus"], choices=("vanilla", "focus", "vcd"))
    sub.add_argument(
        "--alpha-grid",
        type=float,
        nargs="+",
        default=list(DEFAULT_ALPHA_GRID),
        help="FOCUS alphas tried on the validation split (default 0.03 0.1 0.3 0.5)",
    )
    sub.add_argument("--alpha", type=float, default=None, help="fixed FOCUS alpha (no search)")
    sub.add_argument("--vcd-alpha", type=float, default=1.0)
    sub.add_argument(
        "--val",
        choices=("reference", "disjoint", "none"),
        default="reference",
        help="reference: the authors' seeded 10%% of test; disjoint: that 10%% held out; none",
    )
    sub.add_argument("--val-fraction", type=float, default=0.1)
    sub.add_argument("--seed", type=int, default=42)
    sub.add_argument("--limit", type=int, default=None, help="first N test rows (and 10%% of N val rows)")
    sub.add_argument("--shard", type=_shard, default=(0, 1), help="i/k: this process runs rows i, i+k, ...")
    sub.add_argument("--phase", choices=("all", "val", "test"), default="all")
    sub.add_argument("--category", default=None, help="only rows of this category / subset / task")
    sub.add_argument("--max-new-tokens", type=int, default=None, help="override the protocol's (recorded)")
    sub.add_argument("--noise", choices=sorted(NOISE_MODES), default=None)
    sub.add_argument(
        "--noise-scale",
        type=float,
        default=None,
        help="noise scale of the masked images of rows 1..N (the runners' --scale; the all-noise row stays at 1)",
    )
    sub.add_argument(
        "--noise-severity",
        type=int,
        choices=range(1, 6),
        default=None,
        help="shot / impulse / speckle strength 1-5 (the runners' --severity; reference default 3)",
    )
    if name == "vinoground":
        sub.add_argument("--num-frames", type=int, default=None, help="frames per video (default 8)")
    if name == "mmlongbench":
        sub.add_argument("--tasks", nargs="+", default=[], help="annotation files relative to mmlb_data/")
    sub.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<benchmark>-<protocol>)"
    )
    sub.add_argument("--device", default=None)
    sub.add_argument("--dtype", default=None)
    sub.set_defaults(func=_run_benchmark, benchmark=name)


def _run_benchmark(args: argparse.Namespace) -> int:
    from focus_integrations.cli import resolve_model
    from focus_integrations.harness.benchmarks import get_benchmark
    from focus_integrations.harness.report import format_report
    from focus_integrations.harness.runner import RunConfig, Runner

    if args.alpha is not None and args.alpha < 0:
        raise InvalidOptionError("--alpha must be >= 0")
    benchmark = get_benchmark(args.benchmark)
    config = RunConfig(
        benchmark=args.benchmark,
        data=str(args.data),
        model=args.model or "default model",
        protocol=args.protocol,
        modes=tuple(args.modes),
        alpha_grid=tuple(args.alpha_grid),
        alpha=args.alpha,
        vcd_alpha=args.vcd_alpha,
        val=args.val,
        val_fraction=args.val_fraction,
        seed=args.seed,
        limit=args.limit,
        shard=args.shard,
        phase=args.phase,
        category=args.category,
        max_new_tokens=args.max_new_tokens,
        noise=args.noise,
        noise_scale=args.noise_scale,
        noise_severity=args.noise_severity,
        num_frames=getattr(args, "num_frames", None),
        tasks=tuple(getattr(args, "tasks", ()) or ()),
    )
    config.validate(benchmark)  # before the model loads: a typo costs nothing
    out = args.out or Path("runs") / f"{args.benchmark}-{args.protocol}"
    from focus_integrations.decoder import FocusDecoder

    def load_model() -> FocusDecoder:
        return FocusDecoder.from_pretrained(resolve_model(args.model), device=args.device, dtype=args.dtype)

    summary = Runner(benchmark, config, load_model, out).run()
    print(format_report([(out, summary)]), end="")
    print(f"wrote {out}/summary.json, summary.csv, records.jsonl, timing.json and plots", file=sys.stderr)
    return 0


def _run_report(args: argparse.Namespace) -> int:
    from focus_integrations.harness.report import format_report, load_summary, write_report_plot

    summaries = [(run, load_summary(run)) for run in args.runs]
    text = format_report(summaries)
    print(text, end="")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.txt").write_text(text)
        plot = write_report_plot(summaries, args.out / "report.png")
        print(f"wrote {args.out / 'report.txt'}" + (f" and {plot}" if plot else ""), file=sys.stderr)
    return 0


def _run_merge(args: argparse.Namespace) -> int:
    from focus_integrations.harness.report import format_report, merge_runs

    summary = merge_runs(list(args.shards), args.out)
    print(format_report([(args.out, summary)]), end="")
    return 0
