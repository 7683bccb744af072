"""A ``/health``-style summary of an :class:`~jobmetrics.Aggregator`, as a JSON-able dict.

The shape follows a serverless platform's ``GET /health``: job counts (completed, failed,
inProgress, inQueue, retried …) and workers by state (idle, running, …). Everything is read from
the Aggregator's public queries, so it works on any aggregator, live or restored.

Workers by state are the current counts (:meth:`~jobmetrics.Aggregator.workers`), with their
time-weighted average and maximum over the *last complete window* (the latest window the watermark
has closed, as in the snapshot's ``workers_<state>_avg`` / ``_max`` columns), see
:func:`last_window_workers`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from .aggregator import Aggregator
from .snapshot import WORKER_STATES

__all__ = ["WORKER_STATES", "WorkerLevels", "health", "last_window_workers"]

_JOB_KEYS = (
    ("requests", "requests"),
    ("completed", "completed"),
    ("failed", "failed"),
    ("cancelled", "cancelled"),
    ("timedOut", "timed_out"),
    ("retried", "retried"),
)


@dataclass(frozen=True, slots=True)
class WorkerLevels:
    """Workers by state over one closed window, per endpoint.

    ``window_start``/``window_end`` are µs since the epoch (None when no window has closed yet);
    ``avg[endpoint][state]`` is the time-weighted average number of workers in ``state`` over the
    window and ``max[endpoint][state]`` the most at once. Endpoints without a row in that window
    (no workers, no jobs in flight, no events) are absent: their workers are all 0.
    """

    window_start: int | None
    window_end: int | None
    avg: dict[str, dict[str, float]] = field(default_factory=dict)
    max: dict[str, dict[str, int]] = field(default_factory=dict)

    def averages(self, endpoint: str) -> dict[str, float]:
        """Average workers by state of ``endpoint`` (zeros when it had no row in the window)."""
        return self.avg.get(endpoint) or dict.fromkeys(WORKER_STATES, 0.0)

    def maxima(self, endpoint: str) -> dict[str, int]:
        """Most workers at once by state of ``endpoint`` (zeros when it had no row in the window)."""
        return self.max.get(endpoint) or dict.fromkeys(WORKER_STATES, 0)


_NO_LEVELS = WorkerLevels(None, None)


def last_window_workers(aggregator: Aggregator) -> WorkerLevels:
    """Workers by state of every endpoint over the last window the watermark has closed.

    The window ``[k·w, (k+1)·w)`` with ``k = watermark // w - 1`` (``w`` the window width): the
    latest one whose row is ``final``. The figures are those of the snapshot's
    ``workers_<state>_avg`` and ``workers_<state>_max`` columns for that window, read from the
    closed rows with :meth:`~jobmetrics.Aggregator.window_workers` (no snapshot is taken).

    Examples
    --------
    >>> from jobmetrics import Aggregator
    >>> agg = Aggregator(window="60s", allowed_lateness="0s")
    >>> agg.record(ts=0, endpoint="e", kind="worker", worker_id="w", state="IDLE")
    >>> agg.advance(now=120_000)
    >>> levels = last_window_workers(agg)
    >>> levels.window_start, levels.maxima("e")["idle"], levels.averages("e")["idle"]
    (60000000, 1, 1.0)
    """
    with aggregator.consistent():
        watermark = aggregator.watermark
        if watermark is None:
            return _NO_LEVELS
        width = aggregator.width
        start = (watermark // width - 1) * width
        avg: dict[str, dict[str, float]] = {}
        mx: dict[str, dict[str, int]] = {}
        for e in aggregator.endpoints():
            avg[e], mx[e] = aggregator.window_workers(e, start)
    return WorkerLevels(start, start + width, avg, mx)


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return (_dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=us)).isoformat()


def health(
    aggregator: Aggregator, endpoint: str | None = None, *, last: str | int | None = None
) -> dict[str, Any]:
    """A JSON-able health summary of ``endpoint`` (or of all endpoints together).

    Parameters
    ----------
    aggregator:
        The aggregator to read.
    endpoint:
        One endpoint, or None (default) for the sums over every endpoint.
    last:
        Count the job counters over the ``last`` duration (e.g. ``"5m"``), or over every window
        held (None, default). ``inQueue``/``inProgress`` are always the current counts.

    Returns
    -------
    dict
        ``{"jobs": {"requests", "completed", "failed", "cancelled", "timedOut", "retried",
        "inQueue", "inProgress"}, "workers": {"initializing", "idle", "running", "throttled",
        "unhealthy"}, "workersAverage": {...}, "workersMax": {...}, "webhooks": {"requests",
        "succeeded", "failed"}, "coldStarts": n, "workersWindow": {"start", "end"} | None,
        "watermark": iso | None, "endpoints": [names]}``. ``workers`` is the number of workers in
        each state now (:meth:`~jobmetrics.Aggregator.workers`); ``workersAverage`` their
        time-weighted average and ``workersMax`` the most at once over the last complete window
        (see :func:`last_window_workers`; ``workersWindow`` names the window). Job counters are
        lifetime totals (windows dropped by ``history=`` included) unless ``last`` is given.
        Times are ISO-8601 UTC.

    Raises
    ------
    KeyError
        ``endpoint`` is not known to the aggregator.

    Examples
    --------
    >>> from jobmetrics import Aggregator
    >>> agg = Aggregator(window="60s", allowed_lateness="0s")
    >>> agg.record(ts=1_000, endpoint="e", job_id="a", state="IN_QUEUE")
    >>> agg.record(ts=2_000, endpoint="e", job_id="a", state="IN_PROGRESS")
    >>> agg.flush()
    >>> h = health(agg)
    >>> h["jobs"]["requests"], h["jobs"]["inProgress"], h["jobs"]["inQueue"]
    (1, 1, 0)
    """
    with aggregator.consistent():  # every figure from one state (staged events drained first)
        known = aggregator.endpoints()
        if endpoint is not None and endpoint not in known:
            raise KeyError(f"unknown endpoint {endpoint!r}; known: {known}")
        names = known if endpoint is None else [endpoint]
        jobs = {key: 0 for key, _ in _JOB_KEYS} | {"inQueue": 0, "inProgress": 0}
        webhooks = {"requests": 0, "succeeded": 0, "failed": 0}
        cold_starts = 0
        for name in names:
            figures = aggregator.totals(name) if last is None else aggregator.metrics(name, last=last)
            for key, column in _JOB_KEYS:
                jobs[key] += int(figures[column])
            jobs["inQueue"] += int(figures["in_queue"])
            jobs["inProgress"] += int(figures["in_progress"])
            webhooks["requests"] += int(figures["webhook_requests"])
            webhooks["succeeded"] += int(figures["webhook_succeeded"])
            webhooks["failed"] += int(figures["webhook_failed"])
            cold_starts += int(figures["cold_start_count"])
        levels = last_window_workers(aggregator)
        workers = dict.fromkeys(WORKER_STATES, 0)
        averages = dict.fromkeys(WORKER_STATES, 0.0)
        maxima = dict.fromkeys(WORKER_STATES, 0)
        for name in names:
            for s, n in aggregator.workers(name).items():
                workers[s] += n
            for s, v in levels.maxima(name).items():
                maxima[s] += v
            for s, a in levels.averages(name).items():
                averages[s] += a
        watermark = aggregator.watermark
    window = None
    if levels.window_start is not None:
        window = {"start": _iso(levels.window_start), "end": _iso(levels.window_end)}
    return {
        "jobs": jobs,
        "workers": workers,
        "workersAverage": averages,
        "workersMax": maxima,
        "webhooks": webhooks,
        "coldStarts": cold_starts,
        "workersWindow": window,
        "watermark": _iso(watermark),
        "endpoints": names,
    }
