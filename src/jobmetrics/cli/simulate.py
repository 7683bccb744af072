"""``jobmetrics simulate``: simulate serverless endpoints and write their event log (and, on
request, the ground truth)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from ..io.eventlog import WRITE_FORMATS, event_format, write_events
from ..simulate import PRESETS, PROFILES, SimulationResult, resolve_endpoints, simulate
from ..timeparse import to_epoch_us
from ._params import duration_us

__all__ = ["command"]


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    us = duration_us(value, f"--{param.name}")
    if param.name == "duration" and us < 1000:
        raise click.BadParameter(f"the simulated span must be at least 1ms, got {value!r}")
    return value


def _endpoints(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        resolve_endpoints(value)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _start(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return (
            int(value) if value.strip().lstrip("-").isdigit() else to_epoch_us(value, name="--start") // 1000
        )
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None


def _list_endpoints(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    console = Console()
    t = Table(title="endpoint profiles", title_justify="left")
    for col in ("profile", "requests/s", "execution median", "workers", "idle timeout", "cold start median"):
        t.add_column(col, justify="left" if col == "profile" else "right")
    for name, cfg in PROFILES.items():
        cold = cfg.container_start.median + cfg.model_load.median
        t.add_row(
            name,
            f"{cfg.rate:g}",
            f"{cfg.execution.median:g} s",
            f"{cfg.min_workers}-{cfg.max_workers}",
            f"{cfg.idle_timeout:g} s",
            f"{cold:g} s",
        )
    console.print(t)
    console.print("presets: " + ", ".join(f"{k} ({', '.join(v)})" for k, v in PRESETS.items() if len(v) > 1))
    ctx.exit()


@click.command(name="simulate")
@click.argument("output", type=click.Path(dir_okay=False, writable=True))
@click.option("-d", "--duration", default="1h", show_default=True, callback=_duration, help="Simulated span.")
@click.option(
    "-e", "--endpoints", default="three", show_default=True, callback=_endpoints, metavar="PRESET|NAMES",
    help="A preset ('three', 'all', or a profile) or comma-separated profiles; 'llm:chat' renames.",
)  # fmt: skip
@click.option("-s", "--seed", default=0, show_default=True, type=click.IntRange(0), help="Random seed.")
@click.option(
    "--start", default=None, callback=_start, metavar="TIME",
    help="Start time: ISO-8601 or epoch milliseconds (default 2025-01-06T00:00:00Z).",
)  # fmt: skip
@click.option(
    "-f", "--format", "fmt", type=click.Choice(sorted(WRITE_FORMATS)), default=None,
    help="Output format (default: from OUTPUT's extension; .gz may follow .jsonl or .csv).",
)  # fmt: skip
@click.option(
    "--ts-format", type=click.Choice(["iso", "ms"]), default="iso", show_default=True,
    help="How JSON Lines and CSV write ts: ISO-8601 text or epoch milliseconds.",
)  # fmt: skip
@click.option(
    "--disorder", default=None, callback=_duration, metavar="BOUND",
    help="Deliver events out of order, each delayed by up to BOUND (e.g. 2s); ts unchanged.",
)  # fmt: skip
@click.option(
    "--duplicates", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0), metavar="RATE",
    help="Fraction of job events delivered twice.",
)  # fmt: skip
@click.option(
    "--rate-scale", default=1.0, show_default=True, type=click.FloatRange(0.0), metavar="FACTOR",
    help="Multiply every endpoint's request rate (bigger logs).",
)  # fmt: skip
@click.option(
    "--truth", "truth_path", default=None, type=click.Path(dir_okay=False), metavar="FILE",
    help="Also write the ground truth: FILE.json (counters and exact percentiles) or a Parquet, Arrow, "
    "JSON Lines or CSV file (every duration, one row each).",
)  # fmt: skip
@click.option(
    "--progress/--no-progress", default=None, help="Show progress (default: when stderr is a terminal)."
)
@click.option(
    "--list-endpoints", is_flag=True, expose_value=False, is_eager=True, callback=_list_endpoints,
    help="List the endpoint profiles and presets, then exit.",
)  # fmt: skip
def command(
    output: str,
    duration: str,
    endpoints: str,
    seed: int,
    start: int | None,
    fmt: str | None,
    ts_format: str,
    disorder: str | None,
    duplicates: float,
    rate_scale: float,
    truth_path: str | None,
    progress: bool | None,
) -> None:
    """Simulate serverless endpoints and write their event log to OUTPUT (.parquet, .arrow,
    .feather, .jsonl or .csv).

    Requests arrive as a Poisson process with a daily cycle and bursts; workers scale between
    their limits with cold starts, get throttled and turn unhealthy; jobs fail and are retried,
    are cancelled, expire in the queue or time out; webhooks are retried. The same seed gives the
    same log.
    """
    try:
        event_format(output, fmt)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="OUTPUT") from None
    truth_kind = None
    if truth_path is not None:
        truth_kind = _truth_kind(truth_path)
    if Path(output).expanduser().is_dir():
        raise click.BadParameter(f"{output} is a directory; give a file name", param_hint="OUTPUT")

    console = Console()
    show = sys.stderr.isatty() if progress is None else progress
    options: dict[str, Any] = {"seed": seed, "disorder": disorder, "duplicates": duplicates}
    if start is not None:
        options["start"] = start
    with _progress(show) as bar:
        result = simulate(
            duration, endpoints, rate_scale=rate_scale, progress=bar("simulating", 1.0), **options
        )
        n = result.events.num_rows
        try:
            path = write_events(
                result.events, output, format=fmt, ts_format="ms" if ts_format == "ms" else "iso",
                progress=bar(f"writing {Path(output).name}", float(max(n, 1))),
            )  # fmt: skip
            if truth_path is not None:
                _write_truth(result, truth_path, truth_kind)
        except (PermissionError, IsADirectoryError, OSError) as exc:
            raise click.ClickException(str(exc)) from None
    _print_summary(console, result, path, truth_path)


def _truth_kind(path: str) -> str:
    if Path(path).suffix.lower() == ".json":
        return "json"
    try:
        return event_format(path)[0]
    except ValueError:
        raise click.BadParameter(
            f"cannot tell what to write to {path!r}: use .json for a summary, or .parquet, .arrow, "
            ".jsonl or .csv for every duration",
            param_hint="--truth",
        ) from None


def _write_truth(result: SimulationResult, path: str, kind: str | None) -> None:
    if kind == "json":
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(result.truth.to_json() + "\n")
        os.replace(tmp, target)
    else:
        write_events(result.truth.durations_table(), path)


@contextlib.contextmanager
def _progress(show: bool) -> Iterator[Callable[[str, float], Callable[[float], None] | None]]:
    """A factory of progress callbacks (one task each), or of ``None`` when not shown."""
    if not show:
        yield lambda description, total: None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

    bar = Progress(
        "[bold]{task.description}",
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )

    def task(description: str, total: float) -> Callable[[float], None]:
        tid = bar.add_task(description, total=total)

        def update(done: float) -> None:
            bar.update(tid, completed=done)

        return update

    with bar:
        yield task


def _print_summary(console: Console, r: SimulationResult, path: Path, truth_path: str | None) -> None:
    t = Table(
        title="jobmetrics simulate",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    cols = (
        "endpoint",
        "requests",
        "completed",
        "failed",
        "retried",
        "cancelled",
        "timed\nout",
        "cold\nstarts",
    )
    for col in cols:
        t.add_column(
            col, justify="left" if col == "endpoint" else "right", min_width=max(map(len, col.split()))
        )
    for name, truth in r.truth.items():
        c = truth.counters
        t.add_row(
            name,
            *(
                f"{c[k]:,}"
                for k in (
                    "requests",
                    "completed",
                    "failed",
                    "retried",
                    "cancelled",
                    "timed_out",
                    "cold_start_count",
                )
            ),
        )
    console.print(t)
    size = path.stat().st_size
    extra = []
    if r.disorder_ms:
        extra.append(f"disorder ≤ {r.disorder_ms:,} ms")
    if r.truth.duplicates:
        extra.append(f"{r.truth.duplicates:,} duplicates")
    note = f" ({', '.join(extra)})" if extra else ""
    console.print(
        f"{r.events.num_rows:,} events{note} over {r.duration_ms / 1000:,.0f} s simulated in "
        f"{r.elapsed:.2f} s, written to {path} ({size / 1e6:,.1f} MB)",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    if truth_path is not None:
        console.print(f"ground truth written to {truth_path}", soft_wrap=True, markup=False, highlight=False)
