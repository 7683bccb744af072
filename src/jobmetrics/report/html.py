"""A report as one self-contained HTML page: inline CSS, the terminal view's tables, and each
endpoint's charts as an inline base64 PNG. Nothing is fetched when the page is opened (no
scripts, fonts, stylesheets or images from the network)."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from ..snapshot import WORKER_STATES
from .model import DURATION_METRICS, EndpointFigures, Report, series, write_atomic
from .terminal import METRIC_TITLES, format_count, format_duration_us, format_ms

__all__ = ["render_html", "write_html"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem;
       color: #1d2330; background: #f6f7f9; }
h1 { font-size: 1.3rem; margin-bottom: .2rem; }
.meta { color: #5b6474; margin-bottom: 1.5rem; }
section { background: #fff; border: 1px solid #dde1e7; border-radius: 8px; padding: 1rem 1.2rem;
          margin-bottom: 1.5rem; }
h2 { font-size: 1.1rem; margin: 0 0 .8rem 0; }
h3 { font-size: .85rem; text-transform: uppercase; letter-spacing: .04em; color: #5b6474;
     margin: 1rem 0 .3rem 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: .9rem; }
th, td { padding: .25rem .8rem; text-align: right; border-bottom: 1px solid #eceff3; }
th:first-child, td:first-child { text-align: left; }
th { color: #5b6474; font-weight: 600; }
.line { margin: .6rem 0; }
.quality { color: #a15c00; }
img { max-width: 100%; margin-top: .8rem; }
.nav { margin-bottom: 1.5rem; }
a { color: #1f5fbf; }
"""

_REQUESTS = (("requests", "Requests"), ("completed", "Completed"), ("failed", "Failed"),
             ("retried", "Retried"), ("cancelled", "Cancelled"), ("timed_out", "Timed out"))  # fmt: skip


def _table(head: list[str], rows: list[list[str]], cls: str) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _endpoint_section(report: Report, f: EndpointFigures, chart_png: bytes | None) -> str:
    parts = [f'<section id="endpoint-{escape(f.endpoint)}"><h2>{escape(f.endpoint)}</h2>']
    parts.append("<h3>Requests</h3>")
    parts.append(
        _table([t for _, t in _REQUESTS], [[format_count(f.counters[c]) for c, _ in _REQUESTS]], "requests")
    )
    parts.append("<h3>Latency</h3>")
    labels = [label for label, _ in report.quantiles]
    rows = []
    for m in DURATION_METRICS:
        d = f.durations[m]
        rows.append(
            [METRIC_TITLES[m], format_count(d.count)]
            + [format_ms(d.quantiles[label]) for label in labels]
            + [format_ms(d.mean_ms), format_ms(d.max_ms)]
        )
    head = ["Metric", "Count", *(label.upper().replace("_", ".") for label in labels), "Mean", "Max"]
    parts.append(_table(head, rows, "latency"))
    c = f.counters
    rate = f.webhook_success_rate
    ok = "" if rate is None else f" ({rate:.1%} ok)"
    parts.append(
        f'<p class="line"><b>Now:</b> {format_count(f.in_queue)} in queue, '
        f"{format_count(f.in_progress)} in progress &nbsp; <b>Cold starts:</b> "
        f"{format_count(c['cold_start_count'])} &nbsp; <b>Webhooks:</b> "
        f"{format_count(c['webhook_requests'])} sent, {format_count(c['webhook_succeeded'])} ok, "
        f"{format_count(c['webhook_failed'])} failed{escape(ok)}</p>"
    )
    parts.append("<h3>Workers</h3>")
    parts.append(
        _table(
            ["", *(s.capitalize() for s in WORKER_STATES)],
            [
                ["avg", *(f"{f.workers[s][0]:.2f}" for s in WORKER_STATES)],
                ["max", *(format_count(f.workers[s][1]) for s in WORKER_STATES)],
            ],
            "workers",
        )
    )
    noted = [f"{format_count(v)} {k.replace('_', ' ')}" for k, v in f.quality.items() if v]
    if noted:
        parts.append(f'<p class="line quality">Data quality: {escape(", ".join(noted))}</p>')
    if chart_png is not None:
        data = base64.b64encode(chart_png).decode("ascii")
        parts.append(f'<img alt="charts of {escape(f.endpoint)}" src="data:image/png;base64,{data}">')
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: Report, *, charts: bool = True) -> str:
    """The page as a string. ``charts=False`` leaves the charts out (no matplotlib needed)."""
    pngs: dict[str, bytes] = {}
    if charts and report.endpoints:
        from .plot import endpoint_figure, png_bytes

        rows = series(report)
        for f in report.endpoints:
            pngs[f.endpoint] = png_bytes(endpoint_figure(report, f.endpoint, rows=rows), dpi=80)
    span = int((report.end - report.start).total_seconds() * 1_000_000)
    asked = {"all": "all windows", "last": "latest window"}.get(report.interval, f"last {report.interval}")
    meta = (
        f"{asked}: {report.start:%Y-%m-%d %H:%M:%S} to {report.end:%Y-%m-%d %H:%M:%S} UTC "
        f"({format_duration_us(span)}), {format_count(report.rows.num_rows)} rows of "
        f"{format_duration_us(report.window_us)} windows"
    )
    if report.open_rows:
        meta += f", {report.open_rows} still open (provisional)"
    sections = [_endpoint_section(report, f, pngs.get(f.endpoint)) for f in report.endpoints]
    if not sections:
        sections = ["<section><p>No rows in this interval.</p></section>"]
    nav = ""
    if len(report.endpoints) > 1:
        links = " &middot; ".join(
            f'<a href="#endpoint-{escape(f.endpoint)}">{escape(f.endpoint)}</a>' for f in report.endpoints
        )
        nav = f'<p class="nav">{links}</p>\n'
    title = f"jobmetrics report: {report.source}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<h1>{escape(title)}</h1>\n<p class="meta">{escape(meta)}</p>\n{nav}'
        + "\n".join(sections)
        + "\n</body>\n</html>\n"
    )


def write_html(report: Report, path: str | Path, *, charts: bool = True) -> None:
    """Write :func:`render_html` of ``report`` to ``path`` (atomically)."""
    write_atomic(Path(path), render_html(report, charts=charts).encode("utf-8"))
