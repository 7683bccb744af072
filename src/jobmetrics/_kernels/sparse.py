"""Statistics of many sparse histograms at once: COO entries (row, bucket index, count) sorted by
row then index, one pass per statistic."""

from __future__ import annotations

import math

import numpy as np

from ._jit import kernel
from .hdr import highest_equivalent, lowest_equivalent, median_equivalent

__all__ = ["drain_dense", "row_stats", "window_range_sum"]


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


@kernel
def _add_rows(keys, ptr, idx, cnt, lo, hi, scratch):
    """Add the CSR rows whose key is in [lo, hi) into ``scratch``; return their total."""
    a = np.searchsorted(keys, lo)
    b = np.searchsorted(keys, hi)
    total = np.int64(0)
    for k in range(ptr[a], ptr[b]):
        scratch[idx[k]] += cnt[k]
        total += cnt[k]
    return total


@kernel
def window_range_sum(
    windows, ptr, idx, cnt, blocks, bptr, bidx, bcnt, block, first_block, sealed_upto, lo, hi, extra, scratch
):
    """Sum into ``scratch`` the histograms of the rows with ``lo <= window < hi`` plus the dense
    counts ``extra`` (may be empty); return the total count.

    Rows are CSR (``windows``, ``ptr``, ``idx``, ``cnt``); ``blocks``/``bptr``/``bidx``/``bcnt`` hold
    the same histograms pre-merged per aligned block of ``block`` windows, valid for block numbers
    in ``[first_block, sealed_upto)``. Whole blocks inside the range are read pre-merged, the edges
    row by row.
    """
    total = np.int64(0)
    if extra.shape[0] > 0:
        for i in range(extra.shape[0]):
            scratch[i] = extra[i]
            total += extra[i]
    else:
        scratch[:] = 0
    if windows.shape[0] == 0:
        return total
    lo = max(lo, windows[0])
    hi = min(hi, windows[windows.shape[0] - 1] + 1)
    if lo >= hi:
        return total
    k_lo = max(-((-lo) // block), first_block)
    k_hi = min(hi // block, sealed_upto)
    if k_lo < k_hi:
        total += _add_rows(windows, ptr, idx, cnt, lo, k_lo * block, scratch)
        total += _add_rows(blocks, bptr, bidx, bcnt, k_lo, k_hi, scratch)
        total += _add_rows(windows, ptr, idx, cnt, k_hi * block, hi, scratch)
    else:
        total += _add_rows(windows, ptr, idx, cnt, lo, hi, scratch)
    return total


@kernel
def drain_dense(pool, spill, spilled, slots):
    """Sparse copy of dense histograms ``pool[slots[j]]`` (plus ``spill`` when ``spilled``; slots
    ``< 0`` skipped), zeroing them. Returns ``(row, index, count)`` entries sorted by row then
    index, ``row`` being ``j``."""
    n = 0
    for j in range(slots.shape[0]):
        p = slots[j]
        if p >= 0:
            for i in range(pool.shape[1]):
                if pool[p, i] != 0 or (spilled and spill[p, i] != 0):
                    n += 1
    row = np.empty(n, dtype=np.int32)
    idx = np.empty(n, dtype=np.int32)
    cnt = np.empty(n, dtype=np.int64)
    k = 0
    for j in range(slots.shape[0]):
        p = slots[j]
        if p >= 0:
            for i in range(pool.shape[1]):
                c = np.int64(pool[p, i])
                if spilled:
                    c += spill[p, i]
                    spill[p, i] = 0
                if c != 0:
                    row[k] = j
                    idx[k] = i
                    cnt[k] = c
                    pool[p, i] = 0
                    k += 1
    return row, idx, cnt
