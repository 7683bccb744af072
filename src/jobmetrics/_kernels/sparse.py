"""Statistics of many sparse histograms at once: COO entries (row, bucket index, count) sorted by
row then index, one pass per statistic."""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .hdr import highest_equivalent, lowest_equivalent, median_equivalent

__all__ = ["row_stats"]


@kernel
def row_stats(row, idx, cnt, n_rows, quantiles, ceil_rank, unit, half):
    """Per-row total, values at ``quantiles``, min, max (ints) and mean (float).

    Entries must be sorted by (row, idx) with no repeats. Quantile semantics are those of
    :func:`jobmetrics._kernels.hdr_query.values_at_quantiles`.
    """
    n_q = quantiles.shape[0]
    total = np.zeros(n_rows, dtype=np.int64)
    mean = np.zeros(n_rows, dtype=np.float64)
    vmin = np.zeros(n_rows, dtype=np.int64)
    vmax = np.zeros(n_rows, dtype=np.int64)
    qv = np.zeros((n_rows, n_q), dtype=np.int64)
    m = row.shape[0]
    for k in range(m):
        r = row[k]
        total[r] += cnt[k]
        mean[r] += cnt[k] * float(median_equivalent(idx[k], unit, half))
    ranks = np.zeros(n_q, dtype=np.int64)
    start = 0
    while start < m:
        r = row[start]
        end = start
        while end < m and row[end] == r:
            end += 1
        tot = total[r]
        mean[r] /= tot
        vmin[r] = lowest_equivalent(idx[start], unit, half) if idx[start] > 0 else 0
        vmax[r] = highest_equivalent(idx[end - 1], unit, half)
        for j in range(n_q):
            q = quantiles[j]
            if ceil_rank:
                rk = math.ceil(np.nextafter(q, 0.0) * tot) if q > 0.0 else 0.0
            else:
                rk = math.floor(q * tot + 0.5)
            ranks[j] = max(np.int64(1), min(np.int64(rk), tot))
        for j in range(n_q):
            running = np.int64(0)
            for k in range(start, end):
                running += cnt[k]
                if running >= ranks[j]:
                    if quantiles[j] == 0.0:
                        qv[r, j] = lowest_equivalent(idx[k], unit, half)
                    else:
                        qv[r, j] = highest_equivalent(idx[k], unit, half)
                    break
        start = end
    return total, qv, vmin, vmax, mean
