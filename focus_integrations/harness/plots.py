"""PNG plots of a run (matplotlib, optional): scores per mode with 95% intervals, the primary score per number
of images, and the alpha curve on the validation split."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _errorbar(score: Mapping[str, Any]) -> tuple[float, float, float]:
    value = score.get("value")
    if value is None:
        return float("nan"), 0.0, 0.0
    low, high = score.get("ci95") or (value, value)
    return value, max(0.0, value - low), max(0.0, high - value)


def write_run_plots(summary: Mapping[str, Any], out: Path) -> list[Path]:
    plt = _pyplot()
    if plt is None:
        return []
    written = []
    modes = summary["test"]["modes"]
    title = f"{summary['benchmark']} | {summary['model']} | protocol {summary['protocol']}"
    if modes:
        metrics = list(next(iter(modes.values()))["metrics"])
        fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(metrics) * len(modes) / 2 + 3), 4))
        width = 0.8 / len(modes)
        for k, (name, entry) in enumerate(modes.items()):
            points = [_errorbar(entry["metrics"][m]) for m in metrics]
            xs = [i + k * width for i in range(len(metrics))]
            ax.bar(
                xs,
                [p[0] for p in points],
                width,
                yerr=[[p[1] for p in points], [p[2] for p in points]],
                capsize=3,
                label=name,
            )
        ax.set_xticks([i + width * (len(modes) - 1) / 2 for i in range(len(metrics))], metrics)
        ax.set_ylabel("score (95% bootstrap interval)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
        written.append(_save(fig, plt, out / "scores.png"))
        primary = summary.get("primary") or metrics[0]
        by_images = {
            name: e["breakdowns"].get("n_images")
            for name, e in modes.items()
            if e["breakdowns"].get("n_images")
        }
        if by_images and primary in metrics:
            fig, ax = plt.subplots(figsize=(6, 4))
            for name, groups in by_images.items():
                ns = sorted(groups, key=int)
                points = [_errorbar(groups[n].get(primary, {"value": None})) for n in ns]
                ax.errorbar(
                    [int(n) for n in ns],
                    [p[0] for p in points],
                    yerr=[[p[1] for p in points], [p[2] for p in points]],
                    marker="o",
                    capsize=3,
                    label=name,
                )
            ax.set_xlabel("number of images in the query")
            ax.set_ylim(-0.02, 1.02)
            ax.set_ylabel(f"{primary} (95% interval)")
            ax.set_title(title, fontsize=9)
            ax.legend(fontsize=8)
            written.append(_save(fig, plt, out / "by_images.png"))
    curve = summary.get("validation", {}).get("curve")
    if curve:
        primary = summary.get("primary") or next(iter(next(iter(curve.values()))))
        focus = sorted(
            (float(k.split("@")[1]), v[primary]) for k, v in curve.items() if k.startswith("focus@")
        )
        fig, ax = plt.subplots(figsize=(6, 4))
        points = [_errorbar(s) for _, s in focus]
        ax.errorbar(
            [a for a, _ in focus],
            [p[0] for p in points],
            yerr=[[p[1] for p in points], [p[2] for p in points]],
            marker="o",
            capsize=3,
            label="FOCUS",
        )
        if "vanilla@0" in curve:
            ax.axhline(
                curve["vanilla@0"][primary]["value"] or float("nan"), color="gray", ls="--", label="vanilla"
            )
        chosen = summary["validation"].get("chosen_alpha")
        if chosen is not None:
            ax.axvline(chosen, color="tab:red", ls=":", label=f"chosen alpha {chosen:g}")
        ax.set_xlabel("alpha")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(f"{primary} on val (95% interval)")
        ax.set_title(f"{title}\nval: {summary['validation']['split']}", fontsize=9)
        ax.legend(fontsize=8)
        written.append(_save(fig, plt, out / "alpha_val.png"))
    return written


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
