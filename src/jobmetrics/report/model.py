"""The figures of a report: one snapshot (SPEC §4) re-aggregated exactly over a chosen interval.

Nothing here averages percentiles. Counters and worker-microseconds are added; each duration metric's
histograms are decoded from the ``*_hdr`` columns with :class:`~jobmetrics.HdrHistogram`, added, and
every percentile, min, max and mean is read from the sum. Time series for the charts come from
:func:`jobmetrics.rollup` (exact as well) at a grain coarse enough to keep a few hundred points.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..histogram import HdrHistogram
from ..io.files import check_writable, write_bytes
from ..snapshot import WORKER_STATES, rollup
from ..timeparse import parse_duration

__all__ = [
    "DURATION_METRICS",
    "JOB_COUNTERS",
    "DurationFigures",
    "EndpointFigures",
    "Report",
    "SnapshotError",
    "build_report",
    "load_snapshot",
    "missing_columns",
    "quantile_columns",
    "series",
    "write_atomic",
]

#: Duration metrics of a snapshot, in report order.
DURATION_METRICS = ("execution_time", "delay_time", "cold_start_time")
#: Job counters, in report order.
JOB_COUNTERS = ("requests", "completed", "failed", "retried", "cancelled", "timed_out")
_OTHER_COUNTERS = ("cold_start_count", "webhook_requests", "webhook_succeeded", "webhook_failed")
_GAUGES = ("in_queue", "in_progress")
_QUALITY = ("invalid_transitions", "duplicates", "orphans", "expired", "late_events")
_QUANTILE = re.compile(r"^execution_time_p(\d+(?:_\d+)?)_ms$")
_US = 1_000_000


class SnapshotError(ValueError):
    """A file that is not a readable snapshot Parquet (missing, unreadable, or lacking columns)."""


def required_columns() -> list[str]:
    """The SPEC §4 columns a report needs (quantile columns are read, whatever they are)."""
    cols = ["endpoint", "window_start", "window_end", "final", *JOB_COUNTERS]
    for m in DURATION_METRICS:
        cols += [f"{m}_count", f"{m}_min_ms", f"{m}_max_ms", f"{m}_mean_ms", f"{m}_hdr"]
    cols += list(_OTHER_COUNTERS)
    for s in WORKER_STATES:
        cols += [f"workers_{s}_avg", f"workers_{s}_max"]
    cols += [*_GAUGES, *_QUALITY]
    return cols


def missing_columns(names: Sequence[str]) -> list[str]:
    """The SPEC §4 columns absent from ``names`` (empty when a report can be made)."""
    have = set(names)
    missing = [c for c in required_columns() if c not in have]
    if not quantile_columns(names):
        missing.append("execution_time_p<q>_ms (at least one quantile column)")
    return missing


def quantile_columns(names: Sequence[str]) -> list[tuple[str, float]]:
    """``(label, quantile)`` of each ``execution_time_p<q>_ms`` column, by quantile: ``p70`` → 0.7."""
    found = []
    for name in names:
        m = _QUANTILE.match(name)
        if m:
            label = m.group(1)
            found.append(("p" + label, float(label.replace("_", ".")) / 100.0))
    return sorted(found, key=lambda lq: lq[1])


def load_snapshot(path: str | Path) -> pa.Table:
    """Read a snapshot Parquet file, checking it has the SPEC §4 columns.

    Raises :class:`SnapshotError` naming the file when it does not exist or is not Parquet, and
    naming every missing column otherwise.
    """
    p = Path(path)
    if not p.exists():
        raise SnapshotError(f"snapshot file not found: {p}")
    if p.is_dir():
        raise SnapshotError(f"{p} is a directory, not a snapshot Parquet file")
    try:
        table = pq.read_table(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise SnapshotError(f"{p} is not a readable Parquet file: {exc}") from None
    missing = missing_columns(table.column_names)
    if missing:
        raise SnapshotError(
            f"{p} is not a jobmetrics snapshot: missing column(s) {', '.join(missing)} (see SPEC §4)"
        )
    return table


# ---------------------------------------------------------------------------------- figures
@dataclass(frozen=True, slots=True)
class DurationFigures:
    """One duration metric over the interval, from the merged histogram (values in ms)."""

    count: int
    quantiles: dict[str, float | None]  # label ("p90") -> ms, None when nothing was recorded
    min_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    histogram: HdrHistogram | None = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class EndpointFigures:
    """Everything a report shows for one endpoint over the interval."""

    endpoint: str
    windows: int  # snapshot rows of this endpoint in the interval
    counters: dict[str, int]  # requests … timed_out, cold_start_count, webhook_*
    durations: dict[str, DurationFigures]  # by metric name
    workers: dict[str, tuple[float, int]]  # state -> (time-weighted average, maximum)
    in_queue: int  # at the end of the interval
    in_progress: int
    quality: dict[str, int]

    @property
    def webhook_success_rate(self) -> float | None:
        """Share of webhook deliveries answered with 2xx (None without deliveries)."""
        n = self.counters["webhook_requests"]
        return None if n == 0 else self.counters["webhook_succeeded"] / n


@dataclass(frozen=True, slots=True)
class Report:
    """The per-endpoint figures of one interval of a snapshot, and the rows they come from."""

    source: str
    interval: str  # what was asked: "all", "last" or a duration such as "1h"
    start: dt.datetime  # interval start (UTC)
    end: dt.datetime  # interval end: the latest window end, or the watermark inside an open window
    window_us: int  # the snapshot rows' window width
    quantiles: tuple[tuple[str, float], ...]
    endpoints: tuple[EndpointFigures, ...]
    rows: pa.Table = field(repr=False)  # the snapshot rows of the interval (selected endpoints)
    open_rows: int = 0  # rows not final yet


def _us(column: pa.ChunkedArray) -> npt.NDArray[np.int64]:
    return np.asarray(
        pc.cast(column, pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False),
        dtype=np.int64,
    )


def _ints(table: pa.Table, name: str) -> npt.NDArray[np.int64]:
    return np.asarray(table.column(name).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)


def _metadata(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(b"jobmetrics")
    if raw is None:
        return {}
    try:
        info = json.loads(raw)
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def _window_us(table: pa.Table, start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]) -> int:
    width = _metadata(table).get("window_us")
    if width:
        return int(width)
    return int(np.min(end - start)) if start.size else 60 * _US


def _to_datetime(us: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=int(us))


def _select(
    table: pa.Table, interval: str, start: npt.NDArray[np.int64], end: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.bool_], int]:
    """Rows of ``interval`` and the interval's start (µs)."""
    if table.num_rows == 0:
        return np.zeros(0, dtype=bool), 0
    latest_end = int(end.max())
    if interval == "all":
        return np.ones(start.size, dtype=bool), int(start.min())
    if interval == "last":
        last_start = int(start.max())
        return start == last_start, last_start
    span = parse_duration(interval, name="interval")
    if span <= 0:
        raise ValueError(f"interval must be positive, 'last' or 'all', got {interval!r}")
    lo = latest_end - span
    keep = start >= lo
    if not keep.any():  # the interval is narrower than one window: the latest window
        keep = start == int(start.max())
    return keep, max(lo, int(start[keep].min()))


def build_report(
    table: pa.Table,
    *,
    interval: str = "all",
    endpoints: Sequence[str] | None = None,
    source: str = "snapshot",
) -> Report:
    """Re-aggregate ``table`` (snapshot rows) over ``interval`` per endpoint.

    Parameters
    ----------
    table:
        A SPEC §4 snapshot (e.g. read by :func:`load_snapshot`).
    interval:
        ``"all"`` (every row), ``"last"`` (the latest window) or a duration such as ``"1h"``: the
        windows starting within that duration before the latest window end (like a metrics tab's
        "last hour").
    endpoints:
        Only these endpoints: names or shell patterns such as ``"sd-*"`` (each must match; a
        :class:`ValueError` names those that match nothing).

    Examples
    --------
    >>> from jobmetrics import Aggregator
    >>> agg = Aggregator(window="60s", allowed_lateness="0s")
    >>> for ts, state in ((0, "IN_QUEUE"), (400, "IN_PROGRESS"), (2_900, "COMPLETED")):
    ...     agg.record(ts=ts, endpoint="sd", job_id="a", state=state)
    >>> agg.flush()
    >>> report = build_report(agg.snapshot(), interval="1h")
    >>> sd = report.endpoints[0]
    >>> sd.counters["completed"], sd.durations["execution_time"].quantiles["p90"]  # ms
    (1, 2506.751)
    """
    missing = missing_columns(table.column_names)
    if missing:
        raise SnapshotError(f"not a jobmetrics snapshot: missing column(s) {', '.join(missing)}")
    names = sorted(set(table.column("endpoint").to_pylist()))
    if endpoints:
        chosen = {n for pattern in endpoints for n in fnmatch.filter(names, pattern)}
        unknown = [e for e in endpoints if not fnmatch.filter(names, e)]
        if unknown:
            raise ValueError(
                f"endpoint(s) {', '.join(map(repr, unknown))} not in the snapshot; it has "
                f"{', '.join(map(repr, names)) or 'no endpoints'}"
            )
        mask = pc.is_in(table.column("endpoint"), value_set=pa.array(sorted(chosen), pa.string()))
        table = table.filter(mask)
        names = [e for e in names if e in chosen]
    start = _us(table.column("window_start"))
    end = _us(table.column("window_end"))
    width = _window_us(table, start, end)
    keep, lo = _select(table, interval, start, end)
    rows = table.filter(pa.array(keep)) if table.num_rows else table
    start, end = start[keep], end[keep]
    final = np.asarray(rows.column("final").to_numpy(zero_copy_only=False), dtype=bool)
    hi = int(end.max()) if end.size else lo
    watermark = _metadata(table).get("watermark_us")
    if watermark is not None and (~final).any() and lo < int(watermark) < hi:
        hi = int(watermark)  # an open window: figures cover the time up to the watermark
    quantiles = tuple(quantile_columns(table.column_names))
    figures = tuple(_endpoint_figures(rows, name, start, lo, hi, quantiles) for name in names)
    figures = tuple(f for f in figures if f.windows)
    return Report(
        source=source,
        interval=interval,
        start=_to_datetime(lo),
        end=_to_datetime(hi),
        window_us=width,
        quantiles=quantiles,
        endpoints=figures,
        rows=rows,
        open_rows=int((~final).sum()),
    )


def _merged(blobs: Sequence[bytes | None]) -> HdrHistogram | None:
    total: HdrHistogram | None = None
    for blob in blobs:
        if blob is None:
            continue
        h = HdrHistogram.decode(blob)
        total = h if total is None else total.add(h)
    return total


def duration_figures(
    blobs: Sequence[bytes | None], quantiles: Sequence[tuple[str, float]]
) -> DurationFigures:
    """Figures of the sum of the histograms ``blobs`` (``*_hdr`` values; None for empty rows)."""
    h = _merged(blobs)
    if h is None or h.total_count == 0:
        return DurationFigures(0, {label: None for label, _ in quantiles}, None, None, None, None)
    return DurationFigures(
        count=h.total_count,
        quantiles={label: h.value_at_quantile(q) / 1000.0 for label, q in quantiles},
        min_ms=h.min / 1000.0,
        max_ms=h.max / 1000.0,
        mean_ms=h.mean / 1000.0,
        histogram=h,
    )


def _per_window(values: npt.NDArray[np.int64], start: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``values`` of rows of the same window (from several sources) added: one value per window."""
    _, group = np.unique(start, return_inverse=True)
    out = np.zeros(int(group.max()) + 1 if group.size else 0, dtype=np.int64)
    np.add.at(out, group.reshape(-1), values)
    return out


def _endpoint_figures(
    rows: pa.Table,
    name: str,
    start: npt.NDArray[np.int64],
    lo: int,
    hi: int,
    quantiles: Sequence[tuple[str, float]],
) -> EndpointFigures:
    mask = np.asarray(pc.equal(rows.column("endpoint"), name).to_numpy(zero_copy_only=False), dtype=bool)
    mine = rows.filter(pa.array(mask))
    my_start = start[mask]
    counters = {c: int(_ints(mine, c).sum()) for c in (*JOB_COUNTERS, *_OTHER_COUNTERS)}
    durations = {
        m: duration_figures(mine.column(f"{m}_hdr").to_pylist(), quantiles) for m in DURATION_METRICS
    }
    span = max(hi - lo, 1)
    workers: dict[str, tuple[float, int]] = {}
    width = _us(mine.column("window_end")) - my_start if mine.num_rows else np.zeros(0, dtype=np.int64)
    for s in WORKER_STATES:
        if f"workers_{s}_us" in mine.column_names:
            integral = float(_ints(mine, f"workers_{s}_us").sum())
        else:  # not a jobmetrics column: the average times the window's width
            avg = np.asarray(mine.column(f"workers_{s}_avg").fill_null(0.0).to_numpy(zero_copy_only=False))
            integral = float(np.sum(avg * width))
        peak = int(_per_window(_ints(mine, f"workers_{s}_max"), my_start).max()) if mine.num_rows else 0
        workers[s] = (integral / span, peak)
    latest = my_start == my_start.max() if my_start.size else my_start.astype(bool)
    gauges = {g: int(_ints(mine, g)[latest].sum()) for g in _GAUGES}
    return EndpointFigures(
        endpoint=name,
        windows=mine.num_rows,
        counters=counters,
        durations=durations,
        workers=workers,
        in_queue=gauges["in_queue"],
        in_progress=gauges["in_progress"],
        quality={c: int(_ints(mine, c).sum()) for c in _QUALITY},
    )


# ---------------------------------------------------------------------------------- series
#: Chart grains tried in order (µs): the first multiple of the window width that gives few enough points.
_GRAINS = tuple(
    m * 60 * _US for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080, 20160, 43200)
)


def series(report: Report, *, max_points: int = 240) -> pa.Table:
    """The report's rows re-aggregated (exactly, with :func:`jobmetrics.rollup`) into at most
    ``max_points`` windows per endpoint where a round grain allows (1, 2, 5, 10, 15, 30 minutes,
    1, 2, 3, 6, 12 hours, 1, 2, 7, 14, 30 days, then multiples of the window): the time series the
    charts draw."""
    rows = report.rows
    if rows.num_rows == 0:
        return rows
    start = _us(rows.column("window_start"))
    lo, hi = int(start.min()), int(start.max())
    width = report.window_us

    def points(every: int) -> int:
        return hi // every - lo // every + 1

    if points(width) <= max_points or "workers_idle_us" not in rows.column_names:
        return rows  # few windows, or not jobmetrics' own rows (rollup needs them): drawn as they are
    every = next((g for g in _GRAINS if g % width == 0 and points(g) <= max_points), 0)
    if not every:
        every = width * -(-points(width) // max_points)
        while points(every) > max_points:
            every += width
    return rollup(rows, every=every)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename: never a half-written file."""
    write_bytes(check_writable(path), data)
