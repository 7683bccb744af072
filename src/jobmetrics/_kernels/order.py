"""Arrival-order checks done before events are held back: lateness against a running watermark."""

from __future__ import annotations

import numpy as np

from ._jit import kernel

__all__ = ["find_late"]


@kernel
def _arrival_watermark(running, lateness, watermark, no_time):
    """The watermark an event meets: ``max(watermark, running max of earlier ts - lateness)``."""
    if running != no_time and running - lateness > watermark:
        return running - lateness
    return watermark


@kernel
def find_late(ts, max_before, lateness, watermark, no_time):
    """Judge each event in arrival order against the watermark at its arrival.

    An event older than that watermark is late. Returns ``(late_positions, their_watermarks,
    new_max_ts)``; one pass when nothing is late (the common case), two otherwise.
    """
    n = ts.shape[0]
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
    return where, marks, new_max
