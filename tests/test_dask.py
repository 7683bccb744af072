"""``jobmetrics.dask`` against one process: the same snapshot, exactly.

A simulated log (three endpoints, 20 minutes: retries, cold starts, throttled and lost workers,
webhooks, duplicates, and deliveries up to 3 s late against an allowed lateness of 2 s, so many
events are late) is aggregated on a LocalCluster of two worker processes and compared with
``Aggregator.ingest(whole log); flush(); snapshot()``: every column, histograms byte for byte,
the metadata too. Negative controls show that the shuffle and the global lateness scan are
needed.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobmetrics import Aggregator
from reference import Event, Params
from reference import run as run_reference
from streams import BASE_MS, events_to_table, mixed_streams
from test_snapshot import assert_snapshot_matches

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from jobmetrics.dask import aggregate_logs, input_partitions, kernel_cache_stats  # noqa: E402
from jobmetrics.dask import partials as P  # noqa: E402
from jobmetrics.dask.pipeline import run  # noqa: E402

CONFIG: dict[str, Any] = {
    "window": "30s",
    "allowed_lateness": "2s",
    "job_ttl": "5m",
    "retention": "2m",
    "sweep_interval": "1m",
    "worker_ttl": "10m",
}
NO_TIME = np.iinfo(np.int64).min
S = 1_000_000  # a second in µs


def one_process(table: pa.Table, **config: Any) -> pa.Table:
    """The reference: the whole log through one Aggregator, in file order."""
    agg = Aggregator(**config)
    agg.ingest(table)
    agg.flush()
    return agg.snapshot()


def assert_same(got: pa.Table, want: pa.Table) -> None:
    """Equal in every column (the ``*_hdr`` bytes included) and in the schema's metadata."""
    assert got.schema == want.schema
    assert got.schema.metadata == want.schema.metadata
    assert got.num_rows == want.num_rows
    for name in want.column_names:
        assert got.column(name).equals(want.column(name)), f"column {name} differs"


def total(table: pa.Table, column: str) -> int:
    return int(pc.sum(table.column(column)).as_py() or 0)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> pa.Table:
    from jobmetrics.simulate import simulate

    return simulate(
        duration="20m", endpoints="three", seed=3, disorder="3s", duplicates=0.02, rate_scale=2.0
    ).events


@pytest.fixture(scope="module")
def expected(log: pa.Table) -> pa.Table:
    # computed before the cluster starts: it also fills numba's on-disk cache for the workers
    return one_process(log, **CONFIG)


@pytest.fixture(scope="module")
def log_path(tmp_path_factory: pytest.TempPathFactory, log: pa.Table) -> Path:
    path = tmp_path_factory.mktemp("dask") / "log.parquet"
    pq.write_table(log, path, row_group_size=math.ceil(log.num_rows / 5))  # five input partitions
    return path


@pytest.fixture(scope="module")
def client(expected: pa.Table) -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # no dashboard; the scheduler's other HTTP routes on a free port of 127.0.0.1, not 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


# -- the log is a real test ----------------------------------------------------------------------


def test_the_log_exercises_every_rule(log: pa.Table, expected: pa.Table) -> None:
    kinds = set(log.column("kind").to_pylist())
    assert kinds == {"job", "worker", "webhook"}
    for column in ("retried", "late_events", "expired", "duplicates", "orphans", "cold_start_count"):
        assert total(expected, column) > 0, column
    assert total(expected, "webhook_failed") > 0 and total(expected, "webhook_succeeded") > 0
    assert total(expected, "workers_lost") > 0 and total(expected, "workers_throttled_us") > 0
    assert total(expected, "in_queue") > 0  # windows with jobs in flight at their end


# -- the same result on the cluster --------------------------------------------------------------


@pytest.mark.parametrize("npartitions", [1, 2, 7])
def test_same_as_one_process(client: Any, log_path: Path, expected: pa.Table, npartitions: int) -> None:
    got = aggregate_logs(log_path, client=client, npartitions=npartitions, **CONFIG)
    assert isinstance(got, pa.Table)
    assert_same(got, expected)


def test_shuffled_file_order(client: Any, log: pa.Table, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    shuffled = log.take(pa.array(rng.permutation(log.num_rows)))
    want = one_process(shuffled, **CONFIG)
    assert total(want, "late_events") > log.num_rows // 4  # arrival order is far from time order
    # as a Dask DataFrame (pandas partitions, in order) ...
    frame = dd.from_pandas(shuffled.to_pandas(), npartitions=6)
    assert_same(aggregate_logs(frame, client=client, npartitions=2, **CONFIG), want)
    # ... and as a directory of Parquet files, read in name order
    folder = tmp_path / "parts"
    folder.mkdir()
    bounds = np.linspace(0, shuffled.num_rows, 4).astype(int)
    for k in range(3):
        pq.write_table(shuffled.slice(bounds[k], bounds[k + 1] - bounds[k]), folder / f"part-{k}.parquet")
    assert_same(aggregate_logs(folder, client=client, npartitions=7, **CONFIG), want)


def test_other_options(client: Any, log_path: Path, log: pa.Table) -> None:
    config = {
        "window": "1m",
        "allowed_lateness": "0s",
        "quantiles": (0.5, 0.999),
        "significant_figures": 3,
        "orphans": "drop",
        "history": "10m",
    }
    assert_same(aggregate_logs(log_path, client=client, npartitions=3, **config), one_process(log, **config))
    config = {"allowed_lateness": None}  # nothing is late: exact for any order
    assert_same(aggregate_logs(log_path, client=client, npartitions=3, **config), one_process(log, **config))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "arrow"])
def test_text_and_ipc_inputs(client: Any, log: pa.Table, tmp_path: Path, fmt: str) -> None:
    small = log.slice(0, 6000)
    path = tmp_path / f"log.{fmt}"
    if fmt == "csv":
        pcsv.write_csv(small, path)
    elif fmt == "jsonl":  # ISO-8601 times, absent fields left out
        rows = [{**row, "ts": row["ts"].isoformat()} for row in small.to_pylist()]
        with path.open("w") as f:
            for row in rows:
                f.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        small = pa.Table.from_pylist(rows)
    else:
        with ipc.new_file(path, small.schema) as writer:
            writer.write_table(small)
    assert_same(aggregate_logs(path, client=client, npartitions=2, **CONFIG), one_process(small, **CONFIG))


def test_rejected_rows_and_an_empty_log(client: Any, log: pa.Table, tmp_path: Path) -> None:
    small = log.slice(0, 4000)
    schema = pa.schema([f.with_nullable(True) for f in small.schema])
    bad = pa.table(
        {
            "ts": pa.array([None, BASE_MS, BASE_MS + 1], pa.int64()).cast(schema.field("ts").type),  # no time
            "kind": ["job", "job", "gizmo"],  # an unknown kind
            "endpoint": ["e", "e", "e"],
            "job_id": ["a", "b", "c"],
            "state": ["IN_QUEUE", "NOPE", "IN_QUEUE"],  # an unknown state
            "worker_id": pa.nulls(3, pa.string()),
            "status_code": pa.nulls(3, pa.int32()),
        },
        schema=schema,
    )
    small = small.cast(schema)
    mixed = pa.concat_tables([small.slice(0, 1500), bad, small.slice(1500)])
    agg = Aggregator(**CONFIG)
    agg.ingest(mixed)
    agg.flush()
    assert agg.rejections.total == 3
    path = tmp_path / "bad.parquet"
    pq.write_table(mixed, path, row_group_size=1000)
    assert_same(aggregate_logs(path, client=client, npartitions=3, **CONFIG), agg.snapshot())
    empty = tmp_path / "empty.parquet"
    pq.write_table(small.slice(0, 0), empty)
    assert_same(aggregate_logs(empty, client=client, **CONFIG), Aggregator(**CONFIG).snapshot())


def test_output_is_written_by_a_worker(
    client: Any, log_path: Path, expected: pa.Table, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "snapshot.parquet"
    assert aggregate_logs(log_path, out, client=client, npartitions=2, **CONFIG) is None
    written = pq.read_table(out)
    assert_same(written, expected)
    assert [p.name for p in out.parent.iterdir()] == ["snapshot.parquet"]  # no temporary file left


def test_local_cluster_address(log_path: Path, expected: pa.Table) -> None:
    got = aggregate_logs(log_path, address="local:1", npartitions=2, **CONFIG)
    assert isinstance(got, pa.Table)
    assert_same(got, expected)


# -- negative controls ---------------------------------------------------------------------------


def test_without_the_shuffle_the_result_differs(client: Any, log_path: Path, expected: pa.Table) -> None:
    parts = input_partitions(log_path)
    with client.as_current():
        shuffled = run(parts, None, npartitions=2, options=CONFIG)
        unshuffled = run(parts, None, npartitions=2, options=CONFIG, shuffle=False)
    assert shuffled is not None and unshuffled is not None
    assert_same(shuffled, expected)
    assert not unshuffled.equals(expected)
    # a job split across partitions: its later events are orphans where its IN_QUEUE is not seen
    assert total(unshuffled, "orphans") > total(expected, "orphans")


def test_lateness_needs_the_prefix_of_earlier_partitions(log: pa.Table) -> None:
    bounds = np.linspace(0, log.num_rows, 6).astype(int)
    prepared = [P.prepare(log.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    names = sorted({n for p in prepared for n in p.names})
    lateness = P.lateness_of(CONFIG)
    before, with_prefix, alone = NO_TIME, 0, 0
    for p in prepared:
        with_prefix += P.mark(p, before, lateness, names).late_mark.size
        alone += P.mark(p, NO_TIME, lateness, names).late_mark.size
        before = max(before, p.max_ts)
    assert with_prefix == total(one_process(log, **CONFIG), "late_events")
    assert alone < with_prefix  # each partition's first events would escape


@settings(max_examples=40)
@given(mixed_streams(worker_ties=True, span_ms=200_000), st.integers(1, 4), st.integers(1, 5))
def test_partition_algebra_on_generated_streams(stream: Any, n_in: int, n_out: int) -> None:
    """The steps of the pipeline, run in this process on nasty streams (ties, orphans, expiry,
    lost workers, late events), with the rows hashed to ``n_out`` partitions as the shuffle does."""
    import pandas as pd

    p = stream.params
    config = {
        "window": p.window_us,
        "allowed_lateness": p.allowed_lateness_us,
        "job_ttl": p.job_ttl_us,
        "retention": p.retention_us,
        "sweep_interval": p.sweep_interval_us,
        "worker_ttl": p.worker_ttl_us,
        "orphans": p.orphans,
    }
    table = events_to_table(stream.arrival, all_columns=True)
    want = one_process(table, **config)
    bounds = np.linspace(0, table.num_rows, n_in + 1).astype(int)
    prepared = [P.prepare(table.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    names = sorted({n for q in prepared for n in q.names})
    watermark = max(q.max_ts for q in prepared)
    before, marked = NO_TIME, []
    for q in prepared:
        marked.append(P.mark(q, before, P.lateness_of(config), names))
        before = max(before, q.max_ts)
    events = pd.concat([m.frame for m in marked], ignore_index=True)
    where = pd.util.hash_pandas_object(events["route"], index=False).to_numpy() % n_out
    blocks = [P.aggregate_partition(events[where == k], names, config, watermark) for k in range(n_out)]
    blocks += [P.late_partial(m.late_endpoint, m.late_mark, config, watermark) for m in marked]
    merged = P.merge([P.merge(blocks[i : i + 2]) for i in range(0, len(blocks), 2)])
    assert_same(P.snapshot_of(merged, names, config, watermark), want)


# -- many windows --------------------------------------------------------------------------------

LONG_PARAMS = Params(window_us=S, allowed_lateness_us=0, worker_ttl_us=30 * S, sweep_interval_us=300 * S)
LONG_CONFIG = {"window": "1s", "allowed_lateness": "0s", "worker_ttl": "30s", "sweep_interval": "300s"}


def test_more_windows_than_the_kernel_keeps_open(client: Any) -> None:
    """200 one-second windows with workers up (the lifecycle kernel keeps 64 open windows per
    endpoint, so rolling the clock stops for room on the way); the ignored OFFLINE in front makes
    llama-3-70b the first endpoint in one process, while the partitions register it second."""
    t0, a, b = BASE_MS * 1000, "llama-3-70b", "sdxl-turbo"
    events = [
        Event(t0, a, None, "OFFLINE", "worker", "w-9"),
        Event(t0, b, None, "INITIALIZING", "worker", "w-0"),
        Event(t0, b, None, "INITIALIZING", "worker", "w-1"),
        Event(t0 + 71 * S, b, None, "IDLE", "worker", "w-1"),
        Event(t0 + 71 * S, a, None, "INITIALIZING", "worker", "w-0"),
        Event(t0 + 200 * S, b, "j", None, "webhook", None, 200),
    ]
    table = events_to_table(events)
    frame = dd.from_pandas(table.to_pandas(), npartitions=2)
    got = aggregate_logs(frame, client=client, npartitions=2, **LONG_CONFIG)
    assert got is not None
    assert_same(got, one_process(table, **LONG_CONFIG))
    assert_snapshot_matches(got, run_reference(events, LONG_PARAMS))


# -- numba on the workers ------------------------------------------------------------------------


def test_workers_load_kernels_from_the_cache(client: Any, log_path: Path, expected: pa.Table) -> None:
    aggregate_logs(log_path, client=client, npartitions=2, **CONFIG)  # compiles anything missing
    client.restart()  # fresh worker processes
    assert_same(aggregate_logs(log_path, client=client, npartitions=2, **CONFIG), expected)
    stats = client.run(kernel_cache_stats)
    assert len(stats) == 2
    for worker, s in stats.items():
        assert s["misses"] == 0, (worker, s)  # nothing compiled in the worker ...
        assert s["hits"] > 0 and s["kernels"] > 0, (worker, s)  # ... every kernel loaded from disk


# -- errors --------------------------------------------------------------------------------------


def test_import_error_names_the_extra() -> None:
    code = "import sys; sys.modules['dask'] = None; import jobmetrics.dask"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "ImportError" in proc.stderr
    assert "pip install 'jobmetrics[dask]'" in proc.stderr


def test_bad_arguments(log_path: Path, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="windw"):
        aggregate_logs(log_path, address="local:1", windw="30s")
    with pytest.raises(ValueError, match="window"):
        aggregate_logs(log_path, address="local:1", window="3 days")
    with pytest.raises(ValueError, match="local:0"):
        aggregate_logs(log_path, address="local:0")
    with pytest.raises(ValueError, match="npartitions"):
        aggregate_logs(log_path, address="local:1", npartitions=0)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        input_partitions(tmp_path / "nowhere.parquet")
    (tmp_path / "a.csv").write_text("ts,endpoint,job_id,state\n")
    with pytest.raises(ValueError, match="mix formats"):
        input_partitions([log_path, tmp_path / "a.csv"])
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(ValueError, match=r"a\.txt"):
        input_partitions(tmp_path / "a.txt")
