"""The per-partition steps of the Dask path, as plain functions (no Dask inside).

Dask's workers run these functions; they import them from this installed module (never from
``__main__``), so the numba kernels they call load from the on-disk cache instead of compiling in
every task. In pipeline order:

1. :func:`prepare` normalises one input partition in file order (:func:`~jobmetrics.events.normalize`,
   the single-process path's own function): integer columns, rejected rows dropped.
2. :func:`summarise`: its largest event time and endpoint names, for the client's prefix scan.
3. :func:`mark` judges lateness against the largest event time of everything before the
   partition (the prefix scan) exactly as :class:`~jobmetrics.Aggregator` does in arrival order,
   maps endpoint codes to the global list and adds the routing key of the shuffle: the job id for
   job and webhook events, the endpoint for worker events.
4. After the shuffle, :func:`aggregate_partition` runs an :class:`~jobmetrics.Aggregator` over the
   partition's events (the same numba kernels) advanced to the global watermark, and returns its
   snapshot rows with the histograms decoded (:func:`rows_of`); :func:`late_partial` turns the
   late events into the rows their markers would have made.
5. :func:`merge` adds partial rows of the same windows exactly (a tree of merges); :func:`finish`
   turns the merged rows into the SPEC §4 table with :func:`~jobmetrics.snapshot.to_table` — the
   function the single-process snapshot uses — and writes the Parquet where it runs (a worker).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from .. import codec
from .._kernels import layout as L
from ..aggregator import Aggregator
from ..events import EndpointRegistry, EventBatch, Rejections, normalize
from ..snapshot import WORKER_STATES, SnapshotSpec, to_table
from ..states import Kind
from ..timeparse import parse_duration
from ..windows import RowBlock

__all__ = [
    "COLUMNS",
    "Marked",
    "Prepared",
    "Summary",
    "aggregate_partition",
    "arrival_watermarks",
    "check_options",
    "empty_frame",
    "empty_snapshot",
    "finish",
    "kernel_cache_stats",
    "late_partial",
    "lateness_of",
    "mark",
    "merge",
    "pack",
    "prepare",
    "rows_of",
    "snapshot_of",
    "summarise",
    "unpack",
    "write_or_return",
    "write_parquet",
]

I64 = npt.NDArray[np.int64]
_NO_TIME = np.iinfo(np.int64).min

#: Columns of the shuffled frame: event time, packed event (see :func:`pack`) and routing key.
COLUMNS: dict[str, type[np.generic]] = {"ts": np.int64, "id": np.int64, "code": np.int64, "route": np.int64}

#: Options that :func:`aggregate_partition` sets itself (events reach it already judged).
_OWN_OPTIONS = ("allowed_lateness",)
_WORKER_ROUTE_SALT = np.int64(-0x61C8864680B583EB)  # keeps endpoint routes apart from job keys


def check_options(options: Mapping[str, Any]) -> Aggregator:
    """An :class:`~jobmetrics.Aggregator` built from ``options`` (validating them); a clear error
    naming an unknown option."""
    allowed = [n for n in inspect.signature(Aggregator).parameters]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"unknown aggregator option(s) {unknown}; expected some of {sorted(allowed)}")
    return Aggregator(**options)


def lateness_of(options: Mapping[str, Any]) -> int | None:
    """``allowed_lateness`` of ``options`` in µs (the aggregator's default when absent), None for
    none."""
    value = options.get(
        "allowed_lateness", inspect.signature(Aggregator).parameters["allowed_lateness"].default
    )
    return None if value is None else parse_duration(value, name="allowed_lateness")


# ---------------------------------------------------------------------------------- packing
# The shuffle moves each event as three int64 columns (and the route): ``ts``, ``id`` (the job key,
# or the worker key on worker rows: the worker_id of a job event plays no part in the rules) and
# ``code``, which packs the endpoint code, HTTP status, kind and state.
_STATE_BITS = 3
_KIND_SHIFT = 3
_STATUS_SHIFT = 5
_ENDPOINT_SHIFT = 16


def pack(batch: EventBatch) -> tuple[I64, I64]:
    """``(id, code)`` of each event of ``batch`` (see the packing note above)."""
    worker = batch.kind == Kind.WORKER
    ident = np.where(worker, batch.worker, batch.job)
    code = batch.endpoint.astype(np.int64) << _ENDPOINT_SHIFT
    code |= (batch.status.astype(np.int64) + 1) << _STATUS_SHIFT
    code |= batch.kind.astype(np.int64) << _KIND_SHIFT
    code |= batch.state.astype(np.int64)
    return ident, code


I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]


def unpack(code: I64) -> tuple[I32, I8, I8, I32]:
    """``(endpoint, kind, state, status)`` of packed codes."""
    endpoint = (code >> _ENDPOINT_SHIFT).astype(np.int32)
    status = (((code >> _STATUS_SHIFT) & 0x7FF) - 1).astype(np.int32)
    kind = ((code >> _KIND_SHIFT) & 0x3).astype(np.int8)
    state = (code & ((1 << _STATE_BITS) - 1)).astype(np.int8)
    return endpoint, kind, state, status


# ---------------------------------------------------------------------------------- stage 1
@dataclass(frozen=True, slots=True)
class Prepared:
    """One input partition normalised: usable events in file order, packed (see :func:`pack`),
    endpoint codes local to ``names``."""

    ts: I64
    id: I64
    code: I64
    names: list[str]
    rejections: Rejections
    rows: int

    @property
    def max_ts(self) -> int:
        """Largest event time (µs), or the int64 minimum when the partition has no usable event."""
        return int(self.ts.max()) if self.ts.size else _NO_TIME


@dataclass(frozen=True, slots=True)
class Summary:
    """What the client needs of a prepared partition: its extent and endpoint names."""

    max_ts: int
    events: int
    rows: int
    names: list[str]
    rejections: Rejections


def prepare(frame: Any, batch_number: int = 0) -> Prepared:
    """Normalise one input partition (Arrow table, pandas DataFrame or mapping of columns) with
    :func:`~jobmetrics.events.normalize`, as the single-process path does."""
    registry = EndpointRegistry()
    rejections = Rejections()
    n = frame.num_rows if isinstance(frame, pa.Table) else len(frame)
    batch, _ = normalize(frame, registry, rejections=rejections, batch_number=batch_number)
    ident, code = pack(batch)
    return Prepared(batch.ts, ident, code, registry.names(), rejections, n)


def summarise(prepared: Prepared) -> Summary:
    """The partition's largest event time, event and row counts, endpoint names and rejections."""
    return Summary(prepared.max_ts, prepared.ts.size, prepared.rows, prepared.names, prepared.rejections)


# ---------------------------------------------------------------------------------- stage 2
@dataclass(frozen=True, slots=True)
class Marked:
    """A prepared partition after the lateness judgement: the events to shuffle and the late ones."""

    frame: Any  # pandas.DataFrame with :data:`COLUMNS`
    late_endpoint: npt.NDArray[np.int32]  # global endpoint code of each late event
    late_mark: I64  # the watermark each late event met (µs): where its marker is counted


def arrival_watermarks(ts: I64, max_before: int, lateness: int) -> I64:
    """The watermark each event meets in arrival order: ``max(earlier ts) - lateness`` over
    everything before it (``max_before``: the largest event time of all earlier partitions), the
    int64 minimum while nothing came before."""
    running = np.empty(ts.shape[0], dtype=np.int64)
    if ts.shape[0]:
        running[0] = max_before
        np.maximum.accumulate(np.maximum(ts[:-1], max_before), out=running[1:])
    wm = np.full(ts.shape[0], _NO_TIME, dtype=np.int64)
    seen = running != _NO_TIME
    wm[seen] = running[seen] - lateness
    return wm


def mark(
    prepared: Prepared,
    max_before: int,
    lateness: int | None,
    names: Sequence[str],
    *,
    shuffle: bool = True,
) -> Marked:
    """Judge lateness, map endpoints to the global ``names`` and add the routing key.

    An event is late when its time is older than the watermark it meets in arrival order (see
    :func:`arrival_watermarks`): as in the single-process :class:`~jobmetrics.Aggregator`, it is
    not applied, and a marker at that watermark counts it. ``lateness`` None: nothing is late.
    ``shuffle`` False leaves the route at 0 (used to show that the shuffle is needed).
    """
    import pandas as pd

    index = {name: i for i, name in enumerate(names)}
    remap = np.array([index[n] for n in prepared.names] + [0], dtype=np.int64)
    ts, ident, code = prepared.ts, prepared.id, prepared.code
    local = code >> _ENDPOINT_SHIFT
    code = (code & ((1 << _ENDPOINT_SHIFT) - 1)) | (remap[local] << _ENDPOINT_SHIFT)
    late_ep = np.zeros(0, dtype=np.int32)
    late_mark = np.zeros(0, dtype=np.int64)
    if lateness is not None and ts.size:
        wm = arrival_watermarks(ts, max_before, lateness)
        late = (wm != _NO_TIME) & (ts < wm)
        if late.any():
            late_ep, late_mark = (code[late] >> _ENDPOINT_SHIFT).astype(np.int32), wm[late]
            keep = ~late
            ts, ident, code = ts[keep], ident[keep], code[keep]
    route = np.zeros(ts.size, dtype=np.int64)
    if shuffle:
        # a job's events (and a webhook's, by job id) go together; a worker's with every worker
        # event of its endpoint, because the most workers at once is a maximum over their sum
        worker = ((code >> _KIND_SHIFT) & 0x3) == Kind.WORKER
        route = np.where(worker, _WORKER_ROUTE_SALT ^ (code >> _ENDPOINT_SHIFT), ident)
    frame = pd.DataFrame({"ts": ts, "id": ident, "code": code, "route": route}, copy=False)
    return Marked(frame, late_ep, late_mark)


def empty_frame() -> Any:
    """A frame with :data:`COLUMNS` and no rows (the shuffle's meta)."""
    import pandas as pd

    return pd.DataFrame({name: np.zeros(0, dtype=dtype) for name, dtype in COLUMNS.items()})


# ---------------------------------------------------------------------------------- stage 3
def _columns(frame: Any, names: Sequence[str]) -> dict[str, pa.Array]:
    """Arrow columns :func:`~jobmetrics.events.normalize` reads back to the same events."""
    ts = np.ascontiguousarray(frame["ts"].to_numpy(), dtype=np.int64)
    ident = np.ascontiguousarray(frame["id"].to_numpy(), dtype=np.int64)
    endpoint, kind, state, status = unpack(np.ascontiguousarray(frame["code"].to_numpy(), dtype=np.int64))
    worker = kind == Kind.WORKER
    return {
        "ts": pa.array(ts.view("datetime64[us]")),
        "kind": pa.array(kind),
        "endpoint": pa.DictionaryArray.from_arrays(
            pa.array(endpoint), pa.array(list(names), type=pa.string())
        ),
        # ids arrive as int64 keys: normalize hashes them again with a bijection, so equal ids
        # stay equal and different ids stay different
        "job_id": pa.array(ident, mask=worker),
        "state": pa.array(state),
        "worker_id": pa.array(ident, mask=~worker),
        "status_code": pa.array(status, mask=status < 0),
    }


def aggregate_partition(
    frame: Any, names: Sequence[str], options: Mapping[str, Any], watermark: int
) -> RowBlock:
    """Window rows of one shuffled partition, advanced to the global ``watermark`` (µs).

    The events are already judged (late ones removed), so the partition's
    :class:`~jobmetrics.Aggregator` holds them all and applies them in time order at the end
    (``allowed_lateness=None``, exact for any input order); then its watermark moves to the
    global one, so its in-flight jobs, workers, sweeps and window closings reach the same time as
    in one process. Returns the rows of its snapshot, endpoints coded by ``names``.
    """
    opts = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
    opts.setdefault("job_capacity", max(1024, len(frame) // 3))  # sizing only: no effect on results
    agg = Aggregator(**opts, allowed_lateness=None)
    if len(frame):
        agg.ingest(_columns(frame, names))
    agg.flush()
    agg.advance(np.datetime64(watermark, "us"))
    return rows_of(agg.snapshot(), names, agg.width)


def rows_of(table: pa.Table, names: Sequence[str], width: int) -> RowBlock:
    """The rows of a snapshot table (SPEC §4) as a :class:`~jobmetrics.windows.RowBlock`:
    endpoints coded by ``names``, window indexes, the integer values and each histogram decoded
    from its ``*_hdr`` bytes (non-zero buckets). Percentiles, means and averages are left out:
    they are computed again from these when the merged rows become a table."""
    n = table.num_rows
    codes = pc.index_in(table.column("endpoint"), value_set=pa.array(list(names), type=pa.string()))
    if codes.null_count:
        unknown = table.column("endpoint").filter(pc.is_null(codes))[0].as_py()
        raise ValueError(f"endpoint {unknown!r} is not among the {len(names)} endpoints of the log")
    endpoint = np.asarray(codes.to_numpy(zero_copy_only=False), dtype=np.int32)
    start = pc.cast(table.column("window_start"), pa.int64()).to_numpy(zero_copy_only=False)
    values = np.zeros((n, L.R_HIST - L.R_CNT), dtype=np.int64)
    for name, col in _VALUE_COLUMNS.items():
        values[:, col] = table.column(name).to_numpy(zero_copy_only=False)
    rows: list[I32] = []
    index: list[I32] = []
    count: list[I64] = []
    for metric in L.METRIC_NAMES:
        r_parts: list[I32] = []
        i_parts: list[I32] = []
        c_parts: list[I64] = []
        for r, blob in enumerate(table.column(f"{metric}_hdr").to_pylist()):
            if blob is None:
                continue
            counts = codec.decode(blob).counts
            nz = np.flatnonzero(counts)
            r_parts.append(np.full(nz.size, r, dtype=np.int32))
            i_parts.append(nz.astype(np.int32))
            c_parts.append(counts[nz])
        rows.append(_cat(r_parts, np.int32))
        index.append(_cat(i_parts, np.int32))
        count.append(_cat(c_parts, np.int64))
    return RowBlock(endpoint, start // width, values, tuple(rows), tuple(index), tuple(count))


def _cat(parts: list[npt.NDArray[Any]], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)


def _value_columns() -> dict[str, int]:
    """Snapshot column -> its position in the row values (layout of :mod:`jobmetrics._kernels.layout`)."""
    out = {name: i for i, name in enumerate(L.COUNTER_NAMES)}
    out["in_queue"] = L.R_QUEUE - L.R_CNT
    out["in_progress"] = L.R_PROGRESS - L.R_CNT
    for k, state in enumerate(WORKER_STATES):
        out[f"workers_{state}_us"] = L.R_WINT - L.R_CNT + k
        out[f"workers_{state}_max"] = L.R_WMAX - L.R_CNT + k
    return out


_VALUE_COLUMNS = _value_columns()


def late_partial(
    endpoint: I32,
    marks: I64,
    options: Mapping[str, Any],
    watermark: int,
) -> RowBlock:
    """Rows holding only ``late_events``: one per (endpoint, window of the marker).

    The single-process aggregator counts a late event with a marker at the watermark it met,
    which makes a row there if none exists; such a row's other columns come from the partitions
    (where none of them has the row, the endpoint had nothing there, so they are zero).
    """
    width = check_options(options).width
    window = marks // width
    if window.size:
        key = np.stack([window, endpoint.astype(np.int64)], axis=1)
        uniq, counts = np.unique(key, axis=0, return_counts=True)
    else:
        uniq, counts = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    hw = _history_windows(options, width)
    if hw is not None:  # the windows the aggregator forgets (closed, older than `history`)
        keep = uniq[:, 0] >= watermark // width - hw + 1
        uniq, counts = uniq[keep], counts[keep]
    values = np.zeros((uniq.shape[0], L.R_HIST - L.R_CNT), dtype=np.int64)
    values[:, L.C_LATE] = counts
    e32, e64 = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return RowBlock(
        endpoint=uniq[:, 1].astype(np.int32),
        window=uniq[:, 0].copy(),
        values=values,
        hist_row=(e32,) * L.N_METRICS,
        hist_index=(e32,) * L.N_METRICS,
        hist_count=(e64,) * L.N_METRICS,
    )


def _history_windows(options: Mapping[str, Any], width: int) -> int | None:
    """Closed windows kept by the ``history`` option (as the aggregator computes it)."""
    history = options.get("history")
    if history is None:
        return None
    return max(1, -(-parse_duration(history, name="history") // width))


# ---------------------------------------------------------------------------------- merge, output
def merge(blocks: Sequence[RowBlock]) -> RowBlock:
    """Partial rows added exactly: one row per (endpoint, window), its values summed and its
    histograms added (the most workers at once too: only one partial holds an endpoint's workers,
    the others add 0)."""
    parts = [b for b in blocks if len(b)]
    if not parts:
        return blocks[0]
    block = RowBlock.concat(parts, L.N_METRICS)
    key = np.stack([block.window, block.endpoint.astype(np.int64)], axis=1)
    uniq, group = np.unique(key, axis=0, return_inverse=True)
    group = np.asarray(group, dtype=np.int64).reshape(-1)
    values = np.zeros((uniq.shape[0], block.values.shape[1]), dtype=np.int64)
    np.add.at(values, group, block.values)
    rows: list[I32] = []
    index: list[I32] = []
    count: list[I64] = []
    for m in range(L.N_METRICS):
        r, i, c = _coalesce(group[block.hist_row[m]], block.hist_index[m], block.hist_count[m])
        rows.append(r)
        index.append(i)
        count.append(c)
    return RowBlock(
        uniq[:, 1].astype(np.int32), uniq[:, 0].copy(), values, tuple(rows), tuple(index), tuple(count)
    )


def _coalesce(row: I64, idx: I32, cnt: I64) -> tuple[I32, I32, I64]:
    """Histogram entries with repeated (row, bucket) summed, sorted by row then bucket."""
    if row.size == 0:
        return row.astype(np.int32), idx.astype(np.int32), cnt.astype(np.int64)
    key = row.astype(np.int64) << 32 | idx.astype(np.int64)
    order = np.argsort(key, kind="stable")
    key, cnt = key[order], cnt[order]
    first = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
    sums = np.add.reduceat(cnt, first)
    key = key[first]
    return (key >> 32).astype(np.int32), (key & 0xFFFFFFFF).astype(np.int32), sums


def snapshot_of(
    block: RowBlock, names: Sequence[str], options: Mapping[str, Any], watermark: int
) -> pa.Table:
    """The SPEC §4 table of merged rows: :func:`~jobmetrics.snapshot.to_table`, as the
    single-process :meth:`~jobmetrics.Aggregator.snapshot` makes it."""
    agg = check_options(options)
    spec = SnapshotSpec(agg.geometry, agg.quantiles)
    return to_table(block, list(names), width=agg.width, watermark=watermark, spec=spec)


def empty_snapshot(options: Mapping[str, Any]) -> pa.Table:
    """The snapshot of an aggregator that saw no usable event."""
    return check_options(options).snapshot()


def finish(
    block: RowBlock,
    names: Sequence[str],
    options: Mapping[str, Any],
    watermark: int,
    output: str | os.PathLike[str] | None,
) -> pa.Table | None:
    """The snapshot of the merged rows, written as Parquet at ``output`` (atomically: a temporary
    file beside it, then a rename) where this runs, returning None; or returned when ``output``
    is None."""
    return write_or_return(snapshot_of(block, names, options, watermark), output)


def write_or_return(table: pa.Table, output: str | os.PathLike[str] | None) -> pa.Table | None:
    """``table`` written to ``output`` (None returned), or ``table`` itself when ``output`` is None."""
    if output is None:
        return table
    write_parquet(table, output)
    return None


def write_parquet(table: pa.Table, output: str | os.PathLike[str]) -> None:
    """Write ``table`` to ``output`` so that readers never see a half-written file (as the single
    process does: :func:`jobmetrics.io.parquet.write_parquet`)."""
    from ..io.parquet import write_parquet as write_atomically

    write_atomically(table, output)


# ---------------------------------------------------------------------------------- numba's cache
def kernel_cache_stats() -> dict[str, int]:
    """How this process got its compiled kernels: ``hits`` (machine code loaded from numba's
    on-disk cache), ``misses`` (compiled here, then cached) and ``kernels`` (dispatchers that
    have compiled or loaded something). Run it on the workers with ``client.run`` to check that
    tasks reuse cached code instead of compiling."""
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    from .. import _kernels

    hits = misses = kernels = 0
    for info in pkgutil.iter_modules(_kernels.__path__):
        module = importlib.import_module(f"{_kernels.__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__:
                stats = value.stats
                h, m = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
                hits, misses = hits + h, misses + m
                kernels += bool(h or m)
    return {"hits": hits, "misses": misses, "kernels": kernels}
