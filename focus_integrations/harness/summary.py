"""Records -> scores: every metric of the table with its bootstrap 95% interval and n, per breakdown, and each
mode against vanilla (exact McNemar on the paired items, and the paired difference with its interval).

The summary depends on the records only (no timings): a resumed or merged run gives the same summary.json as
one uninterrupted run. Timings go to timing.json.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from focus_integrations.harness.spec import Benchmark, Metric
from focus_integrations.harness.stats import bootstrap_ci, mcnemar_exact, paired_bootstrap_ci

VAL_DESCRIPTIONS = {
    "reference": "the authors' val: a seeded 10% shuffle OF THE TEST SET (alpha tuned on rows that are also "
    "reported)",
    "disjoint": "a seeded 10% of the test set held out for alpha; scores on the other 90%",
    "none": "no validation split (alpha fixed)",
}


def _item_value(record: Mapping[str, Any], metric: Metric) -> float:
    if metric.answer is not None:
        return float(record.get("parsed") == metric.answer)
    return float(record["correct"])


def metric_values(benchmark: Benchmark, records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """metric name -> {item id: value}; items are rows (rule "all") or queries (rule "each")."""
    by_row: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for record in records:
        by_row[record["example"]][record["query"]] = record
    out: dict[str, dict[str, float]] = {}
    for name, metric in benchmark.metrics.items():
        values: dict[str, float] = {}
        for example, queries in by_row.items():
            keys = metric.keys or tuple(queries)
            if metric.rule == "all":
                if all(k in queries for k in keys):
                    values[example] = float(all(_item_value(queries[k], metric) >= 1.0 for k in keys))
            else:
                for k in keys:
                    if k in queries:
                        values[queries[k]["id"]] = _item_value(queries[k], metric)
        out[name] = values
    return out


def _score(values: Mapping[str, float]) -> dict[str, Any]:
    if not values:
        return {"value": None, "ci95": None, "n": 0}
    data = [values[k] for k in sorted(values)]
    low_high = bootstrap_ci(data)
    return {"value": sum(data) / len(data), "ci95": list(low_high) if low_high else None, "n": len(data)}


def _row_means(values: Mapping[str, float]) -> dict[str, float]:
    """Item values averaged per row (the leakage delta pairs rows, whatever the metric's items are)."""
    sums: dict[str, list[float]] = defaultdict(list)
    for item, value in values.items():
        sums[item.split("/", 1)[0]].append(value)
    return {row: sum(v) / len(v) for row, v in sums.items()}


def _breakdown_of(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """item id (query id, and row id for row-level scores) -> its breakdown values. A row's number of images
    is the largest of its queries' (a Winoground row counts as a 2-image item, not by its 1-image text query)."""
    out: dict[str, dict[str, str]] = {}
    for record in records:
        values = dict(record.get("breakdown") or {})
        values.setdefault("n_images", str(record["n_images"]))
        out[record["id"]] = values
        row = out.setdefault(record["example"], dict(values))
        row["n_images"] = str(max(int(row["n_images"]), int(values["n_images"])))
    return out


def score_block(benchmark: Benchmark, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Scores, deltas and breakdowns of one (split, mode, alpha)."""
    values = metric_values(benchmark, records)
    block: dict[str, Any] = {"metrics": {name: _score(v) for name, v in values.items()}}
    if benchmark.deltas:
        block["deltas"] = {}
        for name, (a, b) in benchmark.deltas.items():
            ra, rb = _row_means(values[a]), _row_means(values[b])
            common = sorted(set(ra) & set(rb))
            diffs = [ra[k] - rb[k] for k in common]
            ci = bootstrap_ci(diffs)
            block["deltas"][name] = {
                "value": sum(diffs) / len(diffs) if diffs else None,
                "ci95": list(ci) if ci else None,
                "n": len(diffs),
                "of": [a, b],
            }
    breakdown = _breakdown_of(records)
    block["breakdowns"] = {}
    for key in (*benchmark.breakdowns, "n_images"):
        if key in block["breakdowns"]:
            continue
        groups: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
        for name, items in values.items():
            for item, value in items.items():
                group = breakdown.get(item, {}).get(key)
                if group is not None:
                    groups[group][name][item] = value
        if groups:
            block["breakdowns"][key] = {
                group: {name: _score(v) for name, v in per.items()}
                for group, per in sorted(groups.items(), key=_group_order)
            }
    return block


def _group_order(item: tuple[str, Any]) -> tuple[int, Any]:
    key = item[0]
    return (0, int(key)) if key.isdigit() else (1, key)


def _binary(values: Mapping[str, float]) -> bool:
    return all(v in (0.0, 1.0) for v in values.values())


def compare(
    benchmark: Benchmark, baseline: Sequence[Mapping[str, Any]], other: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Each metric of ``other`` against ``baseline`` on their common items."""
    base_values, other_values = metric_values(benchmark, baseline), metric_values(benchmark, other)
    out = {}
    for name in benchmark.metrics:
        a, b = base_values[name], other_values[name]
        common = sorted(set(a) & set(b))
        x, y = [a[k] for k in common], [b[k] for k in common]
        ci = paired_bootstrap_ci(y, x)
        entry: dict[str, Any] = {
            "n": len(common),
            "difference": (sum(y) - sum(x)) / len(common) if common else None,
            "ci95": list(ci) if ci else None,
        }
        if _binary(a) and _binary(b):
            entry["mcnemar"] = mcnemar_exact([v >= 1 for v in x], [v >= 1 for v in y])
        out[name] = entry
    return out


def summarize(
    benchmark: Benchmark, config: Any, records: Sequence[Mapping[str, Any]], data: Mapping[str, Any]
) -> dict[str, Any]:
    groups: dict[tuple[str, str, float], list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        groups[(record["split"], record["mode"], float(record["alpha"]))].append(record)
    protocol = benchmark.protocol(config.protocol)
    summary: dict[str, Any] = {
        "benchmark": benchmark.name,
        "model": config.model,
        "protocol": config.protocol,
        "primary": benchmark.primary,
        "identity": config.identity(),
        "data": dict(data),
        "generation": dict(protocol.generation)
        if config.protocol != "score"
        else {"reading": "score() over the choices"},
        "generation_by_mode": {mode: dict(o) for mode, o in protocol.mode_generation.items()}
        if config.protocol != "score"
        else {},
        "overrides": {
            k: getattr(config, k)
            for k in ("max_new_tokens", "noise", "noise_scale", "noise_severity", "num_frames")
            if getattr(config, k) is not None
        },
        "quirks_reproduced": list(protocol.quirks) if config.protocol == "reference" else [],
        "notes": list(benchmark.notes),
    }
    val = {k: v for k, v in groups.items() if k[0] == "val"}
    if val:
        from focus_integrations.harness.runner import choose_alpha

        summary["validation"] = {
            "split": config.val,
            "description": VAL_DESCRIPTIONS[config.val],
            "rows": len({r["example"] for v in val.values() for r in v}),
            "curve": {
                f"{mode}@{alpha:g}": score_block(benchmark, rs)["metrics"]
                for (_, mode, alpha), rs in sorted(val.items())
            },
            "chosen_alpha": choose_alpha(
                benchmark, records, sorted({a for (_, m, a) in val if m == "focus"})
            ),
        }
    else:
        summary["validation"] = {
            "split": config.val,
            "description": VAL_DESCRIPTIONS["none"]
            if config.val == "none"
            else VAL_DESCRIPTIONS[config.val] + " (not run: alpha fixed)",
        }
    tests = {k: v for k, v in groups.items() if k[0] == "test"}
    modes: dict[str, Any] = {}
    vanilla = next((rs for (_, mode, _), rs in tests.items() if mode == "vanilla"), None)
    for (_, mode, alpha), rs in sorted(
        tests.items(), key=lambda kv: (kv[0][1] != "vanilla", kv[0][1], kv[0][2])
    ):
        name = mode if mode == "vanilla" else f"{mode}@{alpha:g}"
        entry = {"mode": mode, "alpha": alpha, "rows": len({r["example"] for r in rs})} | score_block(
            benchmark, rs
        )
        if vanilla is not None and mode != "vanilla":
            entry["vs_vanilla"] = compare(benchmark, vanilla, rs)
        if benchmark.check is not None:
            entry["check"] = benchmark.check(rs)
        modes[name] = entry
    summary["test"] = {"rows": len({r["example"] for rs in tests.values() for r in rs}), "modes": modes}
    return summary


def timing(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Seconds per query by mode and number of images (a measured per-example cost)."""
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[f"{record['split']}:{record['mode']}"][str(record["n_images"])].append(
            float(record["latency_s"])
        )
    return {
        key: {
            n: {"queries": len(v), "mean_s": sum(v) / len(v), "total_s": sum(v)}
            for n, v in sorted(per.items(), key=lambda kv: int(kv[0]))
        }
        for key, per in sorted(groups.items())
    }


def csv_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []

    def add(
        split: str,
        mode: str,
        alpha: Any,
        metrics: Mapping[str, Any],
        breakdown: str = "",
        group: str = "",
        vs: Any = None,
    ) -> None:
        for name, score in metrics.items():
            ci = score.get("ci95") or [None, None]
            mc = ((vs or {}).get(name) or {}).get("mcnemar") or {}
            rows.append(
                {
                    "benchmark": summary["benchmark"],
                    "protocol": summary["protocol"],
                    "split": split,
                    "mode": mode,
                    "alpha": alpha,
                    "metric": name,
                    "breakdown": breakdown,
                    "group": group,
                    "value": score["value"],
                    "ci_low": ci[0],
                    "ci_high": ci[1],
                    "n": score["n"],
                    "mcnemar_p": mc.get("p_value"),
                }
            )

    for entry in summary["test"]["modes"].values():
        add("test", entry["mode"], entry["alpha"], entry["metrics"], vs=entry.get("vs_vanilla"))
        add("test", entry["mode"], entry["alpha"], entry.get("deltas", {}))
        for key, groups in entry["breakdowns"].items():
            for group, metrics in groups.items():
                add("test", entry["mode"], entry["alpha"], metrics, key, group)
    for name, metrics in summary.get("validation", {}).get("curve", {}).items():
        mode, alpha = name.split("@")
        add("val", mode, float(alpha), metrics)
    return rows


def write_outputs(summary: Mapping[str, Any], records: Sequence[Mapping[str, Any]], out: Path) -> None:
    from focus_integrations.harness.plots import write_run_plots

    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "timing.json").write_text(json.dumps(timing(records), indent=1) + "\n")
    rows = csv_rows(summary)
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["benchmark"])
        writer.writeheader()
        writer.writerows(rows)
    write_run_plots(summary, out)
