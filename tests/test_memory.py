"""Memory of the lifecycle engine: bytes per job held, and memory that stays flat on a long stream.

The job table is an open-addressing table of 32-byte records (docs/lifecycle.md, "Memory") kept at
most 3/4 full and doubled when an event arrives while it is at that limit. Bytes per job held are
therefore lowest just before a doubling (32 / 0.75 ≈ 43 B) and highest just after one
(32 / 0.375 ≈ 85 B): the test below measures both points at several table sizes.
"""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from jobmetrics import Aggregator
from streams import BASE_MS, synthetic_events

#: The goal for the job table, in bytes per job held (in flight, or finished within retention).
MAX_BYTES_PER_JOB = 100

N_ENDPOINTS = 4


def in_flight_events(n_jobs: int, *, picked_up: int) -> pa.Table:
    """``n_jobs`` jobs that all enter the queue, then ``picked_up`` of them start running; none
    finishes. One event per millisecond, integer ids, ``N_ENDPOINTS`` endpoints round-robin."""
    jobs = np.arange(n_jobs, dtype=np.int64)
    job = np.concatenate([jobs, jobs[:picked_up]])
    state = np.repeat(["IN_QUEUE", "IN_PROGRESS"], [n_jobs, picked_up])
    return pa.table(
        {
            "ts": BASE_MS + np.arange(job.size, dtype=np.int64),
            "endpoint": pa.array([f"ep-{e}" for e in range(N_ENDPOINTS)]).take(pa.array(job % N_ENDPOINTS)),
            "job_id": job,
            "state": pa.array(state),
        }
    )


def _limit(slots: int) -> int:
    """Jobs a table of ``slots`` slots holds before the next event doubles it."""
    return slots * 3 // 4


# (jobs, events after the last new job). With 0 extra events the table sits at its load limit
# (best case); with 1 the next event has doubled it (worst case: just after growth).
_SIZES = [
    pytest.param(_limit(2**k), extra, id=f"{_limit(2**k)}-jobs-{'after' if extra else 'before'}-growth")
    for k in (14, 17, 20)
    for extra in (0, 1)
] + [pytest.param(300_000, 1, id="300000-jobs")]


@pytest.mark.parametrize(("n_jobs", "extra"), _SIZES)
@pytest.mark.parametrize("preset", [False, True], ids=["grown", "job_capacity"])
def test_bytes_per_in_flight_job(n_jobs: int, extra: int, preset: bool) -> None:
    """≤ 100 B per in-flight job, whether the table grew to its size or was sized up front with
    ``job_capacity``; the worst case is just after a doubling (3/8 full: 85.3 B per job)."""
    capacity = {"job_capacity": n_jobs} if preset else {}
    agg = Aggregator(window="60s", allowed_lateness="0s", **capacity)
    agg.ingest(in_flight_events(n_jobs, picked_up=extra))
    agg.flush()

    assert agg.jobs_in_memory() == n_jobs
    in_queue = sum(agg.totals(ep)["in_queue"] for ep in agg.endpoints())
    in_progress = sum(agg.totals(ep)["in_progress"] for ep in agg.endpoints())
    assert (in_queue, in_progress) == (n_jobs - extra, extra)
    per_job = agg.memory_bytes()["job_table"] / agg.jobs_in_memory()
    assert per_job <= MAX_BYTES_PER_JOB, f"{per_job:.1f} B per job with {n_jobs} jobs"


def test_worst_case_is_just_after_growth() -> None:
    """At the load limit a table of 2**k slots holds 3/4 of them; one more event doubles it."""
    n = _limit(2**15)
    before, after = Aggregator(allowed_lateness="0s"), Aggregator(allowed_lateness="0s")
    before.ingest(in_flight_events(n, picked_up=0))
    after.ingest(in_flight_events(n, picked_up=1))
    before.flush()
    after.flush()
    per_job_before = before.memory_bytes()["job_table"] / n
    per_job_after = after.memory_bytes()["job_table"] / n
    assert per_job_before == pytest.approx(32 / 0.75, rel=1e-3)
    assert per_job_after == pytest.approx(32 / 0.375, rel=1e-3)


# -- a long stream whose jobs all finish ---------------------------------------------------------

BATCHES = 20
JOBS_PER_BATCH = 100_000
RATE_PER_S = 500.0  # 100 k jobs every 200 s
RETENTION_MS = 10 * 60_000
SWEEP_MS = 60_000
WINDOW_MS = 60_000


@pytest.fixture(scope="module")
def long_stream() -> pa.Table:
    """2 M jobs over about 67 minutes, each finishing within seconds (rarely a minute or two)."""
    return synthetic_events(
        BATCHES * JOBS_PER_BATCH, seed=11, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, job_ids="int"
    )


def _batches(table: pa.Table) -> list[pa.Table]:
    """Consecutive time ranges of about ``JOBS_PER_BATCH`` jobs each (the table is sorted by ts)."""
    bounds = np.linspace(0, table.num_rows, BATCHES + 1).astype(int)
    return [table.slice(a, b - a) for a, b in itertools.pairwise(bounds)]


def test_memory_flat_on_a_long_stream(long_stream: pa.Table) -> None:
    """With retention 10 min and a sweep every minute, the job table (and the queue of finished jobs
    waiting for their retention to pass, where the engine keeps one) stops growing once the stream
    is longer than the retention and holds exactly the jobs the retention rules keep, while the
    totals keep counting every job fed."""
    agg = Aggregator(window="60s", allowed_lateness="5s", retention="10m", sweep_interval="1m")
    ts = long_stream.column("ts").to_numpy()
    job = long_stream.column("job_id").to_numpy()
    # every job's first row and last event time
    order = np.argsort(job, kind="stable")
    starts = np.flatnonzero(np.r_[True, job[order][1:] != job[order][:-1]])
    job_first_row = order[starts]
    job_last = np.maximum.reduceat(ts[order], starts)

    jobs_held, table_bytes, queue_bytes = [], [], []
    fed = 0
    for batch in _batches(long_stream):
        agg.ingest(batch)
        agg.flush()
        fed += batch.num_rows
        now = int(ts[fed - 1])
        held = agg.jobs_in_memory()
        seen = job_first_row < fed
        # Kept: every job whose last event is within the retention. At most: also those a sweep
        # has not yet reached (the last sweep is at most one interval ago).
        must_keep = int(np.count_nonzero(seen & (job_last > now - RETENTION_MS)))
        may_keep = int(np.count_nonzero(seen & (job_last > now - RETENTION_MS - SWEEP_MS)))
        assert must_keep <= held <= may_keep

        totals = [agg.totals(ep) for ep in agg.endpoints()]
        fed_table = long_stream.slice(0, fed)
        states = fed_table.column("state")
        assert sum(t["requests"] for t in totals) == int(np.count_nonzero(seen))
        assert sum(t["completed"] for t in totals) == pc.sum(pc.equal(states, "COMPLETED")).as_py()
        assert sum(t["failed"] for t in totals) == pc.sum(pc.equal(states, "FAILED")).as_py()
        assert sum(t["duplicates"] + t["invalid_transitions"] + t["orphans"] for t in totals) == 0

        memory = agg.memory_bytes()
        jobs_held.append(held)
        table_bytes.append(memory["job_table"])
        queue_bytes.append(memory.get("finished_queue", 0))

    # Jobs held: bounded by the jobs of about one retention period (≈ 10 min x 500 jobs/s = 300 k,
    # plus one sweep interval), although 2 M jobs went through.
    retention_jobs = int((RETENTION_MS + SWEEP_MS) / 1000 * RATE_PER_S)
    assert max(jobs_held) <= retention_jobs * 1.1
    # The job table grows while the first retention period fills (10 min = 3 batches), then no
    # more: 16 batches at the same size.
    assert len(set(table_bytes[4:])) == 1, table_bytes
    assert len(set(queue_bytes[4:])) == 1, queue_bytes
    assert table_bytes[-1] <= 2 * retention_jobs / 0.75 * 32


def test_closed_rows_grow_with_windows_not_jobs() -> None:
    """Ten minutes at 100 and at 1000 jobs/s: the same closed rows (one per endpoint and window),
    and closed-row memory far from 10x: a row's histograms are sparse over a bounded set of
    buckets, so its size saturates instead of growing with the jobs it counted."""
    start = (BASE_MS // WINDOW_MS + 1) * WINDOW_MS
    cut = start + 10 * WINDOW_MS - 1_000  # the last event falls in the 10th window
    closed, final_rows = [], []
    for rate in (100, 1000):
        table = synthetic_events(
            rate * 600, seed=5, n_endpoints=N_ENDPOINTS, rate_per_s=rate, start_ms=start, job_ids="int"
        )
        table = table.filter(pc.less(table.column("ts"), cut))
        agg = Aggregator(window="60s", allowed_lateness="5s", retention="10m", sweep_interval="1m")
        agg.ingest(table)
        agg.flush()
        assert (
            sum(agg.totals(ep)["requests"] for ep in agg.endpoints())
            == pc.count_distinct(table.column("job_id")).as_py()
        )
        final_rows.append(pc.sum(agg.snapshot().column("final")).as_py())
        closed.append(agg.memory_bytes()["closed_rows"])
    assert final_rows == [N_ENDPOINTS * 9, N_ENDPOINTS * 9]  # windows 1-9 closed, the 10th open
    assert closed[1] < 2 * closed[0], closed


def test_finished_queue_keeps_its_order_when_it_grows() -> None:
    from jobmetrics._kernels import layout as L
    from jobmetrics.engine import Engine

    agg = Aggregator(job_capacity=16)
    engine: Engine = agg._engine
    size = engine.fifo.shape[0]
    for head in (0, 3, size - 1):  # the ring starts at head and wraps
        engine.st[L.ST_FIFO_HEAD] = head
        engine.st[L.ST_FIFO_TAIL] = head + size
        for k in range(size):
            engine.fifo[(head + k) % size] = (k + 1, 100 + k)
        old_size = engine.fifo.shape[0]
        engine._grow_fifo()
        assert engine.fifo.shape[0] == 2 * old_size
        assert engine.st[L.ST_FIFO_HEAD] == 0 and engine.st[L.ST_FIFO_TAIL] == size
        assert engine.fifo[:size, 0].tolist() == list(range(1, size + 1))
        engine.fifo = np.zeros((old_size, 2), dtype=np.int64)


@pytest.mark.parametrize("factor", [2, 4])
def test_rehash_builds_the_table_inserting_in_slot_order_would(factor: int) -> None:
    """The growth kernel gives exactly the table ``table_insert_row`` builds from the old table's
    entries in slot order (wrapped probe chains included), and every key is found in it."""
    from jobmetrics._kernels.table import home_slot, table_bits, table_find, table_insert_row, table_rehash

    rng = np.random.default_rng(4)
    old = np.zeros((1 << 12, 4), dtype=np.int64)
    bits = table_bits(old.shape[0])
    keys = np.unique(rng.integers(1, 2**63 - 1, size=old.shape[0] * 4, dtype=np.int64))
    at_end = [k for k in keys if home_slot(k, bits) == old.shape[0] - 1][:3]
    rest = [k for k in keys[: old.shape[0] * 3 // 4 - 3] if k not in at_end]
    for k in [*at_end, *rest]:  # three keys homed in the last slot: their chain wraps to slot 0
        table_insert_row(old, np.array([k, k % 97, k % 89, 7], dtype=np.int64))
    assert len(at_end) == 3 and old[0, 0] in at_end and old[1, 0] in at_end
    new = np.zeros((old.shape[0] * factor, 4), dtype=np.int64)
    table_rehash(old, new)
    expected = np.zeros_like(new)
    for s in np.flatnonzero(old[:, 0]):
        table_insert_row(expected, old[s].copy())
    assert np.array_equal(new, expected)
    bits = table_bits(new.shape[0])
    for row in old[old[:, 0] != 0]:
        assert np.array_equal(new[table_find(new, row[0], bits)], row)
