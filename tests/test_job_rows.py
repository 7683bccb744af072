"""The one-pass normalisation of job-event batches (jobmetrics.job_rows) against the general path,
and the aggregator's handling of large batches (slices, time-ordered pieces)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jobmetrics.job_rows
from jobmetrics import Aggregator
from jobmetrics.events import EndpointRegistry, EventBatch, normalize

fast = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])

T0 = 1_700_000_000_000  # epoch ms
STATES = ["IN_QUEUE", "IN_PROGRESS", "running", " COMPLETED ", "FAILED", "CANCELLED", "TIMED_OUT"]
ENDPOINTS = ["ep-a", "ep-b", "ep-c", "ep-d"]


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobmetrics.job_rows, "normalize_job_rows", lambda *args: None)


def assert_same_batch(a: EventBatch, b: EventBatch) -> None:
    for name in ("ts", "kind", "endpoint", "job", "state", "worker", "status"):
        got, want = getattr(a, name), getattr(b, name)
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def small_column(values: list[str], encoding: str, cuts: list[int]) -> pa.ChunkedArray:
    """``values`` as plain or dictionary strings, cut into chunks at ``cuts`` (each chunk its own
    dictionary, with an unused entry and the entries in another order)."""
    bounds = [0, *cuts, len(values)]
    chunks = []
    for lo, hi in itertools.pairwise(bounds):
        part = values[lo:hi]
        if encoding == "plain":
            chunks.append(pa.array(part, type=pa.string()))
        else:
            dictionary = sorted({*part, "unused"}, reverse=lo % 2 == 1)
            index = {v: i for i, v in enumerate(dictionary)}
            chunks.append(
                pa.DictionaryArray.from_arrays(
                    pa.array([index[v] for v in part], type=pa.int32()), pa.array(dictionary)
                )
            )
    return pa.chunked_array(chunks, type=chunks[0].type)


def chunked(array: pa.Array, cuts: list[int]) -> pa.ChunkedArray:
    bounds = [0, *cuts, len(array)]
    return pa.chunked_array([array.slice(lo, hi - lo) for lo, hi in itertools.pairwise(bounds)])


@st.composite
def job_tables(draw: Any) -> pa.Table:
    n = draw(st.integers(1, 60))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=3))) if n > 1 else []
    ts = draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n))
    ts_type = draw(st.sampled_from(["ms", pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us"), "ns"]))
    if ts_type == "ms":
        ts_arr = pa.array([T0 + t for t in ts], type=pa.int64())
    elif ts_type == "ns":
        ts_arr = pa.array([(T0 + t) * 1_000_000 + 999 for t in ts], type=pa.timestamp("ns"))
    else:
        ts_arr = pa.array([T0 // 1000 + t // 1000 for t in ts], type=ts_type)
    ids = draw(st.lists(st.integers(-5, 12), min_size=n, max_size=n))
    id_type = draw(st.sampled_from(["int64", "int32", "string", "large_string", "dictionary"]))
    if id_type in ("int64", "int32"):
        id_arr = pa.array(ids, type=getattr(pa, id_type)())
    else:
        text = [f"job-{i}" for i in ids]
        id_arr = pa.array(text, type=pa.large_string() if id_type == "large_string" else pa.string())
        if id_type == "dictionary":
            id_arr = id_arr.dictionary_encode()
    columns = {
        "ts": chunked(ts_arr, cuts),
        "endpoint": small_column(
            draw(st.lists(st.sampled_from(ENDPOINTS), min_size=n, max_size=n)),
            draw(st.sampled_from(["plain", "dictionary"])),
            cuts,
        ),
        "job_id": chunked(id_arr, cuts),
        "state": small_column(
            draw(st.lists(st.sampled_from(STATES), min_size=n, max_size=n)),
            draw(st.sampled_from(["plain", "dictionary"])),
            cuts,
        ),
    }
    kind = draw(st.sampled_from(["absent", "plain", "dictionary", "null"]))
    if kind == "null":
        columns["kind"] = pa.chunked_array([pa.nulls(n, pa.string())])
    elif kind != "absent":
        columns["kind"] = small_column([draw(st.sampled_from(["job", "JOB "]))] * n, kind, cuts)
    if draw(st.booleans()):
        workers = [f"w{i % 3}" if i % 2 else None for i in range(n)]
        columns["worker_id"] = pa.chunked_array([pa.array(workers)])
    return pa.table(columns)


@fast
@given(job_tables(), st.lists(st.sampled_from(ENDPOINTS), unique=True, max_size=3))
def test_same_batch_and_registry_as_the_general_path(table: pa.Table, known: list[str]) -> None:
    fast_registry, general_registry = EndpointRegistry(known), EndpointRegistry(known)
    cols = {name: table.column(name) for name in table.column_names}
    quick = jobmetrics.job_rows.normalize_job_rows(cols, table.num_rows, fast_registry)
    assert quick is not None  # every layout drawn is one the fast path handles
    with pytest.MonkeyPatch.context() as mp:
        general_path(mp)
        slow, rejected = normalize(table, general_registry)
    assert rejected.total == 0
    assert_same_batch(quick, slow)
    assert fast_registry.names() == general_registry.names()


@pytest.mark.parametrize(
    "change",
    [
        {"state": ["IN_QUEUE", "SLEEPING"]},  # unknown state
        {"state": ["IN_QUEUE", "IDLE"]},  # a worker state on a job row
        {"kind": ["job", "worker"]},  # not a job event
        {"kind": ["job", "parcel"]},  # unknown kind
        {"job_id": [1, None]},  # a null
        {"ts": [T0, 2**62]},  # overflows int64 microseconds
    ],
)
def test_other_batches_take_the_general_path(change: dict[str, list[Any]]) -> None:
    columns: dict[str, list[Any]] = {
        "ts": [T0, T0 + 1],
        "kind": ["job", "job"],
        "endpoint": ["a", "a"],
        "job_id": [1, 2],
        "state": ["IN_QUEUE", "IN_QUEUE"],
        "worker_id": ["w1", "w2"],
    }
    columns.update(change)
    table = pa.table(columns)
    cols = {name: table.column(name) for name in table.column_names}
    assert jobmetrics.job_rows.normalize_job_rows(cols, 2, EndpointRegistry()) is None
    registry = EndpointRegistry()
    batch, rejected = normalize(table, registry)
    assert len(batch) == 1 and rejected.total == 1  # the general path reports the bad row
    assert registry.names() == ["a"]


def test_unused_new_endpoints_are_not_registered() -> None:
    # dictionary order c, a, b, z; rows use b and z only, "a" is known already
    endpoint = pa.DictionaryArray.from_arrays(
        pa.array([3, 2, 3], type=pa.int8()), pa.array(["c", "a", "b", "z"])
    )
    table = pa.table({"ts": [T0] * 3, "endpoint": endpoint, "job_id": [1, 2, 3], "state": ["IN_QUEUE"] * 3})
    registry = EndpointRegistry(["a"])
    batch, _ = normalize(table, registry)
    assert registry.names() == ["a", "b", "z"]
    assert batch.endpoint.tolist() == [2, 1, 2]


# -- large batches in the aggregator -------------------------------------------------------------


def stream_table(n_jobs: int, seed: int) -> pa.Table:
    """Jobs over 10 minutes in event-time order with ~2 s disorder, some late and bad rows."""
    rng = np.random.default_rng(seed)
    start = np.sort(rng.integers(0, 600_000, n_jobs))
    rows = []
    for j, t in enumerate(start.tolist()):
        pick = t + int(rng.integers(0, 3_000))
        done = pick + int(rng.integers(0, 9_000))
        rows += [(t, j, "IN_QUEUE"), (pick, j, "IN_PROGRESS"), (done, j, "COMPLETED")]
    rows.sort()
    ts = np.array([r[0] for r in rows]) + rng.integers(-2_000, 2_000, len(rows))
    ts[::97] -= 60_000  # late beyond any lateness used here
    states = [r[2] for r in rows]
    for i in range(5, len(states), 301):
        states[i] = "LOST"  # rejected rows
    return pa.table(
        {
            "ts": pa.array(T0 + ts, type=pa.int64()),
            "endpoint": pa.array([f"ep{r[1] % 3}" for r in rows]).dictionary_encode(),
            "job_id": pa.array([r[1] for r in rows], type=pa.int64()),
            "state": pa.array(states).dictionary_encode(),
        }
    )


def figures(agg: Aggregator) -> dict[str, Any]:
    return {
        "snapshot": agg.snapshot().to_pylist(),
        "totals": {ep: dict(agg.totals(ep)) for ep in agg.endpoints()},
        "rejected": (agg.rejections.total, [(r.batch, r.row, r.reason) for r in agg.rejections.samples]),
    }


@pytest.mark.parametrize("lateness", ["5s", None])
def test_large_batches_are_sliced_without_changing_anything(
    monkeypatch: pytest.MonkeyPatch, lateness: str | None
) -> None:
    table = stream_table(3_000, seed=1)

    def run(slice_rows: int) -> dict[str, Any]:
        monkeypatch.setattr("jobmetrics.aggregator._SLICE_ROWS", slice_rows)
        agg = Aggregator(window="60s", allowed_lateness=lateness)
        agg.ingest(table.slice(0, 5_000))
        agg.ingest(table.slice(5_000))
        agg.flush()
        return figures(agg)

    whole = run(1 << 30)
    assert whole["rejected"][0] > 0 and any(row >= 1_000 for _, row, _ in whole["rejected"][1])
    for rows in (1_000, 777, 64):
        assert run(rows) == whole, rows


@st.composite
def time_sorted_runs(draw: Any) -> list[EventBatch]:
    runs = []
    low = 0
    for _ in range(draw(st.integers(1, 5))):
        ts = sorted(draw(st.lists(st.integers(0, 12), min_size=1, max_size=8)))
        if draw(st.booleans()):  # most runs follow on (sorted input cut into batches)
            ts = [low + t for t in ts]
            low = ts[-1] + draw(st.integers(0, 1))
        n = len(ts)
        runs.append(
            EventBatch(
                ts=np.array(ts),
                kind=np.zeros(n),
                endpoint=np.zeros(n),
                job=np.arange(len(runs) * 100, len(runs) * 100 + n),
                state=np.ones(n),
                worker=np.zeros(n),
                status=np.full(n, -1),
            )
        )
    return runs


@fast
@given(time_sorted_runs())
def test_runs_become_pieces_of_the_stable_merge(runs: list[EventBatch]) -> None:
    from jobmetrics.aggregator import _in_time_order

    pieces = _in_time_order(runs)
    merged = EventBatch.concat(runs)
    order = np.argsort(merged.ts, kind="stable")
    got = EventBatch.concat(pieces)
    np.testing.assert_array_equal(got.ts, merged.ts[order])
    np.testing.assert_array_equal(got.job, merged.job[order])
    for a, b in itertools.pairwise(pieces):
        assert a.ts[-1] < b.ts[0]  # no timestamp spans two pieces


def test_an_error_in_a_large_batch_applies_none_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # worker events only near the end and no worker_id column: the whole batch is refused, as
    # it is when the batch is not sliced
    monkeypatch.setattr("jobmetrics.aggregator._SLICE_ROWS", 10)
    n = 50
    table = pa.table(
        {
            "ts": pa.array([T0 + i for i in range(n)], type=pa.int64()),
            "kind": ["job"] * (n - 1) + ["worker"],
            "endpoint": ["ep"] * n,
            "job_id": list(range(n)),
            "state": ["IN_QUEUE"] * (n - 1) + ["IDLE"],
        }
    )
    agg = Aggregator(window="60s")
    with pytest.raises(ValueError, match="worker_id"):
        agg.ingest(table)
    agg.flush()
    assert agg.endpoints() == [] and agg.jobs_in_memory() == 0


@pytest.mark.parametrize(
    ("columns", "sliced"),
    [
        ({"kind": pa.array(["job", "JOB "]).dictionary_encode()}, True),
        ({}, True),
        ({"kind": pa.nulls(2, pa.string())}, True),
        ({"kind": pa.array(["job", "worker"]).dictionary_encode()}, False),
        ({"kind": pa.array(["job", "job"])}, False),  # plain text is not scanned
        ({"kind": ["job", "webhook"], "worker_id": ["w", "w"], "status_code": [200, 500]}, True),
        ({"kind": ["job", "webhook"], "worker_id": ["w", "w"], "status_code": ["200", "x"]}, False),
    ],
)
def test_which_batches_are_sliced(columns: dict[str, Any], sliced: bool) -> None:
    from jobmetrics.aggregator import _sliceable

    base: dict[str, Any] = {
        "ts": [T0, T0],
        "endpoint": ["a", "a"],
        "job_id": [1, 2],
        "state": ["IN_QUEUE"] * 2,
    }
    assert _sliceable(pa.table({**base, **columns})) is sliced
