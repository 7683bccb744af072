"""Arrival-order checks done before events are held back: lateness against a running watermark."""

from __future__ import annotations

import numpy as np

from ._jit import kernel

__all__ = ["find_late", "ordered"]


@kernel
def _arrival_watermark(running, lateness, watermark, no_time):
    """The watermark an event meets: ``max(watermark, running max of earlier ts - lateness)``."""
    if running != no_time and running - lateness > watermark:
        return running - lateness
    return watermark


@kernel
def ordered(ts):
    """Whether ``ts`` never decreases (a branch-free pass the compiler vectorises)."""
    down = 0
    for i in range(1, ts.shape[0]):
        down |= np.int64(ts[i] < ts[i - 1])
    return down == 0


@kernel
def find_late(ts, max_before, lateness, watermark, no_time):
    """Judge each event in arrival order against the watermark at its arrival.

    An event older than that watermark is late. Returns ``(late_positions, their_watermarks,
    new_max_ts, ts_ordered)``. Time-ordered input takes one vectorised pass: within it the
    watermark an event meets is the one at the batch's start, so the late events are a prefix.
    Otherwise one pass when nothing is late (the common case), two when something is.
    """
    n = ts.shape[0]
    if ordered(ts):
        wm = _arrival_watermark(max_before, lateness, watermark, no_time)
        count = 0
        if wm != no_time:
            while count < n and ts[count] < wm:
                count += 1
        new_max = max_before if n == 0 or ts[n - 1] < max_before else ts[n - 1]
        return np.arange(count, dtype=np.int64), np.full(count, wm, dtype=np.int64), new_max, True
    running = max_before
    count = 0
    for i in range(n):
        wm = _arrival_watermark(running, lateness, watermark, no_time)
        if wm != no_time and ts[i] < wm:
            count += 1
        if ts[i] > running:
            running = ts[i]
    new_max = running
    where = np.empty(count, dtype=np.int64)
    marks = np.empty(count, dtype=np.int64)
    if count:
        running = max_before
        k = 0
        for i in range(n):
            wm = _arrival_watermark(running, lateness, watermark, no_time)
            if wm != no_time and ts[i] < wm:
                where[k] = i
                marks[k] = wm
                k += 1
            if ts[i] > running:
                running = ts[i]
    return where, marks, new_max, False
