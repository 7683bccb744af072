"""End-to-end aggregation of a Parquet event log: ``aggregate_logs`` beside DuckDB SQL and Polars.

The workload is a 10 M-event log (3.3 M jobs over ten endpoints, 55 minutes of arrivals at 1 000
jobs/s; :func:`streams.synthetic_events` with uuid-like string job ids) written once to Parquet
(snappy) and cached in the temporary folder (``jobmetrics-bench/``). Each benchmark reads that file
and computes, per endpoint and one-minute window: requests, completed, failed, cancelled,
timed out, retried, and P70/P90/P98 of execution time (``IN_PROGRESS`` → ``COMPLETED``/``FAILED``)
and delay time (``IN_QUEUE`` → ``IN_PROGRESS``), pairing each job's events in time order.

* ``test_jobmetrics``: :func:`jobmetrics.aggregate_logs` (the whole snapshot: every SPEC §4
  column, HDR histograms encoded per row; no output file);
* ``test_duckdb``: one SQL query (``lag()`` over ``PARTITION BY job_id ORDER BY ts``, then
  ``GROUP BY`` with exact ``quantile_disc``);
* ``test_polars``: a lazy query (sort by job and time, shift within a job, ``group_by`` with exact
  quantiles, ``"equiprobable"``: the same definition as ``quantile_disc``).

Threads: ``JOBMETRICS_BENCH_THREADS`` (default 1) sets DuckDB's ``threads``, ``POLARS_MAX_THREADS``
(read when Polars is first imported: run this file alone) and Arrow's CPU and I/O pools; the
group is ``aggregate-<n>-thread``. For a one-core comparison run under ``taskset -c 0`` as well.

Every benchmark checks its result: counts equal across the three, DuckDB's and Polars' percentiles
equal, jobmetrics' within 1 % (the HDR histograms' precision at 2 significant figures).
"""

from __future__ import annotations

import importlib
import os
import resource
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import aggregate_logs
from jobmetrics.io import write_parquet
from streams import synthetic_events

THREADS = int(os.environ.get("JOBMETRICS_BENCH_THREADS", "1"))
os.environ.setdefault("POLARS_MAX_THREADS", str(THREADS))  # read once, when polars is imported
N_JOBS = 3_300_000  # about 10.3 M events
N_ENDPOINTS = 10
RATE_PER_S = 1000.0
ROUNDS = 5
PEER_ROUNDS = 3
QUANTILES = (0.7, 0.9, 0.98)
GROUP = f"aggregate-{THREADS}-thread"
COUNTS = (
    "requests",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "retried",
    "execution_count",
    "delay_count",
)
PERCENTILES = tuple(f"{m}_p{round(q * 100)}" for m in ("execution", "delay") for q in QUANTILES)
CACHE = Path(tempfile.gettempdir()) / "jobmetrics-bench"


# -- the log ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def arrow_threads() -> Iterator[None]:
    """Arrow's thread pools limited to THREADS for this module."""
    cpu, io = pa.cpu_count(), pa.io_thread_count()
    pa.set_cpu_count(THREADS)
    pa.set_io_thread_count(THREADS)
    yield
    pa.set_cpu_count(cpu)
    pa.set_io_thread_count(io)


@pytest.fixture(scope="module")
def log_path(sized: Any) -> Path:
    """The Parquet log, generated on first use and cached (written atomically)."""
    n_jobs = sized(N_JOBS)
    path = CACHE / f"aggregate-{n_jobs}-jobs-seed42.parquet"
    if not path.exists():
        table = synthetic_events(
            n_jobs, seed=42, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, job_ids="uuid"
        )
        write_parquet(table, path, compression="snappy")
    return path


@pytest.fixture(scope="module")
def n_events(log_path: Path) -> int:
    return int(pq.ParquetFile(log_path).metadata.num_rows)


# -- the three implementations ---------------------------------------------------------------------


def run_jobmetrics(path: Path) -> pa.Table:
    return aggregate_logs(path, window="60s", quantiles=QUANTILES, use_threads=THREADS > 1)


def _sql(path: Path) -> str:
    qs = "[" + ", ".join(map(str, QUANTILES)) + "]"
    return f"""
    WITH paired AS (
        SELECT endpoint, state, ts,
               lag(state) OVER job AS prev_state,
               ts - lag(ts) OVER job AS dt
        FROM read_parquet('{path}')
        WINDOW job AS (PARTITION BY job_id ORDER BY ts)
    )
    SELECT endpoint, ts // 60000 * 60000 AS minute,
        count(*) FILTER (WHERE state = 'IN_QUEUE' AND prev_state IS NULL) AS requests,
        count(*) FILTER (WHERE state = 'COMPLETED') AS completed,
        count(*) FILTER (WHERE state = 'FAILED') AS failed,
        count(*) FILTER (WHERE state = 'CANCELLED') AS cancelled,
        count(*) FILTER (WHERE state = 'TIMED_OUT') AS timed_out,
        count(*) FILTER (WHERE state = 'IN_QUEUE' AND prev_state IS NOT NULL) AS retried,
        count(*) FILTER (WHERE state IN ('COMPLETED', 'FAILED') AND prev_state = 'IN_PROGRESS')
            AS execution_count,
        count(*) FILTER (WHERE state = 'IN_PROGRESS' AND prev_state = 'IN_QUEUE') AS delay_count,
        quantile_disc(dt, {qs}) FILTER (WHERE state IN ('COMPLETED', 'FAILED') AND prev_state = 'IN_PROGRESS')
            AS execution,
        quantile_disc(dt, {qs}) FILTER (WHERE state = 'IN_PROGRESS' AND prev_state = 'IN_QUEUE') AS delay
    FROM paired
    GROUP BY ALL
    ORDER BY minute, endpoint
    """


def run_duckdb(path: Path, threads: int = THREADS) -> pa.Table:
    con = duckdb.connect()
    try:
        con.execute(f"SET threads = {threads}")
        return con.sql(_sql(path)).to_arrow_table()
    finally:
        con.close()


def _polars() -> Any:
    """Polars, imported after POLARS_MAX_THREADS is set."""
    return importlib.import_module("polars")


def run_polars(path: Path) -> Any:
    pl = _polars()
    events = pl.scan_parquet(path).sort("job_id", "ts")
    same_job = pl.col("job_id") == pl.col("job_id").shift(1)
    events = events.with_columns(
        prev_state=pl.when(same_job).then(pl.col("state").shift(1)),
        dt=pl.when(same_job).then(pl.col("ts") - pl.col("ts").shift(1)),
    )
    state, prev = pl.col("state"), pl.col("prev_state")
    execution = state.is_in(["COMPLETED", "FAILED"]) & (prev == "IN_PROGRESS")
    delay = (state == "IN_PROGRESS") & (prev == "IN_QUEUE")
    aggs = [
        ((state == "IN_QUEUE") & prev.is_null()).sum().alias("requests"),
        (state == "COMPLETED").sum().alias("completed"),
        (state == "FAILED").sum().alias("failed"),
        (state == "CANCELLED").sum().alias("cancelled"),
        (state == "TIMED_OUT").sum().alias("timed_out"),
        ((state == "IN_QUEUE") & prev.is_not_null()).sum().alias("retried"),
        execution.sum().alias("execution_count"),
        delay.sum().alias("delay_count"),
    ]
    aggs += [
        pl.col("dt").filter(mask).quantile(q, "equiprobable").alias(f"{name}_p{round(q * 100)}")
        for name, mask in (("execution", execution), ("delay", delay))
        for q in QUANTILES
    ]
    minute = (pl.col("ts") // 60000 * 60000).alias("minute")
    return events.group_by("endpoint", minute).agg(aggs).sort("minute", "endpoint").collect()


# -- results in one shape --------------------------------------------------------------------------


def _frame(columns: dict[str, Any]) -> dict[tuple[str, int], dict[str, float]]:
    keys = list(zip(columns["endpoint"], columns["minute"], strict=True))
    names = [n for n in (*COUNTS, *PERCENTILES) if n in columns]
    return {k: {n: columns[n][i] for n in names} for i, k in enumerate(keys)}


def from_jobmetrics(table: pa.Table) -> dict[tuple[str, int], dict[str, float]]:
    cols: dict[str, Any] = {
        "endpoint": table.column("endpoint").to_pylist(),
        "minute": (pc.cast(table.column("window_start"), pa.int64()).to_numpy() // 1000).tolist(),
    }
    for name in COUNTS:
        source = {"execution_count": "execution_time_count", "delay_count": "delay_time_count"}.get(
            name, name
        )
        cols[name] = table.column(source).to_pylist()
    for name in PERCENTILES:
        metric, label = name.split("_")
        cols[name] = table.column(f"{metric}_time_{label}_ms").to_pylist()
    return _frame(cols)


def from_duckdb(table: pa.Table) -> dict[tuple[str, int], dict[str, float]]:
    cols = {name: table.column(name).to_pylist() for name in ("endpoint", "minute", *COUNTS)}
    for metric in ("execution", "delay"):
        values = table.column(metric).to_pylist()
        for i, q in enumerate(QUANTILES):
            cols[f"{metric}_p{round(q * 100)}"] = [None if v is None else v[i] for v in values]
    return _frame(cols)


def from_polars(frame: Any) -> dict[tuple[str, int], dict[str, float]]:
    return _frame({name: frame[name].to_list() for name in frame.columns})


@pytest.fixture(scope="module")
def expected(log_path: Path) -> dict[tuple[str, int], dict[str, float]]:
    """The reference result: DuckDB's, computed once with every core."""
    return from_duckdb(run_duckdb(log_path, threads=os.cpu_count() or 1))


def check_counts(
    got: dict[tuple[str, int], dict[str, float]], expected: dict[tuple[str, int], dict[str, float]]
) -> None:
    assert set(expected) <= set(got)
    for key in set(got) - set(expected):  # jobmetrics also has rows of windows with jobs in flight only
        assert all(got[key][n] == 0 for n in COUNTS), key
    for key, row in expected.items():
        assert {n: got[key][n] for n in COUNTS} == {n: row[n] for n in COUNTS}, key
    assert sum(r["requests"] for r in expected.values()) > 0


def check_percentiles(
    got: dict[tuple[str, int], dict[str, float]],
    expected: dict[tuple[str, int], dict[str, float]],
    *,
    relative: float,
    min_count: int,
) -> None:
    """Percentiles within ``relative`` error (+ 1 ms) of the exact ones where a window has at least
    ``min_count`` values; null where it has none."""
    checked = 0
    for key, row in expected.items():
        for name in PERCENTILES:
            count = row[f"{name.split('_')[0]}_count"]
            exact, value = row[name], got[key][name]
            if count == 0:
                assert value is None, (key, name)
            elif count >= min_count:
                assert value is not None and abs(value - exact) <= relative * exact + 1.0, (
                    key,
                    name,
                    value,
                    exact,
                )
                checked += 1
    assert checked > 0


# -- benchmarks ------------------------------------------------------------------------------------


def _info(benchmark: Any, n_events: int) -> None:
    benchmark.group = GROUP
    benchmark.extra_info["events"] = n_events
    benchmark.extra_info["threads"] = THREADS


class CpuTimed:
    """``fn`` with the process's user and system CPU seconds of every call recorded: on a shared
    machine they move less than wall time, and sum every thread's work."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.user: list[float] = []
        self.system: list[float] = []

    def __call__(self, *args: Any) -> Any:
        before = resource.getrusage(resource.RUSAGE_SELF)
        out = self.fn(*args)
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.user.append(after.ru_utime - before.ru_utime)
        self.system.append(after.ru_stime - before.ru_stime)
        return out

    def report(self, benchmark: Any) -> None:
        benchmark.extra_info["cpu_user_s_median"] = round(statistics.median(self.user), 3)
        benchmark.extra_info["cpu_system_s_median"] = round(statistics.median(self.system), 3)


def test_jobmetrics(benchmark: Any, log_path: Path, n_events: int, expected: Any) -> None:
    """aggregate_logs: Parquet file -> the SPEC §4 snapshot."""
    _info(benchmark, n_events)
    run_jobmetrics(log_path)  # warm-up: numba kernels load from their cache
    timed = CpuTimed(run_jobmetrics)
    table = benchmark.pedantic(timed, args=(log_path,), rounds=ROUNDS)
    timed.report(benchmark)
    got = from_jobmetrics(table)
    check_counts(got, expected)
    # HDR histograms with 2 significant figures: within one bucket (< 1 %) of the exact value
    check_percentiles(got, expected, relative=0.01, min_count=1)


def test_duckdb(benchmark: Any, log_path: Path, n_events: int, expected: Any) -> None:
    """DuckDB SQL: lag() over each job's events, GROUP BY endpoint and minute, exact quantiles."""
    _info(benchmark, n_events)
    benchmark.extra_info["duckdb"] = duckdb.__version__
    timed = CpuTimed(run_duckdb)
    table = benchmark.pedantic(timed, args=(log_path,), rounds=PEER_ROUNDS)
    timed.report(benchmark)
    got = from_duckdb(table)
    check_counts(got, expected)
    check_percentiles(got, expected, relative=0.0, min_count=1)


def test_polars(benchmark: Any, log_path: Path, n_events: int, expected: Any) -> None:
    """Polars: sort by job and time, shift within each job, group_by endpoint and minute."""
    _info(benchmark, n_events)
    pl = _polars()
    benchmark.extra_info["polars"] = pl.__version__
    benchmark.extra_info["polars_threads"] = pl.thread_pool_size()
    timed = CpuTimed(run_polars)
    frame = benchmark.pedantic(timed, args=(log_path,), rounds=PEER_ROUNDS)
    timed.report(benchmark)
    got = from_polars(frame)
    check_counts(got, expected)
    check_percentiles(got, expected, relative=0.0, min_count=1)  # "equiprobable" is quantile_disc
    assert np.isfinite([v for row in got.values() for n in PERCENTILES if (v := row[n]) is not None]).all()
