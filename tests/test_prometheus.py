"""The Prometheus collector, scraped over real HTTP and checked against the snapshot.

An Aggregator fed a realistic log (jobs with retries, cancellations and jobs left in flight;
workers with cold starts; webhooks) is served on 127.0.0.1 with prometheus_client's HTTP server
and with its WSGI app, scraped with urllib and parsed with ``prometheus_client.parser``. Every
counter must equal the sum of its snapshot column, every histogram bucket the count worked out
from the snapshot's ``*_hdr`` bytes with the documented ``le`` rule, every quantile the one of the
merged histograms of the sliding window's rows, and the worker gauges the last final row.
"""

from __future__ import annotations

import importlib
import itertools
import math
import sys
import threading
import time
import urllib.request
import wsgiref.simple_server
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from jobmetrics import Aggregator, HdrHistogram, rollup
from jobmetrics.prometheus import (
    DEFAULT_BUCKETS,
    AggregatorCollector,
    bucket_bounds,
    cumulative_counts,
    make_registry,
    make_wsgi_app,
    start_http_server,
)
from streams import BASE_MS, synthetic_events

BUCKETS = (0.01, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
WORKER_STATES = ("initializing", "idle", "running", "throttled", "unhealthy")
METRICS = ("execution_time", "delay_time", "cold_start_time")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# ------------------------------------------------------------------------------ the workload
def worker_and_webhook_events(jobs: pa.Table, seed: int = 3) -> pa.Table:
    """Workers (cold starts, idle/running/throttled/unhealthy spells, OFFLINE) and webhook
    deliveries (2xx, 4xx, 5xx, no response) for the endpoints and finished jobs of ``jobs``."""
    rng = np.random.default_rng(seed)
    start, end = pc.min(jobs["ts"]).as_py(), pc.max(jobs["ts"]).as_py()
    ts: list[int] = []
    kind: list[str] = []
    endpoint: list[str] = []
    worker: list[str | None] = []
    state: list[str | None] = []
    job: list[str | None] = []
    status: list[int | None] = []

    def add(t: int, k: str, e: str, w: str | None, s: str | None, j: str | None, c: int | None) -> None:
        for column, value in zip(
            (ts, kind, endpoint, worker, state, job, status), (t, k, e, w, s, j, c), strict=True
        ):
            column.append(value)  # type: ignore[attr-defined]

    for e in pc.unique(jobs["endpoint"]).to_pylist():
        for w in range(3):
            name = f"{e}-w{w}"
            t = start + int(rng.integers(0, 60_000))
            add(t, "worker", e, name, "INITIALIZING", None, None)
            t += int(rng.lognormal(np.log(8_000), 0.6))
            while t < end:
                s = str(rng.choice(["IDLE", "RUNNING", "RUNNING", "THROTTLED", "UNHEALTHY"]))
                add(t, "worker", e, name, s, None, None)
                t += int(rng.integers(5_000, 90_000))
            if w == 2:
                add(end - 1, "worker", e, name, "OFFLINE", None, None)
    done = jobs.filter(pc.equal(jobs["state"], "COMPLETED"))
    for t, e, j in zip(
        done["ts"].to_pylist(), done["endpoint"].to_pylist(), done["job_id"].to_pylist(), strict=True
    ):
        code = int(rng.choice([200, 200, 200, 204, 404, 500, 0]))
        add(t + int(rng.integers(1, 500)), "webhook", e, None, None, j, code)
    table = pa.table(
        {
            "ts": pa.array(ts, pa.int64()),
            "kind": kind,
            "endpoint": endpoint,
            "worker_id": pa.array(worker, pa.string()),
            "state": pa.array(state, pa.string()),
            "job_id": pa.array(job, pa.string()),
            "status_code": pa.array(status, pa.int64()),
        }
    )
    return table.sort_by("ts")


@pytest.fixture(scope="module")
def agg() -> Aggregator:
    jobs = synthetic_events(3_000, seed=11, n_endpoints=4, rate_per_s=5.0, in_flight_rate=0.03)
    extra = worker_and_webhook_events(jobs)
    everything = pa.concat_tables([jobs, extra], promote_options="default").sort_by("ts")
    a = Aggregator(window="60s", allowed_lateness="5s")
    a.ingest(everything)
    a.flush()
    a.advance(now=pc.max(everything["ts"]).as_py() + 30_000)
    return a


# ------------------------------------------------------------------------------ scraping
def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return parse(text)


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def scraped(agg: Aggregator) -> Iterator[Samples]:
    server, thread = start_http_server(agg, 0, buckets=BUCKETS)
    try:
        port = server.server_port
        yield scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def rows_of(agg: Aggregator, endpoint: str) -> pa.Table:
    snap = agg.snapshot()
    return snap.filter(pc.equal(snap["endpoint"], endpoint))


def merged(rows: pa.Table, metric: str) -> HdrHistogram:
    g = Aggregator().geometry
    h = HdrHistogram(g.lowest, g.highest, g.significant_figures)
    for blob in rows[f"{metric}_hdr"].to_pylist():
        if blob is not None:
            h.add(HdrHistogram.decode(blob))
    return h


def expected_buckets(h: HdrHistogram, les: tuple[float, ...]) -> list[int]:
    """The documented rule, bucket by bucket: a bucket counts under ``le`` when its highest
    equivalent value (µs) is at most ``le``."""
    _, counts = h.recorded()
    out = []
    for le in les:
        n = 0
        for i, c in zip(np.flatnonzero(h.counts), counts, strict=True):
            if h.bucket_range(int(i))[1] <= le * 1e6 + 1e-6:
                n += int(c)
        out.append(n)
    out.append(int(counts.sum()))
    return out


# ------------------------------------------------------------------------------ tests
def test_counters_equal_snapshot_sums(agg: Aggregator, scraped: Samples) -> None:
    endpoints = agg.endpoints()
    assert len(endpoints) == 4
    ns = "jobmetrics"
    for e in endpoints:
        rows = rows_of(agg, e)

        def total(column: str, rows: pa.Table = rows) -> int:
            return int(pc.sum(rows[column]).as_py() or 0)

        assert get(scraped, f"{ns}_requests_total", endpoint=e) == total("requests") > 0
        for outcome in ("completed", "failed", "cancelled", "timed_out"):
            value = get(scraped, f"{ns}_request_outcomes_total", endpoint=e, outcome=outcome)
            assert value == total(outcome)
        assert get(scraped, f"{ns}_retries_total", endpoint=e) == total("retried")
        assert get(scraped, f"{ns}_cold_starts_total", endpoint=e) == total("cold_start_count")
        assert get(scraped, f"{ns}_cold_start_failures_total", endpoint=e) == total("cold_start_failures")
        ok = get(scraped, f"{ns}_webhook_responses_total", endpoint=e, outcome="succeeded")
        bad = get(scraped, f"{ns}_webhook_responses_total", endpoint=e, outcome="failed")
        assert (ok, bad) == (total("webhook_succeeded"), total("webhook_failed"))
        assert ok + bad == total("webhook_requests") > 0 and bad > 0
        for kind in ("duplicates", "invalid_transitions", "orphans", "expired", "late_events",
                     "workers_lost", "clamped_durations"):  # fmt: skip
            assert get(scraped, f"{ns}_data_quality_events_total", endpoint=e, kind=kind) == total(kind)
    # the log has failures, retries and cancellations somewhere: the comparisons above are not all 0
    assert sum(get(scraped, f"{ns}_retries_total", endpoint=e) for e in endpoints) > 0
    assert sum(get(scraped, f"{ns}_cold_starts_total", endpoint=e) for e in endpoints) > 0
    assert sum(get(scraped, f"{ns}_request_outcomes_total", endpoint=e, outcome="cancelled")
               for e in endpoints) > 0  # fmt: skip


def test_gauges(agg: Aggregator, scraped: Samples) -> None:
    snap = agg.snapshot()
    latest = pc.max(snap["window_start"])
    in_flight = 0
    for e in agg.endpoints():
        now = agg.totals(e)
        last_row = snap.filter(pc.and_(pc.equal(snap["endpoint"], e), pc.equal(snap["window_start"], latest)))
        assert last_row.num_rows == 1  # every endpoint has workers or jobs in flight at the end
        q = get(scraped, "jobmetrics_jobs_in_queue", endpoint=e)
        p = get(scraped, "jobmetrics_jobs_in_progress", endpoint=e)
        assert (q, p) == (now["in_queue"], now["in_progress"])
        assert (q, p) == (last_row["in_queue"][0].as_py(), last_row["in_progress"][0].as_py())
        in_flight += int(q + p)
    assert in_flight > 0
    assert get(scraped, "jobmetrics_watermark_seconds") == agg.watermark / 1e6  # type: ignore[operator]


def test_worker_gauges_are_the_last_final_window(agg: Aggregator, scraped: Samples) -> None:
    snap = agg.snapshot()
    final = snap.filter(snap["final"])
    last = pc.max(final["window_start"])
    assert agg.watermark is not None
    assert last.value == (agg.watermark // agg.width - 1) * agg.width
    busy = 0.0
    for e in agg.endpoints():
        row = final.filter(pc.and_(pc.equal(final["endpoint"], e), pc.equal(final["window_start"], last)))
        for s in WORKER_STATES:
            expected_avg = row[f"workers_{s}_avg"][0].as_py() if row.num_rows else 0.0
            expected_max = row[f"workers_{s}_max"][0].as_py() if row.num_rows else 0
            assert get(scraped, "jobmetrics_workers_avg", endpoint=e, state=s) == pytest.approx(
                expected_avg, rel=1e-15, abs=0
            )
            assert get(scraped, "jobmetrics_workers_max", endpoint=e, state=s) == expected_max
            busy += expected_avg
    assert busy > 0


@pytest.mark.parametrize("metric", METRICS)
def test_histograms_from_hdr_counts(agg: Aggregator, scraped: Samples, metric: str) -> None:
    name = f"jobmetrics_{metric}_seconds"
    les = [*(str(b) for b in BUCKETS), "+Inf"]
    seen = 0
    for e in agg.endpoints():
        rows = rows_of(agg, e)
        h = merged(rows, metric)
        assert h.total_count == int(pc.sum(rows[f"{metric}_count"]).as_py())
        got = [get(scraped, f"{name}_bucket", endpoint=e, le=le) for le in les]
        assert got == expected_buckets(h, BUCKETS)
        assert all(a <= b for a, b in itertools.pairwise(got))
        assert get(scraped, f"{name}_count", endpoint=e) == h.total_count
        assert get(scraped, f"{name}_sum", endpoint=e) == pytest.approx(
            h.mean * h.total_count / 1e6, rel=1e-9
        )
        seen += h.total_count
    assert seen > 0


@pytest.mark.parametrize("metric", METRICS)
def test_summaries_are_sliding_window_quantiles(agg: Aggregator, scraped: Samples, metric: str) -> None:
    """Quantiles over ``last="5m"``: the five one-minute windows up to the current one, merged."""
    name = f"jobmetrics_recent_{metric}_seconds"
    snap = agg.snapshot()
    current = pc.max(pc.cast(snap["window_start"], pa.int64())).as_py()
    recent = snap.filter(pc.greater_equal(pc.cast(snap["window_start"], pa.int64()), current - 4 * agg.width))
    compared = 0
    for e in agg.endpoints():
        h = merged(recent.filter(pc.equal(recent["endpoint"], e)), metric)
        everything = merged(rows_of(agg, e), metric)
        assert h.total_count <= everything.total_count
        for q in (0.7, 0.9, 0.98):
            value = get(scraped, name, endpoint=e, quantile=str(q))
            if h.total_count == 0:
                assert math.isnan(value)
            else:
                assert value == h.value_at_quantile(q) / 1e6
                compared += 1
        assert get(scraped, f"{name}_count", endpoint=e) == everything.total_count
        assert get(scraped, f"{name}_sum", endpoint=e) == get(
            scraped, f"jobmetrics_{metric}_seconds_sum", endpoint=e
        )
    # cold starts happen in the log's first minutes only: their recent quantiles are all NaN
    assert compared > 0 if metric != "cold_start_time" else compared == 0


def test_wsgi_app_serves_the_same_figures(agg: Aggregator, scraped: Samples) -> None:
    app = make_wsgi_app(agg, buckets=BUCKETS)

    class Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server("127.0.0.1", 0, app, handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        again = scrape(f"http://127.0.0.1:{server.server_port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert again == scraped or _same_but_nan(again, scraped)


def _same_but_nan(a: Samples, b: Samples) -> bool:
    return a.keys() == b.keys() and all((math.isnan(a[k]) and math.isnan(b[k])) or a[k] == b[k] for k in a)


# ------------------------------------------------------------------------------ the le rule
def bucket_top(value: int) -> int:
    """The highest equivalent value of ``value``'s HDR bucket (µs), through the public class."""
    h = HdrHistogram()
    h.record(value)
    return h.max


def test_le_rule_exact_at_bucket_tops_and_rounded_down_between() -> None:
    """Jobs whose execution times straddle chosen boundaries: at a bucket top the count is exactly
    the number of values ≤ le; between tops, a straddling bucket waits for the next boundary."""
    rng = np.random.default_rng(5)
    exec_us = np.concatenate(
        [rng.integers(1, 300, 50), rng.integers(90_000, 110_000, 200), rng.integers(900_000, 1_100_000, 200)]
    )
    agg = Aggregator(window="60s", allowed_lateness="0s")
    t = BASE_MS * 1000
    for i, d in enumerate(exec_us.tolist()):
        agg.record(ts=t / 1000, endpoint="e", job_id=i, state="IN_QUEUE")
        agg.record(ts=(t + 1000) / 1000, endpoint="e", job_id=i, state="IN_PROGRESS")
        agg.record(ts=(t + 1000 + d) / 1000, endpoint="e", job_id=i, state="COMPLETED")
        t += 2_000_000
    agg.flush()
    tops = {v: bucket_top(v) for v in exec_us.tolist()}
    top_near_100ms = bucket_top(100_000)  # a bucket top, in seconds below
    les = (0.0001, 0.000_25, 0.1, top_near_100ms / 1e6, 1.0, 1.05)
    registry = CollectorRegistry()
    registry.register(AggregatorCollector(agg, buckets=les))
    samples = parse(generate_latest(registry).decode())
    for le in les:
        got = get(samples, "jobmetrics_execution_time_seconds_bucket", endpoint="e", le=repr(float(le)))
        le_us = round(le * 1e6)
        assert got == sum(1 for v in exec_us.tolist() if tops[v] <= le_us)
        if le_us < 256 or le_us == top_near_100ms:  # a bucket top: exactly the values ≤ le
            assert got == int(np.count_nonzero(exec_us <= le_us))
    # 0.1 s is inside a bucket: its values ≤ 0.1 s are counted at the next boundary, never above 0.1 s
    le01 = get(samples, "jobmetrics_execution_time_seconds_bucket", endpoint="e", le="0.1")
    assert le01 <= np.count_nonzero(exec_us <= 100_000)
    assert le01 >= np.count_nonzero(exec_us <= 100_000 * (1 - 1 / 128))


@given(
    values=st.lists(st.integers(0, 10**9), max_size=60),
    les=st.lists(st.floats(0, 2_000, allow_nan=False), min_size=1, max_size=8, unique=True),
)
def test_cumulative_counts_matches_bucket_by_bucket_rule(values: list[int], les: list[float]) -> None:
    les = sorted(les)
    h = HdrHistogram()
    if values:
        h.record(np.asarray(values, dtype=np.int64))
    got = cumulative_counts(h.counts, h.geometry, les)
    expected = [sum(1 for v in values if bucket_top(v) <= math.floor(round(le * 1e6, 3))) for le in les]
    assert got == [*expected, len(values)]


def test_bucket_bounds_are_the_bucket_tops() -> None:
    h = HdrHistogram()
    tops = bucket_bounds(h.geometry)
    assert tops.shape == (h.geometry.counts_len,)
    for i in [*range(0, 600), *range(600, h.geometry.counts_len, 97), h.geometry.counts_len - 1]:
        assert tops[i] == h.bucket_range(i)[1]


# ------------------------------------------------------------------------------ edges and errors
def test_empty_and_quiet_endpoints() -> None:
    agg = Aggregator(allowed_lateness="0s")
    registry = CollectorRegistry()
    registry.register(AggregatorCollector(agg))
    assert parse(generate_latest(registry).decode()) == {}
    agg.record(ts=0, endpoint="e", job_id="a", state="IN_QUEUE")
    agg.record(ts=10, endpoint="e", job_id="b", state="IN_QUEUE")
    samples = parse(generate_latest(registry).decode())
    assert get(samples, "jobmetrics_requests_total", endpoint="e") == 1  # b waits for the watermark
    assert math.isnan(get(samples, "jobmetrics_recent_execution_time_seconds", endpoint="e", quantile="0.9"))
    assert get(samples, "jobmetrics_execution_time_seconds_bucket", endpoint="e", le="+Inf") == 0
    assert get(samples, "jobmetrics_workers_max", endpoint="e", state="idle") == 0


def test_options() -> None:
    agg = Aggregator(quantiles=(0.5, 0.999))
    c = AggregatorCollector(agg, buckets={"delay_time": [1, 2]}, namespace="queue", last="1h", workers=False)
    assert c.quantiles == (0.5, 0.999)
    assert c.buckets["delay_time"] == (1.0, 2.0) and c.buckets["execution_time"] == DEFAULT_BUCKETS
    assert "AggregatorCollector(Aggregator(" in repr(c) and "namespace='queue'" in repr(c)
    names = {m.name for m in c.describe()}
    assert "queue_requests" in names and "queue_recent_delay_time_seconds" in names
    assert not any("workers" in n for n in names)
    assert all(not m.samples for m in c.describe())
    # registries that check names on registration use describe(); a clash is refused
    registry = CollectorRegistry(auto_describe=True)
    registry.register(AggregatorCollector(agg))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(AggregatorCollector(agg))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"buckets": [2, 1]}, "strictly increasing"),
        ({"buckets": [-1, 1]}, ">= 0"),
        ({"buckets": []}, "at least one"),
        ({"buckets": {"exec": [1]}}, "buckets keys"),
        ({"namespace": "job-metrics"}, "namespace"),
        ({"quantiles": [1.5]}, "quantiles"),
        ({"last": "0s"}, "last"),
        ({"last": "soon"}, "last"),
    ],
)
def test_bad_options_name_the_value(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AggregatorCollector(Aggregator(), **options)


def test_not_an_aggregator() -> None:
    with pytest.raises(TypeError, match=r"jobmetrics\.Aggregator"):
        AggregatorCollector(object())  # type: ignore[arg-type]


def test_helpful_import_error_without_prometheus_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "jobmetrics.prometheus")
    with pytest.raises(ImportError, match=r"pip install 'jobmetrics\[prometheus\]'"):
        importlib.import_module("jobmetrics.prometheus")


def test_docstring_examples() -> None:
    import doctest

    import jobmetrics.prometheus

    result = doctest.testmod(jobmetrics.prometheus, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_scrapes_while_threads_record() -> None:
    """Scrapes over HTTP while two threads record live (wall-clock) events: every scrape succeeds,
    counters never go down, and once the threads are done the scrape equals the totals."""
    agg = Aggregator(window="1s", allowed_lateness="250ms", staging_size=256)
    n_jobs = 3_000

    def feed(name: str) -> None:
        for i in range(n_jobs):
            job = f"{name}-{i}"
            agg.record(endpoint=name, job_id=job, state="IN_QUEUE")
            agg.record(endpoint=name, job_id=job, state="IN_PROGRESS")
            agg.record(endpoint=name, job_id=job, state="FAILED" if i % 10 == 0 else "COMPLETED")
            if i % 100 == 0:
                time.sleep(0.005)

    threads = [threading.Thread(target=feed, args=(name,)) for name in ("alpha", "beta")]
    server, server_thread = start_http_server(agg, 0)
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    previous: dict[str, float] = {}
    scrapes = 0
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads) or scrapes < 3:
            samples = scrape(url)
            scrapes += 1
            for (name, labels), value in samples.items():
                if name == "jobmetrics_requests_total":
                    endpoint = dict(labels)["endpoint"]
                    assert value >= previous.get(endpoint, 0.0)
                    previous[endpoint] = value
        for t in threads:
            t.join()
        agg.flush()
        final = scrape(url)
    finally:
        server.shutdown()
        server.server_close()
        server_thread.join(timeout=5)
    assert scrapes >= 3
    for e in ("alpha", "beta"):
        t = agg.totals(e)
        applied = t["requests"]
        assert get(final, "jobmetrics_requests_total", endpoint=e) == applied > 0
        completed = get(final, "jobmetrics_request_outcomes_total", endpoint=e, outcome="completed")
        assert completed == t["completed"] > 0
        assert (
            get(final, "jobmetrics_execution_time_seconds_count", endpoint=e) == t["completed"] + t["failed"]
        )
        assert previous[e] <= applied


def test_rollup_of_the_snapshot_gives_the_same_figures(agg: Aggregator, scraped: Samples) -> None:
    """One rollup row per endpoint (the log lies within one day): its counters and re-merged
    histograms give the scraped counters and buckets."""
    day = rollup(agg.snapshot(), every="1d")
    assert day.num_rows == len(agg.endpoints())
    for row in day.to_pylist():
        e = row["endpoint"]
        assert get(scraped, "jobmetrics_requests_total", endpoint=e) == row["requests"]
        assert get(scraped, "jobmetrics_retries_total", endpoint=e) == row["retried"]
        assert (
            get(scraped, "jobmetrics_webhook_responses_total", endpoint=e, outcome="failed")
            == row["webhook_failed"]
        )
        for metric in METRICS:
            name = f"jobmetrics_{metric}_seconds"
            blob = row[f"{metric}_hdr"]
            h = HdrHistogram.decode(blob) if blob is not None else HdrHistogram()
            got = [get(scraped, f"{name}_bucket", endpoint=e, le=le) for le in [*map(str, BUCKETS), "+Inf"]]
            assert got == expected_buckets(h, BUCKETS)


def test_current_workers_gauge_from_known_events() -> None:
    agg = Aggregator(allowed_lateness="0s")
    steps = (
        ("w1", "INITIALIZING"), ("w2", "INITIALIZING"), ("w3", "INITIALIZING"), ("w1", "IDLE"),
        ("w2", "RUNNING"), ("w3", "IDLE"), ("w3", "OFFLINE"), ("w4", "THROTTLED"), ("w5", "UNHEALTHY"),
        ("w6", "INITIALIZING"),
    )  # fmt: skip
    for k, (w, state) in enumerate(steps):
        agg.record(ts=1_000 * k, endpoint="e", kind="worker", worker_id=w, state=state)
    agg.flush()
    samples = parse(generate_latest(make_registry(agg)).decode())
    expected = {"initializing": 1, "idle": 1, "running": 1, "throttled": 1, "unhealthy": 1}
    assert {s: get(samples, "jobmetrics_workers", endpoint="e", state=s) for s in WORKER_STATES} == expected
    assert agg.workers("e") == expected


def counters_and_histograms(samples: Samples) -> Samples:
    """The samples that must never decrease: counters, and histograms' and summaries' counts and sums."""
    keep = ("_total", "_bucket", "_seconds_count", "_seconds_sum")
    return {k: v for k, v in samples.items() if k[0].endswith(keep)}


def test_history_keeps_counters_and_histograms_monotonic() -> None:
    """Over an hour of events, an aggregator that keeps 5 minutes of windows exposes exactly the
    figures of one that keeps them all, and no counter or histogram count ever goes down."""
    jobs = synthetic_events(1_800, seed=5, n_endpoints=2, rate_per_s=0.5, in_flight_rate=0.02)
    everything = pa.concat_tables([jobs, worker_and_webhook_events(jobs)], promote_options="default")
    everything = everything.sort_by("ts")
    span_ms = pc.max(everything["ts"]).as_py() - pc.min(everything["ts"]).as_py()  # epoch ms
    assert span_ms >= 3_500_000  # about an hour
    full = Aggregator(window="60s", allowed_lateness="5s")
    bounded = Aggregator(window="60s", allowed_lateness="5s", history="5m")
    registry = make_registry(bounded, buckets=BUCKETS)
    before: Samples = {}
    n, chunks = everything.num_rows, 12
    for i in range(chunks):
        a, b = i * n // chunks, (i + 1) * n // chunks
        full.ingest(everything.slice(a, b - a))
        bounded.ingest(everything.slice(a, b - a))
        now = counters_and_histograms(parse(generate_latest(registry).decode()))
        assert all(now[k] >= v for k, v in before.items()), "a counter went down"
        before = now
    for a in (full, bounded):
        a.flush()
        a.advance(now=pc.max(everything["ts"]).as_py() + 30_000)
    assert len(bounded._engine.closed) <= 5 * 2 < len(full._engine.closed)  # windows were dropped
    expected = parse(generate_latest(make_registry(full, buckets=BUCKETS)).decode())
    got = parse(generate_latest(registry).decode())
    assert counters_and_histograms(got) == counters_and_histograms(expected)

    def no_nan(samples: Samples) -> dict[Any, float | None]:
        return {k: None if math.isnan(v) else v for k, v in samples.items()}

    assert no_nan(got) == no_nan(expected)  # the gauges and recent quantiles: windows both hold
    assert get(got, "jobmetrics_requests_total", endpoint="ep-00") > 0
    for e in full.endpoints():
        assert bounded.totals(e) == full.totals(e)
        for m in METRICS:
            assert bounded.histogram(e, m, lifetime=True) == full.histogram(e, m)
            assert bounded.histogram(e, m).total_count < full.histogram(e, m).total_count
    with pytest.raises(ValueError, match="not both"):
        bounded.histogram("ep-00", "delay_time", last="5m", lifetime=True)
