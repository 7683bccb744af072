"""Columnar ingest of job event logs: jobmetrics against a straightforward pandas implementation.

Groups ``ingest-int`` and ``ingest-str``: about 10 M job events (3.3 M jobs over ten endpoints, a
busy hour of :func:`streams.synthetic_events` at 1000 jobs/s) as a Parquet reader gives them: int64
epoch-millisecond ``ts``, dictionary-typed ``kind``/``endpoint``/``state``, and integer or
uuid-like string ``job_id``. Each group holds

* ``test_aggregator``: ``Aggregator.ingest`` then ``flush()`` (what a user calls), sized with
  ``job_capacity``;
* ``test_normalize``: :func:`jobmetrics.events.normalize` alone (Arrow columns -> integer batch);
* ``test_kernel``: :meth:`jobmetrics.engine.Engine.apply` alone, on the normalised batch sorted
  by (time, state) as ``Engine.apply`` asks;
* ``test_pandas``: the baseline (sort by job and time, groupby shift/diff, per-window counts).

Group ``ingest-int-9h``: the same 3.3 M jobs at 100 jobs/s (a 9-hour log): finished jobs are
forgotten while the stream runs and the event-time sweeps run 110 times instead of 12, which must
stay cheap. Group ``memory``: 1 M jobs all in flight at
once; ``extra_info["bytes_per_job"]`` is the job table's size per job held.

Every benchmark checks its result against counts taken from the table itself, so that
``--benchmark-disable`` (which shrinks the workloads) still tests correctness. Events per second
are ``extra_info["events"]`` divided by the time of one round.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator
from jobmetrics.aggregator import COUNTERS
from jobmetrics.engine import Engine, EngineConfig
from jobmetrics.events import EndpointRegistry, EventBatch, normalize
from jobmetrics.geometry import Geometry
from jobmetrics.timeparse import parse_duration
from streams import synthetic_events

N_JOBS = 3_300_000  # about 10 M events
N_JOBS_DISABLED = 20_000  # with --benchmark-disable: a correctness run
N_ENDPOINTS = 10
RATE_PER_S = 1000.0  # jobs per second over all endpoints: 3.3 M jobs arrive in 55 minutes
WINDOW_MS = 60_000
ROUNDS = 5
PANDAS_ROUNDS = 3

#: Counters compared with the counts taken from the table (the stream has no anomalies).
CHECKED = ("requests", "completed", "failed", "cancelled", "retried")
ANOMALIES = ("duplicates", "invalid_transitions", "orphans", "late_events", "expired")


# -- workloads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    table: pa.Table
    n_jobs: int
    expected: pd.DataFrame  # per endpoint: CHECKED counters, delay_count, execution_count

    @property
    def n_events(self) -> int:
        return self.table.num_rows


def parquet_like(table: pa.Table) -> pa.Table:
    """``table`` with the low-cardinality string columns dictionary-encoded, as Parquet reads them."""
    return pa.table(
        {
            "ts": table.column("ts"),
            "kind": pc.dictionary_encode(table.column("kind")),
            "endpoint": pc.dictionary_encode(table.column("endpoint")),
            "job_id": table.column("job_id"),
            "state": pc.dictionary_encode(table.column("state")),
        }
    )


def expected_counts(table: pa.Table) -> pd.DataFrame:
    """Per endpoint, what a correct aggregation must count, read off the rows: every job starts
    with IN_QUEUE and moves legally, so transitions into a state are rows in that state."""
    endpoint = table.column("endpoint").cast(pa.string())
    rows = pa.table({"endpoint": endpoint, "state": table.column("state").cast(pa.string())})
    by_state = rows.group_by(["endpoint", "state"]).aggregate([("state", "count")]).to_pandas()
    counts = by_state.pivot(index="endpoint", columns="state", values="state_count").fillna(0).astype("int64")
    jobs = pa.table({"endpoint": endpoint, "job_id": table.column("job_id")})
    distinct = jobs.group_by("endpoint").aggregate([("job_id", "count_distinct")]).to_pandas()
    requests = distinct.set_index("endpoint")["job_id_count_distinct"]

    def col(state: str) -> pd.Series:
        return counts[state] if state in counts else pd.Series(0, index=counts.index)

    out = pd.DataFrame(
        {
            "requests": requests,
            "completed": col("COMPLETED"),
            "failed": col("FAILED"),
            "cancelled": col("CANCELLED"),
            "retried": col("IN_QUEUE") - requests,
            "delay_count": col("IN_PROGRESS"),
            "execution_count": col("COMPLETED") + col("FAILED"),
        }
    )
    return out.sort_index().astype("int64")


def _size(request: pytest.FixtureRequest) -> int:
    return N_JOBS_DISABLED if request.config.getoption("benchmark_disable") else N_JOBS


@pytest.fixture(scope="module", params=["int", "str"])
def workload(request: pytest.FixtureRequest) -> Workload:
    """The event log with integer (``int``) or uuid-like string (``str``) job ids."""
    n_jobs = _size(request)
    ids = "int" if request.param == "int" else "uuid"
    raw = synthetic_events(n_jobs, seed=42, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, job_ids=ids)
    table = parquet_like(raw)
    return Workload(table, n_jobs, expected_counts(table))


def _group(benchmark: Any, workload: Workload) -> None:
    ids = "int" if pa.types.is_integer(workload.table.schema.field("job_id").type) else "str"
    benchmark.group = f"ingest-{ids}"
    benchmark.extra_info["events"] = workload.n_events
    benchmark.extra_info["jobs"] = workload.n_jobs


# -- jobmetrics ----------------------------------------------------------------------------------


def new_aggregator(n_jobs: int) -> Aggregator:
    return Aggregator(window="60s", allowed_lateness="5s", job_capacity=n_jobs)


def ingest(agg: Aggregator, table: pa.Table) -> Aggregator:
    agg.ingest(table)
    agg.flush()
    return agg


def aggregator_counts(agg: Aggregator) -> pd.DataFrame:
    """Per endpoint, the CHECKED counters, the anomaly counters and the histograms' counts."""
    data = {}
    for ep in agg.endpoints():
        totals = agg.totals(ep)
        row = {name: totals[name] for name in (*CHECKED, *ANOMALIES, "in_queue", "in_progress")}
        row["delay_count"] = agg.histogram(ep, "delay_time").total_count
        row["execution_count"] = agg.histogram(ep, "execution_time").total_count
        data[ep] = row
    return pd.DataFrame.from_dict(data, orient="index").sort_index()


def check_aggregator(agg: Aggregator, workload: Workload) -> None:
    got = aggregator_counts(agg)
    pd.testing.assert_frame_equal(got[workload.expected.columns], workload.expected, check_names=False)
    assert (got[[*ANOMALIES, "in_queue", "in_progress"]] == 0).all().all()
    assert agg.jobs_in_memory() == workload.n_jobs  # the hour is within the default retention


def test_aggregator(benchmark: Any, workload: Workload) -> None:
    """Aggregator.ingest + flush of the whole log."""
    _group(benchmark, workload)
    check_aggregator(ingest(new_aggregator(workload.n_jobs), workload.table), workload)  # warm-up

    agg = benchmark.pedantic(
        ingest,
        setup=lambda: ((new_aggregator(workload.n_jobs), workload.table), {}),
        rounds=ROUNDS,
    )
    check_aggregator(agg, workload)


def test_normalize(benchmark: Any, workload: Workload) -> None:
    """Arrow columns -> EventBatch: timestamps, dictionary codes, id hashing."""
    _group(benchmark, workload)

    def run() -> tuple[EventBatch, EndpointRegistry]:
        registry = EndpointRegistry()
        batch, _ = normalize(workload.table, registry)
        return batch, registry

    run()  # warm-up
    batch, registry = benchmark.pedantic(run, rounds=ROUNDS)
    assert len(batch) == workload.n_events
    assert sorted(registry.names()) == list(workload.expected.index)
    assert np.array_equal(batch.ts, workload.table.column("ts").to_numpy() * 1000)
    assert np.count_nonzero(batch.state == 1) == workload.expected[["requests", "retried"]].sum().sum()


def sorted_like_aggregator(batch: EventBatch) -> EventBatch:
    """The batch by time, ties in state order: the order ``Engine.apply`` documents (the aggregator
    sorts by time only and leaves ties to the kernel; either order gives the same result)."""
    key = batch.ts * 8 + batch.state.astype(np.int64)
    return batch.take(np.argsort(key, kind="stable"))


def new_engine(n_endpoints: int, n_jobs: int) -> Engine:
    """An engine configured as ``Aggregator(window="60s")`` configures it."""
    g = Geometry(1, parse_duration("7d"), 2)
    config = EngineConfig(
        width=parse_duration("60s"),
        sweep_interval=parse_duration("5m"),
        job_ttl=parse_duration("24h"),
        retention=parse_duration("1h"),
        worker_ttl=parse_duration("24h"),
        adopt_orphans=True,
        unit_magnitude=g.unit_magnitude,
        half_magnitude=g.half_magnitude,
        highest=g.highest,
        counts_len=g.counts_len,
    )
    engine = Engine(config, job_capacity=n_jobs)
    engine.ensure_endpoints(n_endpoints)
    return engine


def _copy(batch: EventBatch) -> EventBatch:
    return batch.take(np.arange(len(batch)))  # apply() may reorder runs of equal times in place


def test_kernel(benchmark: Any, workload: Workload) -> None:
    """Engine.apply on a prepared, sorted batch: the single-pass kernel and its restarts."""
    _group(benchmark, workload)
    registry = EndpointRegistry()
    batch = sorted_like_aggregator(normalize(workload.table, registry)[0])
    n_endpoints = len(registry)

    def setup() -> tuple[tuple[Engine, EventBatch], dict[str, Any]]:
        return (new_engine(n_endpoints, workload.n_jobs), _copy(batch)), {}

    def run(engine: Engine, events: EventBatch) -> Engine:
        engine.apply(events)
        return engine

    run(*setup()[0])  # warm-up
    engine = benchmark.pedantic(run, setup=setup, rounds=ROUNDS)

    assert engine.jobs_in_memory == workload.n_jobs
    end = int(batch.ts[-1])
    engine.advance(end + parse_duration("60s"))  # close every window
    closed = engine.closed.all()
    for name in CHECKED:
        got = np.bincount(
            closed.endpoint, weights=closed.values[:, COUNTERS.index(name)], minlength=n_endpoints
        )
        want = workload.expected[name].reindex(registry.names()).to_numpy()
        assert np.array_equal(got.astype(np.int64), want), name


# -- the pandas baseline -------------------------------------------------------------------------

_RANK = {
    "IN_QUEUE": 1,
    "IN_PROGRESS": 2,
    "RUNNING": 2,
    "COMPLETED": 3,
    "FAILED": 4,
    "CANCELLED": 5,
    "TIMED_OUT": 6,
}


def pandas_metrics(table: pa.Table, width_ms: int = WINDOW_MS) -> pd.DataFrame:
    """Per (endpoint, window): counts by outcome, and count/mean/max of delay and execution time.

    Sort each job's events by time (ties in lifecycle order), take the previous state and the
    time since the previous event within the job, and attribute each transition to the window of
    its event. (It does less than jobmetrics: no validation, duplicates, lateness, percentiles or
    bounded memory.)
    """
    df = table.to_pandas()
    df["code"] = df["state"].map(_RANK).astype("int8")
    df = df.sort_values(["endpoint", "job_id", "ts", "code"], kind="stable", ignore_index=True)
    by_job = df.groupby(["endpoint", "job_id"], observed=True, sort=False)
    prev = by_job["code"].shift()
    since = by_job["ts"].diff()
    code = df["code"]
    first = prev.isna()
    df["requests"] = (code == 1) & first
    df["retried"] = (code == 1) & ~first
    df["completed"] = code == 3
    df["failed"] = code == 4
    df["cancelled"] = code == 5
    df["timed_out"] = code == 6
    df["delay_ms"] = since.where((code == 2) & (prev == 1))
    df["execution_ms"] = since.where(((code == 3) | (code == 4)) & (prev == 2))
    df["window"] = df["ts"] // width_ms
    return df.groupby(["endpoint", "window"], observed=True).agg(
        requests=("requests", "sum"),
        completed=("completed", "sum"),
        failed=("failed", "sum"),
        cancelled=("cancelled", "sum"),
        timed_out=("timed_out", "sum"),
        retried=("retried", "sum"),
        delay_count=("delay_ms", "count"),
        delay_mean_ms=("delay_ms", "mean"),
        delay_max_ms=("delay_ms", "max"),
        execution_count=("execution_ms", "count"),
        execution_mean_ms=("execution_ms", "mean"),
        execution_max_ms=("execution_ms", "max"),
    )


def test_pandas(benchmark: Any, workload: Workload) -> None:
    """The baseline on the same table; its totals must equal jobmetrics' for a fair comparison."""
    _group(benchmark, workload)
    pandas_metrics(workload.table)  # warm-up
    out = benchmark.pedantic(pandas_metrics, args=(workload.table,), rounds=PANDAS_ROUNDS)

    totals = out.groupby(level="endpoint", observed=True).sum()
    totals.index = totals.index.astype(str)
    columns = list(workload.expected.columns)
    pd.testing.assert_frame_equal(totals[columns].sort_index(), workload.expected, check_names=False)
    # the same per-window counts as jobmetrics, window by window
    agg = ingest(new_aggregator(workload.n_jobs), workload.table)
    snapshot = agg.snapshot().to_pandas()
    snapshot["window"] = snapshot["window_start"].astype("int64") // (1000 * WINDOW_MS)
    ours = snapshot.set_index(["endpoint", "window"])[["requests", "completed", "failed", "retried"]]
    theirs = out.reset_index()
    theirs["endpoint"] = theirs["endpoint"].astype(str)
    theirs = theirs.set_index(["endpoint", "window"])[["requests", "completed", "failed", "retried"]]
    joined = ours.join(theirs, how="outer", suffixes=("", "_pandas")).fillna(0)
    assert joined["requests"].sum() == workload.n_jobs
    for name in ("requests", "completed", "failed", "retried"):
        assert (joined[name] == joined[f"{name}_pandas"]).all(), name


# -- a long log: the sweeps --------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_log(request: pytest.FixtureRequest) -> Workload:
    """The integer-id log at 100 jobs/s: 9 hours of event time instead of one."""
    n_jobs = _size(request)
    raw = synthetic_events(n_jobs, seed=42, n_endpoints=N_ENDPOINTS, rate_per_s=100.0, job_ids="int")
    table = parquet_like(raw)
    return Workload(table, n_jobs, expected_counts(table))


def test_aggregator_long_log(benchmark: Any, long_log: Workload) -> None:
    """Aggregator.ingest + flush of a 9-hour log; finished jobs are forgotten after an hour."""
    benchmark.group = "ingest-int-9h"
    benchmark.extra_info["events"] = long_log.n_events
    ingest(new_aggregator(long_log.n_jobs), long_log.table)  # warm-up
    agg = benchmark.pedantic(
        ingest, setup=lambda: ((new_aggregator(long_log.n_jobs), long_log.table), {}), rounds=ROUNDS
    )
    got = aggregator_counts(agg)
    pd.testing.assert_frame_equal(got[long_log.expected.columns], long_log.expected, check_names=False)
    # the jobs of about the last hour (retention) and one sweep interval are held, not all
    assert agg.jobs_in_memory() <= min(long_log.n_jobs, int(1.1 * 100 * (3600 + 300 + 60)))


# -- memory: jobs in flight ----------------------------------------------------------------------


def test_bytes_per_in_flight_job(benchmark: Any, request: pytest.FixtureRequest) -> None:
    """1 M jobs all queued or running at once, ingested with the default ``job_capacity`` (the
    table grows as needed); records the job table's bytes per job held."""
    benchmark.group = "memory"
    n_jobs = 1_000_000 if _size(request) == N_JOBS else N_JOBS_DISABLED
    table = parquet_like(
        synthetic_events(n_jobs, seed=7, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, in_flight_rate=1.0)
    )

    def setup() -> tuple[tuple[Aggregator, pa.Table], dict[str, Any]]:
        return (Aggregator(window="60s", allowed_lateness="5s"), table), {}

    ingest(*setup()[0])  # warm-up
    agg = benchmark.pedantic(ingest, setup=setup, rounds=ROUNDS)

    held = agg.jobs_in_memory()
    per_job = agg.memory_bytes()["job_table"] / held
    benchmark.extra_info["events"] = table.num_rows
    benchmark.extra_info["jobs"] = held
    benchmark.extra_info["bytes_per_job"] = round(per_job, 1)
    assert held == n_jobs
    assert sum(agg.totals(ep)["in_queue"] + agg.totals(ep)["in_progress"] for ep in agg.endpoints()) == n_jobs
    assert per_job <= 100
