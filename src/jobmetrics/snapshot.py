"""Arrow snapshots (SPEC §4) and their exact re-aggregation.

:func:`to_table` turns window rows (a :class:`~jobmetrics.windows.RowBlock`) into the snapshot
table; :func:`rollup` re-aggregates snapshot rows — coarser windows, or the same window from several
aggregators — into the same schema, exactly: counters and worker-µs add up, histograms are decoded
from their ``*_hdr`` bytes and added, and every percentile is computed again from the sum.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from . import codec
from ._kernels import layout as L
from ._kernels.sparse import row_stats
from .geometry import Geometry
from .timeparse import parse_duration
from .windows import RowBlock

__all__ = ["WORKER_STATES", "SnapshotSpec", "quantile_label", "rollup", "to_table"]

#: Worker states with gauges, in the engine's order.
WORKER_STATES = ("initializing", "idle", "running", "throttled", "unhealthy")

_JOB_COUNTERS = ("requests", "completed", "failed", "cancelled", "timed_out", "retried")
_WORKER_COUNTERS = ("cold_start_count", "cold_start_failures", "webhook_requests",
                    "webhook_succeeded", "webhook_failed")  # fmt: skip
_QUALITY_COUNTERS = ("invalid_transitions", "duplicates", "orphans", "expired", "late_events",
                     "workers_lost", "clamped_durations")  # fmt: skip
_META = b"jobmetrics"
_TS = pa.timestamp("us", tz="UTC")
_QUANTILE_COLUMN = re.compile(r"^(?:execution_time|delay_time|cold_start_time)_p(\d+(?:_\d+)?)_ms$")


def quantile_label(q: float) -> str:
    """Column label of a quantile: 0.7 → ``p70``, 0.999 → ``p99_9``."""
    text = f"{q * 100:.10f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")


@dataclass(frozen=True, slots=True)
class SnapshotSpec:
    """What a snapshot needs besides its rows: histogram geometry and quantiles."""

    geometry: Geometry
    quantiles: tuple[float, ...]

    def metadata(self, extra: dict[str, Any] | None = None) -> dict[bytes, bytes]:
        """The snapshot's schema metadata: histogram geometry and quantiles (plus ``extra``)."""
        g = self.geometry
        info = {
            "lowest": g.lowest,
            "highest": g.highest,
            "significant_figures": g.significant_figures,
            "quantiles": list(self.quantiles),
            "units": "histograms in microseconds; *_ms columns in milliseconds",
            **(extra or {}),
        }
        return {_META: json.dumps(info).encode()}


def schema(spec: SnapshotSpec) -> pa.Schema:
    """The snapshot schema for ``spec``'s quantiles."""
    fields: list[pa.Field] = [
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("window_start", _TS, nullable=False),
        pa.field("window_end", _TS, nullable=False),
        pa.field("final", pa.bool_(), nullable=False),
    ]
    fields += [pa.field(c, pa.int64(), nullable=False) for c in _JOB_COUNTERS]
    for m in L.METRIC_NAMES:
        fields.append(pa.field(f"{m}_count", pa.int64(), nullable=False))
        fields += [pa.field(f"{m}_{quantile_label(q)}_ms", pa.float64()) for q in spec.quantiles]
        fields += [pa.field(f"{m}_{s}_ms", pa.float64()) for s in ("min", "max", "mean")]
        fields.append(pa.field(f"{m}_hdr", pa.binary()))
    fields += [pa.field(c, pa.int64(), nullable=False) for c in _WORKER_COUNTERS]
    for s in WORKER_STATES:
        fields.append(pa.field(f"workers_{s}_avg", pa.float64(), nullable=False))
        fields.append(pa.field(f"workers_{s}_max", pa.int64(), nullable=False))
        fields.append(pa.field(f"workers_{s}_us", pa.int64(), nullable=False))
    fields += [pa.field(c, pa.int64(), nullable=False) for c in ("in_queue", "in_progress")]
    fields += [pa.field(c, pa.int64(), nullable=False) for c in _QUALITY_COUNTERS]
    return pa.schema(fields)


# ---------------------------------------------------------------------------------- building
@dataclass(frozen=True, slots=True)
class _Rows:
    """Snapshot rows as plain arrays before they become a table."""

    endpoint: pa.Array
    start: npt.NDArray[np.int64]  # µs
    end: npt.NDArray[np.int64]  # µs
    final: npt.NDArray[np.bool_]
    values: npt.NDArray[np.int64]  # RowBlock.values layout (counters, gauges, worker µs / max)
    hist: tuple[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]], ...]
    elapsed: npt.NDArray[np.int64]  # µs of each window covered so far (full width when final)


def _table(rows: _Rows, spec: SnapshotSpec, extra_meta: dict[str, Any] | None = None) -> pa.Table:
    n = len(rows.start)
    g = spec.geometry
    counter_index = {name: i for i, name in enumerate(L.COUNTER_NAMES)}
    cols: dict[str, Any] = {
        "endpoint": rows.endpoint,
        "window_start": pa.array(rows.start, type=_TS),
        "window_end": pa.array(rows.end, type=_TS),
        "final": pa.array(rows.final, type=pa.bool_()),
    }
    for c in _JOB_COUNTERS:
        cols[c] = rows.values[:, counter_index[c]]
    qs = np.asarray(spec.quantiles, dtype=np.float64)
    for m, name in enumerate(L.METRIC_NAMES):
        row, idx, cnt = rows.hist[m]
        total, qv, vmin, vmax, mean = row_stats(
            row, idx, cnt, n, qs, True, g.unit_magnitude, g.half_magnitude
        )
        empty = total == 0
        cols[f"{name}_count"] = total
        for j, q in enumerate(spec.quantiles):
            cols[f"{name}_{quantile_label(q)}_ms"] = _ms(qv[:, j], empty)
        cols[f"{name}_min_ms"] = _ms(vmin, empty)
        cols[f"{name}_max_ms"] = _ms(vmax, empty)
        cols[f"{name}_mean_ms"] = pa.array(mean / 1000.0, mask=empty, type=pa.float64())
        cols[f"{name}_hdr"] = _encode_rows(g, row, idx, cnt, n)
    for c in _WORKER_COUNTERS:
        cols[c] = rows.values[:, counter_index[c]]
    wint = L.R_WINT - L.R_CNT
    wmax = L.R_WMAX - L.R_CNT
    span = np.maximum(rows.elapsed, 1).astype(np.float64)
    for k, s in enumerate(WORKER_STATES):
        us = rows.values[:, wint + k]
        cols[f"workers_{s}_avg"] = np.where(rows.elapsed > 0, us / span, 0.0)
        cols[f"workers_{s}_max"] = rows.values[:, wmax + k]
        cols[f"workers_{s}_us"] = us
    cols["in_queue"] = rows.values[:, L.R_QUEUE - L.R_CNT]
    cols["in_progress"] = rows.values[:, L.R_PROGRESS - L.R_CNT]
    for c in _QUALITY_COUNTERS:
        cols[c] = rows.values[:, counter_index[c]]
    sch = schema(spec).with_metadata(spec.metadata(extra_meta))
    return pa.Table.from_pydict(cols, schema=sch)


def _ms(values_us: npt.NDArray[np.int64], empty: npt.NDArray[np.bool_]) -> pa.Array:
    return pa.array(values_us / 1000.0, mask=empty, type=pa.float64())


def _encode_rows(
    g: Geometry, row: npt.NDArray[np.int64], idx: npt.NDArray[np.int64], cnt: npt.NDArray[np.int64], n: int
) -> pa.Array:
    """Each row's histogram as HdrHistogram V2 bytes (None for rows without entries)."""
    out: list[bytes | None] = [None] * n
    if row.size:
        bounds = np.flatnonzero(np.diff(row)) + 1
        starts = np.concatenate([[0], bounds]).tolist()
        ends = np.concatenate([bounds, [row.size]]).tolist()
        rows = row[starts].tolist()

        def encode(k: int) -> bytes:
            return codec.encode_sparse(g, idx[starts[k] : ends[k]], cnt[starts[k] : ends[k]])

        for k, r in enumerate(rows):
            out[r] = encode(k)
    return pa.array(out, type=pa.binary())


def _coalesce(
    row: npt.NDArray[np.int64],
    idx: npt.NDArray[np.int64],
    cnt: npt.NDArray[np.int64],
    counts_len: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """COO entries sorted by (row, idx) with repeats summed and zeros dropped."""
    if row.size == 0:
        return row, idx, cnt
    key = row * np.int64(counts_len) + idx
    order = np.argsort(key, kind="stable")
    key = key[order]
    cnt = cnt[order]
    first = np.concatenate([[True], key[1:] != key[:-1]])
    starts = np.flatnonzero(first)
    sums = np.add.reduceat(cnt, starts)
    ukey = key[starts]
    keep = sums != 0
    ukey, sums = ukey[keep], sums[keep]
    return ukey // counts_len, ukey % counts_len, sums


def to_table(
    block: RowBlock,
    names: Sequence[str],
    *,
    width: int,
    watermark: int | None,
    spec: SnapshotSpec,
) -> pa.Table:
    """The SPEC §4 snapshot of ``block``'s rows, sorted by window start, then endpoint name.

    ``names[code]`` is the endpoint of each code; a row is final when its window ends at or
    before ``watermark``. Open rows report worker averages over the part of the window elapsed.
    """
    name_arr = np.asarray(names, dtype=object)
    rank = np.empty(len(name_arr), dtype=np.int64)
    rank[np.argsort(name_arr.astype(str), kind="stable")] = np.arange(len(name_arr))
    order = np.lexsort((rank[block.endpoint], block.window)) if len(block) else np.zeros(0, np.int64)
    start = block.window[order] * width
    end = start + width
    wm = np.iinfo(np.int64).min if watermark is None else watermark
    final = end <= wm
    elapsed = np.where(final, width, np.clip(wm - start, 0, width))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    hist = []
    for m in range(L.N_METRICS):
        r = inverse[block.hist_row[m]].astype(np.int64)
        hist.append(
            _coalesce(
                r,
                block.hist_index[m].astype(np.int64),
                block.hist_count[m],
                spec.geometry.counts_len,
            )
        )
    endpoint = pa.array(name_arr[block.endpoint[order]] if len(order) else [], type=pa.string())
    rows = _Rows(endpoint, start, end, final, block.values[order], tuple(hist), elapsed)
    return _table(rows, spec, {"window_us": width, "watermark_us": watermark})


# ---------------------------------------------------------------------------------- rollup
def _spec_of(table: pa.Table) -> SnapshotSpec:
    info = _metadata(table)
    quantiles: list[float] = []
    geometry: Geometry | None = None
    if info:
        quantiles = [float(q) for q in info["quantiles"]]
        geometry = Geometry(int(info["lowest"]), int(info["highest"]), int(info["significant_figures"]))
    else:
        labels = sorted({m.group(1) for c in table.column_names if (m := _QUANTILE_COLUMN.match(c))})
        quantiles = sorted(float(x.replace("_", ".")) / 100 for x in labels)
        for metric in L.METRIC_NAMES:
            for blob in table.column(f"{metric}_hdr").to_pylist():
                if blob is not None:
                    geometry = codec.decode(blob).geometry
                    break
            if geometry is not None:
                break
        if geometry is None:
            geometry = Geometry(1, 7 * 86_400_000_000, 2)
    return SnapshotSpec(geometry, tuple(quantiles))


def rollup(table: pa.Table, every: str | int = "1h", *, watermark: int | None = None) -> pa.Table:
    """Re-aggregate snapshot rows exactly into windows of ``every`` (epoch aligned).

    Rows of the same (endpoint, window) — from several aggregators, or a window split across
    tables — are added first; then rows are grouped into the coarser windows. Counters and
    worker-µs add; histograms (decoded from the ``*_hdr`` columns) add, and percentiles, min, max
    and mean are computed from the sum, so the result equals aggregating the raw events at that
    grain. ``in_queue``/``in_progress`` are those of the last window in each group;
    ``workers_<state>_max`` is the largest of the group's (for rows of one window from several
    sources it is the sum of their maxima, an upper bound unless each endpoint's workers were
    aggregated by one source).

    A coarse row is final when its window ends at or before the watermark: ``watermark`` (µs) if
    given, else the one recorded in the table's metadata (after ``pyarrow.concat_tables``, the first
    table's), else the end of the latest final row. Averages of final rows are over the whole
    window, of open rows over the part before the watermark — as a direct aggregation reports them.

    ``every`` must be a multiple of the rows' window width (recorded in the metadata) and every
    row's window must lie within one window of ``every``; :class:`ValueError` otherwise.

    Examples
    --------
    >>> hourly = rollup(agg.snapshot(), every="1h")  # doctest: +SKIP
    """
    step = parse_duration(every, name="every")
    if step <= 0:
        raise ValueError(f"every must be positive, got {every!r}")
    required = {"endpoint", "window_start", "window_end", "final", "requests"}
    missing = sorted(required - set(table.column_names))
    if missing:
        raise ValueError(f"not a snapshot table: missing columns {missing}")
    spec = _spec_of(table)
    info = _metadata(table)
    width = info.get("window_us")
    if width and step % int(width):
        raise ValueError(
            f"every={every!r} ({step} µs) is not a multiple of the rows' window width ({width} µs)"
        )
    n_in = table.num_rows
    start = (
        pc.cast(table.column("window_start"), pa.int64()).to_numpy(zero_copy_only=False)
        if n_in
        else np.zeros(0, np.int64)
    )
    end = (
        pc.cast(table.column("window_end"), pa.int64()).to_numpy(zero_copy_only=False)
        if n_in
        else np.zeros(0, np.int64)
    )
    coarse = np.floor_divide(start, step)
    if n_in and np.any(end > (coarse + 1) * step):
        bad = int(np.flatnonzero(end > (coarse + 1) * step)[0])
        raise ValueError(
            f"every={every!r} is not a multiple of the rows' window width: row {bad} "
            f"[{start[bad]}, {end[bad]}) µs straddles a {step} µs window"
        )
    enc = pc.dictionary_encode(table.column("endpoint")).combine_chunks()
    ep_codes = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    ep_names = enc.dictionary
    # group id per row: (endpoint, coarse window)
    gkey = np.stack([coarse, ep_codes], axis=1) if n_in else np.zeros((0, 2), np.int64)
    uniq, group = np.unique(gkey, axis=0, return_inverse=True) if n_in else (gkey, np.zeros(0, np.int64))
    group = np.asarray(group, dtype=np.int64).reshape(-1)
    n_out = uniq.shape[0]
    width_cols = L.R_HIST - L.R_CNT
    values = np.zeros((n_out, width_cols), dtype=np.int64)
    vin = _values_from_table(table, n_in)
    counters = slice(0, L.N_COUNTERS)
    wint = slice(L.R_WINT - L.R_CNT, L.R_WINT - L.R_CNT + len(WORKER_STATES))
    wmax = slice(L.R_WMAX - L.R_CNT, L.R_WMAX - L.R_CNT + len(WORKER_STATES))
    gauges = slice(L.R_QUEUE - L.R_CNT, L.R_PROGRESS - L.R_CNT + 1)
    if n_in:
        values[:, counters] = _group_sum(vin[:, counters], group, n_out)
        values[:, wint] = _group_sum(vin[:, wint], group, n_out)
        # rows of one (endpoint, window) from several sources add; then the group keeps the last
        # window's gauges and the largest maxima
        wkey = np.stack([start, ep_codes], axis=1)
        wuniq, wgroup = np.unique(wkey, axis=0, return_inverse=True)
        wgroup = np.asarray(wgroup, dtype=np.int64).reshape(-1)
        w_gauges = _group_sum(vin[:, gauges], wgroup, wuniq.shape[0])
        w_max = _group_sum(vin[:, wmax], wgroup, wuniq.shape[0])
        w_group = np.zeros(wuniq.shape[0], dtype=np.int64)
        w_group[wgroup] = group
        last = np.full(n_out, -1, dtype=np.int64)
        order = np.argsort(wuniq[:, 0], kind="stable")
        last[w_group[order]] = order  # the later window overwrites
        values[:, gauges] = w_gauges[last]
        np.maximum.at(values[:, wmax], w_group, w_max)
    final_in = (
        table.column("final").to_numpy(zero_copy_only=False).astype(bool) if n_in else np.zeros(0, bool)
    )
    out_start = uniq[:, 0] * step
    out_end = out_start + step
    if watermark is None:
        watermark = info.get("watermark_us")
    if watermark is None:
        watermark = int(end[final_in].max()) if final_in.any() else np.iinfo(np.int64).min
    wm = int(watermark)
    final = out_end <= wm
    elapsed = np.where(final, step, np.clip(wm - out_start, 0, step)).astype(np.int64)
    hist = [_decode_column(table.column(f"{m}_hdr"), group, spec.geometry) for m in L.METRIC_NAMES]
    endpoint = ep_names.take(pa.array(uniq[:, 1])) if n_out else pa.array([], type=pa.string())
    order = np.lexsort((endpoint.to_numpy(zero_copy_only=False) if n_out else np.zeros(0), out_start))
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.size)
    hist_sorted = tuple(_coalesce(inverse[r], i, c, spec.geometry.counts_len) for r, i, c in hist)
    rows = _Rows(
        endpoint.take(pa.array(order)) if n_out else endpoint,
        out_start[order], out_end[order], final[order], values[order], hist_sorted, elapsed[order],
    )  # fmt: skip
    return _table(rows, spec, {"window_us": step, "watermark_us": wm})


def _metadata(table: pa.Table) -> dict[str, Any]:
    meta = (table.schema.metadata or {}).get(_META)
    return {} if meta is None else dict(json.loads(meta))


def _group_sum(x: npt.NDArray[np.int64], group: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    out = np.zeros((n, x.shape[1]), dtype=np.int64)
    np.add.at(out, group, x)
    return out


def _values_from_table(table: pa.Table, n: int) -> npt.NDArray[np.int64]:
    """The RowBlock.values layout read back from snapshot columns (absent columns are 0)."""
    values = np.zeros((n, L.R_HIST - L.R_CNT), dtype=np.int64)
    names = set(table.column_names)

    def col(name: str) -> npt.NDArray[np.int64] | None:
        if name not in names:
            return None
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)

    for i, c in enumerate(L.COUNTER_NAMES):
        v = col(c)
        if v is not None:
            values[:, i] = v
    for name, k in (("in_queue", L.R_QUEUE), ("in_progress", L.R_PROGRESS)):
        v = col(name)
        if v is not None:
            values[:, k - L.R_CNT] = v
    for j, s in enumerate(WORKER_STATES):
        us = col(f"workers_{s}_us")
        if us is not None:
            values[:, L.R_WINT - L.R_CNT + j] = us
        mx = col(f"workers_{s}_max")
        if mx is not None:
            values[:, L.R_WMAX - L.R_CNT + j] = mx
    return values


def _decode_column(
    column: pa.ChunkedArray, group: npt.NDArray[np.int64], geometry: Geometry
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rows: list[npt.NDArray[np.int64]] = []
    idx: list[npt.NDArray[np.int64]] = []
    cnt: list[npt.NDArray[np.int64]] = []
    for i, blob in enumerate(column.to_pylist()):
        if blob is None:
            continue
        decoded = codec.decode(blob)
        if not decoded.geometry.compatible_with(geometry):
            raise ValueError(
                f"row {i}: histogram geometry {decoded.geometry} differs from {geometry}; "
                "rows to roll up must share lowest value and significant figures"
            )
        nz = np.flatnonzero(decoded.counts)
        rows.append(np.full(nz.size, group[i], dtype=np.int64))
        idx.append(nz.astype(np.int64))
        cnt.append(decoded.counts[nz])
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(rows), np.concatenate(idx), np.concatenate(cnt)
