"""Proportions with Wilson 95% confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    """``successes`` out of ``total``, with its Wilson score interval (well behaved at 0, 1 and small n)."""

    successes: int
    total: int

    @property
    def value(self) -> float:
        return self.successes / self.total if self.total else float("nan")

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.successes, self.total)

    def as_dict(self) -> dict[str, float | int | list[float] | None]:
        """JSON-ready; an empty proportion has ``value`` and ``ci95`` None (JSON has no NaN)."""
        if not self.total:
            return {"value": None, "ci95": None, "successes": 0, "total": 0}
        low, high = self.ci95
        return {"value": self.value, "ci95": [low, high], "successes": self.successes, "total": self.total}

    def __str__(self) -> str:
        if not self.total:
            return "n/a"
        low, high = self.ci95
        return f"{self.value:.2f} [{low:.2f},{high:.2f}]"


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when ``total`` is 0."""
    if total < 0 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total, got {successes}/{total}")
    if total == 0:
        return float("nan"), float("nan")
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def count(flags: list[bool]) -> Proportion:
    return Proportion(sum(bool(f) for f in flags), len(flags))
