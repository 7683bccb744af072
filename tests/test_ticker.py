"""Processing-time ticks: windows close while an endpoint is quiet, by ``tick()`` or a daemon thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from jobmetrics import Aggregator
from jobmetrics.ticker import Ticker

T0 = 1_700_000_040_000  # ms, on a minute boundary
MINUTE = 60_000


def quiet_endpoint(**options: object) -> Aggregator:
    """One job queued and started in the first minute, then nothing."""
    agg = Aggregator(window="60s", allowed_lateness="5s", **options)  # type: ignore[arg-type]
    agg.record(ts=T0 + 1_000, endpoint="quiet", job_id="j", state="IN_QUEUE")
    agg.record(ts=T0 + 3_000, endpoint="quiet", job_id="j", state="IN_PROGRESS")
    return agg


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


def test_tick_closes_the_windows_of_a_quiet_endpoint() -> None:
    agg = quiet_endpoint()
    agg.flush()
    assert agg.snapshot()["final"].to_pylist() == [False]  # only the open first minute
    # processing time: 3 minutes later (+ the lateness): the first three windows are over
    wm = agg.tick(T0 + 3 * MINUTE + 5_000)
    assert wm == (T0 + 3 * MINUTE) * 1000
    snap = agg.snapshot()
    assert snap["final"].to_pylist() == [True, True, True, False]
    assert snap["in_progress"].to_pylist() == [1, 1, 1, 1]  # the quiet endpoint still reports
    assert snap["requests"].to_pylist() == [1, 0, 0, 0]
    assert agg.metrics("quiet", last="1m")["requests"] == 0  # the last minute had none
    assert agg.metrics("quiet", last="4m")["requests"] == 1


def test_tick_applies_held_events_and_never_moves_back() -> None:
    agg = quiet_endpoint()
    assert agg.held_events() == 2  # max ts - 5 s is before both
    assert agg.totals("quiet")["requests"] == 0
    agg.tick(T0 + 10_000)  # watermark T0 + 5 s: both events are applied
    assert agg.held_events() == 0 and agg.totals("quiet")["requests"] == 1
    before = agg.watermark
    assert agg.tick(T0) == before  # a tick behind the watermark does nothing
    assert agg.watermark == before


def test_events_behind_a_tick_are_late() -> None:
    agg = quiet_endpoint()
    agg.tick(T0 + 2 * MINUTE)
    agg.record(ts=T0 + 30_000, endpoint="quiet", job_id="k", state="IN_QUEUE")  # 85 s behind
    agg.record(ts=T0 + 2 * MINUTE - 1_000, endpoint="quiet", job_id="m", state="IN_QUEUE")  # in time
    agg.flush()
    t = agg.totals("quiet")
    assert t["late_events"] == 1 and t["requests"] == 2


def test_tick_accepts_datetimes_and_defaults_to_the_wall_clock() -> None:
    agg = Aggregator(window="60s", allowed_lateness="5s")
    agg.record(endpoint="live", job_id="j", state="IN_QUEUE")  # ts: now
    agg.tick(datetime.fromtimestamp(T0 / 1000, tz=UTC))  # long ago: the event is still held
    assert agg.held_events() == 1
    before = time.time_ns() // 1000
    wm = agg.tick()  # now - 5 s: the event, recorded a moment ago, is still held
    after = time.time_ns() // 1000
    assert wm is not None and before - 5_000_000 <= wm <= after - 5_000_000
    assert agg.held_events() == 1 and agg.totals("live")["requests"] == 0
    agg.tick(datetime.fromtimestamp(after / 1e6 + 10, tz=UTC))  # 10 s later: applied
    assert agg.held_events() == 0 and agg.totals("live")["requests"] == 1


def test_tick_with_lateness_none_uses_zero_lateness() -> None:
    agg = Aggregator(window="60s", allowed_lateness=None)
    agg.record(ts=T0, endpoint="a", job_id="j", state="IN_QUEUE")
    assert agg.tick(T0 + MINUTE) == (T0 + MINUTE) * 1000
    assert agg.held_events() == 0 and agg.totals("a")["requests"] == 1
    agg.record(ts=T0 + 1, endpoint="a", job_id="k", state="IN_QUEUE")  # behind the watermark: late
    agg.flush()
    assert agg.totals("a")["late_events"] == 1
    assert agg.snapshot().num_rows == 2  # no second row for the closed first window


def test_tick_reads_the_clock_before_a_slow_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    """An event recorded while tick's drain runs (the first drain compiles kernels) is stamped after
    the tick started: the watermark taken from the clock must not pass it."""
    agg = Aggregator(window="1s", allowed_lateness="0s")
    agg.record(endpoint="e", job_id="a", state="IN_QUEUE")  # staged: the tick drains it
    drain = agg._ingest_unlocked
    recorded: list[bool] = []

    def slow_drain(data: object) -> None:
        time.sleep(0.05)
        if not recorded:  # another caller records meanwhile (ts: the wall clock, now)
            recorded.append(True)
            agg.record(endpoint="e", job_id="b", state="IN_QUEUE")
        drain(data)

    monkeypatch.setattr(agg, "_ingest_unlocked", slow_drain)
    agg.tick()
    assert recorded
    agg.flush()
    t = agg.totals("e")
    assert t["late_events"] == 0 and t["requests"] == 2


def test_background_ticker_loses_no_event_recorded_during_a_slow_drain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ticker on the wall clock while one thread records with ``ts`` = now, every drain slow
    (150 ms, three times the lateness: a watermark read after the drain would pass the events
    recorded during it; the lateness only covers a record preempted between stamping and staging)."""
    agg = Aggregator(window="1s", allowed_lateness="50ms")
    drain = agg._ingest_unlocked

    def slow_drain(data: object) -> None:
        time.sleep(0.15)
        drain(data)

    monkeypatch.setattr(agg, "_ingest_unlocked", slow_drain)
    with agg.start_ticker(0.02):
        for k in range(30):
            agg.record(endpoint="e", job_id=k, state="IN_QUEUE")
            time.sleep(0.01)
    agg.flush()
    t = agg.totals("e")
    assert t["late_events"] == 0 and t["requests"] == 30


class FakeClock:
    """Processing time that moves one minute per reading."""

    def __init__(self, start_ms: int) -> None:
        self.now = start_ms
        self.lock = threading.Lock()

    def __call__(self) -> int:
        with self.lock:
            self.now += MINUTE
            return self.now


def test_background_ticker_closes_windows_and_stops() -> None:
    agg = quiet_endpoint()
    clock = FakeClock(T0)
    ticker = agg.start_ticker("10ms", clock=clock)
    assert isinstance(ticker, Ticker) and ticker.running
    assert ticker._thread is not None and ticker._thread.daemon
    wait_until(lambda: ticker.ticks >= 3)
    agg.stop_ticker()
    assert not ticker.running
    ticks = ticker.ticks
    time.sleep(0.05)
    assert ticker.ticks == ticks  # stopped for good
    snap = agg.snapshot()
    assert snap.num_rows >= 3 and all(snap["final"].to_pylist()[:-1])
    assert agg.watermark is not None and agg.watermark >= (T0 + 3 * MINUTE - 5_000) * 1000


def test_ticker_as_context_manager_and_close() -> None:
    agg = quiet_endpoint()
    with agg.start_ticker(0.01, clock=FakeClock(T0)) as ticker:
        wait_until(lambda: ticker.ticks >= 1)
    assert not ticker.running
    with quiet_endpoint() as agg2:
        second = agg2.start_ticker("10ms", clock=FakeClock(T0))
        wait_until(lambda: second.ticks >= 1)
    assert not second.running  # leaving the aggregator's block closed it


def test_one_ticker_at_a_time() -> None:
    agg = quiet_endpoint()
    agg.start_ticker("1s")
    try:
        with pytest.raises(RuntimeError, match="already running"):
            agg.start_ticker("1s")
    finally:
        agg.close()
    agg.start_ticker("1s")  # a new one after the first stopped
    agg.close()
    agg.close()  # closing twice is harmless


def test_a_failing_tick_stops_the_thread_and_is_reported() -> None:
    agg = quiet_endpoint()

    def broken() -> str:
        return "not a time"

    ticker = agg.start_ticker("10ms", clock=broken)
    wait_until(lambda: not ticker.running)
    assert isinstance(ticker.error, ValueError)
    with pytest.raises(RuntimeError, match="a tick failed") as info:
        agg.stop_ticker()
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("interval", ["0s", "-1s", 0.0, "soon"])
def test_bad_intervals(interval: object) -> None:
    with pytest.raises(ValueError, match="interval"):
        Ticker(Aggregator(), interval)  # type: ignore[arg-type]


def test_ticker_runs_while_threads_record() -> None:
    """A ticker thread and recording threads at once: nothing is lost (lateness covers the
    events, which carry processing time)."""
    agg = Aggregator(window="1s", allowed_lateness="30s", staging_size=200)
    n_threads, per_thread = 4, 3_000

    def write(k: int) -> None:
        for i in range(per_thread):
            agg.record(endpoint=f"ep{k % 2}", job_id=f"{k}-{i}", state="IN_QUEUE")

    with agg.start_ticker("5ms") as ticker:
        threads = [threading.Thread(target=write, args=(k,)) for k in range(n_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: ticker.ticks >= 2)
    agg.flush()
    totals = [agg.totals(ep) for ep in ("ep0", "ep1")]
    assert sum(t["requests"] for t in totals) == n_threads * per_thread
    assert sum(t["late_events"] for t in totals) == 0


def test_module_example_runs() -> None:
    import doctest

    import jobmetrics.ticker

    result = doctest.testmod(jobmetrics.ticker)
    assert result.attempted >= 3 and result.failed == 0
