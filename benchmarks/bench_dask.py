"""Scale-out on Dask: one worker process against two, with one process as the baseline.

Group ``dask``: a Parquet log of about 10 M job events (3.3 M jobs over ten endpoints, a busy
hour of :func:`streams.synthetic_events` at 1000 jobs/s, delivered up to 2 s out of order) in row
groups of 1 M rows, aggregated with the default options:

* ``test_one_process``: the baseline — ``pyarrow.parquet.read_table`` then one
  ``Aggregator.ingest``/``flush``/``snapshot`` (what ``jobmetrics.dask`` must equal);
* ``test_dask[1]`` / ``test_dask[2]``: ``jobmetrics.dask.aggregate_logs`` on a LocalCluster of one
  or two single-threaded worker processes on 127.0.0.1 (started outside the timed part), with
  its default partitioning (one shuffle partition per 1 M events, rounded up to a multiple of
  the workers).

Each benchmark checks its snapshot against the baseline's, exactly, so ``--benchmark-disable``
(which shrinks the log to about 10 k events) still tests correctness. ``extra_info`` holds the
event count and, for Dask, the time of the first run on fresh workers (kernels loaded from numba's
on-disk cache) next to the timed rounds.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator
from streams import synthetic_events

distributed = pytest.importorskip("distributed")
from jobmetrics.dask import aggregate_logs  # noqa: E402

N_JOBS = 3_300_000  # about 10 M events
N_ENDPOINTS = 10
RATE_PER_S = 1000.0
JITTER_MS = 2000  # within the default allowed lateness (5 s): hardly any late event
ROW_GROUP = 1_000_000
ROUNDS = 3


@pytest.fixture(scope="module")
def log_path(sized: Callable[..., int], tmp_path_factory: pytest.TempPathFactory) -> Path:
    n_jobs = sized(N_JOBS)
    table = synthetic_events(
        n_jobs, seed=7, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, jitter_ms=JITTER_MS
    )
    path = tmp_path_factory.mktemp("bench_dask") / "log.parquet"
    row_group = max(1000, min(ROW_GROUP, table.num_rows // 10))  # ten input partitions at least
    pq.write_table(table, path, row_group_size=row_group)
    return path


def one_process(path: Path) -> pa.Table:
    agg = Aggregator(job_capacity=1 << 20)
    agg.ingest(pq.read_table(path))
    agg.flush()
    return agg.snapshot()


@pytest.fixture(scope="module")
def expected(log_path: Path) -> pa.Table:
    return one_process(log_path)


def events_in(path: Path) -> int:
    return int(pq.ParquetFile(path).metadata.num_rows)


@pytest.mark.benchmark(group="dask")
def test_one_process(benchmark: Any, log_path: Path, expected: pa.Table) -> None:
    got = benchmark.pedantic(one_process, args=(log_path,), rounds=ROUNDS, iterations=1)
    assert got.equals(expected)
    benchmark.extra_info["events"] = events_in(log_path)


@pytest.mark.benchmark(group="dask")
@pytest.mark.parametrize("workers", [1, 2])
def test_dask(benchmark: Any, log_path: Path, expected: pa.Table, workers: int) -> None:
    with (
        distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},  # no dashboard, no port 8787
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):

        def run() -> pa.Table:
            table = aggregate_logs(log_path, client=client)
            assert table is not None
            return table

        start = time.perf_counter()
        first = run()  # fresh workers: kernels come from numba's on-disk cache
        benchmark.extra_info["first_run_s"] = round(time.perf_counter() - start, 3)
        assert first.equals(expected)
        got = benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert got.equals(expected)
    benchmark.extra_info["events"] = events_in(log_path)
    benchmark.extra_info["workers"] = workers
