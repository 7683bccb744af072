"""The lifecycle engine: the arrays the single-pass kernel works on, and its driver.

:class:`Engine` owns the job and worker tables, the open window rows with their dense histogram
pool, and the per-endpoint running state. :meth:`Engine.apply` feeds a sorted
:class:`~jobmetrics.events.EventBatch` through :func:`jobmetrics._kernels.lifecycle.apply_events`,
growing whatever the kernel reports as full and resuming where it stopped. Rows of windows the
clock has passed move into a :class:`~jobmetrics.windows.ClosedRows` store in sparse form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ._kernels import clock as C
from ._kernels import layout as L
from ._kernels.lifecycle import apply_events
from ._kernels.runs import repeated_runs
from ._kernels.sparse import drain_dense
from ._kernels.table import table_rehash
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
    worker_ttl: int
    adopt_orphans: bool
    unit_magnitude: int
    half_magnitude: int
    highest: int
    counts_len: int


def _pow2(n: int) -> int:
    return 1 << max(4, int(n - 1).bit_length())


class Engine:
    """Arrays and driver of the lifecycle kernel (layouts in :mod:`jobmetrics._kernels.layout`)."""

    def __init__(self, config: EngineConfig, *, job_capacity: int = 1024) -> None:
        self.config = config
        self.jt = np.zeros((_pow2(job_capacity * 4 // 3 + 1), L.J_FIELDS), dtype=np.int64)
        self.wt = np.zeros((_pow2(64), L.W_FIELDS), dtype=np.int64)
        self.fifo = np.zeros((_pow2(job_capacity), 2), dtype=np.int64)
        self.n_endpoints = 0
        self.slot_of = np.full((0, L.RING), -1, dtype=np.int32)
        self.epa = np.zeros((0, L.E_COLS), dtype=np.int64)
        self.rows = np.zeros((0, L.R_COLS), dtype=np.int64)
        self.row_free = np.zeros(0, dtype=np.int32)
        self.pool = np.zeros((0, config.counts_len), dtype=np.int32)  # see layout.SPILL_AT
        self.spill = np.zeros((0, config.counts_len), dtype=np.int64)
        self.pool_free = np.zeros(0, dtype=np.int32)
        self.invalid_pairs = np.zeros((7, 7), dtype=np.int64)
        self.st = np.zeros(L.N_STATE, dtype=np.int64)
        self.st[L.ST_CLOCK_W] = L.NO_TIME
        self.st[L.ST_NEXT_SWEEP] = L.NO_TIME
        self.st[L.ST_MIN_IN_FLIGHT] = L.NO_TIME_MAX
        # scratch set of :func:`repeated_runs` (its contents never matter between calls), small
        # enough for the L1 cache
        self.scratch_key = np.zeros(1024, dtype=np.int64)
        self.scratch_time = np.full(1024, L.NO_TIME, dtype=np.int64)
        self.closed = ClosedRows(config.counts_len, L.R_HIST - L.R_CNT, L.N_METRICS)
        self._grow_rows(64)
        self._grow_pool(64)

    # ------------------------------------------------------------------ capacity
    def ensure_endpoints(self, n: int) -> None:
        """Make room for endpoint codes ``0..n-1``."""
        if n > self.slot_of.shape[0]:
            new = max(n, 2 * self.slot_of.shape[0], 8)
            slot_of = np.full((new, L.RING), -1, dtype=np.int32)
            slot_of[: self.slot_of.shape[0]] = self.slot_of
            epa = np.zeros((new, L.E_COLS), dtype=np.int64)
            epa[: self.epa.shape[0]] = self.epa
            clock = int(self.st[L.ST_CLOCK_W])
            if clock != L.NO_TIME:
                epa[self.epa.shape[0] :, L.E_WLAST] = clock * self.config.width
            self.slot_of, self.epa = slot_of, epa
        self.n_endpoints = max(self.n_endpoints, n)

    def _grow_rows(self, extra: int) -> None:
        old = self.rows.shape[0]
        new = old + max(extra, 1)
        rows = np.zeros((new, L.R_COLS), dtype=np.int64)
        rows[:old] = self.rows
        rows[old:, L.R_EP] = -1
        self.rows = rows
        self.row_free = _grown_stack(self.row_free, int(self.st[L.ST_ROW_TOP]), old, new)
        self.st[L.ST_ROW_TOP] += new - old

    def _grow_pool(self, extra: int) -> None:
        old = self.pool.shape[0]
        new = old + max(extra, 1)
        pool = np.zeros((new, self.config.counts_len), dtype=np.int32)
        pool[:old] = self.pool
        self.pool = pool
        spill = np.zeros((new, self.config.counts_len), dtype=np.int64)  # untouched unless spilled
        if self.spilled:
            spill[:old] = self.spill
        self.spill = spill
        self.pool_free = _grown_stack(self.pool_free, int(self.st[L.ST_POOL_TOP]), old, new)
        self.st[L.ST_POOL_TOP] += new - old

    def _grow_fifo(self) -> None:
        """Double the finished-jobs queue, keeping its entries in order from slot 0."""
        head, tail = int(self.st[L.ST_FIFO_HEAD]), int(self.st[L.ST_FIFO_TAIL])
        old = self.fifo
        size = old.shape[0]
        new = np.empty((size * 2, 2), dtype=np.int64)
        count, first = tail - head, head & (size - 1)
        part = min(count, size - first)  # entries before the ring wraps
        new[:part] = old[first : first + part]
        new[part:count] = old[: count - part]
        self.fifo = new
        self.st[L.ST_FIFO_HEAD] = 0
        self.st[L.ST_FIFO_TAIL] = tail - head

    @staticmethod
    def _rehashed(table: I64, factor: int = 2) -> I64:
        """``table`` moved into a new one ``factor`` times as large (a power of two)."""
        new = np.zeros((table.shape[0] * factor, table.shape[1]), dtype=np.int64)
        table_rehash(table, new)
        return new

    def _cfg(self) -> I64:
        c = self.config
        cfg = np.zeros(L.N_CFG, dtype=np.int64)
        cfg[L.CFG_WIDTH] = c.width
        cfg[L.CFG_SWEEP] = c.sweep_interval
        cfg[L.CFG_TTL] = c.job_ttl
        cfg[L.CFG_RETENTION] = c.retention
        cfg[L.CFG_WORKER_TTL] = c.worker_ttl
        cfg[L.CFG_ADOPT] = int(c.adopt_orphans)
        cfg[L.CFG_UNIT] = c.unit_magnitude
        cfg[L.CFG_HALF] = c.half_magnitude
        cfg[L.CFG_HIGHEST] = c.highest
        cfg[L.CFG_N_ENDPOINTS] = self.n_endpoints
        return cfg

    def _make_room(self, status: int) -> None:
        if status == L.NEED_JOB_TABLE:
            self.jt = self._rehashed(self.jt, _JOB_TABLE_GROWTH)
            return
        if status == L.NEED_WORKER_TABLE:
            self.wt = self._rehashed(self.wt)
            return
        if status == L.NEED_FIFO:
            self._grow_fifo()
            return
        freed = self.close_passed_windows()
        # Each close costs Python work per endpoint, so capacity grows until it holds about
        # _WINDOWS_PER_CLOSE windows of every endpoint (the dense histogram pool only within
        # _POOL_BUDGET, beyond what is strictly needed).
        n_rows = self.rows.shape[0]
        want = _WINDOWS_PER_CLOSE * max(self.n_endpoints, 1)
        if status in (L.NEED_ROWS, L.NEED_RING):
            if int(self.st[L.ST_ROW_TOP]) < max(n_rows // 4, self.n_endpoints + 64) or n_rows < want:
                self._grow_rows(max(n_rows, self.n_endpoints + 64))
            elif status == L.NEED_RING and freed == 0:
                raise RuntimeError(f"more than {L.RING} open windows for one endpoint")
        elif status == L.NEED_POOL:
            free, size = int(self.st[L.ST_POOL_TOP]), self.pool.shape[0]
            room = self.pool.nbytes < _POOL_BUDGET
            if free < L.N_METRICS or (room and (free < size // 4 or size < 2 * want)):
                self._grow_pool(max(size, 64))

    # ------------------------------------------------------------------ driving the kernels
    def apply(self, batch: EventBatch) -> None:
        """Apply a batch sorted by time whose events are all behind the watermark.

        The batch's columns may be reordered in place within runs of equal timestamps (read-only
        columns, e.g. zero-copy views of Arrow memory, are copied first).
        """
        if len(batch) == 0:
            return
        batch = batch.writable()
        job_keys = np.empty(len(batch), dtype=np.int64)
        repeats = repeated_runs(
            batch.ts, batch.kind, batch.endpoint, batch.job, batch.worker, 0,
            self.scratch_key, self.scratch_time, job_keys,
        )  # fmt: skip
        pos = 0
        while True:
            status, pos = apply_events(
                batch.ts, batch.kind, batch.endpoint, batch.job, batch.state, batch.worker,
                batch.status, pos, self.jt, self.wt, self.fifo, self.slot_of, self.rows, self.row_free,
                self.epa, self.pool, self.spill, self.pool_free, self.invalid_pairs, self.st, self._cfg(),
                repeats, job_keys,
            )  # fmt: skip
            if status == L.OK:
                return
            self._make_room(int(status))

    def advance(self, t: int) -> None:
        """Run the sweeps due by time ``t`` and close every window that ends at or before ``t``."""
        while True:
            status = C.advance_clock(
                t, self.jt, self.wt, self.fifo, self.slot_of, self.rows, self.row_free, self.epa, self.st,
                self._cfg(),
            )  # fmt: skip
            if status == L.OK:
                break
            self._make_room(int(status))
        self.close_passed_windows()

    @property
    def clock_window(self) -> int | None:
        """Window index of the engine's clock (None before the first event)."""
        w = int(self.st[L.ST_CLOCK_W])
        return None if w == L.NO_TIME else w

    def close_passed_windows(self) -> int:
        """Move rows of windows before the clock into the closed store; return how many moved."""
        clock = int(self.st[L.ST_CLOCK_W])
        live = self.rows[:, L.R_EP] >= 0
        rows = np.flatnonzero(live & (self.rows[:, L.R_W] < clock))
        if rows.size == 0:
            return 0
        self.closed.append(self._take_rows(self.rows[rows], drain=True))
        self._free_rows(rows)
        return int(rows.size)

    def _take_rows(self, values: I64, *, drain: bool) -> RowBlock:
        """Sparse copy of rows given by their ``values`` (a slice of the row layout, histogram slots
        included); with ``drain`` their dense histograms are zeroed on the way (rows being closed)."""
        hist_rows: list[npt.NDArray[np.int32]] = []
        hist_idx: list[npt.NDArray[np.int32]] = []
        hist_cnt: list[I64] = []
        for m in range(L.N_METRICS):
            slots = values[:, L.R_HIST + m]
            if drain:
                r, i, c = drain_dense(self.pool, self.spill, self.spilled, slots)
            else:
                have = np.flatnonzero(slots >= 0)
                dense = self.dense_counts(slots[have])
                rr, ii = np.nonzero(dense)
                r, i, c = have[rr].astype(np.int32), ii.astype(np.int32), dense[rr, ii]
            hist_rows.append(r)
            hist_idx.append(i)
            hist_cnt.append(c)
        return RowBlock(
            endpoint=values[:, L.R_EP].astype(np.int32),
            window=values[:, L.R_W].copy(),
            values=values[:, L.R_CNT : L.R_HIST].copy(),
            hist_row=tuple(hist_rows),
            hist_index=tuple(hist_idx),
            hist_count=tuple(hist_cnt),
        )

    def _free_rows(self, rows: npt.NDArray[np.intp]) -> None:
        eps = self.rows[rows, L.R_EP].astype(np.intp)
        ring = (self.rows[rows, L.R_W] % L.RING).astype(np.intp)
        self.slot_of[eps, ring] = -1
        pools = self.rows[rows, L.R_HIST : L.R_HIST + L.N_METRICS].ravel()
        pools = pools[pools >= 0]
        if pools.size:  # already zeroed by drain_dense
            top = int(self.st[L.ST_POOL_TOP])
            self.pool_free[top : top + pools.size] = pools
            self.st[L.ST_POOL_TOP] = top + pools.size
        self.rows[rows] = 0
        self.rows[rows, L.R_EP] = -1
        top = int(self.st[L.ST_ROW_TOP])
        self.row_free[top : top + rows.size] = rows.astype(np.int32)
        self.st[L.ST_ROW_TOP] = top + rows.size

    def open_rows(self, watermark: int) -> RowBlock:
        """Sparse copy of the clock window's rows, their gauges taken as of ``watermark``: jobs in
        queue/in progress now, worker-µs up to the watermark, maxima including the current levels.
        An endpoint with jobs in flight or workers gets a row even without events in the window.
        """
        rows = np.flatnonzero(self.rows[:, L.R_EP] >= 0)
        values = self.rows[rows].copy()
        clock = self.clock_window
        if clock is not None:
            n = self.n_endpoints
            g = L.N_WORKER_GAUGES
            e = self.epa[:n]
            active = (e[:, L.E_QUEUE] != 0) | (e[:, L.E_PROGRESS] != 0)
            active |= (e[:, L.E_WLEVEL : L.E_WLEVEL + g] != 0).any(axis=1)
            active |= (e[:, L.E_WINT : L.E_WINT + g] != 0).any(axis=1)
            active[values[:, L.R_EP]] = False  # those already have a row
            quiet = np.flatnonzero(active)
            if quiet.size:
                extra = np.zeros((quiet.size, L.R_COLS), dtype=np.int64)
                extra[:, L.R_EP] = quiet
                extra[:, L.R_W] = clock
                extra[:, L.R_HIST : L.R_HIST + L.N_METRICS] = -1
                values = np.concatenate([values, extra])
        if values.shape[0]:
            eps = values[:, L.R_EP]
            g = L.N_WORKER_GAUGES
            values[:, L.R_QUEUE] = self.epa[eps, L.E_QUEUE]
            values[:, L.R_PROGRESS] = self.epa[eps, L.E_PROGRESS]
            dt = np.maximum(watermark - self.epa[eps, L.E_WLAST], 0)[:, None]
            level = self.epa[eps, L.E_WLEVEL : L.E_WLEVEL + g]
            values[:, L.R_WINT : L.R_WINT + g] = self.epa[eps, L.E_WINT : L.E_WINT + g] + level * dt
            values[:, L.R_WMAX : L.R_WMAX + g] = np.maximum(self.epa[eps, L.E_WMAX : L.E_WMAX + g], level)
        return self._take_rows(values, drain=False)

    @property
    def spilled(self) -> bool:
        """True once some dense count reached layout.SPILL_AT (the int64 spill is then in use)."""
        return bool(self.st[L.ST_SPILLED])

    def dense_counts(self, slots: npt.NDArray[np.integer]) -> I64:
        """int64 counts of the pool rows ``slots`` (spill included)."""
        dense: I64 = self.pool[slots].astype(np.int64)
        if self.spilled:
            dense += self.spill[slots]
        return dense

    def open_row(self, code: int) -> int:
        """Row of endpoint ``code`` in the clock's window, or -1."""
        clock = int(self.st[L.ST_CLOCK_W])
        if clock == L.NO_TIME or code >= self.slot_of.shape[0]:
            return -1
        r = int(self.slot_of[code, clock % L.RING])
        return r if r >= 0 and self.rows[r, L.R_W] == clock else -1

    def open_histogram(self, code: int, metric: int, lo: int, hi: int) -> npt.NDArray[np.integer]:
        """Dense counts of ``metric`` in the open row of ``code`` if its window is in [lo, hi)."""
        r = self.open_row(code)
        if r < 0 or not lo <= int(self.rows[r, L.R_W]) < hi:
            return _EMPTY
        p = int(self.rows[r, L.R_HIST + metric])
        if p < 0:
            return _EMPTY
        row: npt.NDArray[np.integer] = self.dense_counts(np.array([p]))[0] if self.spilled else self.pool[p]
        return row

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, npt.NDArray[np.integer]]:
        """Copies of every array the engine's future depends on, sparse where the arrays are
        mostly empty: the job and worker tables as (slot, record) of occupied slots, the
        finished-jobs queue as its live entries, the histogram pool (and spill) as (slot, bucket,
        count) of non-zero counts, and the closed rows as a :class:`RowBlock`'s columns.
        :meth:`load_state` puts them back, at the same positions, in an engine of the same config.
        """
        out: dict[str, npt.NDArray[np.integer]] = {}
        for name, table in (("jt", self.jt), ("wt", self.wt)):
            slots = np.flatnonzero(table[:, 0] != 0)
            out[f"{name}.shape"] = np.array(table.shape, dtype=np.int64)
            out[f"{name}.slot"] = slots.astype(np.int64)
            out[f"{name}.record"] = table[slots].copy()
        head, tail = int(self.st[L.ST_FIFO_HEAD]), int(self.st[L.ST_FIFO_TAIL])
        size = self.fifo.shape[0]
        out["fifo.shape"] = np.array(self.fifo.shape, dtype=np.int64)
        out["fifo.live"] = self.fifo[np.arange(head, tail, dtype=np.int64) & (size - 1)].copy()
        for name, dense in (("pool", self.pool), ("spill", self.spill)):
            if name == "spill" and not self.spilled:
                continue
            slot, bucket = np.nonzero(dense)
            out[f"{name}.shape"] = np.array(dense.shape, dtype=np.int64)
            out[f"{name}.slot"] = slot.astype(np.int64)
            out[f"{name}.bucket"] = bucket.astype(np.int64)
            out[f"{name}.count"] = dense[slot, bucket].astype(np.int64)
        for name in ("slot_of", "epa", "rows", "row_free", "pool_free", "invalid_pairs", "st"):
            out[name] = getattr(self, name).copy()
        out["n_endpoints"] = np.array([self.n_endpoints], dtype=np.int64)
        closed = self.closed.all()
        out["closed.endpoint"] = closed.endpoint.copy()
        out["closed.window"] = closed.window.copy()
        out["closed.values"] = closed.values.copy()
        for m in range(L.N_METRICS):
            out[f"closed.hist_row.{m}"] = closed.hist_row[m].copy()
            out[f"closed.hist_index.{m}"] = closed.hist_index[m].copy()
            out[f"closed.hist_count.{m}"] = closed.hist_count[m].copy()
        out.update(self.closed.lifetime.state())
        return out

    def load_state(self, state: dict[str, npt.NDArray[np.integer]]) -> None:
        """Put back what :meth:`state` returned (ValueError if an array does not fit)."""

        def get(name: str, dtype: type[np.generic]) -> npt.NDArray[Any]:
            if name not in state:
                raise ValueError(f"engine state lacks {name!r}")
            return np.ascontiguousarray(state[name], dtype=dtype)

        def shape(name: str) -> tuple[int, int]:
            dims = get(f"{name}.shape", np.int64)
            if dims.shape != (2,) or dims[0] <= 0 or dims[1] <= 0:
                raise ValueError(f"engine state {name}.shape is not a 2-D shape: {dims.tolist()}")
            return int(dims[0]), int(dims[1])

        def put(
            target: npt.NDArray[Any], slot: npt.NDArray[Any], values: npt.NDArray[Any], name: str
        ) -> None:
            if slot.size and (slot.min() < 0 or slot.max() >= target.shape[0]):
                raise ValueError(f"engine state {name}: a slot lies outside the table of {target.shape[0]}")
            target[slot] = values

        for name, fields in (("jt", L.J_FIELDS), ("wt", L.W_FIELDS)):
            n, width = shape(name)
            if width != fields or n & (n - 1):
                raise ValueError(f"engine state {name}.shape {(n, width)} is not a table of {fields} fields")
            table = np.zeros((n, width), dtype=np.int64)
            put(
                table, get(f"{name}.slot", np.int64), get(f"{name}.record", np.int64).reshape(-1, width), name
            )
            setattr(self, name, table)
        st = get("st", np.int64)
        if st.shape != (L.N_STATE,):
            raise ValueError(f"engine state st has shape {st.shape}, expected ({L.N_STATE},)")
        n, width = shape("fifo")
        if width != 2 or n & (n - 1):
            raise ValueError(f"engine state fifo.shape {(n, width)} is not a queue of pairs")
        fifo = np.zeros((n, 2), dtype=np.int64)
        live = get("fifo.live", np.int64).reshape(-1, 2)
        head = int(st[L.ST_FIFO_HEAD])
        if int(st[L.ST_FIFO_TAIL]) - head != live.shape[0] or live.shape[0] > n:
            raise ValueError("engine state: the finished-jobs queue does not match its head and tail")
        fifo[np.arange(head, head + live.shape[0], dtype=np.int64) & (n - 1)] = live
        self.fifo = fifo
        counts_len = self.config.counts_len
        dense: dict[str, npt.NDArray[Any]] = {}
        for name, dtype in (("pool", np.int32), ("spill", np.int64)):
            if name == "spill" and f"{name}.shape" not in state:
                continue
            rows, width = shape(name)
            if width != counts_len:
                raise ValueError(
                    f"engine state {name} has {width} buckets per histogram, this geometry {counts_len}"
                )
            d = np.zeros((rows, width), dtype=dtype)
            slot, bucket = get(f"{name}.slot", np.int64), get(f"{name}.bucket", np.int64)
            count = get(f"{name}.count", np.int64)
            if not slot.shape == bucket.shape == count.shape:
                raise ValueError(f"engine state {name}: slot, bucket and count lengths differ")
            if bucket.size and (bucket.min() < 0 or bucket.max() >= width):
                raise ValueError(f"engine state {name}: a bucket lies outside {width}")
            if slot.size and (slot.min() < 0 or slot.max() >= rows):
                raise ValueError(f"engine state {name}: a slot lies outside the pool of {rows}")
            d[slot, bucket] = count.astype(dtype)
            dense[name] = d
        self.pool = dense["pool"]
        self.spill = dense.get("spill", np.zeros(self.pool.shape, dtype=np.int64))
        self.slot_of = get("slot_of", np.int32).copy()
        self.epa = get("epa", np.int64).copy()
        self.rows = get("rows", np.int64).copy()
        self.row_free = get("row_free", np.int32).copy()
        self.pool_free = get("pool_free", np.int32).copy()
        self.invalid_pairs = get("invalid_pairs", np.int64).copy()
        if self.rows.ndim != 2 or self.rows.shape[1] != L.R_COLS:
            raise ValueError(f"engine state rows has shape {self.rows.shape}, expected (n, {L.R_COLS})")
        if (
            self.slot_of.ndim != 2
            or self.slot_of.shape[1] != L.RING
            or self.epa.shape[0] != self.slot_of.shape[0]
        ):
            raise ValueError("engine state: endpoint arrays have inconsistent shapes")
        if self.row_free.shape[0] != self.rows.shape[0] or self.pool_free.shape[0] != self.pool.shape[0]:
            raise ValueError("engine state: free lists do not match the rows and the pool")
        self.st = st.copy()
        self.n_endpoints = int(get("n_endpoints", np.int64)[0])
        n_metrics = L.N_METRICS
        block = RowBlock(
            endpoint=get("closed.endpoint", np.int32),
            window=get("closed.window", np.int64),
            values=get("closed.values", np.int64).reshape(-1, L.R_HIST - L.R_CNT),
            hist_row=tuple(get(f"closed.hist_row.{m}", np.int32) for m in range(n_metrics)),
            hist_index=tuple(get(f"closed.hist_index.{m}", np.int32) for m in range(n_metrics)),
            hist_count=tuple(get(f"closed.hist_count.{m}", np.int64) for m in range(n_metrics)),
        )
        n_rows = len(block)
        if block.window.shape[0] != n_rows or block.values.shape[0] != n_rows:
            raise ValueError("engine state: closed rows have columns of different lengths")
        for m in range(n_metrics):
            r, i, c = block.hist_row[m], block.hist_index[m], block.hist_count[m]
            if not r.shape == i.shape == c.shape:
                raise ValueError(f"engine state: closed histogram {m} has entries of different lengths")
            if r.size and (r.min() < 0 or r.max() >= n_rows or i.min() < 0 or i.max() >= counts_len):
                raise ValueError(f"engine state: closed histogram {m} points outside its rows or buckets")
        self.closed = ClosedRows(counts_len, L.R_HIST - L.R_CNT, n_metrics)
        self.closed.append(block)
        if "lifetime.values" in state:  # absent from states written before lifetime sums existed
            self.closed.lifetime.load_state(get("lifetime.values", np.int64), get("lifetime.hist", np.int64))

    # ------------------------------------------------------------------ introspection
    @property
    def jobs_in_memory(self) -> int:
        return int(self.st[L.ST_JOBS])

    @property
    def workers_in_memory(self) -> int:
        return int(self.st[L.ST_WORKERS])

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held by the engine's arrays, by part."""
        return {
            "job_table": self.jt.nbytes,
            "finished_queue": self.fifo.nbytes,
            "worker_table": self.wt.nbytes,
            "open_rows": self.rows.nbytes + self.row_free.nbytes + self.slot_of.nbytes + self.epa.nbytes,
            "histogram_pool": self.pool.nbytes + self.pool_free.nbytes,
            "closed_rows": self.closed.nbytes,
            "lifetime": self.closed.lifetime.nbytes,
        }


_EMPTY = np.zeros(0, dtype=np.int64)
#: Bytes of dense histograms the engine may keep open just to close windows in fewer batches.
_POOL_BUDGET = 64 << 20
_WINDOWS_PER_CLOSE = 16
#: Factor by which the job table grows when it is 3/4 full. Doubling keeps the table at least
#: 3/8 full (≤ 85 bytes per job held, within the 100-byte goal); growing 4x at a time would move a
#: third as many entries but leave it 3/16 full (171 bytes per job) right after a growth.
_JOB_TABLE_GROWTH = 2


def _grown_stack(stack: npt.NDArray[np.int32], top: int, old: int, new: int) -> npt.NDArray[np.int32]:
    """Free-list stack for ``new`` items: the ``top`` free ones kept, ``old..new-1`` pushed so the
    lowest index pops first."""
    out = np.empty(new, dtype=np.int32)
    out[:top] = stack[:top]
    out[top : top + new - old] = np.arange(new - 1, old - 1, -1, dtype=np.int32)
    return out
