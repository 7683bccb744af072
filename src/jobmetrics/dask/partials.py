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
   partition's events (the same numba kernels) and returns its snapshot rows, advanced to the
   global watermark; :func:`late_partial` turns the late events into the rows their markers would
   have made.
5. :func:`merge` adds partial snapshots of the same windows exactly (:func:`~jobmetrics.rollup`
   at the window width); :func:`finish` writes the SPEC §4 Parquet where it runs (a worker).
"""

from __future__ import annotations

import inspect
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from .._kernels import layout as L
from ..aggregator import Aggregator
from ..events import EndpointRegistry, EventBatch, Rejections, normalize
from ..snapshot import SnapshotSpec, rollup, to_table
from ..states import Kind
from ..timeparse import parse_duration
from ..windows import RowBlock

__all__ = [
    "COLUMNS",
    "Marked",
    "Prepared",
    "Summary",
    "aggregate_partition",
    "check_options",
    "empty_snapshot",
    "finish",
    "late_partial",
    "lateness_of",
    "mark",
    "merge",
    "pack",
    "prepare",
    "summarise",
    "unpack",
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
) -> pa.Table:
    """Snapshot rows of one shuffled partition, advanced to the global ``watermark`` (µs).

    The events are already judged (late ones removed), so the partition's
    :class:`~jobmetrics.Aggregator` holds them all and applies them in time order at the end
    (``allowed_lateness=None``, exact for any input order); then its watermark moves to the
    global one, so its in-flight jobs, workers, sweeps and window closings reach the same time as
    in one process.
    """
    opts = {k: v for k, v in options.items() if k not in _OWN_OPTIONS}
    opts.setdefault("job_capacity", max(1024, len(frame) // 3))  # sizing only: no effect on results
    agg = Aggregator(**opts, allowed_lateness=None)
    if len(frame):
        agg.ingest(_columns(frame, names))
    agg.flush()
    agg.advance(np.datetime64(watermark, "us"))
    return agg.snapshot()


def late_partial(
    endpoint: npt.NDArray[np.int32],
    marks: I64,
    names: Sequence[str],
    options: Mapping[str, Any],
    watermark: int,
) -> pa.Table:
    """Snapshot rows holding only ``late_events``: one per (endpoint, window of the marker).

    The single-process aggregator counts a late event with a marker at the watermark it met,
    which makes a row there if none exists; such a row's other columns come from the partitions
    (where none of them has the row, the endpoint had nothing there, so they are zero).
    """
    agg = check_options(options)
    spec = SnapshotSpec(agg.geometry, agg.quantiles)
    window = marks // agg.width
    if window.size:
        key = np.stack([endpoint.astype(np.int64), window], axis=1)
        uniq, counts = np.unique(key, axis=0, return_counts=True)
    else:
        uniq, counts = np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    values = np.zeros((uniq.shape[0], L.R_HIST - L.R_CNT), dtype=np.int64)
    values[:, L.C_LATE] = counts
    hw = _history_windows(options, agg.width)
    if hw is not None:
        keep = uniq[:, 1] >= watermark // agg.width - hw + 1
        uniq, values = uniq[keep], values[keep]
    e32, e64 = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    block = RowBlock(
        endpoint=uniq[:, 0].astype(np.int32),
        window=uniq[:, 1].copy(),
        values=values,
        hist_row=(e32,) * L.N_METRICS,
        hist_index=(e32,) * L.N_METRICS,
        hist_count=(e64,) * L.N_METRICS,
    )
    return to_table(block, list(names), width=agg.width, watermark=watermark, spec=spec)


def _history_windows(options: Mapping[str, Any], width: int) -> int | None:
    """Closed windows kept by the ``history`` option (as the aggregator computes it)."""
    history = options.get("history")
    if history is None:
        return None
    return max(1, -(-parse_duration(history, name="history") // width))


# ---------------------------------------------------------------------------------- merge, output
def merge(tables: Sequence[pa.Table], width: int, watermark: int) -> pa.Table:
    """Partial snapshots of the same windows added exactly into one (rows of one (endpoint,
    window) add up: counters, histograms, worker-µs, levels, and the most workers at once, which
    only one partial holds per endpoint)."""
    tables = [t for t in tables if t is not None]
    return rollup(pa.concat_tables(tables), every=width, watermark=watermark)


def empty_snapshot(options: Mapping[str, Any]) -> pa.Table:
    """The snapshot of an aggregator that saw no usable event."""
    return check_options(options).snapshot()


def finish(table: pa.Table, output: str | os.PathLike[str] | None) -> pa.Table | None:
    """Write ``table`` as Parquet at ``output`` (atomically: a temporary file beside it, then a
    rename) and return None; return the table itself when ``output`` is None."""
    if output is None:
        return table
    write_parquet(table, output)
    return None


def write_parquet(table: pa.Table, output: str | os.PathLike[str]) -> None:
    """Write ``table`` to ``output`` so that readers never see a half-written file."""
    import pyarrow.parquet as pq

    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
