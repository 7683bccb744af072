"""``jobmetrics convert``: public traces (SWF, Alibaba) into jobmetrics event logs."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

__all__ = ["command"]

_FORMATS = click.Choice(["parquet", "arrow", "jsonl", "csv"])
_IN = click.Path(path_type=Path)
_OUT = click.Path(dir_okay=False, path_type=Path)


def _run(what: Callable[..., Any], source: Path, output: Path, **options: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    if not source.exists():
        raise click.ClickException(f"input not found: {source}")
    if source.is_dir():
        raise click.ClickException(f"input is a directory, not a trace file: {source}")
    t0 = time.perf_counter()
    try:
        summary = what(source, output, **options)
    except (ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    elapsed = time.perf_counter() - t0
    console = Console(stderr=True)
    table = Table(title=escape(f"{source.name} -> {output}"), title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("records read", f"{summary.records:,}")
    table.add_row("jobs / workers converted", f"{summary.jobs:,}")
    table.add_row("events written", f"{summary.events:,}")
    for state, n in sorted(summary.states.items()):
        table.add_row(f"  {state}", f"{n:,}")
    for reason, n in sorted(summary.skipped.items()):
        table.add_row(f"left out: {reason}", f"{n:,}")
    if summary.disordered:
        table.add_row("events out of time order", f"{summary.disordered:,}")
    if summary.first_ts is not None and summary.last_ts is not None:
        for label, ms in (("first event", summary.first_ts), ("last event", summary.last_ts)):
            when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
            table.add_row(label, f"{when:%Y-%m-%d %H:%M:%S} UTC")
    table.add_row("seconds", f"{elapsed:.2f}")
    console.print(table)
    for line in summary.first_bad:
        console.print(f"[yellow]malformed[/yellow] {escape(line)}")
    for note in summary.notes:
        console.print(f"note: {note}", markup=False)


def _origin_ms(ctx: click.Context, param: click.Parameter, value: str | None) -> int:
    if value is None:
        return 0
    from ..timeparse import to_epoch_us

    try:
        return to_epoch_us(value, name="--origin") // 1000
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(str(exc)) from None


@click.group(name="convert")
def command() -> None:
    """Turn a public trace into a jobmetrics event log (SPEC columns ts, kind, endpoint, job_id,
    state). The output format follows OUTPUT's suffix (.parquet, .arrow, .jsonl, .csv) unless
    --format is given. The mapping of each trace is in docs/convert.md.

    \b
    Example:
      jobmetrics convert alibaba-serverless lora_request_trace.csv lora.parquet
      jobmetrics aggregate lora.parquet -o lora-snapshot.parquet -w 1h
      jobmetrics report lora-snapshot.parquet --interval 1d
    """


@command.command(name="swf", short_help="SWF job log of the Parallel Workloads Archive (.swf, .swf.gz).")
@click.argument("source", type=_IN)
@click.argument("output", type=_OUT)
@click.option("--endpoint", default=None, help="One endpoint name for every job.")
@click.option(
    "--endpoint-by",
    type=click.Choice(["auto", "queue", "partition", "log"]),
    default="auto",
    show_default=True,
    help="Endpoint of a job: its queue (field 15), else partition (16), else the log name.",
)
@click.option(
    "--unknown-status",
    type=click.Choice(["completed", "failed", "skip"]),
    default="completed",
    show_default=True,
    help="What jobs with status -1 become.",
)
@click.option(
    "--infer-timeouts", is_flag=True, help="Failed jobs that ran their requested time end TIMED_OUT."
)
@click.option("--unix-start", type=int, default=None, help="Epoch seconds of time 0 (default: header).")
@click.option("--format", "fmt", type=_FORMATS, default=None, help="Output format (default: from suffix).")
def swf(source: Path, output: Path, fmt: str | None, **options: Any) -> None:
    """An SWF job log of the Parallel Workloads Archive (plain or .gz)."""
    from ..convert.swf import convert_swf

    _run(convert_swf, source, output, fmt=fmt, **options)


@command.command(name="alibaba-pods", short_help="Alibaba GPU cluster pod list (openb_pod_list_*.csv).")
@click.argument("source", type=_IN)
@click.argument("output", type=_OUT)
@click.option("--endpoint", default=None, help="One endpoint name for every pod.")
@click.option("--endpoint-by", type=click.Choice(["qos", "gpu"]), default="qos", show_default=True)
@click.option(
    "--running-deleted",
    type=click.Choice(["cancelled", "completed"]),
    default="cancelled",
    show_default=True,
    help="What Running pods deleted before the trace end become.",
)
@click.option(
    "--origin",
    "origin_ms",
    callback=_origin_ms,
    default=None,
    help="ISO-8601 time of the trace's time 0 (default: the epoch).",
)
@click.option("--trace-end", type=int, default=None, help="Trace end in seconds (default: last deletion).")
@click.option("--format", "fmt", type=_FORMATS, default=None, help="Output format (default: from suffix).")
def alibaba_pods(source: Path, output: Path, fmt: str | None, **options: Any) -> None:
    """The Alibaba GPU cluster pod list (openb_pod_list_*.csv)."""
    from ..convert.alibaba_pods import convert_alibaba_pods

    _run(convert_alibaba_pods, source, output, fmt=fmt, **options)


@command.command(name="alibaba-serverless", short_help="Alibaba GenAI request log (lora_request_trace.csv).")
@click.argument("source", type=_IN)
@click.argument("output", type=_OUT)
@click.option("--endpoint", default=None, help="One endpoint name for every request.")
@click.option(
    "--endpoint-by",
    type=click.Choice(["type", "model", "group"]),
    default="type",
    show_default=True,
    help="Endpoint of a request: predict_type, checkpoint model or groupId.",
)
@click.option("--format", "fmt", type=_FORMATS, default=None, help="Output format (default: from suffix).")
def alibaba_serverless(source: Path, output: Path, fmt: str | None, **options: Any) -> None:
    """The Alibaba GenAI serverless request trace (lora_request_trace.csv)."""
    from ..convert.alibaba_serverless import convert_alibaba_serverless

    _run(convert_alibaba_serverless, source, output, fmt=fmt, **options)


@command.command(
    name="alibaba-cold-starts", short_help="Alibaba GenAI model-load samples (basemodel_update_latency)."
)
@click.argument("source", type=_IN)
@click.argument("output", type=_OUT)
@click.option("--endpoint", default="basemodel-load", show_default=True, help="Endpoint of the workers.")
@click.option("--format", "fmt", type=_FORMATS, default=None, help="Output format (default: from suffix).")
def alibaba_cold_starts(source: Path, output: Path, fmt: str | None, endpoint: str) -> None:
    """The Alibaba GenAI base-model load samples (basemodel_update_latency_anon.tar.gz or .csv)."""
    from ..convert.alibaba_serverless import convert_alibaba_cold_starts

    _run(convert_alibaba_cold_starts, source, output, fmt=fmt, endpoint=endpoint)
