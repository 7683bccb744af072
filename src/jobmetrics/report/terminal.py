"""The terminal view of a :class:`~jobmetrics.report.model.Report`, laid out like a serverless
platform's Metrics tab: per endpoint, requests by outcome, latency percentiles, cold starts,
webhooks and workers by state. Rendered with rich; fits an 80-column terminal."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ..snapshot import WORKER_STATES
from .model import DURATION_METRICS, EndpointFigures, Report

__all__ = ["METRIC_TITLES", "format_count", "format_duration_us", "format_ms", "render", "tables"]

#: Row titles of the duration metrics.
METRIC_TITLES = {"execution_time": "Execution", "delay_time": "Delay", "cold_start_time": "Cold start"}
_REQUEST_TITLES = {
    "requests": "Requests",
    "completed": "Completed",
    "failed": "Failed",
    "retried": "Retried",
    "cancelled": "Cancelled",
    "timed_out": "Timed out",
}
_QUALITY_TITLES = {
    "invalid_transitions": "invalid transitions",
    "duplicates": "duplicates",
    "orphans": "orphans",
    "expired": "expired",
    "late_events": "late events",
}


def format_ms(ms: float | None) -> str:
    """A duration in milliseconds as a short human string: ``412.5 ms``, ``2.31 s``, ``4.2 min``,
    ``1.50 h``, ``11.38 d`` (from two days); ``-`` for None (nothing recorded)."""
    if ms is None:
        return "-"
    if ms < 10:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.1f} min"
    if ms < 172_800_000:
        return f"{ms / 3_600_000:.2f} h"
    return f"{ms / 86_400_000:.2f} d"


def format_count(n: int) -> str:
    """An integer with thousands separators."""
    return f"{n:,}"


def format_duration_us(us: int) -> str:
    """A window width or interval span: ``60s``, ``5m``, ``1h``, ``2d``, ``1h30m``."""
    seconds = us // 1_000_000
    if seconds == 0:
        return f"{us / 1000:g}ms"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


def _requests_table(f: EndpointFigures) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Requests", title_justify="left", pad_edge=False, show_edge=False)
    for title in _REQUEST_TITLES.values():
        t.add_column(title, justify="right")
    t.add_row(*(format_count(f.counters[name]) for name in _REQUEST_TITLES))
    return t


def _latency_table(f: EndpointFigures, quantiles: tuple[tuple[str, float], ...]) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Latency", title_justify="left", pad_edge=False, show_edge=False)
    t.add_column("Metric")
    t.add_column("Count", justify="right")
    for label, _ in quantiles:
        t.add_column(label.upper().replace("_", "."), justify="right")
    t.add_column("Mean", justify="right")
    t.add_column("Max", justify="right")
    for m in DURATION_METRICS:
        d = f.durations[m]
        t.add_row(
            METRIC_TITLES[m],
            format_count(d.count),
            *(format_ms(d.quantiles[label]) for label, _ in quantiles),
            format_ms(d.mean_ms),
            format_ms(d.max_ms),
        )
    return t


def _workers_table(f: EndpointFigures) -> Table:
    t = Table(box=box.SIMPLE_HEAD, title="Workers", title_justify="left", pad_edge=False, show_edge=False)
    t.add_column("")
    for s in WORKER_STATES:
        t.add_column(s.capitalize(), justify="right")
    t.add_row("avg", *(f"{f.workers[s][0]:.2f}" for s in WORKER_STATES))
    t.add_row("max", *(format_count(f.workers[s][1]) for s in WORKER_STATES))
    return t


def _summary_line(f: EndpointFigures) -> Text:
    c = f.counters
    rate = f.webhook_success_rate
    ok = "" if rate is None else f" ({rate:.1%} ok)"
    text = Text()
    text.append("Now: ", style="bold")
    text.append(f"{format_count(f.in_queue)} in queue, {format_count(f.in_progress)} in progress   ")
    text.append("Cold starts: ", style="bold")
    text.append(f"{format_count(c['cold_start_count'])}\n")
    text.append("Webhooks: ", style="bold")
    text.append(
        f"{format_count(c['webhook_requests'])} sent, {format_count(c['webhook_succeeded'])} ok, "
        f"{format_count(c['webhook_failed'])} failed{ok}"
    )
    return text


def _quality_line(f: EndpointFigures) -> Text | None:
    noted = [f"{format_count(v)} {_QUALITY_TITLES[k]}" for k, v in f.quality.items() if v]
    if not noted:
        return None
    return Text("Data quality: " + ", ".join(noted), style="yellow")


def tables(report: Report, f: EndpointFigures) -> Panel:
    """The panel of one endpoint: requests, latency, a summary line, workers, data quality."""
    parts: list[Table | Text] = [
        _requests_table(f),
        _latency_table(f, report.quantiles),
        _summary_line(f),
        _workers_table(f),
    ]
    quality = _quality_line(f)
    if quality is not None:
        parts.append(quality)
    return Panel(Group(*parts), title=Text(f.endpoint, style="bold"), title_align="left", expand=False)


def header(report: Report) -> Text:
    """What the report covers: source, interval, windows."""
    span = int((report.end - report.start).total_seconds() * 1_000_000)
    asked = {"all": "all windows", "last": "latest window"}.get(report.interval, f"last {report.interval}")
    text = Text()
    text.append(f"{report.source}\n", style="bold")
    text.append(
        f"{asked}: {report.start:%Y-%m-%d %H:%M:%S} -> {report.end:%Y-%m-%d %H:%M:%S} UTC "
        f"({format_duration_us(span)})\n{format_count(report.rows.num_rows)} rows of "
        f"{format_duration_us(report.window_us)} windows"
    )
    if report.open_rows:
        text.append(f", {report.open_rows} still open (provisional)", style="dim")
    return text


def render(report: Report, console: Console | None = None) -> None:
    """Print ``report`` to ``console`` (a new stdout console by default)."""
    console = console or Console()
    console.print(header(report))
    if not report.endpoints:
        console.print("No rows in this interval.")
        return
    for f in report.endpoints:
        console.print(tables(report, f))
