"""Intervals over seeds: the unit of replication behind every finding.

A seed is one training run (its own initialisation and data stream) evaluated on a fixed set of
examples. A per-seed statistic (an accuracy, a Spearman correlation, a gap between two variants of
the same seed) already averages that seed's examples, so the example-level noise enters the
interval through the spread between seeds; examples are never counted as independent replicates.
`seed_interval` gives the Student-t interval of the mean over seeds, which is exact for normal
per-seed values and what `findings.verdict` compares with a null value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """mean of the per-seed values, its two-sided `level` interval [low, high] (NaN with < 2 finite
    seeds), the seeds it rests on (n) and their standard deviation (ddof = 1; NaN with < 2)."""
    mean: float
    low: float
    high: float
    n: int
    sd: float
    level: float = 0.95

    def covers(self, value: float) -> bool:
        return bool(self.low <= value <= self.high)

    def __str__(self) -> str:
        if self.n < 2:
            return f"{self.mean:.3f} (1 seed, no interval)" if self.n else "no seeds"
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def seed_interval(values, level: float = 0.95) -> Interval:
    """Student-t interval for the mean of per-seed `values` (NaNs dropped: a seed whose statistic is
    undefined, e.g. a Spearman over a constant d̄, does not count). Zero spread gives a zero-width
    interval at the mean."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}.")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan, level)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, 1, math.nan, level)
    sd = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, sd, level)


def spearman_or_nan(x, y) -> float:
    """Spearman correlation of x and y, NaN where it is undefined (fewer than 2 points, or a constant
    side such as a fixed-depth model's d̄): such a seed then does not count in `seed_interval`."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)
