"""The lifecycle engine: the arrays the single-pass kernel works on, and its driver.

:class:`Engine` owns the job table, the open window rows with their dense histogram pool, and the
per-endpoint gauges. :meth:`Engine.apply` feeds a sorted :class:`~jobmetrics.events.EventBatch`
through :func:`jobmetrics._kernels.lifecycle.apply_events`, growing whatever the kernel reports as
full and resuming where it stopped. Rows of windows the clock has passed are moved into a
:class:`~jobmetrics.windows.ClosedRows` store in sparse form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ._kernels import lifecycle as K
from .events import EventBatch
from .windows import ClosedRows, RowBlock

__all__ = ["Engine", "EngineConfig"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Validated engine options, all times in microseconds."""

    width: int
    sweep_interval: int
    job_ttl: int
    retention: int
    adopt_orphans: bool
    unit_magnitude: int
    half_magnitude: int
    highest: int
    counts_len: int


class Engine:
    """Arrays and driver of the lifecycle kernel (see :mod:`jobmetrics._kernels.lifecycle`)."""

    def __init__(self, config: EngineConfig, *, job_capacity: int = 1024, rows: int = 64, pool: int = 64) -> None:
        self.config = config
        cap = 1 << max(4, int(job_capacity - 1).bit_length())
        self.jt = np.zeros((cap, K.JT_FIELDS), dtype=np.int64)
        self.n_endpoints = 0
        self.slot_of = np.full((0, K.RING), -1, dtype=np.int32)
        self.levels = np.zeros((0, 2), dtype=np.int64)
        self.row_ep = np.full(0, -1, dtype=np.int32)
        self.row_w = np.full(0, K.NO_WINDOW, dtype=np.int64)
        self.row_cnt = np.zeros((0, K.N_COUNTERS), dtype=np.int64)
        self.row_hist = np.full((0, K.N_METRICS), -1, dtype=np.int32)
        self.row_gauge = np.zeros((0, 2), dtype=np.int64)
        self.row_free = np.zeros(0, dtype=np.int32)
        self.pool = np.zeros((0, config.counts_len), dtype=np.int64)
        self.pool_free = np.zeros(0, dtype=np.int32)
        self.invalid_pairs = np.zeros((7, 7), dtype=np.int64)
        self.st = np.zeros(K.N_STATE, dtype=np.int64)
        self.st[K.ST_CLOCK_W] = K.NO_WINDOW
        self.st[K.ST_NEXT_SWEEP] = K.NO_WINDOW
        self.scratch_key = np.zeros(4096, dtype=np.int64)
        self.scratch_gen = np.zeros(4096, dtype=np.int64)
        self.closed = ClosedRows(config.counts_len)
        self._grow_rows(rows)
        self._grow_pool(pool)

    # ------------------------------------------------------------------ capacity
    def ensure_endpoints(self, n: int) -> None:
        """Make room for endpoint codes ``0..n-1``."""
        if n <= self.slot_of.shape[0]:
            self.n_endpoints = max(self.n_endpoints, n)
            return
        new = max(n, 2 * self.slot_of.shape[0], 8)
        slot_of = np.full((new, K.RING), -1, dtype=np.int32)
        slot_of[: self.slot_of.shape[0]] = self.slot_of
        levels = np.zeros((new, 2), dtype=np.int64)
        levels[: self.levels.shape[0]] = self.levels
        self.slot_of, self.levels = slot_of, levels
        self.n_endpoints = n

    def _grow_rows(self, extra: int) -> None:
        old = self.row_ep.shape[0]
        new = old + max(extra, 1)
        self.row_ep = np.concatenate([self.row_ep, np.full(new - old, -1, dtype=np.int32)])
        self.row_w = np.concatenate([self.row_w, np.full(new - old, K.NO_WINDOW, dtype=np.int64)])
        self.row_cnt = np.concatenate([self.row_cnt, np.zeros((new - old, K.N_COUNTERS), dtype=np.int64)])
        self.row_hist = np.concatenate([self.row_hist, np.full((new - old, K.N_METRICS), -1, dtype=np.int32)])
        self.row_gauge = np.concatenate([self.row_gauge, np.zeros((new - old, 2), dtype=np.int64)])
        top = int(self.st[K.ST_ROW_TOP])
        free = np.empty(new, dtype=np.int32)
        free[:top] = self.row_free[:top]
        # new rows go on top of the stack, lowest index popped first
        free[top : top + new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        self.row_free = free
        self.st[K.ST_ROW_TOP] = top + new - old

    def _grow_pool(self, extra: int) -> None:
        old = self.pool.shape[0]
        new = old + max(extra, 1)
        pool = np.zeros((new, self.config.counts_len), dtype=np.int64)
        pool[:old] = self.pool
        self.pool = pool
        top = int(self.st[K.ST_POOL_TOP])
        free = np.empty(new, dtype=np.int32)
        free[:top] = self.pool_free[:top]
        free[top : top + new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
        self.pool_free = free
        self.st[K.ST_POOL_TOP] = top + new - old

    def _grow_job_table(self) -> None:
        new = np.zeros((self.jt.shape[0] * 2, K.JT_FIELDS), dtype=np.int64)
        K.jt_rehash(self.jt, new)
        self.jt = new

    def _cfg(self) -> I64:
        c = self.config
        cfg = np.zeros(K.N_CFG, dtype=np.int64)
        cfg[K.CFG_WIDTH] = c.width
        cfg[K.CFG_SWEEP] = c.sweep_interval
        cfg[K.CFG_TTL] = c.job_ttl
        cfg[K.CFG_RETENTION] = c.retention
        cfg[K.CFG_ADOPT] = int(c.adopt_orphans)
        cfg[K.CFG_UNIT] = c.unit_magnitude
        cfg[K.CFG_HALF] = c.half_magnitude
        cfg[K.CFG_HIGHEST] = c.highest
        cfg[K.CFG_N_ENDPOINTS] = self.n_endpoints
        return cfg

    def _make_room(self, status: int) -> None:
        if status == K.NEED_JOB_TABLE:
            self._grow_job_table()
            return
        freed = self.close_passed_windows()
        n_rows = self.row_ep.shape[0]
        if status in (K.NEED_ROWS, K.NEED_RING):
            if int(self.st[K.ST_ROW_TOP]) < max(n_rows // 4, self.n_endpoints + 64):
                self._grow_rows(max(n_rows, self.n_endpoints + 64))
            elif status == K.NEED_RING and freed == 0:
                raise RuntimeError("window ring exhausted: more than 64 open windows for one endpoint")
        elif status == K.NEED_POOL and int(self.st[K.ST_POOL_TOP]) < max(self.pool.shape[0] // 4, 64):
            self._grow_pool(max(self.pool.shape[0], 64))

    # ------------------------------------------------------------------ driving the kernel
    def apply(self, batch: EventBatch) -> None:
        """Apply a batch sorted by (time, state) whose events are all behind the watermark."""
        if len(batch) == 0:
            return
        pos = 0
        while True:
            cfg = self._cfg()
            status, pos = K.apply_events(
                batch.ts, batch.kind, batch.endpoint, batch.job, batch.state, batch.status, pos,
                self.jt, self.slot_of, self.row_ep, self.row_w,
                self.row_cnt, self.row_hist, self.row_gauge, self.row_free, self.pool,
                self.pool_free, self.levels, self.invalid_pairs, self.st, cfg,
                self.scratch_key, self.scratch_gen,
            )  # fmt: skip
            if status == K.OK:
                return
            self._make_room(int(status))

    def advance(self, t: int) -> None:
        """Run the sweeps due by time ``t`` and close every window that ends at or before ``t``."""
        while True:
            status = K.advance_clock(
                t, self.jt, self.slot_of, self.row_ep, self.row_w,
                self.row_cnt, self.row_hist, self.row_gauge, self.row_free, self.levels, self.st,
                self._cfg(),
            )  # fmt: skip
            if status == K.OK:
                break
            self._make_room(int(status))
        self.close_passed_windows()

    @property
    def clock_window(self) -> int | None:
        """Window index of the engine's clock (None before the first event)."""
        w = int(self.st[K.ST_CLOCK_W])
        return None if w == K.NO_WINDOW else w

    def close_passed_windows(self) -> int:
        """Move rows of windows before the clock into the closed store; return how many moved."""
        clock = int(self.st[K.ST_CLOCK_W])
        rows = np.flatnonzero((self.row_ep >= 0) & (self.row_w < clock))
        if rows.size == 0:
            return 0
        self.closed.append(self._take_rows(rows, gauge=self.row_gauge[rows]))
        self._free_rows(rows)
        return int(rows.size)

    def _take_rows(self, rows: npt.NDArray[np.intp], gauge: I64) -> RowBlock:
        """Sparse copy of ``rows`` (counters, gauges and histogram entries)."""
        hist_rows: list[npt.NDArray[np.int32]] = []
        hist_idx: list[npt.NDArray[np.int32]] = []
        hist_cnt: list[I64] = []
        for m in range(K.N_METRICS):
            p = self.row_hist[rows, m]
            have = np.flatnonzero(p >= 0)
            dense = self.pool[p[have]]
            rr, ii = np.nonzero(dense)
            hist_rows.append(have[rr].astype(np.int32))
            hist_idx.append(ii.astype(np.int32))
            hist_cnt.append(dense[rr, ii])
        return RowBlock(
            endpoint=self.row_ep[rows].copy(),
            window=self.row_w[rows].copy(),
            counters=self.row_cnt[rows].copy(),
            gauges=np.asarray(gauge, dtype=np.int64).copy(),
            hist_row=tuple(hist_rows),
            hist_index=tuple(hist_idx),
            hist_count=tuple(hist_cnt),
        )

    def _free_rows(self, rows: npt.NDArray[np.intp]) -> None:
        ring = (self.row_w[rows] % K.RING).astype(np.intp)
        self.slot_of[self.row_ep[rows], ring] = -1
        pools = self.row_hist[rows].ravel()
        pools = pools[pools >= 0]
        if pools.size:
            self.pool[pools] = 0
            top = int(self.st[K.ST_POOL_TOP])
            self.pool_free[top : top + pools.size] = pools
            self.st[K.ST_POOL_TOP] = top + pools.size
        self.row_ep[rows] = -1
        self.row_w[rows] = K.NO_WINDOW
        self.row_hist[rows] = -1
        top = int(self.st[K.ST_ROW_TOP])
        self.row_free[top : top + rows.size] = rows.astype(np.int32)
        self.st[K.ST_ROW_TOP] = top + rows.size

    def open_rows(self) -> RowBlock:
        """Sparse copy of the rows still open (their gauges are the current levels)."""
        rows = np.flatnonzero(self.row_ep >= 0)
        gauge = self.levels[self.row_ep[rows]] if rows.size else np.zeros((0, 2), dtype=np.int64)
        return self._take_rows(rows, gauge=gauge)

    # ------------------------------------------------------------------ introspection
    @property
    def jobs_in_memory(self) -> int:
        return int(self.st[K.ST_JT_COUNT])

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by the engine's arrays, by part."""
        return {
            "job_table": self.jt.nbytes,
            "open_rows": self.row_ep.nbytes + self.row_w.nbytes + self.row_cnt.nbytes
            + self.row_hist.nbytes + self.row_gauge.nbytes + self.row_free.nbytes,
            "histogram_pool": self.pool.nbytes + self.pool_free.nbytes,
            "closed_rows": self.closed.nbytes,
        }
