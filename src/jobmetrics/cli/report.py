"""``jobmetrics report``: a snapshot Parquet shown like a metrics tab (terminal, PNG, HTML)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


def _interval(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value in ("all", "last"):
        return value
    from ..timeparse import parse_duration

    try:
        if parse_duration(value, name="--interval") <= 0:
            raise ValueError(f"--interval must be positive, got {value!r}")
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; or use 'last' or 'all'") from None
    return value


@click.command(name="report")
@click.argument("snapshot", type=click.Path(path_type=Path))
@click.option(
    "--interval",
    default="all",
    show_default=True,
    callback=_interval,
    help="Which windows: 'all', 'last' (the latest window) or a duration such as 1h, 30m, 7d "
    "(the windows of that span before the latest window end).",
)
@click.option(
    "--endpoint",
    "endpoints",
    multiple=True,
    metavar="NAME",
    help="Only this endpoint: a name or a pattern such as 'sd-*' (repeat for several).",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write charts (percentiles, requests, workers over time) to this PNG file.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write one self-contained HTML page (tables and charts) to this file.",
)
def command(
    snapshot: Path,
    interval: str,
    endpoints: tuple[str, ...],
    plot_path: Path | None,
    html_path: Path | None,
) -> None:
    """Show SNAPSHOT (a snapshot Parquet from `jobmetrics aggregate`) like a metrics tab.

    Figures are re-aggregated exactly over the interval: counters add up and percentiles come
    from the merged HDR histograms of the `*_hdr` columns, never from averaging percentiles.
    """
    from rich.console import Console

    from ..report import model, terminal

    for target in (plot_path, html_path):
        if target is not None and not target.absolute().parent.is_dir():
            raise click.ClickException(f"cannot write {target}: directory {target.parent} does not exist")
    try:
        table = model.load_snapshot(snapshot)
        report = model.build_report(
            table, interval=interval, endpoints=list(endpoints) or None, source=str(snapshot)
        )
    except ValueError as exc:  # SnapshotError included
        raise click.ClickException(str(exc)) from None
    console = Console()
    terminal.render(report, console)
    for target, kind in ((plot_path, "plot"), (html_path, "html")):
        if target is None:
            continue
        try:
            if kind == "plot":
                from ..report import plot

                plot.write_png(report, target)
                console.print(f"Charts written to {target}", markup=False)
            else:
                from ..report import html

                html.write_html(report, target)
                console.print(f"HTML report written to {target}", markup=False)
        except ImportError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(f"cannot write {target}: {exc.strerror or exc}") from None
