"""Live queries agree with a snapshot taken at the same moment.

``metrics(endpoint, last=...)`` must give exactly the figures of the snapshot rows in that range
re-aggregated by ``rollup`` (counters, jobs in queue/in progress now, histogram counts and
percentiles), for random streams stopped mid-way (open windows, held events, jobs in flight),
and while other threads keep recording.
"""

from __future__ import annotations

import threading
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from jobmetrics import Aggregator, rollup
from jobmetrics.aggregator import METRICS
from reference import Params
from streams import Stream, events_to_table, mixed_streams

COUNTERS = (
    "requests", "completed", "failed", "cancelled", "timed_out", "retried", "cold_start_count",
    "webhook_requests", "webhook_succeeded", "webhook_failed", "invalid_transitions", "duplicates",
    "orphans", "expired", "late_events",
)  # fmt: skip
QUANTILES = (0.7, 0.9, 0.98)


def aggregator(params: Params) -> Aggregator:
    return Aggregator(**params.aggregator_options(), quantiles=QUANTILES)


def rows_of(table: pa.Table, endpoint: str, first_window_us: int | None) -> pa.Table:
    mask = pc.equal(table["endpoint"], endpoint)
    if first_window_us is not None:
        start = pc.cast(table["window_start"], pa.int64())
        mask = pc.and_(mask, pc.greater_equal(start, first_window_us))
    return table.filter(mask)


def expected_from_rollup(rows: pa.Table, every_us: int) -> dict[str, Any]:
    """The metrics() dict read off ``rollup(rows, every)`` (one row, or none)."""
    out: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    out.update(in_queue=0, in_progress=0)
    for m in METRICS:
        out[f"{m}_count"] = 0
        for q in ("p70", "p90", "p98"):
            out[f"{m}_{q}_ms"] = None
    rolled = rollup(rows, every=every_us)
    assert rolled.num_rows <= 1  # the range lies inside one coarse window
    if rolled.num_rows:
        row = rolled.to_pylist()[0]
        for key in out:
            out[key] = row[key]
    return out


def check_consistent(agg: Aggregator, n: int) -> None:
    """metrics(ep, last=k windows) == rollup of the snapshot rows of those windows, per endpoint,
    for the largest k <= n whose range is aligned to k windows (so that rollup(every=k windows)
    gives one row); metrics(ep) (all windows) == sums over all the endpoint's rows."""
    with agg.consistent():
        clock = agg._engine.clock_window
        n_windows = 1 if clock is None else max(k for k in range(1, n + 1) if (clock + 1) % k == 0)
        names = agg.endpoints()
        live = {ep: agg.metrics(ep, last=n_windows * agg.width) for ep in names}
        every = {ep: agg.metrics(ep) for ep in names}
        table = agg.snapshot()
    if clock is None:  # nothing applied yet (all held): nothing to report
        assert table.num_rows == 0
        for ep in names:
            assert all(not v for v in live[ep].values()) and all(not v for v in every[ep].values())
        return
    first = (clock - n_windows + 1) * agg.width
    for ep in names:
        want = expected_from_rollup(rows_of(table, ep, first), n_windows * agg.width)
        got = {k: live[ep][k] for k in want}
        assert got == want, ep
        rows = rows_of(table, ep, None)
        for c in COUNTERS:
            assert every[ep][c] == (pc.sum(rows[c]).as_py() or 0), (ep, c)
        for m in METRICS:
            assert every[ep][f"{m}_count"] == (pc.sum(rows[f"{m}_count"]).as_py() or 0), (ep, m)


@given(
    stream=mixed_streams(span_ms=120_000, max_jobs=14),
    stop=st.floats(0.1, 1.0),
    tick=st.one_of(st.none(), st.integers(0, 90_000)),
    n=st.integers(1, 6),
)
def test_metrics_equal_the_rollup_of_a_snapshot_taken_at_the_same_moment(
    stream: Stream, stop: float, tick: int | None, n: int
) -> None:
    events = stream.arrival[: max(1, int(stop * len(stream.arrival)))]
    agg = aggregator(stream.params)
    agg.ingest(events_to_table(events))
    if tick is not None:  # processing time passes: windows close while the endpoints are quiet
        agg.tick((max(ev.ts for ev in events) // 1000) + tick)
    check_consistent(agg, n)
    check_consistent(agg, 1)
    agg.flush()
    check_consistent(agg, n)


def test_consistent_views_while_threads_record() -> None:
    """Writers record job events while a reader checks, inside ``consistent()``, that live queries
    and the snapshot agree; the state moves between views but never within one. Writers meet at a
    barrier every 500 jobs (5 s of event time), within the 8 s lateness: nothing is late, and
    windows close while they record."""
    agg = Aggregator(window="1s", allowed_lateness="8s", staging_size=300, quantiles=QUANTILES)
    t0 = 1_700_000_000_000
    n_threads, n_jobs, block = 3, 4_000, 500
    barrier = threading.Barrier(n_threads)
    done = threading.Event()
    checks: list[int] = []

    def write(k: int) -> None:
        for j in range(n_jobs):
            if j % block == 0:
                barrier.wait()
            queued = t0 + 10 * j + k
            job = k * 1_000_000 + j
            ep = f"ep{(j + k) % 3}"
            agg.record(ts=queued, endpoint=ep, job_id=job, state="IN_QUEUE")
            agg.record(ts=queued + 1 + j % 900, endpoint=ep, job_id=job, state="IN_PROGRESS")
            agg.record(ts=queued + 1_000 + j % 1_500, endpoint=ep, job_id=job, state="COMPLETED")

    def read() -> None:
        while not done.is_set():
            check_consistent(agg, 4)
            checks.append(1)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(k,)) for k in range(n_threads)]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    assert checks
    agg.flush()
    check_consistent(agg, 4)
    totals = [agg.metrics(ep) for ep in agg.endpoints()]
    assert sum(t["late_events"] for t in totals) == 0
    assert sum(t["completed"] for t in totals) == n_threads * n_jobs


def test_endpoints_watermark_and_queries_see_staged_events() -> None:
    """An endpoint known only from events still in ``record``'s stage is known to every query."""

    def staged() -> Aggregator:
        agg = Aggregator(allowed_lateness="0s")
        agg.record(ts=1_000, endpoint="seen", job_id="a", state="IN_QUEUE")
        agg.flush()
        agg.record(ts=2_000, endpoint="staged-only", job_id="b", state="IN_QUEUE")
        agg.record(ts=2_500, endpoint="staged-only", job_id="b", state="IN_PROGRESS")
        return agg

    assert staged().endpoints() == ["seen", "staged-only"]
    assert staged().watermark == 2_500_000
    agg = staged()
    assert agg.totals("staged-only")["in_queue"] == 1  # the queued event is applied, the start held
    assert staged().metrics("staged-only")["requests"] == 1
    assert staged().histogram("staged-only", "delay_time").total_count == 0
    assert staged().percentiles("staged-only", "delay_time") is None
    agg = staged()
    agg.flush()
    assert agg.histogram("staged-only", "delay_time").total_count == 1
