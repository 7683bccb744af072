"""``jobmetrics.health``: the /health summary and the last-window worker figures."""

from __future__ import annotations

import doctest
import json

import pyarrow.compute as pc
import pytest
from hypothesis import given

import jobmetrics.health
from jobmetrics import Aggregator
from jobmetrics.health import WORKER_STATES, health, last_window_workers
from reference import run
from streams import BASE_MS, Stream, events_to_table, mixed_streams, synthetic_events

MIN = 60_000  # ms


def feed() -> Aggregator:
    """Two endpoints: jobs (with retries and cancellations) and workers whose states change."""
    agg = Aggregator(window="60s", allowed_lateness=None)  # any order; the tick below sets the watermark
    agg.ingest(synthetic_events(400, seed=2, n_endpoints=2, rate_per_s=1.0, in_flight_rate=0.05))
    t = BASE_MS
    for w, ep in (("w1", "ep-00"), ("w2", "ep-00"), ("w3", "ep-01")):
        agg.record(ts=t, endpoint=ep, kind="worker", worker_id=w, state="INITIALIZING")
        agg.record(ts=t + 5_000, endpoint=ep, kind="worker", worker_id=w, state="IDLE")
    # w1 runs for 30 s of the minute [BASE+3m, BASE+4m), w3 is throttled from then on
    start = (BASE_MS // MIN + 3) * MIN
    agg.record(ts=start + 15_000, endpoint="ep-00", kind="worker", worker_id="w1", state="RUNNING")
    agg.record(ts=start + 45_000, endpoint="ep-00", kind="worker", worker_id="w1", state="IDLE")
    agg.record(ts=start + 15_000, endpoint="ep-01", kind="worker", worker_id="w3", state="THROTTLED")
    agg.record(ts=start + 1_000, endpoint="ep-00", kind="webhook", job_id="job-000001", status_code=200)
    agg.record(ts=start + 2_000, endpoint="ep-01", kind="webhook", job_id="job-000002", status_code=500)
    agg.tick(now=start + MIN)  # closes [start, start + 1 min)
    return agg


def test_health_sums_totals_and_is_json() -> None:
    agg = feed()
    h = health(agg)
    json.dumps(h)  # JSON-able as it is
    totals = [agg.totals(e) for e in agg.endpoints()]
    keys = {
        "requests": "requests", "completed": "completed", "failed": "failed", "cancelled": "cancelled",
        "timedOut": "timed_out", "retried": "retried", "inQueue": "in_queue", "inProgress": "in_progress",
    }  # fmt: skip
    assert h["jobs"] == {k: sum(t[c] for t in totals) for k, c in keys.items()}
    assert h["jobs"]["requests"] > 0 and h["jobs"]["retried"] > 0 and h["jobs"]["inQueue"] > 0
    assert h["webhooks"] == {"requests": 2, "succeeded": 1, "failed": 1}
    assert h["coldStarts"] == 3
    assert h["endpoints"] == ["ep-00", "ep-01"]
    one = health(agg, "ep-01")
    assert one["jobs"]["requests"] == agg.totals("ep-01")["requests"]
    assert one["endpoints"] == ["ep-01"]


def test_workers_over_the_last_complete_window() -> None:
    agg = feed()
    levels = last_window_workers(agg)
    start = (BASE_MS // MIN + 3) * MIN * 1000
    assert (levels.window_start, levels.window_end) == (start, start + 60_000_000)
    assert levels.maxima("ep-00") == {**dict.fromkeys(WORKER_STATES, 0), "idle": 2, "running": 1}
    assert levels.averages("ep-00")["running"] == pytest.approx(0.5)
    assert levels.averages("ep-00")["idle"] == pytest.approx(1.5)
    assert levels.averages("ep-01")["throttled"] == pytest.approx(0.75)
    assert levels.maxima("nowhere") == dict.fromkeys(WORKER_STATES, 0)
    # the same figures as the snapshot row of that window
    snap = agg.snapshot()
    row = snap.filter(pc.and_(pc.equal(snap["endpoint"], "ep-00"), snap["final"]))
    row = row.filter(pc.equal(pc.cast(row["window_start"], "int64"), start))
    assert row["workers_running_avg"][0].as_py() == levels.averages("ep-00")["running"]
    h = health(agg)
    # now: w1 and w2 idle on ep-00, w3 throttled on ep-01; at most over the window: w1 ran a while
    assert h["workers"] == {**dict.fromkeys(WORKER_STATES, 0), "idle": 2, "throttled": 1}
    assert h["workersMax"] == {**dict.fromkeys(WORKER_STATES, 0), "idle": 3, "running": 1, "throttled": 1}
    assert agg.workers("ep-00") == {**dict.fromkeys(WORKER_STATES, 0), "idle": 2}
    assert h["workersWindow"]["start"].startswith("2023-11-14T22:16:00")
    # a later tick moves to the next window
    agg.tick(now=(start // 1000) + 2 * MIN)
    later = last_window_workers(agg)
    assert later.window_start == start + 60_000_000
    assert later.maxima("ep-00")["running"] == 0 and later.averages("ep-00")["idle"] == 2.0


def test_before_any_event() -> None:
    agg = Aggregator()
    h = health(agg)
    assert h["jobs"]["requests"] == 0 and h["endpoints"] == [] and h["workersWindow"] is None
    assert h["watermark"] is None
    with pytest.raises(KeyError, match="nowhere"):
        health(agg, "nowhere")


def test_staged_events_are_seen() -> None:
    """Events still in record()'s stage count (endpoints() alone would not see them yet)."""
    agg = Aggregator(allowed_lateness="0s")
    agg.record(ts=0, endpoint="fresh", job_id="a", state="IN_QUEUE")
    agg.record(ts=5, endpoint="fresh", job_id="b", state="IN_QUEUE")
    assert health(agg, "fresh")["jobs"]["requests"] == 1  # b waits for the watermark


def test_docstring_examples() -> None:
    result = doctest.testmod(jobmetrics.health, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


@given(mixed_streams(max_workers=4, max_worker_steps=10))
def test_current_workers_match_the_reference(stream: Stream) -> None:
    """``workers(endpoint)`` is the reference's worker levels after its last change; every final
    snapshot row's worker columns are what ``window_workers`` reads for that window."""
    p = stream.params
    agg = Aggregator(
        window=p.window_us, allowed_lateness=p.allowed_lateness_us, job_ttl=p.job_ttl_us,
        retention=p.retention_us, sweep_interval=p.sweep_interval_us, worker_ttl=p.worker_ttl_us,
        orphans=p.orphans,
    )  # fmt: skip
    agg.ingest(events_to_table(stream.arrival))
    agg.flush()
    expected = run(stream.arrival, p)
    for e in agg.endpoints():
        steps = expected.worker_history.get(e, [])
        levels = steps[-1][1] if steps else (0,) * len(WORKER_STATES)
        assert agg.workers(e) == dict(zip(WORKER_STATES, levels, strict=True))
    snap = agg.snapshot().filter(pc.field("final"))
    for row in snap.to_pylist():
        start = int(row["window_start"].timestamp() * 1_000_000)
        avg, most = agg.window_workers(row["endpoint"], start)
        assert avg == {s: row[f"workers_{s}_avg"] for s in WORKER_STATES}
        assert most == {s: row[f"workers_{s}_max"] for s in WORKER_STATES}


def test_window_workers_refuses_open_and_misaligned_windows() -> None:
    agg = feed()
    wm = agg.watermark
    assert wm is not None
    with pytest.raises(ValueError, match="not closed yet"):
        agg.window_workers("ep-00", wm // agg.width * agg.width)
    with pytest.raises(ValueError, match="multiple of the window width"):
        agg.window_workers("ep-00", 1)
    with pytest.raises(KeyError, match="nowhere"):
        agg.workers("nowhere")
