"""``jobmetrics demo``: simulate three endpoints, aggregate the log and show the report."""

from __future__ import annotations

import shlex
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import click

from ._params import duration_us

__all__ = ["command"]

#: The simulated endpoints (the simulator's "three" preset: an LLM, SDXL and Whisper).
ENDPOINTS = "three"


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> str:
    us = duration_us(value, "--duration")
    if not 60_000_000 <= us <= 86_400_000_000:
        raise click.BadParameter(f"--duration must be between 1m and 1d, got {value!r}")
    return value


@click.command(name="demo")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Simulation seed.")
@click.option(
    "--duration",
    default="1h",
    show_default=True,
    callback=_duration,
    help="Simulated span (1m to 1d).",
)
@click.option(
    "--keep",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the event log and the snapshot in this directory (created if needed) "
    "instead of a temporary one.",
)
def command(seed: int, duration: str, keep: Path | None) -> None:
    """Simulate serverless endpoints (an LLM, SDXL and Whisper), aggregate their event log into
    one-minute windows and show the report, in a temporary directory.

    \b
    Steps, as you would run them yourself:
      jobmetrics simulate events.parquet --duration 1h --endpoints three
      jobmetrics aggregate events.parquet -o snapshot.parquet
      jobmetrics report snapshot.parquet
    """
    from rich.console import Console

    from ..batch import aggregate_logs
    from ..io.eventlog import write_events
    from ..report import model, terminal
    from ..simulate import simulate

    console = Console()
    err = Console(stderr=True)
    with ExitStack() as stack:
        if keep is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jobmetrics-demo-")))
        else:
            try:
                keep.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise click.ClickException(f"cannot create {keep}: {exc.strerror or exc}") from None
            folder = keep
        events_path = folder / "events.parquet"
        snapshot_path = folder / "snapshot.parquet"
        t0 = time.perf_counter()
        with err.status(f"Simulating {duration} of three endpoints (seed {seed})..."):
            result = simulate(duration=duration, endpoints=ENDPOINTS, seed=seed)
            write_events(result.events, events_path)
        t1 = time.perf_counter()
        names = ", ".join(c.name for c in result.endpoints)
        err.print(
            f"Simulated {duration} of {names}: {result.events.num_rows:,} events, "
            f"{sum(result.jobs.values()):,} jobs, {sum(result.workers.values()):,} workers "
            f"({t1 - t0:.1f} s)"
        )
        with err.status("Aggregating into 1-minute windows..."):
            snapshot = aggregate_logs(events_path, snapshot_path, window="60s")
        t2 = time.perf_counter()
        err.print(f"Aggregated into {snapshot.num_rows:,} rows of 1-minute windows ({t2 - t1:.1f} s)")
        source = (
            str(snapshot_path) if keep is not None else f"jobmetrics demo: {names}, {duration}, seed {seed}"
        )
        report = model.build_report(snapshot, interval="all", source=source)
        terminal.render(report, console)
        took = time.perf_counter() - t0
        if keep is None:
            console.print(
                f"The demo ran in {took:.1f} s in a temporary directory, now removed. "
                "To keep its files: jobmetrics demo --keep DIR"
            )
        else:
            console.print(
                f"Wrote {events_path} ({result.events.num_rows:,} events) and {snapshot_path} "
                f"({snapshot.num_rows:,} rows) in {took:.1f} s. Report on them again with:",
                markup=False,
            )
            console.print(
                f"  jobmetrics report {shlex.quote(str(snapshot_path))} --interval 15m",
                soft_wrap=True,
                markup=False,
            )
            console.print(
                f"  jobmetrics report {shlex.quote(str(snapshot_path))} --html report.html --plot charts.png",
                soft_wrap=True,
                markup=False,
            )
            console.print("(charts need matplotlib: pip install 'jobmetrics[plot]')", markup=False)
