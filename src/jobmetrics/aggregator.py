"""The :class:`Aggregator`: events in (one at a time or in batches), windowed job metrics out.

Data path: :func:`~jobmetrics.events.normalize` turns input into integer columns; lateness is judged
in arrival order; events wait in a small time-sorted buffer until the watermark passes them; the
:class:`~jobmetrics.engine.Engine` applies them in one kernel pass per batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._kernels import layout as L
from ._kernels.hdr_query import values_at_quantiles
from ._kernels.order import find_late
from ._kernels.sparse import window_range_sum
from .engine import Engine, EngineConfig
from .events import EndpointRegistry, EventBatch, Rejections, normalize
from .geometry import Geometry
from .histogram import HdrHistogram
from .snapshot import SnapshotSpec, quantile_label, to_table
from .states import JobState
from .timeparse import parse_duration, to_epoch_us
from .windows import BLOCK, EndpointRows, RowBlock

__all__ = ["METRICS", "Aggregator"]

#: Histogram metrics, in the engine's order.
METRICS: tuple[str, ...] = L.METRIC_NAMES

#: Counter names, in the engine's order.
COUNTERS: tuple[str, ...] = L.COUNTER_NAMES

_NO_TIME = np.iinfo(np.int64).min
_STAGE_COLUMNS = ("ts", "endpoint", "job_id", "state", "kind", "worker_id", "status_code")


def _plain_numbers(values: Sequence[Any]) -> bool:
    """True when every value is an int or float (epoch milliseconds), as ``record`` usually gets."""
    kinds = set(map(type, values))
    return kinds <= {int, float}


_MIN_WINDOW = 1_000_000
_MAX_WINDOW = 86_400_000_000
_STATE_NAMES = {0: "NEW", **{int(s): s.name for s in JobState}}


class Aggregator:
    """Job, worker and webhook events in; per-endpoint, per-window metrics out.

    Parameters
    ----------
    window:
        Width of the tumbling event-time windows, epoch aligned (``"1s"`` … ``"1d"``, default ``"60s"``).
    quantiles:
        Quantiles reported by :meth:`metrics` and snapshots (default P70, P90, P98).
    allowed_lateness:
        How far out of order events may arrive (default ``"5s"``); ``None`` holds every event
        until :meth:`flush`, which is exact for any input order.
    job_ttl:
        A job with no transition for this long is evicted and counted as expired (default ``"24h"``).
    retention:
        How long finished jobs are remembered to recognise duplicates and retries (default ``"1h"``).
    sweep_interval:
        Event-time period of the expiry/retention sweeps (default ``"5m"``).
    worker_ttl:
        A worker with no event for this long leaves the pool, counted in ``workers_lost``
        (default ``"24h"``; lower it when workers send heartbeats).
    orphans:
        ``"adopt"`` (default) or ``"drop"``: what a job's first event that is not ``IN_QUEUE``
        does (see docs/lifecycle.md).
    significant_figures, highest:
        Precision (default 2) and range (default ``"7d"``) of the duration histograms, in µs.
    history:
        How long closed windows stay in memory (e.g. ``"24h"``); older ones are dropped, so a
        long-running server's memory stays bounded. ``None`` (default) keeps every window.
    staging_size:
        Events :meth:`record` buffers before they go through the kernel.
    job_capacity:
        Expected jobs in memory at once: sizes the job table up front (it grows when needed).

    Examples
    --------
    >>> agg = Aggregator(window="60s", allowed_lateness="0s")
    >>> agg.record(ts=1_000, endpoint="sd-xl", job_id="a", state="IN_QUEUE")
    >>> agg.record(ts=1_500, endpoint="sd-xl", job_id="a", state="IN_PROGRESS")
    >>> agg.record(ts=4_000, endpoint="sd-xl", job_id="a", state="COMPLETED")
    >>> agg.flush()
    >>> t = agg.totals("sd-xl")
    >>> t["requests"], t["completed"], agg.histogram("sd-xl", "execution_time").max
    (1, 1, 2506751)
    """

    def __init__(
        self,
        *,
        window: str | int = "60s",
        quantiles: Sequence[float] = (0.7, 0.9, 0.98),
        allowed_lateness: str | int | None = "5s",
        job_ttl: str | int = "24h",
        retention: str | int = "1h",
        sweep_interval: str | int = "5m",
        worker_ttl: str | int = "24h",
        orphans: Literal["adopt", "drop"] = "adopt",
        significant_figures: int = 2,
        highest: str | int = "7d",
        history: str | int | None = None,
        staging_size: int = 16384,
        job_capacity: int = 1024,
    ) -> None:
        width = parse_duration(window, name="window")
        if not _MIN_WINDOW <= width <= _MAX_WINDOW:
            raise ValueError(f"window must be between 1s and 1d, got {window!r}")
        qs = tuple(float(q) for q in quantiles)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantiles must be within [0, 1], got {q!r}")
        if orphans not in ("adopt", "drop"):
            raise ValueError(f"orphans must be 'adopt' or 'drop', got {orphans!r}")
        if staging_size < 1:
            raise ValueError(f"staging_size must be >= 1, got {staging_size!r}")
        self._lateness: int | None = (
            None if allowed_lateness is None else parse_duration(allowed_lateness, name="allowed_lateness")
        )
        sweep = parse_duration(sweep_interval, name="sweep_interval")
        if sweep <= 0:
            raise ValueError(f"sweep_interval must be positive, got {sweep_interval!r}")
        self.geometry = Geometry(1, parse_duration(highest, name="highest"), significant_figures)
        self.quantiles = qs
        self._options = {
            "window": window, "quantiles": qs, "allowed_lateness": allowed_lateness,
            "job_ttl": job_ttl, "retention": retention, "sweep_interval": sweep_interval,
            "worker_ttl": worker_ttl, "orphans": orphans, "significant_figures": significant_figures,
            "highest": highest, "history": history,
        }  # fmt: skip
        self._history_windows: int | None = None
        if history is not None:
            self._history_windows = max(1, -(-parse_duration(history, name="history") // width))
        self._engine = Engine(
            EngineConfig(
                width=width,
                sweep_interval=sweep,
                job_ttl=parse_duration(job_ttl, name="job_ttl"),
                retention=parse_duration(retention, name="retention"),
                worker_ttl=parse_duration(worker_ttl, name="worker_ttl"),
                adopt_orphans=orphans == "adopt",
                unit_magnitude=self.geometry.unit_magnitude,
                half_magnitude=self.geometry.half_magnitude,
                highest=self.geometry.highest,
                counts_len=self.geometry.counts_len,
            ),
            job_capacity=job_capacity,
        )
        self.width = width
        self.registry = EndpointRegistry()
        self.rejections = Rejections()
        self._batches = 0
        self._pending = EventBatch.empty()
        self._max_ts = _NO_TIME
        self._watermark = _NO_TIME
        self._staging_size = staging_size
        self._stage: list[Any] = []  # events as consecutive groups of len(_STAGE_COLUMNS) fields
        self._stage_limit = staging_size * len(_STAGE_COLUMNS)
        self._lock = threading.RLock()
        self._scratch = np.zeros(self.geometry.counts_len, dtype=np.int64)
        self._quantile_array = np.asarray(qs, dtype=np.float64)
        self._empty_store = EndpointRows(L.R_HIST - L.R_CNT, L.N_METRICS)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._options.items())
        return f"Aggregator({args})"

    # ------------------------------------------------------------------ input
    def record(
        self,
        *,
        endpoint: str,
        state: str | None = None,
        job_id: str | int | None = None,
        ts: Any = None,
        kind: str | None = None,
        worker_id: str | int | None = None,
        status_code: int | None = None,
    ) -> None:
        """Record one event (keyword arguments named as the event columns; ``ts`` defaults to now).

        Events are staged and go through the same kernel as :meth:`ingest` in batches of
        ``staging_size``; any query flushes the stage first.
        """
        if ts is None:
            ts = time.time_ns() / 1e6
        # one flat list, extended atomically: no container per event survives (so no garbage
        # collector work), and concurrent callers never interleave fields
        stage = self._stage
        stage.extend((ts, endpoint, job_id, state, kind, worker_id, status_code))
        if len(stage) >= self._stage_limit:
            self._drain_stage()

    def _drain_stage(self) -> None:
        """Send the staged events through the kernel.

        The stage is never swapped out: the first ``n`` fields are copied, then deleted, so an event
        another thread appends meanwhile stays for the next drain.
        """
        with self._lock:
            stage = self._stage
            n = len(stage)
            if not n:
                return
            taken = stage[:n]
            del stage[:n]
            width = len(_STAGE_COLUMNS)
            data: dict[str, Any] = {}
            for k, name in enumerate(_STAGE_COLUMNS):
                values = taken[k::width]
                if name in ("ts", "endpoint") or values.count(None) != len(values):
                    data[name] = values
            ts = pa.array(data["ts"], from_pandas=False) if _plain_numbers(data["ts"]) else None
            data["ts"] = ts if ts is not None else pa.array([to_epoch_us(v) / 1000.0 for v in data["ts"]])
            self._ingest_unlocked(data)

    def ingest(self, data: Any) -> None:
        """Ingest a batch: a ``pyarrow.Table``/``RecordBatch``, a ``pandas.DataFrame`` or a mapping
        of columns. Rows with bad values are rejected (see :attr:`rejections`); the rest are applied.
        """
        with self._lock:
            self._drain_stage()
            self._ingest_unlocked(data)

    def _ingest_unlocked(self, data: Any) -> None:
        batch, _ = normalize(data, self.registry, rejections=self.rejections, batch_number=self._batches)
        self._batches += 1
        self._engine.ensure_endpoints(len(self.registry))
        if len(batch) == 0:
            return
        markers: EventBatch | None = None
        if self._lateness is not None:
            where, marks, new_max = find_late(
                batch.ts, self._max_ts, self._lateness, self._watermark, _NO_TIME
            )
            if where.size:
                n_late = where.size
                markers = EventBatch(
                    ts=marks,
                    kind=np.full(n_late, L.KIND_LATE, dtype=np.int8),
                    endpoint=batch.endpoint[where],
                    job=np.zeros(n_late, dtype=np.int64),
                    state=np.zeros(n_late, dtype=np.int8),
                    worker=np.zeros(n_late, dtype=np.int64),
                    status=np.full(n_late, -1, dtype=np.int32),
                )
                keep = np.ones(len(batch), dtype=bool)
                keep[where] = False
                batch = batch.take(keep)
            self._max_ts = int(new_max)
            watermark = max(self._watermark, self._max_ts - self._lateness)
        else:
            self._max_ts = max(self._max_ts, int(batch.ts.max()))
            watermark = self._watermark
        parts = [b for b in (self._pending, batch, markers) if b is not None and len(b)]
        self._pending = _sorted(EventBatch.concat(parts))
        self._advance_to(watermark)

    def _advance_to(self, watermark: int) -> None:
        """Apply held events older than ``watermark`` and close the windows it passes."""
        if watermark == _NO_TIME:
            return
        pending = self._pending
        split = int(np.searchsorted(pending.ts, watermark, side="left"))
        if split:
            self._engine.apply(pending.slice(0, split))
            self._pending = pending.slice(split, len(pending))
        self._watermark = max(self._watermark, watermark)
        self._engine.advance(self._watermark)
        self._forget_old_windows()

    def _forget_old_windows(self) -> None:
        clock = self._engine.clock_window
        if self._history_windows is not None and clock is not None:
            self._engine.closed.drop_before(clock - self._history_windows + 1)

    def flush(self) -> None:
        """Apply every held event (end of input); the watermark moves to the latest event time."""
        with self._lock:
            self._drain_stage()
            if self._max_ts == _NO_TIME:
                return
            pending = self._pending
            if len(pending):
                self._engine.apply(pending)
                self._pending = EventBatch.empty()
            self._watermark = max(self._watermark, self._max_ts)
            self._engine.advance(self._watermark)
            self._forget_old_windows()

    def advance(self, now: Any = None) -> None:
        """Move the watermark by processing time to ``now - allowed_lateness`` (``now`` defaults to
        the wall clock), so windows close while traffic is quiet."""
        with self._lock:
            self._drain_stage()
            now_us = time.time_ns() // 1000 if now is None else to_epoch_us(now, name="now")
            target = now_us - (self._lateness or 0)
            if target > self._watermark:
                self._advance_to(target)

    # ------------------------------------------------------------------ state
    @property
    def watermark(self) -> int | None:
        """Current watermark in µs since the epoch (None before any event)."""
        return None if self._watermark == _NO_TIME else self._watermark

    def endpoints(self) -> list[str]:
        """Endpoint names seen so far, in order of first appearance."""
        return self.registry.names()

    def jobs_in_memory(self) -> int:
        """Jobs held in the job table (in flight, or finished within the retention)."""
        self._drain_stage()
        return self._engine.jobs_in_memory

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held, by part (job table, open rows, histogram pool, closed rows, held events)."""
        self._drain_stage()
        out = self._engine.memory_bytes()
        p = self._pending
        out["held_events"] = sum(
            getattr(p, c).nbytes for c in ("ts", "kind", "endpoint", "job", "state", "worker", "status")
        )
        return out

    def invalid_transition_counts(self) -> dict[tuple[str, str], int]:
        """Invalid job transitions seen, by (from state, to state)."""
        self._drain_stage()
        pairs = self._engine.invalid_pairs
        return {
            (_STATE_NAMES[int(a)], _STATE_NAMES[int(b)]): int(pairs[a, b])
            for a, b in zip(*np.nonzero(pairs), strict=True)
        }

    # ------------------------------------------------------------------ queries
    def _rows(self) -> RowBlock:
        with self._lock:
            self._drain_stage()
            closed = self._engine.closed.all()
            wm = self._watermark if self._watermark != _NO_TIME else 0
            return RowBlock.concat([closed, self._engine.open_rows(wm)], len(METRICS))

    def _endpoint_code(self, endpoint: str) -> int:
        code = self.registry.get(endpoint)
        if code is None:
            raise KeyError(f"unknown endpoint {endpoint!r}; known: {self.registry.names()}")
        return code

    def totals(self, endpoint: str) -> dict[str, int]:
        """Every counter of ``endpoint`` summed over all windows held, with the current
        ``in_queue``/``in_progress``."""
        code = self._endpoint_code(endpoint)
        with self._lock:
            self._drain_stage()
            sums = self._sum_values(code, *self._span(None))
            out = {name: int(sums[i]) for i, name in enumerate(COUNTERS)}
            out["in_queue"] = int(self._engine.epa[code, L.E_QUEUE])
            out["in_progress"] = int(self._engine.epa[code, L.E_PROGRESS])
        return out

    def histogram(self, endpoint: str, metric: str, *, last: str | int | None = None) -> HdrHistogram:
        """The ``metric`` histogram of ``endpoint`` (values in µs): over every window held, or the
        windows of the ``last`` duration up to and including the current one."""
        m = self._metric_index(metric)
        code = self._endpoint_code(endpoint)
        counts = np.zeros(self.geometry.counts_len, dtype=np.int64)
        with self._lock:
            self._drain_stage()
            self._sum_histogram(code, m, *self._span(last), counts)
        g = self.geometry
        return HdrHistogram.from_counts(counts, g.lowest, g.highest, g.significant_figures)

    def percentiles(
        self,
        endpoint: str,
        metric: str,
        *,
        last: str | int | None = "5m",
        quantiles: Sequence[float] | None = None,
    ) -> list[float] | None:
        """Percentiles of ``metric`` for ``endpoint`` over the ``last`` duration, in milliseconds
        (the configured quantiles unless given); None when nothing was recorded.

        The fast path of a live query: one kernel sums the windows' sparse histograms and walks
        the result, without building a snapshot.
        """
        m = self._metric_index(metric)
        code = self._endpoint_code(endpoint)
        qs = self._quantile_array if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        with self._lock:
            self._drain_stage()
            total = self._sum_histogram(code, m, *self._span(last), self._scratch)
            if total == 0:
                return None
            g = self.geometry
            values = values_at_quantiles(self._scratch, total, qs, True, g.unit_magnitude, g.half_magnitude)
        return [v / 1000.0 for v in values.tolist()]

    def _metric_index(self, metric: str) -> int:
        try:
            return METRICS.index(metric)
        except ValueError:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}") from None

    def _span(self, last: str | int | None) -> tuple[int, int]:
        """Window range ``[lo, hi)`` of a query over the ``last`` duration (all windows if None)."""
        clock = self._engine.clock_window
        if clock is None:
            return 0, 0
        if last is None:
            return _NO_TIME, clock + 1
        n = max(1, -(-parse_duration(last, name="last") // self.width))
        return clock - n + 1, clock + 1

    def _sum_histogram(self, code: int, m: int, lo: int, hi: int, out: npt.NDArray[np.int64]) -> int:
        """Fill ``out`` with the sum of metric ``m``'s histograms of ``code`` over windows in
        [lo, hi) (closed rows and the open one); return the total count."""
        store = self._engine.closed.store(code)
        extra = self._engine.open_histogram(code, m, lo, hi)
        if store is None:
            store = self._empty_store
        else:
            store.seal(self._engine.clock_window or 0)
        h, b = store.hist, store.block_hist
        total = window_range_sum(
            store.window.view, h.ptr[m].view, h.index[m].view, h.count[m].view,
            store.block.view, b.ptr[m].view, b.index[m].view, b.count[m].view,
            BLOCK, store.block_floor, store.sealed_upto, lo, hi, extra, out,
        )  # fmt: skip
        return int(total)

    def _sum_values(self, code: int, lo: int, hi: int) -> npt.NDArray[np.int64]:
        """Sum of the row values (counters, …) of ``code`` over windows in [lo, hi)."""
        out = np.zeros(L.R_HIST - L.R_CNT, dtype=np.int64)
        store = self._engine.closed.store(code)
        if store is not None:
            w = store.window.view
            a, b = np.searchsorted(w, lo), np.searchsorted(w, hi)
            out += store.values.view[a:b].sum(axis=0)
        r = self._engine.open_row(code)
        if r >= 0 and lo <= int(self._engine.rows[r, L.R_W]) < hi:
            out += self._engine.rows[r, L.R_CNT : L.R_HIST]
        return out

    def snapshot(self) -> pa.Table:
        """Every window row held — closed (``final``) and open — as the SPEC §4 Arrow table.

        One row per (endpoint, window) in which the endpoint had events, jobs in flight or workers;
        sorted by window start, then endpoint. Open rows hold what the watermark has passed.
        """
        rows = self._rows()
        return to_table(
            rows,
            self.registry.names(),
            width=self.width,
            watermark=self.watermark,
            spec=SnapshotSpec(self.geometry, self.quantiles),
        )

    def metrics(self, endpoint: str, *, last: str | int | None = None) -> dict[str, Any]:
        """The §3 figures of ``endpoint`` as a plain dict, over every window held or the ``last``
        duration: counters, jobs in queue/in progress now, and per duration metric its count and
        percentiles in milliseconds (None when nothing was recorded)."""
        code = self._endpoint_code(endpoint)
        g = self.geometry
        with self._lock:
            self._drain_stage()
            lo, hi = self._span(last)
            sums = self._sum_values(code, lo, hi)
            out: dict[str, Any] = {name: int(sums[i]) for i, name in enumerate(COUNTERS)}
            out["in_queue"] = int(self._engine.epa[code, L.E_QUEUE])
            out["in_progress"] = int(self._engine.epa[code, L.E_PROGRESS])
            for m, name in enumerate(METRICS):
                total = self._sum_histogram(code, m, lo, hi, self._scratch)
                out[f"{name}_count"] = total
                values = None
                if total:
                    values = values_at_quantiles(
                        self._scratch, total, self._quantile_array, True, g.unit_magnitude, g.half_magnitude
                    ).tolist()
                for i, q in enumerate(self.quantiles):
                    out[f"{name}_{quantile_label(q)}_ms"] = None if values is None else values[i] / 1000.0
        return out


def _sorted(batch: EventBatch) -> EventBatch:
    """``batch`` in time order (stable). Equal timestamps need no order here: the kernel groups the
    events of one job or worker at one timestamp and orders them by their lifecycle."""
    if len(batch) < 2:
        return batch
    ts = batch.ts
    if bool(np.all(ts[1:] >= ts[:-1])):
        return batch
    return batch.take(np.argsort(ts, kind="stable"))
