"""The lab's outputs: a plain-text table, JSON, and a PNG plot (matplotlib, the optional ``lab`` extra)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from focus_integrations.lab.leakage import LabResult
from focus_integrations.lab.stats import Proportion


def _cell(p: Proportion, width: int = 17) -> str:
    return f"{p!s:>{width}}"


def format_table(result: LabResult, *, short: bool = False) -> str:
    """One row per N; every rate with its Wilson 95% interval. ``short`` keeps the key columns only."""
    columns: list[tuple[str, Any]] = [
        ("single", lambda r: r["single"]),
        ("vanilla acc", lambda r: r["vanilla"]["accuracy"]),
        ("FOCUS acc", lambda r: r["focus"]["accuracy"]),
        ("N-calib acc", lambda r: r["focus_calibrated"]["accuracy"]),
        ("vanilla leak", lambda r: r["vanilla"]["leakage"]),
        ("FOCUS leak", lambda r: r["focus"]["leakage"]),
        ("N-calib leak", lambda r: r["focus_calibrated"]["leakage"]),
        ("slot binding", lambda r: r["slot_binding"]),
        ("noise abstain", lambda r: r["noise_abstention"]),
    ]
    if not short:
        columns += [
            ("oracle (p alone)", lambda r: r["oracle"]),
            ("MC vanilla", lambda r: r["choice"]["vanilla"]["accuracy"]),
            ("MC FOCUS", lambda r: r["choice"]["focus"]["accuracy"]),
        ]
    settings = result.settings
    how = "fixed" if result.alpha_validation.get("fixed") else "chosen per N on the val split"
    lines = [
        f"Leakage lab: {settings.get('model') or 'model'} | {settings['attribute']} questions, "
        f"{settings['samples_per_n']} per N, seed {settings['seed']} | FOCUS: faithful rule "
        f"sum_k z_k - alpha*N*z_0, alpha {how}; N-calib: alpha = (N-1)/N",
        "single image (ceiling): " + ", ".join(f"{attr} {p}" for attr, p in result.single_image.items()),
        " N  chance  alpha" + "".join(f"{name:>17}" for name, _ in columns) + "  winner (FOCUS vs N-calib)",
    ]
    for n, row in sorted(result.per_n.items()):
        chance = f"{row['chance']['open']:.2f}/{row['chance']['random_image']:.2f}"
        lines.append(
            f"{n:2d} {chance:>8} {row['focus']['alpha']:5.2f}"
            + "".join(_cell(get(row)) for _, get in columns)
            + f"  {_verdict(row['rules'])}"
        )
    lines.append(
        "chance: a random value / a random image's value. leak = wrong AND another image's value. "
        "slot binding: answers naming some image's value that name image p's. noise abstain: image p noise, "
        "answer not taken from another image. winner: the paired 95% interval of the accuracy difference "
        "(N-calib minus FOCUS, bootstrap over items) excludes 0, else tie; +a/-b: items only N-calib / only "
        "FOCUS got right."
    )
    wino = result.winoground
    if wino and not short:
        lines.append(
            f"Winoground-style pairs ({wino['pairs']}): text {wino['vanilla']['text']} | image vanilla "
            f"{wino['vanilla']['image']} FOCUS {wino['focus']['image']} | group vanilla "
            f"{wino['vanilla']['group']} FOCUS {wino['focus']['group']} (chance .25/.25/.17)"
        )
    lines.append(f"[{result.seconds:.0f} s]")
    return "\n".join(lines)


def _above(first: Proportion, second: Proportion) -> bool:
    """``first`` is higher than ``second`` beyond doubt: its 95% interval lies wholly above."""
    return first.total > 0 and second.total > 0 and first.ci95[0] > second.ci95[1]


def conclusion(n: int, row: dict[str, Any]) -> str:
    """One plain sentence: what a reader should take from the vanilla / FOCUS / N-calibrated results at N.

    FOCUS against N-calibrated is the paired verdict of ``rules``; against vanilla, a rule is better or worse
    only when the Wilson 95% intervals do not overlap (conservative)."""
    vanilla, faithful = row["vanilla"]["accuracy"], row["focus"]["accuracy"]
    calibrated, alpha = row["focus_calibrated"]["accuracy"], row["focus"]["alpha"]
    v, f, c = (f"{p.value:.2f}" for p in (vanilla, faithful, calibrated))
    one = f"FOCUS with alpha {alpha:.2g}"
    winner = row["rules"]["winner"]  # paired: the same items under both rules
    level = False  # all three level in accuracy
    if _above(calibrated, vanilla):
        tail = f", and so does {one} ({f})" if _above(faithful, vanilla) else f"; {one} gets {f}"
        text = f"FOCUS helps: the N-calibrated rule is right more often than vanilla ({c} vs {v}){tail}"
    elif _above(faithful, vanilla):
        text = f"{one} is right more often than vanilla ({f} vs {v}); the N-calibrated rule gets {c}"
    elif winner == "faithful":
        text = f"{one} beats the N-calibrated rule here ({f} vs {c}; vanilla {v})"
    elif winner == "calibrated" and not _above(vanilla, calibrated):
        text = (
            f"{one} breaks down ({f}) while the N-calibrated rule stays level with vanilla ({c} vs {v}): "
            "a fixed alpha does not hold at this N"
        )
    elif _above(vanilla, calibrated) and _above(vanilla, faithful):
        text = f"both FOCUS rules are less accurate than vanilla ({f} and {c} vs {v})"
    elif _above(vanilla, calibrated):
        text = f"the N-calibrated rule is less accurate than vanilla ({c} vs {v}); {one} gets {f}"
    elif winner == "same rule":
        text, level = (
            f"vanilla and FOCUS at the calibrated alpha {alpha:.2g} are level in accuracy ({v}, {c})",
            True,
        )
    else:
        text, level = f"vanilla, {one} and the N-calibrated rule are level in accuracy ({v}, {f}, {c})", True
    leak_v, leak_c = row["vanilla"]["leakage"], row["focus_calibrated"]["leakage"]
    if _above(leak_v, leak_c):
        text += f", and the N-calibrated rule leaks less ({leak_c.value:.2f} vs {leak_v.value:.2f})"
    elif _above(leak_c, leak_v):
        text += f", and the N-calibrated rule leaks more ({leak_c.value:.2f} vs {leak_v.value:.2f})"
    elif level:
        text += ": the differences lie within the 95% intervals"
    return f"N={n}: {text}."


def conclusions(result: LabResult) -> list[str]:
    return [conclusion(n, row) for n, row in sorted(result.per_n.items())]


def _verdict(rules: dict[str, Any]) -> str:
    low_high = rules.get("difference_ci95")
    interval = f" [{low_high[0]:+.2f},{low_high[1]:+.2f}]" if low_high else ""
    counts = f"(+{rules['only_calibrated_right']}/-{rules['only_faithful_right']}){interval}"
    names = {"calibrated": "N-calib", "faithful": "FOCUS", "tie": "tie", "same rule": "same rule"}
    return f"{names[rules['winner']]} {counts}"


def write_json(result: LabResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return path


def write_plot(result: LabResult, path: Path) -> Path | None:
    """Accuracy, leakage and the two preconditions against N. Returns None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ns = sorted(result.per_n)
    rows = [result.per_n[n] for n in ns]

    def series(ax: Any, label: str, values: list[Proportion], **style: Any) -> None:
        mid = [p.value for p in values]
        low = [p.value - p.ci95[0] for p in values]
        high = [p.ci95[1] - p.value for p in values]
        ax.errorbar(ns, mid, yerr=[low, high], label=label, capsize=3, marker="o", **style)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    ax = axes[0]
    series(ax, "single image (ceiling)", [r["single"] for r in rows], color="black")
    series(ax, "oracle: image p alone", [r["oracle"] for r in rows], color="gray", linestyle=":")
    series(ax, "vanilla", [r["vanilla"]["accuracy"] for r in rows], color="tab:blue")
    series(ax, "FOCUS (alpha per N)", [r["focus"]["accuracy"] for r in rows], color="tab:red")
    series(
        ax,
        "FOCUS N-calibrated",
        [r["focus_calibrated"]["accuracy"] for r in rows],
        color="tab:green",
        linestyle="--",
    )
    ax.plot(ns, [1 / n for n in ns], "k--", lw=0.8, label="1/N")
    ax.set_title("accuracy (open question about image p)")
    ax = axes[1]
    series(ax, "vanilla", [r["vanilla"]["leakage"] for r in rows], color="tab:blue")
    series(ax, "FOCUS", [r["focus"]["leakage"] for r in rows], color="tab:red")
    series(ax, "FOCUS N-calibrated", [r["focus_calibrated"]["leakage"] for r in rows], color="tab:green")
    series(
        ax, "MC vanilla acc", [r["choice"]["vanilla"]["accuracy"] for r in rows], color="tab:cyan", ls="--"
    )
    series(ax, "MC FOCUS acc", [r["choice"]["focus"]["accuracy"] for r in rows], color="tab:orange", ls="--")
    ax.set_title("leakage rate; multiple-choice accuracy")
    ax = axes[2]
    series(ax, "slot binding", [r["slot_binding"] for r in rows], color="tab:green")
    series(ax, "noise abstention", [r["noise_abstention"] for r in rows], color="tab:purple")
    ax.plot(ns, [1 / n for n in ns], "k--", lw=0.8, label="1/N (no binding)")
    ax.set_title("FOCUS's preconditions")
    for ax in axes:
        ax.set_xlabel("number of images N")
        ax.set_xticks(ns)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        f"{result.settings.get('model') or 'model'}: leakage lab (95% Wilson intervals)", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
