"""Statistics a reviewer accepts: percentile bootstrap 95% intervals and the exact McNemar test.

Both are deterministic (the bootstrap draws from a fixed seed), so the same records always give the same
summary: a resumed or sharded run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

BOOTSTRAP_SAMPLES = 2000
BOOTSTRAP_SEED = 0


def bootstrap_ci(
    values: Sequence[float], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """Percentile 95% interval of the mean of ``values`` (resampling items); None when there are none."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(samples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def paired_bootstrap_ci(
    a: Sequence[float], b: Sequence[float], *, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float] | None:
    """95% interval of ``mean(a) - mean(b)`` over the same items (resampled together)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    return bootstrap_ci(
        np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), samples=samples, seed=seed
    )


def mcnemar_exact(baseline: Sequence[bool], other: Sequence[bool]) -> dict[str, float | int]:
    """Exact (binomial) McNemar test of paired correctness: two-sided p of the discordant pairs.

    ``b`` = baseline right and other wrong, ``c`` = baseline wrong and other right; under H0 each discordant
    pair is a fair coin, ``p = min(1, 2 * P(X <= min(b, c)))`` with ``X ~ Binomial(b + c, 1/2)``
    (``scipy.stats.binomtest(min(b, c), b + c).pvalue``).
    """
    if len(baseline) != len(other):
        raise ValueError("paired samples must have the same length")
    b = sum(1 for x, y in zip(baseline, other) if x and not y)
    c = sum(1 for x, y in zip(baseline, other) if y and not x)
    n = b + c
    if n == 0:
        return {"b": 0, "c": 0, "p_value": 1.0}
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return {"b": b, "c": c, "p_value": min(1.0, 2 * tail)}
