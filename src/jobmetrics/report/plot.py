"""Charts of a report with matplotlib (the ``plot`` extra), drawn off-screen (Agg).

One row of three charts per endpoint: latency percentiles over time (execution, delay and cold
start; one line per quantile), requests per window by outcome, and the time-weighted average
number of workers in each state. The series are the report's rows re-aggregated exactly into at
most a few hundred windows (:func:`jobmetrics.report.model.series`).
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..snapshot import WORKER_STATES
from .model import DURATION_METRICS, Report, series, write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["MAX_ENDPOINTS", "endpoint_figure", "figure", "png_bytes", "write_png"]

#: Endpoints drawn in one PNG (the first ones by name); the HTML page draws every endpoint.
MAX_ENDPOINTS = 12

_METRIC_STYLE = {"execution_time": "-", "delay_time": "--", "cold_start_time": ":"}
_METRIC_LABEL = {"execution_time": "execution", "delay_time": "delay", "cold_start_time": "cold start"}
_OUTCOMES = (("completed", "#2e7d32"), ("failed", "#c62828"), ("cancelled", "#9e9e9e"),
             ("timed_out", "#ef6c00"))  # fmt: skip
_UNITS = (("hours", 3_600_000.0), ("minutes", 60_000.0), ("seconds", 1000.0), ("ms", 1.0))
_WORKER_COLORS = ("#90caf9", "#a5d6a7", "#1565c0", "#ffb74d", "#e57373")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError("charts need matplotlib: pip install 'jobmetrics[plot]'") from exc
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure


def _column(t: pa.Table, name: str) -> np.ndarray[Any, Any]:
    return np.asarray(t.column(name).to_numpy(zero_copy_only=False))


def _times(t: pa.Table) -> list[dt.datetime]:
    return [
        v.replace(tzinfo=None) for v in t.column("window_start").to_pylist()
    ]  # naive UTC: matplotlib's date axis


def _draw_endpoint(axes: Any, rows: pa.Table, name: str, report: Report) -> None:
    ax_lat, ax_req, ax_work = axes
    t = rows.filter(pc.equal(rows.column("endpoint"), name))
    x = _times(t)
    width = _grain_seconds(t) / 86_400  # bar width in days (matplotlib's date unit)
    colors = ["#1f77b4", "#9467bd", "#d62728", "#8c564b", "#17becf"]
    lines = []
    for m in DURATION_METRICS:
        if int(_column(t, f"{m}_count").sum()) == 0:
            continue
        for k, (label, _) in enumerate(report.quantiles):
            y = np.array(
                [np.nan if v is None else v for v in t.column(f"{m}_{label}_ms").to_pylist()], dtype=float
            )
            lines.append((m, k, label, y))
    top = max((float(np.nanmax(y)) for *_, y in lines if np.isfinite(y).any()), default=0.0)
    unit, scale = next((u, f) for u, f in _UNITS if top >= f or f == 1.0)
    for m, k, label, y in lines:
        ax_lat.plot(
            x,
            y / scale,
            _METRIC_STYLE[m],
            color=colors[k % len(colors)],
            linewidth=1.2,
            marker="." if len(x) < 3 else None,
            label=f"{_METRIC_LABEL[m]} {label.upper()}",
        )
    ax_lat.set_title(f"{name}: latency percentiles", fontsize=9, loc="left")
    ax_lat.set_ylabel(unit)
    if ax_lat.lines:
        ax_lat.set_yscale("log")
        ax_lat.legend(fontsize=6, ncol=2, loc="upper left")
    else:
        _empty(ax_lat, "no durations recorded")
    ax_req.set_title(f"{name}: requests per {_grain(t)}", fontsize=9, loc="left")
    job_columns = ("requests", *(outcome for outcome, _ in _OUTCOMES))
    if len(x) and any(_column(t, c).any() for c in job_columns):
        bottom = np.zeros(len(x))
        for outcome, color in _OUTCOMES:
            y = _column(t, outcome).astype(float)
            ax_req.bar(x, y, width=width * 0.9, bottom=bottom, color=color, label=outcome, align="edge")
            bottom += y
        ax_req.plot(x, _column(t, "requests"), color="black", linewidth=1.0, label="requests")
        ax_req.legend(fontsize=6, loc="upper left")
    else:
        _empty(ax_req, "no job events")
    levels = [_column(t, f"workers_{s}_avg").astype(float) for s in WORKER_STATES]
    ax_work.set_title(f"{name}: workers by state (average)", fontsize=9, loc="left")
    if len(x) and any(level.any() for level in levels):
        ax_work.stackplot(x, *levels, labels=list(WORKER_STATES), colors=_WORKER_COLORS, step="post")
        ax_work.legend(fontsize=6, loc="upper left")
    else:
        _empty(ax_work, "no worker events")
    for ax in axes:
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(20)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_yticks([])
    ax.set_xticks([])


def _grain_seconds(t: pa.Table) -> int:
    if t.num_rows == 0:
        return 60
    start, end = t.column("window_start")[0].as_py(), t.column("window_end")[0].as_py()
    return max(1, int((end - start).total_seconds()))


def _grain(t: pa.Table) -> str:
    if t.num_rows == 0:
        return "window"
    seconds = _grain_seconds(t)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def figure(report: Report, *, endpoints: list[str] | None = None, rows: pa.Table | None = None) -> Figure:
    """One figure: a row of three charts for each endpoint (at most :data:`MAX_ENDPOINTS`).

    ``rows`` are the series to draw (default :func:`~jobmetrics.report.model.series` of ``report``).
    """
    fig_cls = _pyplot()
    names = endpoints or [f.endpoint for f in report.endpoints][:MAX_ENDPOINTS]
    rows = series(report) if rows is None else rows
    n = max(len(names), 1)
    fig: Figure = fig_cls(figsize=(15, 3.2 * n), layout="constrained")
    axes = fig.subplots(n, 3, squeeze=False)
    for i, name in enumerate(names):
        _draw_endpoint(axes[i], rows, name, report)
    if not names:
        axes[0][0].set_title("no rows in this interval")
    fig.suptitle(
        f"{report.source} - {report.start:%Y-%m-%d %H:%M} to {report.end:%Y-%m-%d %H:%M} UTC", fontsize=10
    )
    return fig


def endpoint_figure(report: Report, endpoint: str, *, rows: pa.Table | None = None) -> Figure:
    """The three charts of one endpoint."""
    return figure(report, endpoints=[endpoint], rows=rows)


def png_bytes(fig: Figure, *, dpi: int = 100) -> bytes:
    """``fig`` as PNG bytes (no software metadata)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def write_png(report: Report, path: str | Path, *, dpi: int = 100) -> None:
    """Write :func:`figure` of ``report`` to ``path`` (atomically: a temporary file, then rename)."""
    write_atomic(Path(path), png_bytes(figure(report), dpi=dpi))
