"""Ground truth of a simulation: what really happened, to check aggregated metrics against.

The simulator tallies every counter and every duration as it emits the events, so the truth is
independent of the aggregation code. Durations are whole milliseconds (event times are whole
milliseconds); :meth:`GroundTruth.durations_us` gives them in the microseconds histograms use.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["COUNTERS", "DURATIONS", "GAUGED_STATES", "EndpointTruth", "GroundTruth"]

I64 = npt.NDArray[np.int64]

#: Counters the truth keeps per endpoint (named as the snapshot's columns where they exist).
COUNTERS: tuple[str, ...] = (
    "requests", "completed", "failed", "cancelled", "timed_out", "retried",
    "cold_start_count", "cold_start_failures", "webhook_requests", "webhook_succeeded",
    "webhook_failed", "queue_timeouts", "execution_timeouts", "requeued", "workers_started",
    "worker_recoveries",
)  # fmt: skip

#: Duration metrics, as the aggregator names them.
DURATIONS: tuple[str, ...] = ("execution_time", "delay_time", "cold_start_time")

#: Worker states with a gauge, lower case (``OFFLINE`` workers have left the pool).
GAUGED_STATES: tuple[str, ...] = ("initializing", "idle", "running", "throttled", "unhealthy")


@dataclass(frozen=True, eq=False)
class EndpointTruth:
    """What happened on one endpoint.

    Attributes
    ----------
    counters:
        Every name of :data:`COUNTERS`. ``timed_out`` = ``queue_timeouts`` +
        ``execution_timeouts``; ``retried`` counts every return to ``IN_QUEUE`` (after a failure,
        or ``requeued`` when the worker running the job turned unhealthy).
    durations:
        Per metric of :data:`DURATIONS`, one int64 value per occurrence, in ms: execution time of
        every attempt that ended ``COMPLETED`` or ``FAILED``, queue delay of every attempt that
        started, duration of every cold start that ended ready.
    durations_at:
        Per metric, the epoch-ms time of the event each duration is attributed to (SPEC §3).
    in_queue, in_progress:
        Jobs in those states when the simulation ended.
    worker_changes:
        ``(ts_ms, state, delta)``: the number of workers in gauge state ``state`` (1 =
        initializing … 5 = unhealthy) changes by ``delta`` at epoch-ms ``ts_ms``.
    """

    endpoint: str
    counters: dict[str, int]
    durations: dict[str, I64]
    durations_at: dict[str, I64]
    in_queue: int
    in_progress: int
    worker_changes: tuple[I64, I64, I64]

    def durations_us(self, metric: str) -> I64:
        """The ``metric`` durations in microseconds (what the aggregator's histograms hold)."""
        return self.durations[_metric(metric)] * 1000

    def worker_time_ms(self, until_ms: int, since_ms: int | None = None) -> dict[str, int]:
        """Worker-milliseconds spent in each gauge state from ``since_ms`` (default: the
        beginning) until ``until_ms`` (epoch ms)."""
        t, s, d = self.worker_changes
        out: dict[str, int] = {}
        for code, name in enumerate(GAUGED_STATES, start=1):
            m = s == code
            tt, dd = t[m], d[m]
            lo = tt.min(initial=until_ms) if since_ms is None else since_ms
            out[name] = int(_integral(tt, dd, until_ms) - _integral(tt, dd, lo))
        return out

    def workers_max(self, state: str) -> int:
        """The largest number of workers in ``state`` at once over the whole run."""
        code = GAUGED_STATES.index(state.lower()) + 1
        t, s, d = self.worker_changes
        m = s == code
        if not m.any():
            return 0
        tt, dd = t[m], d[m]
        order = np.argsort(tt, kind="stable")
        tt, dd = tt[order], dd[order]
        level = np.cumsum(dd)
        last_of_time = np.r_[tt[1:] != tt[:-1], True]  # level after all changes at one ms
        return int(level[last_of_time].max())

    def summary(self, quantiles: tuple[float, ...] = (0.7, 0.9, 0.98)) -> dict[str, Any]:
        """Counters and, per duration metric, count, exact quantiles (order statistics), min,
        max and mean in ms — JSON-ready."""
        out: dict[str, Any] = dict(self.counters)
        out["in_queue"] = self.in_queue
        out["in_progress"] = self.in_progress
        for metric in DURATIONS:
            values = self.durations[metric]
            stats: dict[str, Any] = {"count": int(values.size)}
            if values.size:
                for q in quantiles:
                    stats[f"p{_label(q)}_ms"] = float(exact_quantile(values, q))
                stats.update(
                    min_ms=float(values.min()), max_ms=float(values.max()), mean_ms=float(values.mean())
                )
            out[metric] = stats
        return out


def _integral(t: I64, d: I64, until: int) -> int:
    """∫ level dt from the first change to ``until`` (changes after ``until`` ignored)."""
    m = t < until
    return int(np.sum(d[m] * (until - t[m])))


def _metric(metric: str) -> str:
    if metric not in DURATIONS:
        raise ValueError(f"metric must be one of {DURATIONS}, got {metric!r}")
    return metric


def _label(q: float) -> str:
    text = f"{q * 100:.6f}".rstrip("0").rstrip(".")
    return text.replace(".", "_")


def exact_quantile(values: npt.ArrayLike, q: float) -> float:
    """The exact ``q`` quantile with the rank HDR histograms use: the value of rank
    ``max(1, ceil(q' * n))`` in sorted order, ``q'`` being ``q`` nudged down one ulp (so that
    0.7 of 10 values is the 7th). An HDR histogram's ``value_at_quantile`` is the highest value
    of the bucket holding this one."""
    v = np.sort(np.asarray(values))
    if v.size == 0:
        raise ValueError("no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q!r}")
    rank = max(1, int(np.ceil(np.nextafter(q, 0.0) * v.size)))
    return float(v[min(rank, v.size) - 1])


@dataclass(frozen=True, eq=False)
class GroundTruth(Mapping[str, EndpointTruth]):
    """Per-endpoint truth (a mapping endpoint name -> :class:`EndpointTruth`), plus the
    duplicates injected into the delivered log and the simulated time span."""

    endpoints: dict[str, EndpointTruth]
    start_ms: int
    end_ms: int
    duplicates: int = 0
    duplicates_by_endpoint: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, endpoint: str) -> EndpointTruth:
        try:
            return self.endpoints[endpoint]
        except KeyError:
            raise KeyError(f"unknown endpoint {endpoint!r}; simulated: {list(self.endpoints)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.endpoints)

    def __len__(self) -> int:
        return len(self.endpoints)

    def counters(self, endpoint: str) -> dict[str, int]:
        """The counters of ``endpoint`` (see :data:`COUNTERS`)."""
        return dict(self[endpoint].counters)

    def durations_us(self, endpoint: str, metric: str) -> I64:
        """The exact ``metric`` durations of ``endpoint`` in microseconds."""
        return self[endpoint].durations_us(metric)

    def summary(self, quantiles: tuple[float, ...] = (0.7, 0.9, 0.98)) -> dict[str, Any]:
        """A JSON-ready summary: the span, injected duplicates and each endpoint's summary."""
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duplicates": self.duplicates,
            "endpoints": {
                name: {**t.summary(quantiles), "duplicates": self.duplicates_by_endpoint.get(name, 0)}
                for name, t in self.endpoints.items()
            },
        }

    def to_json(self, quantiles: tuple[float, ...] = (0.7, 0.9, 0.98)) -> str:
        """:meth:`summary` as indented JSON text."""
        return json.dumps(self.summary(quantiles), indent=2)

    def durations_table(self) -> pa.Table:
        """Every duration as a long table: ``endpoint``, ``metric``, ``ts`` (the event the
        duration is attributed to, timestamp[ms, UTC]) and ``value_ms`` (int64)."""
        parts: dict[str, list[Any]] = {"endpoint": [], "metric": [], "ts": [], "value_ms": []}
        for name, t in self.endpoints.items():
            for metric in DURATIONS:
                n = t.durations[metric].size
                parts["endpoint"].append(pa.repeat(pa.scalar(name, pa.string()), n))
                parts["metric"].append(pa.repeat(pa.scalar(metric, pa.string()), n))
                parts["ts"].append(pa.array(t.durations_at[metric], pa.timestamp("ms", tz="UTC")))
                parts["value_ms"].append(pa.array(t.durations[metric], pa.int64()))
        return pa.table(
            {k: pa.chunked_array(v, type=v[0].type if v else None) for k, v in parts.items()}
            if parts["endpoint"]
            else {
                "endpoint": pa.array([], pa.string()),
                "metric": pa.array([], pa.string()),
                "ts": pa.array([], pa.timestamp("ms", tz="UTC")),
                "value_ms": pa.array([], pa.int64()),
            }
        )
