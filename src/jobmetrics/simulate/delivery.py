"""How a log reaches its consumer: bounded disorder and at-least-once duplicates.

Both keep every event's ``ts``; they change only the order rows arrive in and how often.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["delivery_order"]


def delivery_order(
    ts_ms: npt.NDArray[np.int64],
    duplicable: npt.NDArray[np.bool_],
    *,
    disorder_ms: int,
    duplicates: float,
    rng: np.random.Generator,
) -> tuple[npt.NDArray[np.int64], int]:
    """Row positions in delivery order (a row may appear twice) and the number of duplicates.

    Every row is delayed by a uniform whole number of milliseconds in ``[0, disorder_ms]`` and
    rows are delivered in order of ``ts + delay`` (ties in their original order). So a row arrives
    after no row whose ``ts`` is more than ``disorder_ms`` later than its own: an aggregator with
    ``allowed_lateness >= disorder_ms`` finds nothing late. A fraction ``duplicates`` of the rows
    where ``duplicable`` is true is delivered a second time, with its own delay.

    Examples
    --------
    >>> ts = np.array([0, 10, 20, 30, 40], dtype=np.int64)
    >>> order, dups = delivery_order(ts, np.ones(5, bool), disorder_ms=15, duplicates=0.0,
    ...                              rng=np.random.default_rng(3))
    >>> sorted(order.tolist()) == [0, 1, 2, 3, 4], dups
    (True, 0)
    """
    if disorder_ms < 0:
        raise ValueError(f"disorder_ms must be >= 0, got {disorder_ms!r}")
    if not 0.0 <= duplicates <= 1.0:
        raise ValueError(f"duplicates must be a rate in [0, 1], got {duplicates!r}")
    n = ts_ms.shape[0]
    rows = np.arange(n, dtype=np.int64)
    n_dup = 0
    if duplicates > 0:
        again = np.flatnonzero((rng.random(n) < duplicates) & duplicable)
        n_dup = int(again.size)
        rows = np.concatenate([rows, again.astype(np.int64)])
    if disorder_ms == 0:
        if n_dup == 0:
            return rows, 0
        key = ts_ms[rows]
    else:
        key = ts_ms[rows] + rng.integers(0, disorder_ms + 1, size=rows.size, dtype=np.int64)
    return rows[np.argsort(key, kind="stable")], n_dup
