"""``record`` from several threads (and asyncio tasks) loses and interleaves nothing.

The large test feeds 8 threads x ``JOBMETRICS_THREAD_EVENTS`` events (default 1 000 000 each) and
compares counts and the whole snapshot with one thread feeding the same events. Set the variable
lower for a quick run (e.g. ``JOBMETRICS_THREAD_EVENTS=100000``).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable

import pyarrow.compute as pc
import pytest

from jobmetrics import Aggregator

T0 = 1_700_000_000_000  # ms
ENDPOINTS = ("ep0", "ep1", "ep2", "ep3")
THREAD_EVENTS = int(os.environ.get("JOBMETRICS_THREAD_EVENTS", "1000000"))


def test_threads_record_exactly_what_one_thread_records() -> None:
    n_threads, per_thread = 4, 20_000

    def events(k: int) -> list[tuple[int, str, str]]:
        out = []
        for i in range(per_thread // 2):
            job = f"t{k}-j{i}"
            out.append((T0 + i, job, "IN_QUEUE"))
            out.append((T0 + i + 1, job, "IN_PROGRESS"))
        return out

    def feed(agg: Aggregator, k: int, barrier: threading.Barrier | None) -> None:
        if barrier is not None:
            barrier.wait()
        for ts, job, state in events(k):
            agg.record(ts=ts, endpoint=f"ep{k % 2}", job_id=job, state=state)

    shared = Aggregator(window="60s", allowed_lateness="1h", staging_size=1000)
    barrier = threading.Barrier(n_threads)
    threads = [threading.Thread(target=feed, args=(shared, k, barrier)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.flush()

    single = Aggregator(window="60s", allowed_lateness="1h", staging_size=1000)
    for k in range(n_threads):
        feed(single, k, None)
    single.flush()

    for endpoint in ("ep0", "ep1"):
        got, want = shared.totals(endpoint), single.totals(endpoint)
        assert got == want
        assert got["requests"] == n_threads // 2 * per_thread // 2
        assert got["in_progress"] == got["requests"]
        assert got["invalid_transitions"] == got["orphans"] == got["duplicates"] == 0
        assert shared.histogram(endpoint, "delay_time") == single.histogram(endpoint, "delay_time")


# -- a job stream per thread, generated on the fly (no per-event objects kept) --------------------

JOBS_PER_BLOCK = 16_000  # jobs a thread records between two barriers: 48 s of event time


def job_events(k: int, first_job: int, last_job: int) -> list[tuple[int, str, int, str]]:
    """Events ``(ts_ms, endpoint, job_id, state)`` of thread ``k``'s jobs ``first_job..last_job-1``.

    Job ``j`` enters the queue at ``T0 + 3 j + k`` ms, starts after 1-2000 ms and finishes after
    1-5000 ms more (every tenth fails); its three events are emitted together, so a thread's own
    events are out of time order by up to 7 s. Job ids are ints, unique across threads."""
    out = []
    for j in range(first_job, last_job):
        queued = T0 + 3 * j + k
        started = queued + 1 + (j * 7919 + k * 31) % 2000
        ended = started + 1 + (j * 104_729 + k * 17) % 5000
        endpoint = ENDPOINTS[(j + k) % len(ENDPOINTS)]
        job = k * 100_000_000 + j
        out.append((queued, endpoint, job, "IN_QUEUE"))
        out.append((started, endpoint, job, "IN_PROGRESS"))
        out.append((ended, endpoint, job, "FAILED" if j % 10 == 0 else "COMPLETED"))
    return out


def record_block(agg: Aggregator, k: int, block: int, n_jobs: int) -> None:
    record = agg.record
    first = block * JOBS_PER_BLOCK
    for ts, endpoint, job, state in job_events(k, first, min(first + JOBS_PER_BLOCK, n_jobs)):
        record(ts=ts, endpoint=endpoint, job_id=job, state=state)


def run_threads(n_threads: int, target: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(k: int) -> None:
        try:
            target(k)
        except BaseException as exc:  # re-raised in the test's thread below
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_eight_threads_give_exactly_the_result_of_one() -> None:
    """8 threads x THREAD_EVENTS events with a finite lateness (windows close while they record)
    give the counts and snapshot of one thread feeding the same events.

    Threads meet at a barrier every JOBS_PER_BLOCK jobs, so no thread runs more than one block
    (48 s of event time) ahead of another: the 2-minute lateness covers any interleaving within a
    block, and nothing is late. Inside a block the threads interleave freely."""
    n_threads = 8
    n_jobs = THREAD_EVENTS // 3
    n_blocks = -(-n_jobs // JOBS_PER_BLOCK)

    def options() -> dict[str, object]:
        return {"window": "60s", "allowed_lateness": "2m", "retention": "5m", "job_capacity": 1 << 20}

    shared = Aggregator(**options())  # type: ignore[arg-type]
    barrier = threading.Barrier(n_threads)

    def feed(k: int) -> None:
        for block in range(n_blocks):
            barrier.wait()
            record_block(shared, k, block, n_jobs)

    run_threads(n_threads, feed)
    shared.flush()

    single = Aggregator(**options())  # type: ignore[arg-type]
    for block in range(n_blocks):
        for k in range(n_threads):
            record_block(single, k, block, n_jobs)
    single.flush()

    assert sorted(shared.endpoints()) == sorted(single.endpoints()) == list(ENDPOINTS)
    requests = 0
    for endpoint in ENDPOINTS:
        got, want = shared.totals(endpoint), single.totals(endpoint)
        assert got == want
        assert got["late_events"] == got["duplicates"] == got["invalid_transitions"] == 0
        requests += got["requests"]
    assert requests == n_threads * n_jobs
    snap, ref = shared.snapshot(), single.snapshot()
    assert snap.num_rows >= len(ENDPOINTS) * (1 + 3 * n_jobs // 60_000)  # a row per endpoint and minute
    assert snap.equals(ref)
    assert pc.sum(snap["completed"]).as_py() + pc.sum(snap["failed"]).as_py() == requests
    assert pc.sum(snap["execution_time_count"]).as_py() == requests


def test_free_interleaving_with_lateness_none_is_exact() -> None:
    """No barrier at all: with ``allowed_lateness=None`` any interleaving of the threads gives the
    result of one thread, since every event is held until ``flush``."""
    n_threads, n_jobs = 8, 6_000

    def feed(agg: Aggregator, k: int) -> None:
        for ts, endpoint, job, state in job_events(k, 0, n_jobs):
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state=state)

    shared = Aggregator(window="10s", allowed_lateness=None, staging_size=500)
    run_threads(n_threads, lambda k: feed(shared, k))
    shared.flush()
    single = Aggregator(window="10s", allowed_lateness=None, staging_size=500)
    for k in range(n_threads):
        feed(single, k)
    single.flush()
    assert shared.snapshot().equals(single.snapshot())
    assert sum(shared.totals(ep)["requests"] for ep in ENDPOINTS) == n_threads * n_jobs


def test_queries_while_threads_record() -> None:
    """Readers query (inside ``consistent()``) while writers record: every view is coherent and
    the end result is still exact."""
    n_threads, n_jobs = 4, 12_000
    shared = Aggregator(window="10s", allowed_lateness=None, staging_size=700)
    done = threading.Event()
    views: list[int] = []

    def read() -> None:
        while not done.is_set():
            with shared.consistent():
                names = shared.endpoints()
                totals = {ep: shared.totals(ep) for ep in names}
                table = shared.snapshot()
                held = shared.held_events()
            requests = sum(t["requests"] for t in totals.values())
            assert requests == pc.sum(table["requests"]).as_py() or (requests == 0 and table.num_rows == 0)
            assert held >= 0
            views.append(requests)

    def write(k: int) -> None:
        for ts, endpoint, job, state in job_events(k, 0, n_jobs):
            shared.record(ts=ts, endpoint=endpoint, job_id=job, state=state)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        run_threads(n_threads, write)
    finally:
        done.set()
        reader.join()
    shared.flush()
    assert views  # the reader ran
    single = Aggregator(window="10s", allowed_lateness=None, staging_size=700)
    for k in range(n_threads):
        for ts, endpoint, job, state in job_events(k, 0, n_jobs):
            single.record(ts=ts, endpoint=endpoint, job_id=job, state=state)
    single.flush()
    assert shared.snapshot().equals(single.snapshot())


def test_record_from_asyncio_tasks_and_a_thread() -> None:
    """Coroutines on an event loop and a plain thread record into one aggregator at once."""
    n_tasks, n_jobs = 6, 3_000
    agg = Aggregator(window="10s", allowed_lateness=None, staging_size=256)

    async def task(k: int) -> None:
        for i, (ts, endpoint, job, state) in enumerate(job_events(k, 0, n_jobs)):
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state=state)
            if i % 100 == 0:
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(k) for k in range(n_tasks)))

    def plain_thread() -> None:
        for ts, endpoint, job, state in job_events(n_tasks, 0, n_jobs):
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state=state)

    thread = threading.Thread(target=plain_thread)
    thread.start()
    asyncio.run(main())
    thread.join()
    agg.flush()

    single = Aggregator(window="10s", allowed_lateness=None, staging_size=256)
    for k in range(n_tasks + 1):
        for ts, endpoint, job, state in job_events(k, 0, n_jobs):
            single.record(ts=ts, endpoint=endpoint, job_id=job, state=state)
    single.flush()
    assert agg.snapshot().equals(single.snapshot())


def test_record_does_not_wait_while_another_thread_holds_the_aggregator() -> None:
    """A full stage is drained only if the lock is free: while another thread holds it, ``record``
    keeps staging (up to 8 x staging_size) instead of waiting; the events are applied later."""
    agg = Aggregator(window="10s", allowed_lateness=None, staging_size=100)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with agg.consistent():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    try:
        for ts, endpoint, job, state in job_events(0, 0, 200):  # 600 events: 6 x staging_size
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state=state)
        assert len(agg._stage) == 600 * 7  # nothing drained: record never waited for the lock
    finally:
        release.set()
        holder.join()
    agg.flush()
    assert sum(agg.totals(ep)["requests"] for ep in agg.endpoints()) == 200


@pytest.mark.parametrize("staging_size", [1, 7, 4096])
def test_staging_size_does_not_change_the_result(staging_size: int) -> None:
    def run(size: int) -> Aggregator:
        agg = Aggregator(window="10s", allowed_lateness="10s", staging_size=size)
        for ts, endpoint, job, state in job_events(3, 0, 700):
            agg.record(ts=ts, endpoint=endpoint, job_id=job, state=state)
        agg.flush()
        return agg

    assert run(staging_size).snapshot().equals(run(100_000).snapshot())
