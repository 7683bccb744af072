"""Parsing of user-facing durations ("90s", "5m", "1h") and timestamps into microseconds."""

from __future__ import annotations

import datetime as _dt
import functools
import re

import numpy as np

__all__ = ["parse_duration", "to_epoch_us"]

_UNITS_US = {
    "us": 1,
    "µs": 1,
    "ms": 1_000,
    "s": 1_000_000,
    "m": 60_000_000,
    "min": 60_000_000,
    "h": 3_600_000_000,
    "d": 86_400_000_000,
    "w": 7 * 86_400_000_000,
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|min|m|h|d|w)\s*$")


@functools.lru_cache(maxsize=256)
def _parse_text(value: str) -> int | None:
    m = _DURATION.match(value)
    return None if m is None else round(float(m.group(1)) * _UNITS_US[m.group(2)])


def parse_duration(
    value: str | int | float | _dt.timedelta | np.timedelta64, *, name: str = "duration"
) -> int:
    """Microseconds in ``value``: ``"250ms"``, ``"90s"``, ``"5m"``, ``"1h"``, ``"1d"``, a
    :class:`datetime.timedelta`, or a number of microseconds.

    Raises :class:`ValueError` naming ``name`` for anything else or for a negative duration.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a duration such as '60s', got {value!r}")
    if isinstance(value, _dt.timedelta):
        us = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    elif isinstance(value, np.timedelta64):
        us = int(value.astype("timedelta64[us]").astype(np.int64))
    elif isinstance(value, int | np.integer):
        us = int(value)
    elif isinstance(value, float):
        us = round(value)
    elif isinstance(value, str):
        parsed = _parse_text(value)
        if parsed is None:
            raise ValueError(
                f"{name} must be a duration like '250ms', '60s', '5m', '1h' or '1d', got {value!r}"
            )
        us = parsed
    else:
        raise TypeError(f"{name} must be a duration such as '60s', got {value!r}")
    if us < 0:
        raise ValueError(f"{name} must not be negative, got {value!r}")
    return us


def to_epoch_us(value: object, *, name: str = "ts") -> int:
    """Microseconds since the Unix epoch for one timestamp.

    Accepts a :class:`datetime.datetime` (naive = UTC), :class:`numpy.datetime64`, an int
    (epoch milliseconds, as in the event schema), a float (epoch milliseconds) or an ISO-8601 string.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a timestamp, got {value!r}")
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[us]").astype(np.int64))
    if isinstance(value, int | np.integer):
        return int(value) * 1000
    if isinstance(value, float | np.floating):
        return round(float(value) * 1000)
    if isinstance(value, str):
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} is not an ISO-8601 timestamp: {value!r}") from None
        return to_epoch_us(parsed, name=name)
    raise TypeError(f"{name} must be a datetime, epoch milliseconds or ISO-8601 text, got {value!r}")
