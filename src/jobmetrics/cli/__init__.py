"""The ``jobmetrics`` command line.

Each subcommand lives in its own module of this package and defines a click command named
``command``; :data:`SUBCOMMANDS` maps the command name to its module, which is imported only when
that command runs (so ``jobmetrics --help`` stays fast and optional extras stay optional).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

#: command name -> (module in this package, one-line help shown by ``jobmetrics --help``)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "Simulate serverless endpoints and write an event log."),
    "aggregate": ("aggregate", "Aggregate event logs into windowed metrics (Parquet)."),
    "report": ("report", "Show a snapshot Parquet like a metrics tab (terminal, PNG, HTML)."),
    "convert": ("convert", "Turn a public trace (SWF, Alibaba) into a jobmetrics event log."),
    "demo": ("demo", "Simulate an hour of three endpoints, aggregate it and show the report."),
    "celery": ("celery", "Aggregate a Celery cluster's events live; serve /metrics and /health."),
}


class _LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = SUBCOMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"{__name__}.{entry[0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, SUBCOMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobmetrics")
def main(**_: Any) -> None:
    """jobmetrics: job lifecycle events in, serverless-queue metrics out."""
