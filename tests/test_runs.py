"""Runs of equal timestamps: which ones the kernel reorders, and that long runs stay exact.

:func:`jobmetrics._kernels.runs.repeated_runs` must report every run that holds two events of
one job or one worker (else the result would depend on arrival order); the engine must then agree
with the reference however long the run and wherever a batch starts.
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from reference import Event, Params, run
from streams import T0, events_to_table
from test_lifecycle import aggregate_table, assert_matches

JOB, WORKER, WEBHOOK = 0, 1, 2
NO_TIME = np.iinfo(np.int64).min


def find(ts: list[int], kind: list[int], ep: list[int], ids: list[int], start: int = 0) -> list[int]:
    from jobmetrics._kernels.runs import repeated_runs
    from jobmetrics._kernels.table import entity_key

    ids_arr = np.asarray(ids, dtype=np.int64)
    is_worker = np.asarray(kind) == WORKER
    job_keys = np.full(len(ts), -7, dtype=np.int64)
    found = repeated_runs(
        np.asarray(ts, dtype=np.int64),
        np.asarray(kind, dtype=np.int8),
        np.asarray(ep, dtype=np.int32),
        np.where(is_worker, 0, ids_arr),
        np.where(is_worker, ids_arr, 0),
        start,
        np.zeros(64, dtype=np.int64),
        np.full(64, NO_TIME, dtype=np.int64),
        job_keys,
    ).tolist()
    # on the way, the table key of every job event (0 for the others) from ``start`` on
    want = [entity_key(i, e) if k == JOB else 0 for k, e, i in zip(kind, ep, ids, strict=True)]
    assert job_keys[start:].tolist() == want[start:]
    return found


def oracle(ts: list[int], kind: list[int], ep: list[int], ids: list[int], start: int = 0) -> list[int]:
    """Start (from ``start`` on) of each run of equal times holding one (kind, endpoint, id) twice."""
    out = []
    i = start
    while i < len(ts):
        end = i
        while end < len(ts) and ts[end] == ts[i]:
            end += 1
        seen = [(kind[j], ep[j], ids[j]) for j in range(i, end) if kind[j] != WEBHOOK]
        if len(seen) != len(set(seen)):
            out.append(i)
        i = end
    return out


events = st.lists(
    st.tuples(
        st.integers(0, 6), st.sampled_from([JOB, JOB, WORKER, WEBHOOK]), st.integers(0, 2), st.integers(1, 4)
    ),
    max_size=40,
)


@given(events, st.data())
def test_every_run_with_a_repeat_is_found(rows: list[tuple[int, int, int, int]], data: st.DataObject) -> None:
    rows.sort(key=lambda row: row[0])
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    start = data.draw(st.integers(0, len(rows)))
    assert find(*columns, start=start) == oracle(*columns, start=start)


def test_a_run_too_long_for_the_scratch_set_is_reported() -> None:
    # 64 scratch slots: 200 distinct jobs at one time cannot all be checked; the run is reported
    # (reordering it is harmless), and runs around it are judged exactly.
    n = 200
    ts = [0, 0] + [5] * n + [9, 9]
    ids = [1, 2, *range(1, n + 1), 7, 7]
    kind = [JOB] * len(ts)
    ep = [0] * len(ts)
    assert find(ts, kind, ep, ids) == [2, n + 2]


def test_a_repeat_after_many_jobs_in_one_run() -> None:
    ts = [3] * 41
    ids = [*range(1, 41), 17]
    assert find(ts, [JOB] * 41, [0] * 41, ids) == [0]
    assert find(ts, [JOB] * 41, [1] * 40 + [0], ids) == []  # job 17 of another endpoint


def test_long_runs_match_the_reference() -> None:
    # 5 000 jobs picked up in the millisecond they were queued, each pair delivered in the wrong
    # order and the pairs shuffled: one run of 10 000 events, far beyond the kernel's scratch set;
    # then the same jobs finish together in a second long run.
    rng = random.Random(5)
    queued = []
    finished = []
    for j in range(5_000):
        job = f"j{j}"
        queued += [Event(T0 + 1_000, "ep", job, "IN_PROGRESS"), Event(T0 + 1_000, "ep", job, "IN_QUEUE")]
        finished.append(Event(T0 + 9_000, "ep", job, rng.choice(["COMPLETED", "FAILED"])))
    rng.shuffle(queued)
    stream = queued + finished
    params = Params()
    agg = aggregate_table(events_to_table(stream), params)
    ref = run(stream, params)
    assert_matches(agg, ref)
    assert agg.totals("ep")["invalid_transitions"] == 0
    assert agg.histogram("ep", "delay_time").total_count == 5_000
