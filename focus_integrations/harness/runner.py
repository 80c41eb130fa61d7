"""The ONE runner: any benchmark table, any protocol, modes vanilla / focus / vcd, alpha chosen on validation.

    rows = the local copy (layouts.load_local) -> split into val / test -> --limit -> --shard i/k
    val:  FOCUS at every alpha of the grid (and vanilla, for reference) -> alpha = best primary score
    test: every mode (FOCUS at the chosen alpha) on the same rows, the same per-question seeds (same noise)
    every answer is appended to records.jsonl as it comes; the summary is computed from the records

Splits (``val``): ``reference`` = the authors' ``--split val``, a seeded 10% shuffle OF THE TEST SET (alpha
tuned on test rows; the report says so); ``disjoint`` = the same 10% held out and the other 90% reported;
``none`` = no search (one alpha).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from focus_integrations.errors import InvalidOptionError
from focus_integrations.harness.answer import Model, ask
from focus_integrations.harness.layouts import LocalData, load_local, validation_indices
from focus_integrations.harness.records import RECORDS, RecordWriter, read_records, record_key
from focus_integrations.harness.spec import Benchmark, RowContext
from focus_integrations.options import DecodingOptions

VAL_SPLITS = ("reference", "disjoint", "none")
PHASES = ("all", "val", "test")
CONFIG = "config.json"
DEFAULT_VCD_ALPHA = 1.0


@dataclass(frozen=True)
class RunConfig:
    """Everything a run is: what decides its results (``identity``) and how this process takes part."""

    benchmark: str
    data: str
    model: str
    protocol: str = "reference"
    modes: tuple[str, ...] = ("vanilla", "focus")
    alpha_grid: tuple[float, ...] = (0.1,)
    alpha: float | None = None
    vcd_alpha: float = DEFAULT_VCD_ALPHA
    val: str = "reference"
    val_fraction: float = 0.1
    seed: int = 42
    limit: int | None = None
    shard: tuple[int, int] = (0, 1)
    phase: str = "all"
    category: str | None = None
    max_new_tokens: int | None = None
    noise: str | None = None
    # The runners' --scale (masked images of rows 1..N; the all-noise row stays at 1) and --severity.
    noise_scale: float | None = None
    noise_severity: int | None = None
    num_frames: int | None = None  # frames per video (Vinoground's --num_frames); None: the protocol's 8
    tasks: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    IDENTITY = (
        "benchmark",
        "model",
        "protocol",
        "seed",
        "val",
        "val_fraction",
        "category",
        "max_new_tokens",
        "noise",
        "noise_scale",
        "noise_severity",
        "num_frames",
        "tasks",
    )

    def identity(self) -> dict[str, Any]:
        return {k: _jsonable(getattr(self, k)) for k in self.IDENTITY}

    @property
    def searches_alpha(self) -> bool:
        return "focus" in self.modes and self.alpha is None and len(self.alpha_grid) > 1

    def validate(self, benchmark: Benchmark) -> None:
        def bad(message: str) -> None:
            raise InvalidOptionError(message)

        benchmark.protocol(self.protocol)  # raises on an unknown protocol
        if self.protocol != "reference" and benchmark.reading == "probs":
            bad(f"{benchmark.name} reads probabilities; it has the reference protocol only")
        for mode in self.modes:
            if mode not in ("vanilla", "focus", "vcd"):
                bad(f"unknown mode {mode!r}; choose from vanilla, focus, vcd")
        if len(set(self.modes)) != len(self.modes):
            bad("--modes lists a mode twice")
        if self.val not in VAL_SPLITS:
            bad(f"--val must be one of {', '.join(VAL_SPLITS)}")
        if self.phase not in PHASES:
            bad(f"--phase must be one of {', '.join(PHASES)}")
        alphas = (*self.alpha_grid, *([self.alpha] if self.alpha is not None else []))
        if any(a < 0 for a in alphas):
            bad("alpha values must be >= 0")
        # The engine's one validation (finite alphas, a seed numpy and torch accept) before any row runs.
        for alpha in alphas:
            DecodingOptions.resolve(alpha=alpha)
        DecodingOptions.resolve(mode="vcd", alpha=self.vcd_alpha, seed=self.seed)
        if not 0 < self.val_fraction < 1:
            bad("--val-fraction must be in (0, 1)")
        if self.limit is not None and self.limit < 1:
            bad("--limit must be >= 1")
        index, count = self.shard
        if count < 1 or not 0 <= index < count:
            bad(f"--shard must be i/k with 0 <= i < k, got {index}/{count}")
        if self.searches_alpha and benchmark.primary not in benchmark.metrics:
            bad(f"{benchmark.name} is a measurement, not a score to tune alpha on: pass one --alpha")
        if self.searches_alpha and self.val == "none":
            bad("an alpha grid needs a validation split: use --val reference|disjoint, or one --alpha")
        if self.searches_alpha and count > 1 and self.phase == "all":
            bad(
                "a sharded run cannot choose alpha alone: run the shards with --phase val, merge them "
                "(focus eval merge) to read the chosen alpha, then run the shards with --phase test --alpha A"
            )
        if self.phase == "test" and self.searches_alpha:
            bad("--phase test needs the alpha: pass --alpha (the one the val phase chose)")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            bad("--max-new-tokens must be >= 1")
        if self.num_frames is not None and self.num_frames < 1:
            bad("--num-frames must be >= 1")
        if self.noise_scale is not None and not 0 <= self.noise_scale <= 1:
            bad("--noise-scale must be in [0, 1]")


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# ------------------------------------------------------------------------------------------- selection


@dataclass
class Selection:
    """Row indices of each split after the category filter, --limit and --shard."""

    val: list[int]
    test: list[int]
    ids: list[str]


def _column(data: LocalData, name: str) -> list[Any] | None:
    rows = data.rows
    if hasattr(rows, "column_names"):
        return list(rows[name]) if name in rows.column_names else None
    return [r.get(name) for r in rows] if rows and name in rows[0] else None


def select_rows(benchmark: Benchmark, data: LocalData, config: RunConfig) -> Selection:
    n = len(data)
    id_column = _column(data, benchmark.row_id) if benchmark.row_id else None
    ids = [str(v) for v in id_column] if id_column is not None else [str(i) for i in range(n)]
    if len(set(ids)) != n:
        ids = [str(i) for i in range(n)]  # ids must be unique keys; fall back to the row index
    val = validation_indices(n, config.seed, config.val_fraction) if config.val != "none" else []
    held_out = set(val)
    test = [i for i in range(n) if config.val != "disjoint" or i not in held_out]
    if config.category is not None:
        if benchmark.category_column is None:
            raise InvalidOptionError(f"{benchmark.name} has no category column for --category")
        values = _column(data, benchmark.category_column) or []
        keep = {i for i, v in enumerate(values) if str(v) == config.category}
        if not keep:
            found = ", ".join(sorted({str(v) for v in values})) or "none"
            raise InvalidOptionError(
                f"no row has {benchmark.category_column} = {config.category!r} (found: {found})"
            )
        val, test = [i for i in val if i in keep], [i for i in test if i in keep]
    if config.limit is not None:
        test = test[: config.limit]
        val = val[: max(1, math.ceil(config.limit * config.val_fraction))] if val else []
    index, count = config.shard
    return Selection(val[index::count], test[index::count], ids)


# ------------------------------------------------------------------------------------------- the run


@dataclass
class Job:
    split: str
    mode: str
    alpha: float


def mode_alpha(config: RunConfig, mode: str, chosen: float) -> float:
    return 0.0 if mode == "vanilla" else config.vcd_alpha if mode == "vcd" else chosen


def choose_alpha(benchmark: Benchmark, records: Sequence[dict[str, Any]], grid: Sequence[float]) -> float:
    """The grid alpha with the best primary score on the val records (ties: the smaller alpha)."""
    from focus_integrations.harness.summary import metric_values

    best: tuple[float, float] | None = None
    for alpha in sorted(grid):
        own = [
            r for r in records if r["split"] == "val" and r["mode"] == "focus" and float(r["alpha"]) == alpha
        ]
        values = metric_values(benchmark, own).get(benchmark.primary)
        if not values:
            continue
        score = sum(values.values()) / len(values)
        if best is None or score > best[0]:
            best = (score, alpha)
    if best is None:
        raise InvalidOptionError("no validation records to choose alpha from")
    return best[1]


class Runner:
    """Runs ``config`` with ``model`` into ``out``; ``run()`` returns the summary dict.

    ``model`` may be a zero-argument function that loads it: it is called once the data folder has been
    opened and checked, so a wrong layout fails before a large checkpoint loads.
    """

    def __init__(
        self,
        benchmark: Benchmark,
        config: RunConfig,
        model: Model | Callable[[], Model],
        out: Path,
        *,
        progress: Callable[[int, str], Any] | None = None,
    ) -> None:
        config.validate(benchmark)
        self.benchmark, self.config, self.model, self.out = benchmark, config, model, Path(out)
        self.protocol = benchmark.protocol(config.protocol)
        if config.num_frames is not None:
            self.protocol = dataclasses.replace(self.protocol, num_frames=config.num_frames)
        self.reading = (
            benchmark.reading
            if benchmark.reading == "probs"
            else ("score" if config.protocol == "score" else "generate")
        )
        self.options: dict[str, Any] = {}
        if config.max_new_tokens is not None:
            self.options["max_new_tokens"] = config.max_new_tokens
        if config.noise is not None:
            self.options["noise"] = config.noise
        if config.noise_scale is not None:
            self.options["noise_scale"] = config.noise_scale
        if config.noise_severity is not None:
            self.options["noise_severity"] = config.noise_severity
        self.progress = progress or _tqdm_progress

    def _check_out_dir(self) -> None:
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # a file of that name, no permission, ...
            raise InvalidOptionError(f"--out {self.out}: cannot make the run folder ({err})") from None
        path = self.out / CONFIG
        identity = self.config.identity()
        has_records = (self.out / RECORDS).is_file() and (self.out / RECORDS).stat().st_size > 0
        if path.is_file() and has_records:  # a folder with no answers yet can take any settings
            stored = json.loads(path.read_text())
            if stored.get("identity") != identity:
                changed = sorted(k for k in identity if stored.get("identity", {}).get(k) != identity[k])
                raise InvalidOptionError(
                    f"{self.out} holds a run with other settings ({', '.join(changed)}); use another --out"
                )
        path.write_text(
            json.dumps({"identity": identity, "config": asdict(self.config)}, indent=1, default=list) + "\n"
        )

    def run(self) -> dict[str, Any]:
        from focus_integrations.harness.summary import summarize, write_outputs

        self._check_out_dir()
        data = load_local(
            self.benchmark, self.config.data, {"tasks": self.config.tasks, "seed": self.config.seed}
        )
        selection = select_rows(self.benchmark, data, self.config)
        if self.config.searches_alpha and self.config.phase != "test" and not selection.val:
            raise InvalidOptionError(
                f"the validation split is empty ({self.config.val_fraction:g} of {len(data)} rows"
                + (
                    f", shard {self.config.shard[0]}/{self.config.shard[1]}"
                    if self.config.shard[1] > 1
                    else ""
                )
                + "): pass one --alpha, or a larger --val-fraction"
            )
        if not hasattr(self.model, "generate"):
            self.model = self.model()
        records_path = self.out / RECORDS
        records = read_records(records_path)
        done = {record_key(r) for r in records}
        row_queries = {
            (r["split"], r["mode"], float(r["alpha"]), r["example"]): r.get("n_queries") for r in records
        }
        counts: dict[tuple[str, str, float, str], int] = {}
        for r in records:
            slot = (r["split"], r["mode"], float(r["alpha"]), r["example"])
            counts[slot] = counts.get(slot, 0) + 1
        config = self.config
        chosen = config.alpha if config.alpha is not None else config.alpha_grid[0]
        with RecordWriter(records_path) as writer:
            state = (writer, records, done, counts, row_queries, data, selection)
            if config.searches_alpha and config.phase in ("all", "val"):
                jobs = [Job("val", "vanilla", 0.0)] * ("vanilla" in config.modes) + [
                    Job("val", "focus", a) for a in config.alpha_grid
                ]
                self._run_jobs(jobs, selection.val, state)
                if config.phase == "all":
                    chosen = choose_alpha(self.benchmark, records, config.alpha_grid)
            if config.phase in ("all", "test"):
                jobs = [Job("test", mode, mode_alpha(config, mode, chosen)) for mode in config.modes]
                self._run_jobs(jobs, selection.test, state)
        summary = summarize(self.benchmark, self.config, records, data_info(self.benchmark, data))
        write_outputs(summary, records, self.out)
        return summary

    def _run_jobs(self, jobs: list[Job], rows: list[int], state: tuple[Any, ...]) -> None:
        writer, records, done, counts, row_queries, data, selection = state
        pending = [
            (i, job)
            for i in rows
            for job in jobs
            if not _row_done(counts, row_queries, (job.split, job.mode, job.alpha, selection.ids[i]))
        ]
        if not pending:
            return
        label = f"{self.benchmark.name} {jobs[0].split}"
        tick = self.progress(len(pending), label)
        by_row: dict[int, list[Job]] = {}
        for i, job in pending:
            by_row.setdefault(i, []).append(job)
        for i, row_jobs in by_row.items():
            ctx = RowContext(selection.ids[i], data.root, self.config.protocol)
            queries = self.benchmark.queries(data.rows[i], self.protocol, ctx)
            if self.reading != "generate":
                queries = [q for q in queries if q.choices]
            for job in row_jobs:
                for query in queries:
                    key = (job.split, job.mode, job.alpha, query.query_id)
                    if key in done:
                        continue
                    record = {
                        "split": job.split,
                        "mode": job.mode,
                        "alpha": job.alpha,
                        "n_queries": len(queries),
                    }
                    record |= ask(
                        self.model,
                        self.benchmark,
                        self.protocol,
                        self.reading,
                        query,
                        mode=job.mode,
                        alpha=job.alpha,
                        seed=self.config.seed,
                        options=self.options,
                    )
                    writer.write(record)
                    records.append(record)
                    done.add(key)
                tick()


def _row_done(counts: dict[Any, int], row_queries: dict[Any, Any], slot: tuple[Any, ...]) -> bool:
    expected = row_queries.get(slot)
    return expected is not None and counts.get(slot, 0) >= expected


def data_info(benchmark: Benchmark, data: LocalData) -> dict[str, Any]:
    revision = data.revision
    pinned = benchmark.revision
    is_sha = re.fullmatch(r"[0-9a-f]{7,40}", pinned) is not None
    known_bad = revision is not None and any(revision.startswith(b) for b in benchmark.bad_revisions)
    return {
        "hub_id": benchmark.hub_id,
        "root": str(data.root),
        "files": data.files[:20],
        "rows": len(data),
        "revision": revision,
        "pinned_revision": pinned,
        "revision_matches_pin": None if revision is None or not is_sha else revision.startswith(pinned),
        "revision_known_bad": known_bad,
        "licence": benchmark.licence,
    }


def _tqdm_progress(total: int, label: str) -> Callable[[], None]:
    """A progress bar with ETA on stderr (rows x modes); plain lines when stderr is not a terminal."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the eval extra
        return lambda: None
    bar = tqdm(total=total, desc=label, unit="row", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)

    def tick() -> None:
        bar.update(1)
        if bar.n >= bar.total:
            bar.close()

    return tick
