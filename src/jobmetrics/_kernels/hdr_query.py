"""Query kernels over dense HdrHistogram counts: quantiles, moments, extremes."""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .hdr import highest_equivalent, lowest_equivalent, median_equivalent

__all__ = ["extreme_indices", "mean_stddev", "values_at_quantiles"]


@kernel
def extreme_indices(counts):
    """``(first, last)`` index with a non-zero count, or ``(-1, -1)`` when empty."""
    first = -1
    for i in range(counts.shape[0]):
        if counts[i] != 0:
            first = i
            break
    if first < 0:
        return -1, -1
    last = first
    for i in range(counts.shape[0] - 1, first - 1, -1):
        if counts[i] != 0:
            last = i
            break
    return first, last


@kernel
def values_at_quantiles(counts, total, quantiles, ceil_rank, unit_magnitude, half_magnitude):
    """Value at each quantile in one walk over the counts.

    Rank rules (``total`` counts, quantile ``q`` in [0, 1]):

    * ceil (Java, Rust): ``rank = max(1, ceil(nextafter(q, 0) * total))``
    * round (C, Go, Python): ``rank = max(1, floor(q * total + 0.5))``

    The answer is the highest equivalent value of the bucket where the cumulative count first
    reaches the rank, or the lowest equivalent value when ``q == 0``.
    """
    m = quantiles.shape[0]
    out = np.zeros(m, dtype=np.int64)
    if total <= 0:
        return out
    ranks = np.empty(m, dtype=np.int64)
    for j in range(m):
        q = quantiles[j]
        if ceil_rank:
            r = math.ceil(np.nextafter(q, 0.0) * total) if q > 0.0 else 0.0
        else:
            r = math.floor(q * total + 0.5)
        ranks[j] = max(np.int64(1), min(np.int64(r), np.int64(total)))
    order = np.argsort(ranks, kind="mergesort")
    j = 0
    running = np.int64(0)
    for i in range(counts.shape[0]):
        c = counts[i]
        if c == 0:
            continue
        running += c
        while j < m and running >= ranks[order[j]]:
            k = order[j]
            if quantiles[k] == 0.0:
                out[k] = lowest_equivalent(i, unit_magnitude, half_magnitude)
            else:
                out[k] = highest_equivalent(i, unit_magnitude, half_magnitude)
            j += 1
        if j == m:
            break
    return out


@kernel
def mean_stddev(counts, unit_magnitude, half_magnitude):
    """Mean and population standard deviation using each bucket's median equivalent value."""
    total = 0.0
    acc = 0.0
    for i in range(counts.shape[0]):
        c = counts[i]
        if c != 0:
            total += c
            acc += c * float(median_equivalent(i, unit_magnitude, half_magnitude))
    if total == 0.0:
        return 0.0, 0.0
    mean = acc / total
    var = 0.0
    for i in range(counts.shape[0]):
        c = counts[i]
        if c != 0:
            d = float(median_equivalent(i, unit_magnitude, half_magnitude)) - mean
            var += c * d * d
    return mean, math.sqrt(var / total)
