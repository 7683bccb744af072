"""Scrape cost: ``AggregatorCollector.collect()`` for 100 endpoints, against prometheus_client's own metrics.

Group ``prometheus-collect``. One Aggregator holds an hour of one-minute windows of 100 endpoints
(Zipf-like traffic from ``synthetic_events``, plus three workers per endpoint); a scrape is
``list(registry.collect())`` — every family built, one metric per endpoint — on a registry holding
the collector. Variants:

* ``collect``: a scrape (the worker gauges read the engine's current levels and the last closed
  window's stored row: no snapshot is taken);
* ``generate_latest``: the whole text exposition (collect plus formatting);
* baseline ``prometheus_client metrics``: a registry of prometheus_client ``Counter``, ``Gauge``,
  ``Histogram`` (same ``le`` boundaries) and ``Summary`` objects with the same families and
  label sets for 100 endpoints, values already observed: what collecting the same families costs
  when they are kept by prometheus_client itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator
from jobmetrics.prometheus import DEFAULT_BUCKETS, AggregatorCollector
from streams import synthetic_events

N_ENDPOINTS = 100
N_JOBS = 100_000  # ≈ 28 jobs/s over the hour
ROUNDS = 20
GROUP = "prometheus-collect"
WORKER_STATES = ("initializing", "idle", "running", "throttled", "unhealthy")


def workers(jobs: pa.Table) -> pa.Table:
    """Three workers on each of the 100 endpoints (named as ``synthetic_events`` names them): a cold
    start, then IDLE/RUNNING spells."""
    rng = np.random.default_rng(4)
    start, end = pc.min(jobs["ts"]).as_py(), pc.max(jobs["ts"]).as_py()
    ts, endpoint, worker, state = [], [], [], []
    for e in [f"ep-{k:02d}" for k in range(N_ENDPOINTS)]:  # every endpoint, with or without jobs
        for w in range(3):
            t = start + int(rng.integers(0, 30_000))
            spell = ["INITIALIZING"]
            while t < end:
                for s in spell:
                    ts.append(t)
                    endpoint.append(e)
                    worker.append(f"{e}-{w}")
                    state.append(s)
                t += int(rng.integers(2_000, 120_000))
                spell = [str(rng.choice(["IDLE", "RUNNING"]))]
    table = pa.table({"ts": ts, "kind": ["worker"] * len(ts), "endpoint": endpoint, "worker_id": worker,
                      "state": state})  # fmt: skip
    return table


@pytest.fixture(scope="module")
def agg(sized: Callable[..., int]) -> Aggregator:
    n_jobs = sized(N_JOBS)
    jobs = synthetic_events(
        n_jobs, seed=21, n_endpoints=N_ENDPOINTS, rate_per_s=n_jobs / 3600, in_flight_rate=0.01
    )
    log = pa.concat_tables([jobs, workers(jobs)], promote_options="default").sort_by("ts")
    a = Aggregator(window="60s", allowed_lateness="5s")
    a.ingest(log)
    a.flush()
    return a


def scrape(registry: CollectorRegistry) -> list[Any]:
    return list(registry.collect())


def check(families: list[Any], agg: Aggregator) -> None:
    by_name = {f.name: f for f in families}
    requests = {s.labels["endpoint"]: s.value for s in by_name["jobmetrics_requests"].samples}
    assert len(requests) == N_ENDPOINTS == len(agg.endpoints())
    assert all(requests[e] == agg.totals(e)["requests"] for e in agg.endpoints())
    hist = by_name["jobmetrics_execution_time_seconds"].samples
    assert len(hist) == N_ENDPOINTS * (len(DEFAULT_BUCKETS) + 3)


def registry_of(agg: Aggregator) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AggregatorCollector(agg))
    return registry


def test_collect(benchmark: Any, agg: Aggregator) -> None:
    """A scrape of 100 endpoints."""
    benchmark.group = GROUP
    benchmark.extra_info["endpoints"] = N_ENDPOINTS
    registry = registry_of(agg)
    check(scrape(registry), agg)  # warm-up
    families = benchmark.pedantic(scrape, args=(registry,), rounds=ROUNDS, warmup_rounds=1)
    check(families, agg)


def test_generate_latest(benchmark: Any, agg: Aggregator) -> None:
    """The whole text exposition of 100 endpoints (collect plus prometheus_client's formatting)."""
    benchmark.group = GROUP
    registry = registry_of(agg)
    text = generate_latest(registry)
    out = benchmark.pedantic(generate_latest, args=(registry,), rounds=ROUNDS, warmup_rounds=1)
    assert out.count(b"\n") == text.count(b"\n") > N_ENDPOINTS * 100
    benchmark.extra_info["bytes"] = len(out)


def native_registry(agg: Aggregator) -> CollectorRegistry:
    """The same families kept by prometheus_client itself, filled from the aggregator once."""
    r = CollectorRegistry()
    ep = ["endpoint"]
    counters = [Counter(f"native_{n}", n, ep, registry=r) for n in ("requests", "retries", "cold_starts")]
    outcomes = Counter("native_request_outcomes", "o", [*ep, "outcome"], registry=r)
    hooks = Counter("native_webhook_responses", "w", [*ep, "outcome"], registry=r)
    quality = Counter("native_data_quality_events", "q", [*ep, "kind"], registry=r)
    gauges = [Gauge(f"native_jobs_{n}", n, ep, registry=r) for n in ("in_queue", "in_progress")]
    wavg = Gauge("native_workers_avg", "a", [*ep, "state"], registry=r)
    wmax = Gauge("native_workers_max", "m", [*ep, "state"], registry=r)
    metrics = ("execution_time", "delay_time", "cold_start_time")
    hists = [Histogram(f"native_{m}_seconds", m, ep, buckets=DEFAULT_BUCKETS, registry=r) for m in metrics]
    summaries = [Summary(f"native_recent_{m}_seconds", m, ep, registry=r) for m in metrics]
    rng = np.random.default_rng(1)
    for e in agg.endpoints():
        t = agg.totals(e)
        for c, n in zip(counters, ("requests", "retried", "cold_start_count"), strict=True):
            c.labels(e).inc(t[n])
        for o in ("completed", "failed", "cancelled", "timed_out"):
            outcomes.labels(e, o).inc(t[o])
        hooks.labels(e, "succeeded").inc(t["webhook_succeeded"])
        hooks.labels(e, "failed").inc(t["webhook_failed"])
        for k in ("duplicates", "invalid_transitions", "orphans", "expired", "late_events", "workers_lost",
                  "clamped_durations"):  # fmt: skip
            quality.labels(e, k).inc(t[k])
        gauges[0].labels(e).set(t["in_queue"])
        gauges[1].labels(e).set(t["in_progress"])
        for s in WORKER_STATES:
            wavg.labels(e, s).set(1.0)
            wmax.labels(e, s).set(1)
        for h, s in zip(hists, summaries, strict=True):
            for v in rng.lognormal(0.5, 1.0, 20):
                h.labels(e).observe(v)
                s.labels(e).observe(v)
    return r


def test_native_prometheus_collect(benchmark: Any, agg: Aggregator) -> None:
    """Baseline: collecting the same families from prometheus_client's own metric objects."""
    benchmark.group = GROUP
    benchmark.extra_info["endpoints"] = N_ENDPOINTS
    registry = native_registry(agg)
    scrape(registry)
    families = benchmark.pedantic(scrape, args=(registry,), rounds=ROUNDS, warmup_rounds=1)
    requests = next(f for f in families if f.name == "native_requests")
    assert len([s for s in requests.samples if s.name == "native_requests_total"]) == N_ENDPOINTS
