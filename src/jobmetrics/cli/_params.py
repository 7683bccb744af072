"""Checks shared by the subcommands' options."""

from __future__ import annotations

import click

from ..timeparse import parse_duration

__all__ = ["duration_us"]


def duration_us(value: str, name: str) -> int:
    """Microseconds in the duration option ``value``; a bad one is a :class:`click.BadParameter`
    (exit code 2) whose message names ``name`` and the value."""
    try:
        return parse_duration(value, name=name)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(str(exc)) from None
