"""``focus eval report RUN_DIR...``: one table over runs (each protocol in its own section, never mixed) and
one plot; ``focus eval merge SHARD_DIR...``: shards -> one run."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from focus_integrations.errors import InvalidOptionError


def load_summary(run: Path) -> dict[str, Any]:
    path = Path(run) / "summary.json"
    if not path.is_file():
        raise InvalidOptionError(f"{run} holds no summary.json (not a finished `focus eval` run)")
    return json.loads(path.read_text())


def _cell(score: dict[str, Any] | None) -> str:
    if not score or score.get("value") is None:
        return "n/a"
    low, high = score.get("ci95") or (score["value"], score["value"])
    return f"{score['value']:.3f} [{low:.3f},{high:.3f}]"


def format_report(summaries: list[tuple[Path, dict[str, Any]]]) -> str:
    by_protocol: dict[str, list[tuple[Path, dict[str, Any]]]] = defaultdict(list)
    for run, summary in summaries:
        by_protocol[summary["protocol"]].append((run, summary))
    lines = []
    for protocol, runs in sorted(by_protocol.items()):
        lines.append(f"== protocol {protocol} ==")
        for run, s in runs:
            val = s.get("validation", {})
            alpha = (
                f"alpha chosen on val ({val.get('split')}): {val['chosen_alpha']:g}"
                if "chosen_alpha" in val
                else f"val: {val.get('description', 'n/a')}"
            )
            lines.append(f"{s['benchmark']} | {s['model']} | {run} | {alpha} | {s['test']['rows']} rows")
            lines.extend(_mode_lines(s["test"]["modes"]))
            for quirk in s.get("quirks_reproduced", []):
                lines.append(f"  reference quirk reproduced: {quirk}")
            data = s.get("data", {})
            if data.get("revision_known_bad"):
                lines.append(f"  WARNING: data revision {data['revision']} is known to carry wrong labels")
            if data.get("revision_matches_pin") is False:
                lines.append(
                    f"  WARNING: data revision {data['revision']} is not the pinned {data['pinned_revision']}"
                )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _mode_lines(modes: dict[str, Any]) -> list[str]:
    """One line per mode: every metric and delta with its interval, n, McNemar p against vanilla."""
    if not modes:
        return []
    lines: list[str] = []
    metrics = list(next(iter(modes.values()))["metrics"])
    deltas = list(next(iter(modes.values())).get("deltas", {}))
    lines.append(
        "  "
        + f"{'mode':<14}"
        + "".join(f"{m:>26}" for m in (*metrics, *deltas))
        + f"{'n':>6}  McNemar p (vs vanilla, per metric)"
    )
    for name, entry in modes.items():
        cells = [_cell(entry["metrics"][m]) for m in metrics] + [_cell(entry["deltas"][d]) for d in deltas]
        n = max((entry["metrics"][m]["n"] for m in metrics), default=0)
        vs = entry.get("vs_vanilla") or {}
        ps = ", ".join(
            f"{m} {vs[m]['mcnemar']['p_value']:.3g}" for m in metrics if "mcnemar" in vs.get(m, {})
        )
        lines.append("  " + f"{name:<14}" + "".join(f"{c:>26}" for c in cells) + f"{n:>6}  {ps}")
        check = entry.get("check")
        if check:
            lines.append(f"  {'':<14}self-check: {'ok' if check['ok'] else 'FAILED'}: {check['message']}")
    return lines


def write_report_plot(summaries: list[tuple[Path, dict[str, Any]]], path: Path) -> Path | None:
    from focus_integrations.harness.plots import _errorbar, _pyplot, _save

    plt = _pyplot()
    if plt is None or not summaries:
        return None
    fig, axes = plt.subplots(1, len(summaries), figsize=(4.5 * len(summaries), 4), squeeze=False)
    for ax, (_run, s) in zip(axes[0], summaries):
        modes = s["test"]["modes"]
        metrics = list(next(iter(modes.values()))["metrics"]) if modes else []
        width = 0.8 / max(1, len(modes))
        for k, (name, entry) in enumerate(modes.items()):
            points = [_errorbar(entry["metrics"][m]) for m in metrics]
            ax.bar(
                [i + k * width for i in range(len(metrics))],
                [p[0] for p in points],
                width,
                yerr=[[p[1] for p in points], [p[2] for p in points]],
                capsize=2,
                label=name,
            )
        ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(metrics))], metrics, fontsize=7)
        ax.set_title(f"{s['benchmark']} ({s['protocol']})\n{Path(s['model']).name}", fontsize=8)
        ax.legend(fontsize=6)
    return _save(fig, plt, path)


def merge_runs(shards: list[Path], out: Path) -> dict[str, Any]:
    """Shards of one run -> ``out`` with every record once and the summary of the whole."""
    from dataclasses import replace

    from focus_integrations.harness.benchmarks import get_benchmark
    from focus_integrations.harness.layouts import load_local
    from focus_integrations.harness.records import RECORDS, RecordWriter, merge_record_files
    from focus_integrations.harness.runner import CONFIG, RunConfig, data_info
    from focus_integrations.harness.summary import summarize, write_outputs

    if not shards:
        raise InvalidOptionError("merge needs at least one shard folder")
    configs = []
    for shard in shards:
        path = Path(shard) / CONFIG
        if not path.is_file():
            raise InvalidOptionError(f"{shard} holds no {CONFIG} (not a `focus eval` run folder)")
        configs.append(json.loads(path.read_text()))
    identities = {json.dumps(c["identity"], sort_keys=True) for c in configs}
    if len(identities) != 1:
        raise InvalidOptionError(
            "these folders are runs with different settings; only shards of one run merge"
        )
    raw = dict(configs[0]["config"])
    raw.update(
        shard=(0, 1),
        modes=tuple(raw["modes"]),
        alpha_grid=tuple(raw["alpha_grid"]),
        tasks=tuple(raw["tasks"]),
    )
    config = replace(RunConfig(**raw))
    benchmark = get_benchmark(config.benchmark)
    records = list(merge_record_files(Path(s) / RECORDS for s in shards))
    out.mkdir(parents=True, exist_ok=True)
    target = out / RECORDS
    if target.exists():
        target.unlink()
    with RecordWriter(target) as writer:
        for record in records:
            writer.write(record)
    (out / CONFIG).write_text(
        json.dumps(configs[0] | {"merged_from": [str(s) for s in shards]}, indent=1) + "\n"
    )
    data = load_local(benchmark, config.data, {"tasks": config.tasks, "seed": config.seed})
    summary = summarize(benchmark, config, records, data_info(benchmark, data))
    write_outputs(summary, records, out)
    return summary
