"""The :class:`Aggregator`: events in (one at a time or in batches), windowed job metrics out.

Data path: :func:`~jobmetrics.events.normalize` turns input into integer columns; lateness is judged
in arrival order; events wait in time-sorted runs until the watermark passes them; the
:class:`~jobmetrics.engine.Engine` applies them in one kernel pass per batch.

Threads: :meth:`Aggregator.record` appends to a flat staging list without taking a lock; everything
that touches the engine, the held events or the registry runs under one re-entrant lock. See
docs/aggregator.md ("Threads and asyncio") for the argument and its assumptions.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from os import PathLike
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._kernels import layout as L
from ._kernels.hdr_query import values_at_quantiles
from ._kernels.order import find_late, ordered
from ._kernels.sparse import window_range_sum
from .engine import Engine, EngineConfig
from .events import EndpointRegistry, EventBatch, Rejections, _as_table, _kind_of, normalize
from .geometry import Geometry
from .histogram import HdrHistogram
from .snapshot import WORKER_STATES, SnapshotSpec, quantile_label, to_table
from .states import JobState, Kind
from .timeparse import parse_duration, to_epoch_us
from .windows import BLOCK, EndpointRows, RowBlock

if TYPE_CHECKING:
    from .ticker import Ticker

__all__ = ["METRICS", "Aggregator", "Duration"]

#: A duration option: ``"250ms"``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``, a ``timedelta``, or µs.
Duration: TypeAlias = str | int | timedelta

#: Histogram metrics, in the engine's order.
METRICS: tuple[str, ...] = L.METRIC_NAMES

#: Counter names, in the engine's order.
COUNTERS: tuple[str, ...] = L.COUNTER_NAMES

_NO_TIME = np.iinfo(np.int64).min
#: Lateness used to judge arrivals when ``allowed_lateness=None``: only the watermark itself
#: (moved by ``flush``/``tick``) makes an event late.
_UNBOUNDED = 1 << 62
#: Held runs beyond this many are merged into one (a bound on per-advance Python work).
_MAX_RUNS = 24
#: Rows of a large table ingested at a time (2 MiB per int64 column: the temporaries stay in cache).
_SLICE_ROWS = 1 << 18
#: ``record`` drains without waiting for the lock unless the stage holds this many times
#: ``staging_size`` events (back-pressure, so memory stays bounded).
_STAGE_CAP = 8
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
        long-running server's memory stays bounded, their counters and histograms added to
        per-endpoint lifetime sums (:meth:`totals`, ``histogram(..., lifetime=True)``).
        ``None`` (default) keeps every window.
    staging_size:
        Events :meth:`record` buffers before they go through the kernel (the buffer may grow to
        8 times that while another thread holds the aggregator; then ``record`` waits).
    job_capacity:
        Expected jobs in memory at once: sizes the job table up front (it grows when needed).

    Notes
    -----
    :meth:`record` may be called from any number of threads and from asyncio code (it takes no
    lock and does no I/O); everything else runs under one re-entrant lock. :meth:`tick` or a
    background :meth:`start_ticker` closes windows by processing time; :meth:`consistent` makes
    several queries see one state; :meth:`save` / :meth:`restore` carry the whole state across a
    restart. See docs/aggregator.md and docs/persistence.md.

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
        window: Duration = "60s",
        quantiles: Sequence[float] = (0.7, 0.9, 0.98),
        allowed_lateness: Duration | None = "5s",
        job_ttl: Duration = "24h",
        retention: Duration = "1h",
        sweep_interval: Duration = "5m",
        worker_ttl: Duration = "24h",
        orphans: Literal["adopt", "drop"] = "adopt",
        significant_figures: int = 2,
        highest: Duration = "7d",
        history: Duration | None = None,
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
        self._held: list[EventBatch] = []  # time-sorted runs of held events, in arrival order
        self._max_ts = _NO_TIME
        self._watermark = _NO_TIME
        self._staging_size = staging_size
        self._stage: list[Any] = []  # events as consecutive groups of len(_STAGE_COLUMNS) fields
        self._stage_limit = staging_size * len(_STAGE_COLUMNS)
        self._stage_cap = _STAGE_CAP * self._stage_limit
        self._drain_at = self._stage_limit  # stage length at which record tries to drain next
        self._lock = threading.RLock()
        self._frozen = 0  # > 0 inside consistent(): queries do not drain the stage
        self._ticker: Ticker | None = None
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
        if len(stage) >= self._drain_at:
            self._drain_from_record()

    def _drain_from_record(self) -> None:
        """Drain a full stage, unless another thread holds the aggregator: then this caller goes on
        staging (no waiting), and callers try again only after another ``staging_size`` events
        (a failed try costs a call), until the stage reaches its cap, where they wait their turn."""
        lock = self._lock
        if lock.acquire(blocking=False):
            try:
                self._drain_stage()
            finally:
                lock.release()
        elif len(self._stage) >= self._stage_cap:
            self._drain_stage()
        if len(self._stage) >= self._drain_at:  # not drained (held elsewhere, or consistent())
            self._drain_at = min(len(self._stage) + self._stage_limit, self._stage_cap)

    def _drain_stage(self) -> None:
        """Send the staged events through the kernel.

        The stage is never swapped out: the first ``n`` fields are copied, then deleted, so an event
        another thread appends meanwhile stays for the next drain. Inside :meth:`consistent` the
        thread holding the aggregator does not drain (its queries see one state).
        """
        with self._lock:
            if self._frozen:
                return
            stage = self._stage
            n = len(stage)
            if not n:
                return
            taken = stage[:n]
            del stage[:n]
            self._drain_at = self._stage_limit
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

        A large table is taken in slices of 256 Ki rows, so that the working arrays stay in cache;
        the result is the same as for the whole table at once (rejected-row samples keep their
        row numbers in the whole table).
        """
        with self._lock:
            self._drain_stage()
            self._ingest_unlocked(data)

    def _ingest_unlocked(self, data: Any) -> None:
        data = _as_table(data)
        if isinstance(data, pa.Table) and data.num_rows > _SLICE_ROWS and _sliceable(data):
            # slices keep every temporary array small enough to be reused, not faulted in anew
            for start in range(0, data.num_rows, _SLICE_ROWS):
                self._ingest_slice(data.slice(start, _SLICE_ROWS), start)
        else:
            self._ingest_slice(data, 0)
        self._batches += 1

    def _ingest_slice(self, data: Any, row_offset: int) -> None:
        batch, _ = normalize(
            data, self.registry, rejections=self.rejections, batch_number=self._batches, row_offset=row_offset
        )
        self._engine.ensure_endpoints(len(self.registry))
        if len(batch) == 0:
            return
        markers: EventBatch | None = None
        lateness = _UNBOUNDED if self._lateness is None else self._lateness
        if self._lateness is not None or self._watermark != _NO_TIME:
            # with allowed_lateness=None only the watermark (moved by flush/tick) makes events late
            where, marks, new_max, in_order = find_late(
                batch.ts, self._max_ts, lateness, self._watermark, _NO_TIME
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
        else:
            self._max_ts = max(self._max_ts, int(batch.ts.max()))
            in_order = bool(ordered(batch.ts))
        watermark = self._watermark
        if self._lateness is not None:
            watermark = max(watermark, self._max_ts - self._lateness)
        if markers is not None:
            self._held.append(_sorted(EventBatch.concat([batch, markers])))
        elif len(batch):
            self._held.append(batch if in_order else _sorted(batch))
        self._advance_to(watermark)

    def _advance_to(self, watermark: int) -> None:
        """Apply held events older than ``watermark`` and close the windows it passes.

        Held events are kept as time-sorted runs (one per batch, in arrival order); the events a
        watermark passes are the head of each run, merged by a stable sort, so they reach the
        kernel in the order one sorted buffer would give them, whatever the batching.
        """
        if watermark != _NO_TIME:
            heads: list[EventBatch] = []
            rest: list[EventBatch] = []
            for run in self._held:
                split = int(np.searchsorted(run.ts, watermark, side="left"))
                if split:
                    heads.append(run.slice(0, split))
                if split < len(run):
                    rest.append(run if split == 0 else run.slice(split, len(run)))
            self._held = rest
            for piece in _in_time_order(heads):
                self._engine.apply(piece)
            self._watermark = max(self._watermark, watermark)
            self._engine.advance(self._watermark)
            self._forget_old_windows()
        self._compact_held()

    def _compact_held(self) -> None:
        """Merge the newest held runs while the older one is not at least twice as long (so the
        runs shrink geometrically: O(log n) of them, each event merged O(log n) times), and all
        of them beyond ``_MAX_RUNS``."""
        runs = self._held
        while len(runs) >= 2 and len(runs[-2]) < 2 * len(runs[-1]):
            last = runs.pop()
            runs[-1] = _sorted(EventBatch.concat([runs[-1], last]))
        if len(runs) > _MAX_RUNS:
            self._held = [self._held_events()]

    def _held_events(self) -> EventBatch:
        """Every held event in one time-sorted batch (ties in arrival order)."""
        return _sorted(EventBatch.concat(self._held))

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
            if self._held:
                held = self._held_events()
                self._held = []
                self._engine.apply(held)
            self._watermark = max(self._watermark, self._max_ts)
            self._engine.advance(self._watermark)
            self._forget_old_windows()

    def tick(self, now: Any = None) -> int | None:
        """A processing-time tick: move the watermark to ``now - allowed_lateness`` so that windows
        close while traffic is quiet (a quiet endpoint still reports). Returns the watermark (µs).

        ``now`` is anything ``ts`` accepts (epoch ms, ``datetime``, ISO text …) and defaults to the
        wall clock. The watermark never moves back: a tick behind it does nothing. Events that
        arrive afterwards with ``ts`` before the watermark are late (counted, not applied), so
        event timestamps should come from a clock close to this one. With
        ``allowed_lateness=None`` the lateness taken is 0. :meth:`start_ticker` calls this
        periodically from a background thread.
        """
        # the time is read before the drain: events recorded while a slow drain runs (the first
        # one compiles kernels) carry later timestamps and must not fall behind the watermark
        now_us = time.time_ns() // 1000 if now is None else to_epoch_us(now, name="now")
        with self._lock:
            self._drain_stage()
            target = now_us - (self._lateness or 0)
            if target > self._watermark:
                self._advance_to(target)
            return self.watermark

    def advance(self, now: Any = None) -> None:
        """Move the watermark by processing time to ``now - allowed_lateness`` (``now`` defaults to
        the wall clock), so windows close while traffic is quiet. The same as :meth:`tick`."""
        self.tick(now)

    def start_ticker(
        self, interval: Duration | float = "1s", *, clock: Callable[[], Any] | None = None
    ) -> Ticker:
        """Start a daemon thread that calls :meth:`tick` every ``interval`` (a duration such as
        ``"1s"`` or a ``timedelta``, µs as an int, seconds as a float; at least 1 ms); returns the
        :class:`~jobmetrics.ticker.Ticker` (a context manager).

        ``clock`` returns the time to tick to (anything :meth:`tick` accepts; default: the wall
        clock). Stop it with :meth:`stop_ticker`, :meth:`close`, ``Ticker.stop()`` or by leaving
        a ``with`` block. One ticker per aggregator: starting a second one raises RuntimeError.
        """
        from .ticker import Ticker

        with self._lock:
            if self._ticker is not None and self._ticker.running:
                raise RuntimeError("a ticker is already running for this aggregator; stop it first")
            ticker = Ticker(self, interval, clock=clock)
            ticker.start()
            self._ticker = ticker
        return ticker

    def stop_ticker(self, timeout: float | None = 5.0) -> None:
        """Stop the background ticker, if any (re-raises an error that stopped it)."""
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.stop(timeout)

    def close(self) -> None:
        """Stop the background ticker and apply staged events (held ones stay held: call
        :meth:`flush` first at the end of input). The aggregator stays usable."""
        self.stop_ticker()
        self._drain_stage()

    def __enter__(self) -> Aggregator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def consistent(self) -> Iterator[Aggregator]:
        """Hold the aggregator still: queries inside the ``with`` block all see one state.

        The stage is drained on entry; inside the block the calling thread holds the aggregator's
        lock and its queries do not drain, so ``metrics()``, ``snapshot()``, ``totals()`` …
        agree with each other. Other threads' ``record`` calls keep staging meanwhile (they wait
        only if the stage reaches its cap); their ``ingest``, ``tick`` and queries wait.
        """
        with self._lock:
            self._drain_stage()
            self._frozen += 1
            try:
                yield self
            finally:
                self._frozen -= 1

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | PathLike[str], *, format: Literal["arrow", "parquet"] | None = None) -> None:
        """Write the full state (options, endpoints, open and closed windows, lifetime sums of
        dropped windows, jobs in flight, workers, held events, counters, rejections, watermark) to
        an Arrow IPC file, or Parquet (``format="parquet"`` or a ``.parquet`` suffix).
        :meth:`restore` reads it back; see docs/persistence.md. The state is copied under the lock
        and written outside it."""
        from .persist import save

        save(self, path, format=format)

    @classmethod
    def restore(cls, path: str | PathLike[str]) -> Aggregator:
        """An aggregator in the state :meth:`save` wrote to ``path``: continuing it gives exactly
        what the saved one would have given. ValueError for a file that is not such a state, of
        another format version, or damaged."""
        from .persist import restore

        return restore(path)

    load = restore

    # ------------------------------------------------------------------ state
    @property
    def watermark(self) -> int | None:
        """Current watermark in µs since the epoch (None before any event); staged events are
        applied first, as by every query."""
        with self._lock:
            self._drain_stage()
            return None if self._watermark == _NO_TIME else self._watermark

    def endpoints(self) -> list[str]:
        """Endpoint names seen so far, in order of first appearance (staged events included)."""
        with self._lock:
            self._drain_stage()
            return self.registry.names()

    def jobs_in_memory(self) -> int:
        """Jobs held in the job table (in flight, or finished within the retention)."""
        with self._lock:
            self._drain_stage()
            return self._engine.jobs_in_memory

    def held_events(self) -> int:
        """Events waiting for the watermark (not applied yet)."""
        with self._lock:
            self._drain_stage()
            return sum(len(run) for run in self._held)

    def memory_bytes(self) -> dict[str, int]:
        """Bytes held, by part (job table, open rows, histogram pool, closed rows, held events)."""
        with self._lock:
            self._drain_stage()
            out = self._engine.memory_bytes()
            out["held_events"] = sum(
                getattr(run, c).nbytes
                for run in self._held
                for c in ("ts", "kind", "endpoint", "job", "state", "worker", "status")
            )
        return out

    def invalid_transition_counts(self) -> dict[tuple[str, str], int]:
        """Invalid job transitions seen, by (from state, to state)."""
        with self._lock:
            self._drain_stage()
            pairs = self._engine.invalid_pairs.copy()
        return {
            (_STATE_NAMES[int(a)], _STATE_NAMES[int(b)]): int(pairs[a, b])
            for a, b in zip(*np.nonzero(pairs), strict=True)
        }

    # ------------------------------------------------------------------ queries
    def _rows(self) -> tuple[RowBlock, list[str], int | None]:
        """Every row held, the endpoint names and the watermark, all taken at one moment."""
        with self._lock:
            self._drain_stage()
            closed = self._engine.closed.all()
            wm = self._watermark if self._watermark != _NO_TIME else 0
            rows = RowBlock.concat([closed, self._engine.open_rows(wm)], len(METRICS))
            return rows, self.registry.names(), self.watermark

    def _endpoint_code(self, endpoint: str) -> int:
        """Code of ``endpoint`` (staged events drained first, so an endpoint seen only there is
        known); KeyError naming the known endpoints otherwise."""
        with self._lock:
            self._drain_stage()
            code = self.registry.get(endpoint)
        if code is None:
            raise KeyError(f"unknown endpoint {endpoint!r}; known: {self.registry.names()}")
        return code

    def totals(self, endpoint: str) -> dict[str, int]:
        """Every counter of ``endpoint`` over its lifetime — the windows held plus those
        ``history=`` dropped — with the current ``in_queue``/``in_progress``. The counters never
        decrease (a Prometheus counter can be read from them)."""
        code = self._endpoint_code(endpoint)
        with self._lock:
            self._drain_stage()
            sums = self._sum_values(code, *self._span(None)) + self._engine.closed.lifetime.values_of(code)
            out = {name: int(sums[i]) for i, name in enumerate(COUNTERS)}
            out["in_queue"] = int(self._engine.epa[code, L.E_QUEUE])
            out["in_progress"] = int(self._engine.epa[code, L.E_PROGRESS])
        return out

    def histogram(
        self, endpoint: str, metric: str, *, last: Duration | None = None, lifetime: bool = False
    ) -> HdrHistogram:
        """The ``metric`` histogram of ``endpoint`` (values in µs): over every window held, or the
        windows of the ``last`` duration up to and including the current one; with
        ``lifetime=True`` over everything seen (the windows held plus those ``history=``
        dropped: counts that never decrease). ``last`` and ``lifetime`` exclude each other."""
        m = self._metric_index(metric)
        if lifetime and last is not None:
            raise ValueError(f"histogram takes last or lifetime=True, not both (got last={last!r})")
        code = self._endpoint_code(endpoint)
        counts = np.zeros(self.geometry.counts_len, dtype=np.int64)
        with self._lock:
            self._drain_stage()
            self._sum_histogram(code, m, *self._span(last), counts)
            if lifetime:
                dropped = self._engine.closed.lifetime.hist_of(code, m)
                if dropped is not None:
                    counts += dropped
        g = self.geometry
        return HdrHistogram.from_counts(counts, g.lowest, g.highest, g.significant_figures)

    def workers(self, endpoint: str) -> dict[str, int]:
        """Workers of ``endpoint`` in each state now — ``initializing``, ``idle``, ``running``,
        ``throttled``, ``unhealthy`` — after every event the watermark has passed (workers that
        went ``OFFLINE`` or past ``worker_ttl`` have left the pool)."""
        code = self._endpoint_code(endpoint)
        with self._lock:
            self._drain_stage()
            levels = self._engine.epa[code, L.E_WLEVEL : L.E_WLEVEL + L.N_WORKER_GAUGES].tolist()
        return dict(zip(WORKER_STATES, map(int, levels), strict=True))

    def window_workers(self, endpoint: str, start: int) -> tuple[dict[str, float], dict[str, int]]:
        """Workers of ``endpoint`` by state over the closed window starting at ``start`` (µs
        since the epoch, a multiple of the window width): ``(average, maximum)``, the
        time-weighted average and the most at once — the snapshot's ``workers_<state>_avg`` and
        ``_max``. Zeros when the endpoint had no row there (or ``history=`` dropped the window);
        ValueError when the window is not closed yet or ``start`` is not a window start."""
        if start % self.width:
            raise ValueError(f"start must be a multiple of the window width {self.width} µs, got {start!r}")
        code = self._endpoint_code(endpoint)
        w = start // self.width
        with self._lock:
            self._drain_stage()
            if self._watermark == _NO_TIME or start + self.width > self._watermark:
                raise ValueError(f"the window starting at {start} µs is not closed yet")
            sums = self._sum_values(code, w, w + 1)
        g = L.N_WORKER_GAUGES
        wint, wmax = L.R_WINT - L.R_CNT, L.R_WMAX - L.R_CNT
        avg = {s: int(sums[wint + k]) / self.width for k, s in enumerate(WORKER_STATES[:g])}
        most = {s: int(sums[wmax + k]) for k, s in enumerate(WORKER_STATES[:g])}
        return avg, most

    def percentiles(
        self,
        endpoint: str,
        metric: str,
        *,
        last: Duration | None = "5m",
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

    def _span(self, last: Duration | None) -> tuple[int, int]:
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
        rows, names, watermark = self._rows()  # copied under the lock, encoded outside it
        return to_table(
            rows,
            names,
            width=self.width,
            watermark=watermark,
            spec=SnapshotSpec(self.geometry, self.quantiles),
        )

    def metrics(self, endpoint: str, *, last: Duration | None = None) -> dict[str, Any]:
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


def _sliceable(data: pa.Table) -> bool:
    """Whether ``data`` can be ingested in slices with the errors of a whole batch: no slice can
    need a column the others do not (the columns an event kind requires are all there, or every
    row is a job event) or fail on values the others lack (webhook status codes as text)."""
    names = set(data.schema.names)
    if {"ts", "endpoint", "job_id", "state"} - names:
        return False
    if _only_jobs(data.column("kind") if "kind" in names else None):
        return True
    if "worker_id" not in names or "status_code" not in names:
        return False
    status = data.schema.field("status_code").type
    return bool(pa.types.is_integer(status) or pa.types.is_floating(status))


def _only_jobs(kind: pa.ChunkedArray | None) -> bool:
    """Whether a ``kind`` column (or its absence) makes every row a job event, read off the
    dictionaries of a dictionary column (a plain column is not scanned: False)."""
    if kind is None or kind.null_count == len(kind):
        return True
    if not pa.types.is_dictionary(kind.type):
        return False
    return all(_kind_of(v) == Kind.JOB for chunk in kind.chunks for v in chunk.dictionary.to_pylist())


def _in_time_order(runs: list[EventBatch]) -> list[EventBatch]:
    """Time-sorted ``runs`` (in arrival order) as pieces that, applied one after another, give
    the stable merge of the runs: no run of equal timestamps spans two pieces.

    When each run starts at or after the end of the one before (sorted input cut into batches),
    the runs are the pieces, except that a timestamp shared across a boundary is gathered into a
    small piece of its own: no copy of the runs. Otherwise one merged copy.
    """
    if any(int(a.ts[-1]) > int(b.ts[0]) for a, b in itertools.pairwise(runs)):
        return [_sorted(EventBatch.concat(runs))]
    pieces: list[EventBatch] = []
    current = runs[0] if runs else None
    for run in runs[1:]:
        assert current is not None
        t = int(run.ts[0])
        if int(current.ts[-1]) < t:
            pieces.append(current)
            current = run
            continue
        cut = int(np.searchsorted(current.ts, t, side="left"))
        end = int(np.searchsorted(run.ts, t, side="right"))
        if cut:
            pieces.append(current.slice(0, cut))
        shared = EventBatch.concat([current.slice(cut, len(current)), run.slice(0, end)])
        if end == len(run):
            current = shared
        else:
            pieces.append(shared)
            current = run.slice(end, len(run))
    if current is not None:
        pieces.append(current)
    return pieces


def _sorted(batch: EventBatch) -> EventBatch:
    """``batch`` in time order (stable). Equal timestamps need no order here: the kernel groups the
    events of one job or worker at one timestamp and orders them by their lifecycle."""
    if ordered(batch.ts):
        return batch
    return batch.take(np.argsort(batch.ts, kind="stable"))
