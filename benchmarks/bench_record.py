"""Event-at-a-time recording: ``Aggregator.record`` against ``prometheus_client.Histogram.observe``.

Group ``record``: 200 k job events (about 66 k jobs over ten endpoints, uuid-like ids) passed one
call at a time as a live integration would, amortised over the staging flushes (every 16 384
events the staged events go through the same kernel as ``ingest``) and a final ``flush()``;
against one ``Histogram.observe`` per value on a registry of its own. Time per event is the
round's time divided by ``extra_info["events"]``.

Group ``record-threads``: the same events recorded by 2, 4 or 8 threads into one aggregator (each
job's events in one thread, in order); the round's time is the wall time until every thread is
done and ``flush()`` returned, so events/s is the total throughput. Threads meet at a barrier
every 2 s of event time (within the 5 s lateness) as threads
stamping events with the current time would be: nothing is late and the totals are checked.
Baseline: the same threads calling ``Histogram.observe`` on one shared child.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from prometheus_client import CollectorRegistry, Histogram

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from jobmetrics import Aggregator
from streams import synthetic_events

N_EVENTS = 200_000
N_EVENTS_DISABLED = 5_000
N_ENDPOINTS = 10
RATE_PER_S = 1000.0
ROUNDS = 9

Row = tuple[int, str, str, str]


@pytest.fixture(scope="module")
def events(request: pytest.FixtureRequest) -> list[Row]:
    """``(ts, endpoint, job_id, state)`` of the first ``N_EVENTS`` events of a job log."""
    n = N_EVENTS_DISABLED if request.config.getoption("benchmark_disable") else N_EVENTS
    table = synthetic_events(
        n // 3 + 100, seed=9, n_endpoints=N_ENDPOINTS, rate_per_s=RATE_PER_S, job_ids="uuid"
    )
    table = table.slice(0, n)
    columns = [table.column(c).to_pylist() for c in ("ts", "endpoint", "job_id", "state")]
    return list(zip(*columns, strict=True))


def expected_totals(events: list[Row]) -> dict[str, int]:
    """Requests, completed and failed over all endpoints, read off the rows (a legal stream)."""
    table = pa.table({"job_id": [e[2] for e in events], "state": [e[3] for e in events]})
    state = table.column("state")
    return {
        "requests": pc.count_distinct(table.column("job_id")).as_py(),
        "completed": pc.sum(pc.equal(state, "COMPLETED")).as_py(),
        "failed": pc.sum(pc.equal(state, "FAILED")).as_py(),
    }


def record_all(agg: Aggregator, events: list[Row]) -> Aggregator:
    record = agg.record
    for ts, endpoint, job_id, state in events:
        record(ts=ts, endpoint=endpoint, job_id=job_id, state=state)
    agg.flush()
    return agg


def new_aggregator() -> Aggregator:
    return Aggregator(window="60s", allowed_lateness="5s")


def check_record(agg: Aggregator, events: list[Row]) -> None:
    totals = [agg.totals(ep) for ep in agg.endpoints()]
    got = {name: sum(t[name] for t in totals) for name in ("requests", "completed", "failed")}
    assert got == expected_totals(events)
    assert (
        sum(t["duplicates"] + t["invalid_transitions"] + t["orphans"] + t["late_events"] for t in totals) == 0
    )


def test_record(benchmark: Any, events: list[Row]) -> None:
    """One ``record(ts=..., endpoint=..., job_id=..., state=...)`` per event, then ``flush()``."""
    benchmark.group = "record"
    benchmark.extra_info["events"] = len(events)
    check_record(record_all(new_aggregator(), events), events)  # warm-up

    agg = benchmark.pedantic(record_all, setup=lambda: ((new_aggregator(), events), {}), rounds=ROUNDS)
    check_record(agg, events)


def observe_all(histogram: Histogram, values: list[float]) -> Histogram:
    observe = histogram.observe
    for v in values:
        observe(v)
    return histogram


def new_histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("job_execution_seconds", "Execution time", ["endpoint"], registry=registry), registry


def test_prometheus_observe(benchmark: Any, events: list[Row]) -> None:
    """The baseline: one ``Histogram.observe`` per value (execution times in seconds)."""
    benchmark.group = "record"
    benchmark.extra_info["events"] = len(events)
    values = np.random.default_rng(9).lognormal(np.log(2.5), 1.0, len(events)).tolist()
    registry = CollectorRegistry()

    def setup() -> tuple[tuple[Histogram, list[float]], dict[str, Any]]:
        nonlocal registry
        histogram, registry = new_histogram()
        return (histogram.labels(endpoint="ep-00"), values), {}

    observe_all(*setup()[0])  # warm-up
    benchmark.pedantic(observe_all, setup=setup, rounds=ROUNDS)

    assert registry.get_sample_value("job_execution_seconds_count", {"endpoint": "ep-00"}) == len(values)
    total = registry.get_sample_value("job_execution_seconds_sum", {"endpoint": "ep-00"})
    assert total == pytest.approx(sum(values))


# -- several threads -----------------------------------------------------------------------------

BLOCK_MS = 2_000  # event time between two barriers (within the 5 s lateness)


def shares(events: list[Row], n_threads: int) -> list[list[list[Row]]]:
    """``shares[k][b]``: thread ``k``'s events of block ``b`` (``BLOCK_MS`` of event time; a job's
    events all go to one thread, in stream order).

    Each thread gets fresh copies of its rows (every tuple and value), allocated in the order it
    reads them, like the single-thread list (``to_pylist`` gives every row its own objects):
    reading every n-th row of that list instead would cost cache misses on the scattered objects
    (0.3-0.4 µs per event on this machine) that have nothing to do with recording."""
    first = events[0][0] // BLOCK_MS
    n_blocks = events[-1][0] // BLOCK_MS - first + 1
    rows: list[list[Row]] = [[] for _ in range(n_threads)]
    owner: dict[str, int] = {}
    for row in events:
        rows[owner.setdefault(row[2], len(owner) % n_threads)].append(row)
    out: list[list[list[Row]]] = [[[] for _ in range(n_blocks)] for _ in range(n_threads)]
    for k in range(n_threads):
        for ts, endpoint, job_id, state in rows[k]:
            fresh = (
                int(str(ts)),
                endpoint.encode().decode(),
                job_id.encode().decode(),
                state.encode().decode(),
            )
            out[k][ts // BLOCK_MS - first].append(fresh)
    return out


class Feeders:
    """``n`` threads, started and parked on a barrier; :meth:`run` releases them and waits."""

    def __init__(self, work: Callable[[int], None], n: int) -> None:
        self.start = threading.Barrier(n + 1)
        self.errors: list[BaseException] = []

        def body(k: int) -> None:
            self.start.wait()
            try:
                work(k)
            except BaseException as exc:  # re-raised by run()
                self.errors.append(exc)

        self.threads = [threading.Thread(target=body, args=(k,), daemon=True) for k in range(n)]
        for t in self.threads:
            t.start()

    def run(self) -> None:
        self.start.wait()
        for t in self.threads:
            t.join()
        if self.errors:
            raise self.errors[0]


def record_threads(feeders: Feeders, agg: Aggregator) -> Aggregator:
    feeders.run()
    agg.flush()
    return agg


@pytest.mark.parametrize("n_threads", [2, 4, 8])
def test_record_threads(benchmark: Any, events: list[Row], n_threads: int) -> None:
    """``record`` from ``n_threads`` threads into one aggregator: total throughput."""
    benchmark.group = "record-threads"
    benchmark.extra_info["events"] = len(events)
    benchmark.extra_info["threads"] = n_threads
    parts = shares(events, n_threads)
    n_blocks = len(parts[0])

    def setup() -> tuple[tuple[Feeders, Aggregator], dict[str, Any]]:
        agg = new_aggregator()
        block_barrier = threading.Barrier(n_threads)

        def work(k: int) -> None:
            record = agg.record
            for b in range(n_blocks):
                block_barrier.wait()
                for ts, endpoint, job_id, state in parts[k][b]:
                    record(ts=ts, endpoint=endpoint, job_id=job_id, state=state)

        return (Feeders(work, n_threads), agg), {}

    check_record(record_threads(*setup()[0]), events)  # warm-up
    agg = benchmark.pedantic(record_threads, setup=setup, rounds=ROUNDS)
    check_record(agg, events)


@pytest.mark.parametrize("n_threads", [2, 8])
def test_prometheus_observe_threads(benchmark: Any, events: list[Row], n_threads: int) -> None:
    """The baseline: ``n_threads`` threads calling ``Histogram.observe`` on one child."""
    benchmark.group = "record-threads"
    benchmark.extra_info["events"] = len(events)
    benchmark.extra_info["threads"] = n_threads
    values = np.random.default_rng(9).lognormal(np.log(2.5), 1.0, len(events)).tolist()
    chunks = [values[k::n_threads] for k in range(n_threads)]
    registry = CollectorRegistry()

    def setup() -> tuple[tuple[Feeders], dict[str, Any]]:
        nonlocal registry
        histogram, registry = new_histogram()
        child = histogram.labels(endpoint="ep-00")

        def work(k: int) -> None:
            observe_all(child, chunks[k])

        return (Feeders(work, n_threads),), {}

    setup()[0][0].run()  # warm-up
    benchmark.pedantic(lambda feeders: feeders.run(), setup=setup, rounds=ROUNDS)
    assert registry.get_sample_value("job_execution_seconds_count", {"endpoint": "ep-00"}) == len(values)
