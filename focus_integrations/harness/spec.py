"""The types of the per-benchmark tables, and of the queries they produce.

A benchmark is ONE :class:`Benchmark` table (``harness/benchmarks/<name>.py``): where its data comes from, one
:class:`Protocol` per protocol name (prompt templates, system turn, parser, resize, generation settings, the
reference bugs it reproduces), how a dataset row becomes :class:`Query` objects, and how query results
aggregate into scores (``metrics``) and breakdowns. :mod:`focus_integrations.harness.runner` runs any table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from typing import Protocol as TypingProtocol

PROTOCOLS = ("reference", "strict", "score")


class Parser(TypingProtocol):
    def parse(self, text: str) -> str | None: ...


@dataclass(frozen=True)
class Protocol:
    """How one protocol asks and reads a benchmark.

    ``generation`` holds engine options (``FocusDecoder.generate``); ``mode_generation`` adds options for one
    mode only (the reference's baseline hands LLaVA-OneVision a flat image list, its FOCUS rows nested ones,
    and its noised runners contrast one-image rows too);
    ``quirks`` lists the reference code's behaviours this protocol reproduces on purpose (printed in every
    report of a run that uses it).
    """

    name: str
    templates: Mapping[str, str]
    parser: Parser
    system: str | None = None
    resize: tuple[int, int] | None = None
    generation: Mapping[str, Any] = field(default_factory=dict)
    mode_generation: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    quirks: tuple[str, ...] = ()
    # How the row's images reach the prompt: "first" (all images, then the text; the reference) or
    # "interleaved" (at each ``<image>`` of the question; missing ones first: official Mantis).
    image_placement: str = "first"
    # Frames sampled per video (Vinoground).
    num_frames: int = 8

    def engine_options(self, mode: str) -> dict[str, Any]:
        """The engine options of this protocol for ``mode`` (vanilla / focus / vcd)."""
        return dict(self.generation) | dict(self.mode_generation.get(mode, {}))


@dataclass
class Query:
    """One model call: images + prompt, the gold answer, and where it counts.

    ``choices`` are the answer strings the ``score`` reading compares (e.g. ``("A", "B")``); empty for open
    questions. ``grade`` overrides plain equality for graded metrics (MMLongBench): ``(parsed, raw) -> float``.
    """

    example_id: str
    key: str
    images: list[Any]
    prompt: str
    gold: str
    system: str | None = None
    choices: tuple[str, ...] = ()
    breakdown: dict[str, str] = field(default_factory=dict)
    content: list[dict[str, Any]] | None = None  # interleaved user content; None = images first
    grade: Callable[[str | None, str], float] | None = None
    parser: Parser | None = None  # overrides the protocol's parser for this query (MIRB's option subsets)
    metric: str | None = None  # the graded metric's name (MMLongBench: sub_em, acc, rouge_l, ...)

    @property
    def query_id(self) -> str:
        return f"{self.example_id}/{self.key}"


@dataclass(frozen=True)
class Metric:
    """A score over the queries named by ``keys`` (None: all of a row's queries).

    ``rule="all"``: a row scores 1 when every one of its ``keys`` queries is right (Winoground's group score);
    ``rule="each"``: every query is an item (accuracy, or the mean of a graded metric). ``answer`` counts the
    rate of that parsed answer instead of correctness (the leakage measure's "chose C").
    """

    keys: tuple[str, ...] | None = None
    rule: str = "each"
    answer: str | None = None


ACCURACY = {"accuracy": Metric()}


@dataclass(frozen=True)
class Layout:
    """A hub layout: the files a local copy must have (globs, relative to the folder) and how to read them."""

    kind: str  # "parquet" | "arrow" | "csv" | "json-tree"
    patterns: tuple[str, ...]
    description: str
    columns: tuple[str, ...] = ()  # the columns the protocols read (checked when the copy is opened)


@dataclass(frozen=True)
class RowContext:
    """What a row's query builder may need besides the row: its id, the data folder, the protocol name."""

    example_id: str
    root: Path
    protocol: str


@dataclass(frozen=True)
class Benchmark:
    """ONE table per benchmark: data source, protocols, row -> queries, scores.

    ``metrics``: score name -> :class:`Metric`; ``primary`` is the score alpha is chosen on. ``breakdowns``
    name :attr:`Query.breakdown` keys (category, number of images) every score is also reported by.
    """

    name: str
    hub_id: str
    revision: str
    licence: str
    gated: bool
    layout: Layout
    protocols: Mapping[str, Protocol]
    queries: Callable[[Mapping[str, Any], Protocol, RowContext], list[Query]]
    primary: str
    metrics: Mapping[str, Metric] = field(default_factory=lambda: ACCURACY)
    # Paired differences between two metrics on the same rows (the leakage delta: C multi - C single).
    deltas: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    category_column: str | None = None  # --category filters rows on it (VisMin category, MIRB subset, ...)
    breakdowns: tuple[str, ...] = ()
    row_id: str | None = None  # the id column; None: the row index
    notes: tuple[str, ...] = ()
    bad_revisions: tuple[str, ...] = ()  # revisions known to carry wrong labels (VisMin's shuffled release)
    reading: str = "generate"  # "generate" (free text, parsed) or "probs" (scores over the choices only)
    # A self-check over one mode's records (VisMin's label pairing): returns {'ok': bool, 'message': str, ...}.
    check: Callable[[list[Mapping[str, Any]]], dict[str, Any]] | None = None
    # Reads the rows itself from the folder (MMLongBench's json tree): (root, options) -> rows.
    load_rows: Callable[[Path, Mapping[str, Any]], list[dict[str, Any]]] | None = None

    def protocol(self, name: str) -> Protocol:
        from focus_integrations.errors import InvalidOptionError

        base = "strict" if name == "score" else name
        if base not in self.protocols:
            raise InvalidOptionError(
                f"{self.name} has no protocol {name!r}; choose one of {', '.join(self.available_protocols())}"
            )
        return self.protocols[base]

    def available_protocols(self) -> list[str]:
        return [p for p in PROTOCOLS if (p if p != "score" else "strict") in self.protocols]
