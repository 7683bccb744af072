"""``jobmetrics aggregate``: event logs in, a snapshot Parquet out, with a progress bar and a
summary of what was read, rejected, late or invalid."""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from ..batch import MalformedInputError, Summary, progress_bar, run, summarize_snapshot
from ..io.readers import DEFAULT_BATCH_SIZE, FORMATS, LogReadError
from ._params import duration_us

__all__ = ["command"]

#: Rejected rows listed under the summary.
SHOWN_SAMPLES = 5


class InputProblem(click.UsageError):
    """A missing or unreadable input: printed with the usage line, exit code 2."""


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None or (param.name == "allowed_lateness" and value.lower() == "none"):
        return None
    duration_us(value, param.name or "duration")
    return value


def _quantiles(ctx: click.Context, param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        qs = tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(
            f"expected comma-separated numbers such as 0.7,0.9,0.98, got {value!r}"
        ) from None
    if not qs or not all(0.0 <= q <= 1.0 for q in qs):
        raise click.BadParameter(f"quantiles must be numbers within [0, 1], got {value!r}")
    return qs


@click.command(name="aggregate")
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="Snapshot Parquet to write."
)
@click.option("-w", "--window", default="60s", show_default=True, callback=_duration, help="Window width.")
@click.option(
    "-q", "--quantiles", default="0.7,0.9,0.98", show_default=True, callback=_quantiles,
    help="Quantiles of the duration metrics, comma-separated.",
)  # fmt: skip
@click.option(
    "--significant-figures", default=2, show_default=True, type=click.IntRange(1, 5),
    help="Precision of the duration histograms.",
)  # fmt: skip
@click.option(
    "--allowed-lateness", default="5s", show_default=True, callback=_duration,
    help="How far out of order events may arrive; older ones are counted as late ('none': as --exact-order).",
)  # fmt: skip
@click.option(
    "--exact-order", is_flag=True,
    help="Hold every event and apply them in time order: exact for any input order (memory grows "
    "with the log).",
)  # fmt: skip
@click.option(
    "--job-ttl", default="24h", show_default=True, callback=_duration,
    help="A job with no event for this long is evicted and counted as expired.",
)  # fmt: skip
@click.option(
    "--retention", default="1h", show_default=True, callback=_duration,
    help="How long finished jobs are remembered to recognise late duplicates and retries.",
)  # fmt: skip
@click.option(
    "--worker-ttl", default="24h", show_default=True, callback=_duration,
    help="A worker with no event for this long leaves the pool.",
)  # fmt: skip
@click.option(
    "--highest", default="7d", show_default=True, callback=_duration,
    help="Longest duration the histograms hold; longer ones are clamped and counted.",
)  # fmt: skip
@click.option(
    "--orphans", type=click.Choice(["adopt", "drop"]), default="adopt", show_default=True,
    help="What a job's first event that is not IN_QUEUE does.",
)  # fmt: skip
@click.option(
    "-e", "--endpoint", "endpoints", multiple=True, metavar="NAME",
    help="Keep only this endpoint (a name or a pattern such as 'sd-*'); repeatable.",
)  # fmt: skip
@click.option(
    "--format", "fmt", type=click.Choice(sorted(set(FORMATS.values()))), default=None,
    help="Read every input as this format instead of going by the extension.",
)  # fmt: skip
@click.option("--strict", is_flag=True, help="Stop at the first malformed or rejected row.")
@click.option(
    "--batch-size",
    default=DEFAULT_BATCH_SIZE,
    show_default=True,
    type=click.IntRange(1),
    help="Rows per batch.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Show a progress bar (default: when stderr is a terminal)."
)
@click.option(
    "--dask", "dask_address", metavar="ADDRESS", default=None,
    help="Aggregate on a Dask cluster: a scheduler address, 'local' or 'local:N' workers.",
)  # fmt: skip
def command(
    paths: tuple[str, ...],
    output: str,
    window: str,
    quantiles: tuple[float, ...],
    significant_figures: int,
    allowed_lateness: str | None,
    exact_order: bool,
    job_ttl: str,
    retention: str,
    worker_ttl: str,
    highest: str,
    orphans: str,
    endpoints: tuple[str, ...],
    fmt: str | None,
    strict: bool,
    batch_size: int,
    progress: bool | None,
    dask_address: str | None,
) -> None:
    """Aggregate event logs (PATH...: files, directories, globs of Parquet, Arrow IPC, JSON Lines
    or CSV) into per-endpoint, per-window metrics, written to OUTPUT as Parquet.

    Malformed lines and rows are counted and reported at the end, unless --strict.
    """
    console = Console()
    config: dict[str, Any] = {
        "window": window,
        "quantiles": quantiles,
        "significant_figures": significant_figures,
        "allowed_lateness": allowed_lateness,
        "exact_order": exact_order,
        "job_ttl": job_ttl,
        "retention": retention,
        "worker_ttl": worker_ttl,
        "highest": highest,
        "orphans": orphans,
        "endpoints": list(endpoints) or None,
        "strict": strict,
    }
    show_progress = sys.stderr.isatty() if progress is None else progress
    try:
        if dask_address is not None:
            summary = _run_dask(paths, output, dask_address, config)
        elif show_progress:
            with progress_bar(Console(stderr=True)) as callback:
                summary = run(
                    paths, output, progress=callback, format=fmt, batch_size=batch_size, **config
                ).summary
        else:
            summary = run(paths, output, format=fmt, batch_size=batch_size, **config).summary
    except FileNotFoundError as exc:
        raise InputProblem(str(exc).strip("'\"")) from None
    except LogReadError as exc:
        raise InputProblem(str(exc)) from None
    except MalformedInputError as exc:
        raise click.ClickException(str(exc)) from None
    except (PermissionError, IsADirectoryError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:  # an option the aggregator refuses, or an unknown file extension
        raise click.UsageError(str(exc)) from None
    _print_summary(console, summary)


#: Aggregator options passed as they are, on one machine and on Dask.
_LIFECYCLE_OPTIONS = ("job_ttl", "retention", "worker_ttl", "highest", "orphans")


def _run_dask(paths: tuple[str, ...], output: str, address: str, config: dict[str, Any]) -> Summary:
    """Aggregate on a Dask cluster with :func:`jobmetrics.dask.aggregate_logs`, which takes the
    aggregator's options: the order-exact mode is ``allowed_lateness=None`` there; the endpoint
    filter and strict mode are not available."""
    unsupported = [flag for flag, key in (("--endpoint", "endpoints"), ("--strict", "strict")) if config[key]]
    if unsupported:
        raise click.UsageError(f"{' and '.join(unsupported)} cannot be used with --dask")
    try:
        jm_dask = importlib.import_module("jobmetrics.dask")
    except ImportError as exc:
        raise click.ClickException(
            f"--dask needs the Dask integration: pip install 'jobmetrics[dask]' ({exc})"
        ) from None
    options = {
        "window": config["window"],
        "quantiles": config["quantiles"],
        "significant_figures": config["significant_figures"],
        "allowed_lateness": None if config["exact_order"] else config["allowed_lateness"],
        **{key: config[key] for key in _LIFECYCLE_OPTIONS},
    }
    started = time.perf_counter()
    table = jm_dask.aggregate_logs(list(paths), output, address=address, **options)
    seconds = time.perf_counter() - started
    if table is None:  # written by a worker: read the figures back when the file is visible here
        try:
            table = pq.read_table(output)
        except (OSError, pa.ArrowException):
            table = None
    summary = Summary() if table is None else summarize_snapshot(table)
    summary.files = list(paths)
    summary.output = os.fspath(output)
    summary.seconds = seconds
    return summary


def _print_summary(console: Console, s: Summary) -> None:
    t = Table(title="jobmetrics aggregate", show_header=False, title_justify="left")
    t.add_column("what", style="bold")
    t.add_column("value", justify="right")
    t.add_row("files", f"{len(s.files):,}")
    t.add_row("events read", f"{s.events_read:,}" if s.events_read else "—")
    if s.filtered_out:
        t.add_row("skipped (endpoint filter)", f"{s.filtered_out:,}")
    t.add_row("rows rejected", f"{s.rejected:,}")
    for reason, count in sorted(s.rejected_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
        t.add_row(f"  {reason}", f"{count:,}")
    t.add_row("late events", f"{s.late_events:,}")
    t.add_row("invalid transitions", f"{s.invalid_transitions:,}")
    for (a, b), count in sorted(s.invalid_pairs.items(), key=lambda kv: -kv[1])[:SHOWN_SAMPLES]:
        t.add_row(f"  {a} → {b}", f"{count:,}")
    t.add_row("duplicates", f"{s.duplicates:,}")
    t.add_row("orphans", f"{s.orphans:,}")
    t.add_row("expired", f"{s.expired:,}")
    t.add_row("endpoints", f"{len(s.endpoints):,}")
    t.add_row("snapshot rows", f"{s.windows:,}")
    rate = f" ({s.events_per_s:,.0f} events/s)" if s.events_read else ""
    t.add_row("time", f"{s.seconds:.2f} s{rate}")
    console.print(t)
    if s.samples:
        shown = s.samples[:SHOWN_SAMPLES]
        console.print(f"first {len(shown)} of {s.rejected:,} rejected rows:", style="bold")
        for sample in shown:  # one line each, never wrapped: file:line stays clickable and greppable
            console.print(f"  {sample}", soft_wrap=True, markup=False, highlight=False)
    if s.output:
        console.print(f"snapshot written to {s.output}", soft_wrap=True, markup=False, highlight=False)
