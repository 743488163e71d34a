"""The statistics of a robustness report: accuracy with a seeded bootstrap interval, exact McNemar tests on
paired items, and paired differences between two models."""

from __future__ import annotations

import math

import numpy as np

BOOTSTRAP = 2000


def bootstrap_ci(correct: list[bool], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``correct`` (fractions); (nan, nan) when empty."""
    x = np.asarray(correct, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(np.random.SeedSequence([seed, x.size]))
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return (float(lo), float(hi))


def paired_diff_ci(a: list[bool], b: list[bool], seed: int = 0, n_boot: int = BOOTSTRAP) -> tuple[float, float]:
    """95% bootstrap interval of mean(b) - mean(a) over paired items (resampling pairs)."""
    xa, xb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if xa.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(np.random.SeedSequence([seed, xa.size, 1]))
    idx = rng.integers(0, xa.size, size=(n_boot, xa.size))
    diffs = xb[idx].mean(axis=1) - xa[idx].mean(axis=1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return (float(lo), float(hi))


def mcnemar_exact(a: list[bool], b: list[bool]) -> float:
    """Exact two-sided McNemar p-value on paired outcomes: a binomial test (p = 0.5) on the discordant pairs;
    1.0 when there are none."""
    n01 = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n10 = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = n01 + n10
    if n == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return float(min(1.0, 2 * tail))
