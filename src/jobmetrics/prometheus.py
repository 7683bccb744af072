"""Prometheus exposition of an :class:`~jobmetrics.Aggregator`: a ``prometheus_client`` collector.

:class:`AggregatorCollector` reads the aggregator's public queries at every scrape and yields
``prometheus_client`` metric families (the library writes the exposition text); :func:`make_registry`,
:func:`start_http_server` and :func:`make_wsgi_app` wrap prometheus_client's own helpers.

Needs the ``prometheus`` extra: ``pip install 'jobmetrics[prometheus]'``. The metric names,
the ``le`` rule of the histograms and what each figure covers are in ``docs/prometheus.md``.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector, CollectorRegistry
    from prometheus_client.samples import Sample
    from prometheus_client.utils import floatToGoString
except ImportError as exc:  # tested by hiding prometheus_client from the import system
    raise ImportError(
        "jobmetrics.prometheus needs the prometheus_client package; install it with "
        "pip install 'jobmetrics[prometheus]'"
    ) from exc

from .aggregator import METRICS, Aggregator
from .geometry import Geometry, lowest_equivalent_values
from .health import last_window_workers
from .snapshot import WORKER_STATES
from .timeparse import parse_duration

__all__ = [
    "DEFAULT_BUCKETS",
    "AggregatorCollector",
    "bucket_bounds",
    "cumulative_counts",
    "make_registry",
    "make_wsgi_app",
    "start_http_server",
]

#: Default ``le`` boundaries (seconds) of the duration histograms: 5 ms … 1 h (+Inf is added).
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    1800.0, 3600.0,
)  # fmt: skip

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_WHAT = {
    "execution_time": "Job execution time (IN_PROGRESS to COMPLETED or FAILED, per attempt)",
    "delay_time": "Job delay time (IN_QUEUE to IN_PROGRESS, per attempt)",
    "cold_start_time": "Worker cold start time (INITIALIZING to first IDLE or RUNNING)",
}
_OUTCOMES = ("completed", "failed", "cancelled", "timed_out")
_QUALITY = ("duplicates", "invalid_transitions", "orphans", "expired", "late_events", "workers_lost",
            "clamped_durations")  # fmt: skip
_US_PER_S = 1e6


def _go_float(value: float) -> str:
    """A float as prometheus_client writes ``le`` and ``quantile`` labels (``5.0``, ``+Inf``)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]


Buckets = Sequence[float] | Mapping[str, Sequence[float]]


# ------------------------------------------------------------------------------ HDR ↔ le
@functools.lru_cache(maxsize=16)
def _bucket_table(unit_magnitude: int, half_magnitude: int, length: int) -> tuple[Any, Any]:
    """Highest and median equivalent value (µs) of every counts index (read-only arrays)."""
    edges = lowest_equivalent_values(np.arange(length + 1), unit_magnitude, half_magnitude)
    lowest, size = edges[:-1], np.diff(edges)
    highest = lowest + size - 1
    median = lowest + (size >> 1)
    highest.setflags(write=False)
    median.setflags(write=False)
    return highest, median


def bucket_bounds(geometry: Geometry, length: int | None = None) -> npt.NDArray[np.int64]:
    """The highest equivalent value (µs) of every counts index of ``geometry``: the top of each HDR
    bucket, non-decreasing along the counts array."""
    n = geometry.counts_len if length is None else int(length)
    return _bucket_table(geometry.unit_magnitude, geometry.half_magnitude, n)[0]  # type: ignore[no-any-return]


def _le_us(le: float) -> int:
    """Largest whole µs at or below ``le`` seconds (values are whole µs, so ``v <= le`` ⇔
    ``v <= _le_us(le)``); the product is rounded to a nanosecond first so 0.1 s is 100 000 µs."""
    return math.floor(round(le * 1e6, 3))


def cumulative_counts(counts: npt.NDArray[np.integer], geometry: Geometry, les: Sequence[float]) -> list[int]:
    """Cumulative counts of a dense HDR ``counts`` array (µs) at each ``le`` (seconds), +Inf last.

    The rule: an HDR bucket is counted under ``le`` when its highest equivalent value is ≤ ``le``.
    The count at ``le`` is therefore exactly the number of recorded values ≤ ``le'``, the top of the
    highest bucket that ends at or below ``le`` (``le - le' <`` one bucket width, i.e. under
    1/2**half_magnitude of ``le``: 0.78 % at 2 significant figures; ``le' = le`` when ``le`` is the
    top of a bucket, and for every ``le`` below 2**(half_magnitude + 1) µs when ``lowest`` is 1).
    A bucket that straddles ``le`` is counted at the next boundary.

    Examples
    --------
    >>> from jobmetrics import HdrHistogram
    >>> h = HdrHistogram(1, 3_600_000_000, 2)
    >>> h.record(np.array([100, 200, 1_000_000, 2_000_000]))
    >>> cumulative_counts(h.counts, h.geometry, [0.0001, 0.001, 1.0, 1.5])
    [1, 2, 2, 3, 4]
    """
    last = _last_index_under(geometry.unit_magnitude, geometry.half_magnitude, counts.shape[0], tuple(les))
    cum = np.cumsum(counts, dtype=np.int64)
    below = np.where(last >= 0, cum[np.maximum(last, 0)], 0) if cum.size else np.zeros(len(les), np.int64)
    total = int(cum[-1]) if cum.size else 0
    return [*below.tolist(), total]


@functools.lru_cache(maxsize=64)
def _last_index_under(unit_magnitude: int, half_magnitude: int, length: int, les: tuple[float, ...]) -> Any:
    """For each ``le``, the last counts index whose bucket top is ≤ ``le`` (-1 for none)."""
    upper = _bucket_table(unit_magnitude, half_magnitude, length)[0]
    thresholds = np.asarray([_le_us(le) for le in les], dtype=np.int64)
    last = np.searchsorted(upper, thresholds, side="right") - 1
    last.setflags(write=False)
    return last


def _sum_seconds(counts: npt.NDArray[np.integer], geometry: Geometry) -> float:
    """Sum of the recorded values in seconds, each value taken as its bucket's median equivalent
    value (as :attr:`~jobmetrics.HdrHistogram.mean` does): an exact integer sum of µs, converted."""
    median = _bucket_table(geometry.unit_magnitude, geometry.half_magnitude, counts.shape[0])[1]
    return int(np.dot(counts.astype(np.int64), median)) / _US_PER_S


def _check_buckets(metric: str, bounds: Sequence[float]) -> tuple[float, ...]:
    out = [float(b) for b in bounds]
    if out and math.isinf(out[-1]) and out[-1] > 0:
        out.pop()  # +Inf is always added
    if not out:
        raise ValueError(f"buckets for {metric} must hold at least one finite boundary, got {bounds!r}")
    for b in out:
        if not math.isfinite(b) or b < 0:
            raise ValueError(f"buckets for {metric} must be finite and >= 0 seconds, got {b!r}")
    if any(b >= c for b, c in itertools.pairwise(out)):
        raise ValueError(f"buckets for {metric} must be strictly increasing, got {bounds!r}")
    return tuple(out)


class _SummaryFamily(SummaryMetricFamily):
    """A summary family whose metrics carry quantile samples as well as ``_count`` and ``_sum``
    (prometheus_client's family takes only count and sum)."""

    def add_metric(  # type: ignore[override]
        self,
        labels: Sequence[str],
        count_value: int,
        sum_value: float,
        timestamp: float | None = None,
        *,
        quantiles: Iterable[tuple[float, float]] = (),
    ) -> None:
        base = dict(zip(self._labelnames, labels, strict=True))
        for q, value in quantiles:
            self.samples.append(Sample(self.name, {**base, "quantile": _go_float(q)}, value, timestamp))
        super().add_metric(labels, count_value, sum_value, timestamp)


# ------------------------------------------------------------------------------ the collector
class AggregatorCollector(Collector):
    """A ``prometheus_client`` collector that exposes an :class:`~jobmetrics.Aggregator`.

    Register it on a :class:`prometheus_client.CollectorRegistry` (or use :func:`make_registry`);
    every scrape reads the aggregator's public queries. Families (``namespace`` = ``jobmetrics``;
    every one labelled by ``endpoint``):

    * counters ``_requests_total``, ``_request_outcomes_total{outcome}`` (completed, failed,
      cancelled, timed_out), ``_retries_total``, ``_cold_starts_total``,
      ``_cold_start_failures_total``, ``_webhook_responses_total{outcome}`` (succeeded, failed),
      ``_data_quality_events_total{kind}`` — lifetime sums (:meth:`Aggregator.totals`: windows
      dropped by ``history=`` stay counted, so the counters never decrease);
    * gauges ``_jobs_in_queue``, ``_jobs_in_progress``, ``_workers{state}`` (now),
      ``_workers_avg{state}`` and ``_workers_max{state}`` (over the last complete window, see
      :func:`jobmetrics.health.last_window_workers`), and ``_watermark_seconds`` (no label);
    * histograms ``_execution_time_seconds``, ``_delay_time_seconds``,
      ``_cold_start_time_seconds`` with ``le`` boundaries ``buckets``, counted from the lifetime
      HDR counts (rule in :func:`cumulative_counts`), ``_sum`` from the bucket medians;
    * summaries ``_recent_execution_time_seconds``, ``_recent_delay_time_seconds``,
      ``_recent_cold_start_time_seconds``: ``quantiles`` over the sliding ``last`` duration (NaN
      when it recorded nothing); their ``_count``/``_sum`` are cumulative, as the histograms'.

    Parameters
    ----------
    aggregator:
        The aggregator to expose.
    buckets:
        ``le`` boundaries in seconds (+Inf is added): one sequence for the three histograms, or a
        mapping from metric name (``execution_time``, ``delay_time``, ``cold_start_time``) to its
        own; metrics missing from a mapping use :data:`DEFAULT_BUCKETS`.
    quantiles:
        Quantiles of the summaries (default: the aggregator's, P70/P90/P98 unless configured).
    last:
        Sliding duration of the summaries' quantiles (default ``"5m"``).
    namespace:
        Prefix of every metric name (default ``"jobmetrics"``).
    workers:
        Emit the ``_workers``, ``_workers_avg`` and ``_workers_max`` gauges (default True).

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, generate_latest
    >>> from jobmetrics import Aggregator
    >>> agg = Aggregator(allowed_lateness="0s")
    >>> agg.record(ts=0, endpoint="sdxl", job_id="a", state="IN_QUEUE")
    >>> agg.record(ts=250, endpoint="sdxl", job_id="a", state="IN_PROGRESS")
    >>> agg.record(ts=3_000, endpoint="sdxl", job_id="a", state="COMPLETED")
    >>> agg.flush()
    >>> registry = CollectorRegistry()
    >>> registry.register(AggregatorCollector(agg, buckets=[0.5, 5.0]))
    >>> text = generate_latest(registry).decode()
    >>> 'jobmetrics_execution_time_seconds_bucket{endpoint="sdxl",le="5.0"} 1.0' in text
    True
    """

    def __init__(
        self,
        aggregator: Aggregator,
        *,
        buckets: Buckets = DEFAULT_BUCKETS,
        quantiles: Sequence[float] | None = None,
        last: str | int = "5m",
        namespace: str = "jobmetrics",
        workers: bool = True,
    ) -> None:
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator must be a jobmetrics.Aggregator, got {type(aggregator).__name__}")
        if not _NAME.match(namespace):
            raise ValueError(f"namespace must match {_NAME.pattern}, got {namespace!r}")
        if isinstance(buckets, Mapping):
            unknown = sorted(set(buckets) - set(METRICS))
            if unknown:
                raise ValueError(f"buckets keys must be among {METRICS}, got {unknown}")
            per_metric = {m: _check_buckets(m, buckets.get(m, DEFAULT_BUCKETS)) for m in METRICS}
        else:
            one = _check_buckets("every metric", buckets)
            per_metric = dict.fromkeys(METRICS, one)
        qs = tuple(aggregator.quantiles if quantiles is None else (float(q) for q in quantiles))
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantiles must be within [0, 1], got {q!r}")
        if parse_duration(last, name="last") <= 0:
            raise ValueError(f"last must be a positive duration, got {last!r}")
        self.aggregator = aggregator
        self.buckets: dict[str, tuple[float, ...]] = per_metric
        self.quantiles: tuple[float, ...] = qs
        self.last = last
        self.namespace = namespace
        self.workers = workers
        self._args = {
            "buckets": buckets, "quantiles": quantiles, "last": last, "namespace": namespace,
            "workers": workers,
        }  # fmt: skip
        self._le_labels = {m: [_go_float(b) for b in bs] + ["+Inf"] for m, bs in per_metric.items()}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args.items())
        return f"AggregatorCollector({self.aggregator!r}, {args})"

    # -------------------------------------------------------------- families
    def _families(self) -> _Families:
        ns = self.namespace
        ep = ["endpoint"]
        workers_now = workers_avg = workers_max = None
        if self.workers:
            workers_now = GaugeMetricFamily(
                f"{ns}_workers", "Workers in the pool now, by state.", labels=[*ep, "state"]
            )
            workers_avg = GaugeMetricFamily(
                f"{ns}_workers_avg",
                "Time-weighted average number of workers by state over the last complete window.",
                labels=[*ep, "state"],
            )
            workers_max = GaugeMetricFamily(
                f"{ns}_workers_max",
                "Most workers at once by state over the last complete window.",
                labels=[*ep, "state"],
            )
        return _Families(
            requests=CounterMetricFamily(f"{ns}_requests", "Requests received (new jobs).", labels=ep),
            outcomes=CounterMetricFamily(
                f"{ns}_request_outcomes",
                "Job transitions into COMPLETED, FAILED, CANCELLED or TIMED_OUT, by outcome.",
                labels=[*ep, "outcome"],
            ),
            retries=CounterMetricFamily(f"{ns}_retries", "Jobs sent back to the queue (retries).", labels=ep),
            cold_starts=CounterMetricFamily(
                f"{ns}_cold_starts", "Worker cold starts (INITIALIZING to first IDLE or RUNNING).", labels=ep
            ),
            cold_start_failures=CounterMetricFamily(
                f"{ns}_cold_start_failures", "Workers that left the pool while INITIALIZING.", labels=ep
            ),
            webhooks=CounterMetricFamily(
                f"{ns}_webhook_responses",
                "Webhook delivery attempts by outcome (succeeded: HTTP 2xx).",
                labels=[*ep, "outcome"],
            ),
            quality=CounterMetricFamily(
                f"{ns}_data_quality_events",
                "Events not applied as given, and evictions, by kind.",
                labels=[*ep, "kind"],
            ),
            in_queue=GaugeMetricFamily(f"{ns}_jobs_in_queue", "Jobs waiting in the queue now.", labels=ep),
            in_progress=GaugeMetricFamily(f"{ns}_jobs_in_progress", "Jobs being executed now.", labels=ep),
            workers_now=workers_now,
            workers_avg=workers_avg,
            workers_max=workers_max,
            watermark=GaugeMetricFamily(
                f"{ns}_watermark_seconds", "Event time up to which events are applied (Unix seconds)."
            ),
            histograms={
                m: HistogramMetricFamily(
                    f"{ns}_{m}_seconds",
                    f"{_WHAT[m]} in seconds, over the aggregator's lifetime.",
                    labels=ep,
                )
                for m in METRICS
            },
            summaries={
                m: _SummaryFamily(
                    f"{ns}_recent_{m}_seconds",
                    f"{_WHAT[m]} in seconds: quantiles over the last {self.last}, "
                    "count and sum over the aggregator's lifetime.",
                    labels=ep,
                )
                for m in METRICS
            },
        )

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (lets a registry check names without a scrape)."""
        yield from self._families().all()

    def collect(self) -> Iterator[Metric]:
        """Every metric family with one metric per endpoint, read from the aggregator now.

        All the figures of one scrape are read inside :meth:`Aggregator.consistent`, so they
        describe one state; other threads keep recording meanwhile (their events are staged).
        """
        with self._lock, self.aggregator.consistent():
            families = self._collect()
        yield from families.all()

    def _collect(self) -> _Families:
        agg = self.aggregator
        geometry = agg.geometry
        f = self._families()
        endpoints = agg.endpoints()  # consistent() drained the stage: staged endpoints are known
        for e in endpoints:
            t = agg.totals(e)
            f.requests.add_metric([e], t["requests"])
            for o in _OUTCOMES:
                f.outcomes.add_metric([e, o], t[o])
            f.retries.add_metric([e], t["retried"])
            f.cold_starts.add_metric([e], t["cold_start_count"])
            f.cold_start_failures.add_metric([e], t["cold_start_failures"])
            f.webhooks.add_metric([e, "succeeded"], t["webhook_succeeded"])
            f.webhooks.add_metric([e, "failed"], t["webhook_failed"])
            for k in _QUALITY:
                f.quality.add_metric([e, k], t[k])
            f.in_queue.add_metric([e], t["in_queue"])
            f.in_progress.add_metric([e], t["in_progress"])
            for m in METRICS:
                counts = agg.histogram(e, m, lifetime=True).counts
                cum = cumulative_counts(counts, geometry, self.buckets[m])
                total_s = _sum_seconds(counts, geometry)
                f.histograms[m].add_metric([e], list(zip(self._le_labels[m], cum, strict=True)), total_s)
                recent = agg.percentiles(e, m, last=self.last, quantiles=self.quantiles)
                values = [math.nan] * len(self.quantiles)
                if recent is not None:  # ms → whole µs → s
                    values = [round(v * 1000.0) / _US_PER_S for v in recent]
                f.summaries[m].add_metric(
                    [e], cum[-1], total_s, quantiles=zip(self.quantiles, values, strict=True)
                )
        if f.workers_now is not None and f.workers_avg is not None and f.workers_max is not None:
            levels = last_window_workers(agg)
            for e in endpoints:
                averages, maxima, now = levels.averages(e), levels.maxima(e), agg.workers(e)
                for s in WORKER_STATES:
                    f.workers_now.add_metric([e, s], now[s])
                    f.workers_avg.add_metric([e, s], averages[s])
                    f.workers_max.add_metric([e, s], maxima[s])
        wm = agg.watermark
        if wm is not None:
            f.watermark.add_metric([], wm / _US_PER_S)
        return f


@dataclass(slots=True)
class _Families:
    """The metric families of one scrape, in exposition order."""

    requests: CounterMetricFamily
    outcomes: CounterMetricFamily
    retries: CounterMetricFamily
    cold_starts: CounterMetricFamily
    cold_start_failures: CounterMetricFamily
    webhooks: CounterMetricFamily
    quality: CounterMetricFamily
    in_queue: GaugeMetricFamily
    in_progress: GaugeMetricFamily
    workers_now: GaugeMetricFamily | None
    workers_avg: GaugeMetricFamily | None
    workers_max: GaugeMetricFamily | None
    watermark: GaugeMetricFamily
    histograms: dict[str, HistogramMetricFamily]
    summaries: dict[str, _SummaryFamily]

    def all(self) -> list[Metric]:
        out: list[Metric] = [
            self.requests, self.outcomes, self.retries, self.cold_starts, self.cold_start_failures,
            self.webhooks, self.quality, self.in_queue, self.in_progress,
        ]  # fmt: skip
        out += [m for m in (self.workers_now, self.workers_avg, self.workers_max) if m is not None]
        out.append(self.watermark)
        out += self.histograms.values()
        out += self.summaries.values()
        return out


# ------------------------------------------------------------------------------ serving helpers
def make_registry(aggregator: Aggregator, **options: Any) -> CollectorRegistry:
    """A new :class:`prometheus_client.CollectorRegistry` holding an :class:`AggregatorCollector`
    of ``aggregator`` (``options`` go to the collector)."""
    registry = CollectorRegistry()
    registry.register(AggregatorCollector(aggregator, **options))
    return registry


def start_http_server(
    aggregator: Aggregator, port: int, addr: str = "127.0.0.1", **options: Any
) -> tuple[Any, threading.Thread]:
    """Serve ``aggregator``'s metrics on ``http://addr:port/`` from a daemon thread.

    prometheus_client's :func:`~prometheus_client.start_http_server` on a registry of its own
    (:func:`make_registry`); ``port=0`` picks a free port (``server.server_port``). Returns
    ``(server, thread)``; ``server.shutdown()`` stops it.
    """
    registry = make_registry(aggregator, **options)
    server, thread = prometheus_client.start_http_server(port, addr=addr, registry=registry)
    return server, thread


def make_wsgi_app(aggregator: Aggregator, **options: Any) -> Callable[..., Any]:
    """A WSGI app that serves ``aggregator``'s metrics (prometheus_client's
    :func:`~prometheus_client.make_wsgi_app` on a registry of its own)."""
    app: Callable[..., Any] = prometheus_client.make_wsgi_app(make_registry(aggregator, **options))
    return app
