"""The simulator (``jobmetrics.simulate``) and the event log writer (``jobmetrics.io.eventlog``).

* the aggregated log equals the ground truth: every counter exactly, every duration histogram
  bucket for bucket (so percentiles are the HDR value of the exact order statistic, within 1 %),
  per window and in total, and the worker gauges' worker-µs and maxima;
* disorder within the allowed lateness gives the snapshot of the ordered log; duplicates are
  counted as duplicates and change nothing else;
* the same holds for random endpoint parameters, disorder and duplicate rates (hypothesis);
* a run is a pure function of its seed, and an endpoint's events do not depend on its neighbours;
* the log is well formed: per job and per worker strictly increasing times, legal transitions
  only, pool limits, retry and webhook limits; every feature of the model shows up;
* each file format written reads back (pyarrow readers) to the same snapshot.
"""

from __future__ import annotations

import doctest
import gzip
import importlib
import itertools
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobmetrics import Aggregator, HdrHistogram
from jobmetrics.io.eventlog import event_format, write_events
from jobmetrics.simulate import (
    EVENT_SCHEMA,
    PRESETS,
    PROFILES,
    EndpointConfig,
    HeavyTail,
    SimulationResult,
    exact_quantile,
    preset,
    resolve_endpoints,
    simulate,
)
from jobmetrics.simulate.arrivals import arrival_times, bursts, rate_at
from jobmetrics.simulate.delivery import delivery_order
from jobmetrics.states import JobState, legal_job_transition

COUNTED = (
    "requests", "completed", "failed", "cancelled", "timed_out", "retried", "cold_start_count",
    "cold_start_failures", "webhook_requests", "webhook_succeeded", "webhook_failed",
)  # fmt: skip
METRICS = ("execution_time", "delay_time", "cold_start_time")
GAUGES = ("initializing", "idle", "running", "throttled", "unhealthy")
QUANTILES = (0.5, 0.7, 0.9, 0.98, 0.999)

#: An endpoint tuned so that every path of the model is taken many times in half an hour.
EVERYTHING = EndpointConfig(
    name="busy",
    rate=3.0,
    bursts_per_hour=4.0,
    burst_factor=4.0,
    execution=HeavyTail(1.5, 0.9, 0.05, 1.2),
    failure_prob=0.15,
    max_retries=2,
    retry_backoff=0.5,
    execution_timeout=20.0,
    queue_ttl=60.0,
    cancel_prob=0.1,
    cancel_after=5.0,
    min_workers=1,
    max_workers=6,
    idle_timeout=3.0,
    container_start=HeavyTail(2.0, 0.5),
    model_load=HeavyTail(4.0, 0.5, 0.1, 1.5),
    cold_start_failure_prob=0.1,
    throttle_on_start_prob=0.2,
    throttle_duration=HeavyTail(5.0, 0.5),
    throttles_per_hour=30.0,
    unhealthy_per_hour=6.0,
    unhealthy_duration=HeavyTail(3.0, 0.3),
    webhook_prob=0.5,
    webhook_success_prob=0.6,
)


def aggregate(events: pa.Table, *, lateness: str | None = "0s", batch: int = 20_000) -> Aggregator:
    """The log through an Aggregator, in batches, flushed."""
    agg = Aggregator(allowed_lateness=lateness)
    for start in range(0, events.num_rows, batch):
        agg.ingest(events.slice(start, batch))
    agg.flush()
    return agg


@pytest.fixture(scope="module")
def messy() -> SimulationResult:
    """Half an hour of the four profiles and the busy endpoint, delivered out of order (≤ 3 s)
    and with 2 % of job events twice."""
    endpoints = (*preset("all"), EVERYTHING)
    return simulate("30m", endpoints, seed=11, disorder="3s", duplicates=0.02)


@pytest.fixture(scope="module")
def messy_agg(messy: SimulationResult) -> Aggregator:
    return aggregate(messy.events, lateness="3s")


# ---------------------------------------------------------------------------- docstrings


@pytest.mark.parametrize(
    "name",
    [
        "jobmetrics.simulate",
        "jobmetrics.simulate.config",
        "jobmetrics.simulate.arrivals",
        "jobmetrics.simulate.draws",
        "jobmetrics.simulate.delivery",
        "jobmetrics.io.eventlog",
    ],
)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0, name


# ---------------------------------------------------------------------------- ground truth


def test_counters_equal_the_truth(messy: SimulationResult, messy_agg: Aggregator) -> None:
    assert sorted(messy_agg.endpoints()) == sorted(messy.truth)
    for name, truth in messy.truth.items():
        totals = messy_agg.totals(name)
        assert {k: totals[k] for k in COUNTED} == {k: truth.counters[k] for k in COUNTED}, name
        assert totals["in_queue"] == truth.in_queue
        assert totals["in_progress"] == truth.in_progress
        assert totals["duplicates"] == messy.truth.duplicates_by_endpoint[name] > 0
        for quality in ("invalid_transitions", "orphans", "expired", "late_events", "workers_lost"):
            assert totals[quality] == 0, (name, quality)
    assert messy.truth.duplicates == sum(messy.truth.duplicates_by_endpoint.values())


def test_histograms_equal_the_exact_durations(messy: SimulationResult, messy_agg: Aggregator) -> None:
    for name, truth in messy.truth.items():
        for metric in METRICS:
            got = messy_agg.histogram(name, metric)
            exact = truth.durations_us(metric)
            expected = HdrHistogram(1, got.highest, 2)
            expected.record(exact)
            assert got == expected, (name, metric)
            assert got.total_count == exact.size
            if exact.size == 0:
                continue
            assert got.min <= exact.min() and got.max >= exact.max()
            for q in QUANTILES:
                value = exact_quantile(exact, q)
                hdr = got.value_at_quantile(q)
                # the highest value of the bucket holding the exact order statistic: 2 significant
                # figures put it within 1 % above it
                assert value <= hdr <= value * 1.01, (name, metric, q, value, hdr)


def test_percentiles_per_window_match_the_truth(messy: SimulationResult, messy_agg: Aggregator) -> None:
    snap = messy_agg.snapshot().to_pylist()
    assert all(row["final"] for row in snap[:-5])
    checked = 0
    for name, truth in messy.truth.items():
        rows = [r for r in snap if r["endpoint"] == name]
        for metric in METRICS:
            at = truth.durations_at[metric] * 1000  # µs
            values = truth.durations[metric]
            for row in rows:
                lo = int(row["window_start"].timestamp() * 1e6)
                hi = int(row["window_end"].timestamp() * 1e6)
                inside = values[(at >= lo) & (at < hi)]
                assert row[f"{metric}_count"] == inside.size, (name, metric, row["window_start"])
                if inside.size == 0:
                    assert row[f"{metric}_p90_ms"] is None
                    continue
                for label, q in (("p70", 0.7), ("p90", 0.9), ("p98", 0.98)):
                    exact = exact_quantile(inside, q)
                    got = row[f"{metric}_{label}_ms"]
                    assert exact <= got <= exact * 1.01, (name, metric, label, exact, got)
                assert row[f"{metric}_max_ms"] >= inside.max()
                checked += 1
        counts = {k: sum(r[k] for r in rows) for k in COUNTED}
        assert counts == {k: truth.counters[k] for k in COUNTED}
    assert checked > 200


def test_worker_gauges_equal_the_truth(messy: SimulationResult, messy_agg: Aggregator) -> None:
    snap = messy_agg.snapshot()
    watermark_ms = messy_agg.watermark // 1000
    for name, truth in messy.truth.items():
        rows = snap.filter(pc.equal(snap["endpoint"], name))
        worker_ms = truth.worker_time_ms(watermark_ms)
        for state in GAUGES:
            assert pc.sum(rows[f"workers_{state}_us"]).as_py() == worker_ms[state] * 1000, (name, state)
            assert pc.max(rows[f"workers_{state}_max"]).as_py() == truth.workers_max(state), (name, state)
    busy = messy.truth["busy"].worker_time_ms(watermark_ms)
    assert all(busy[s] > 0 for s in GAUGES)


@st.composite
def endpoint_configs(draw: st.DrawFn) -> EndpointConfig:
    """Random but valid endpoints, from idle to overloaded, with every failure path possible."""
    seconds = st.floats(0.005, 20.0)
    prob = st.floats(0.0, 0.5)

    def tail() -> HeavyTail:
        return HeavyTail(draw(seconds), draw(st.floats(0.0, 1.2)), draw(prob), draw(st.floats(1.1, 3.0)))

    max_workers = draw(st.integers(1, 6))
    return EndpointConfig(
        name=draw(st.sampled_from(["a", "b-1", "gpu.x"])),
        rate=draw(st.floats(0.0, 8.0)),
        diurnal_amplitude=draw(st.floats(0.0, 1.0)),
        bursts_per_hour=draw(st.floats(0.0, 20.0)),
        burst_factor=draw(st.floats(1.0, 6.0)),
        execution=tail(),
        dispatch_latency=tail(),
        failure_prob=draw(prob),
        max_retries=draw(st.integers(0, 3)),
        retry_backoff=draw(seconds),
        execution_timeout=draw(st.floats(0.01, 60.0)),
        queue_ttl=draw(st.floats(0.01, 120.0)),
        cancel_prob=draw(prob),
        cancel_after=draw(seconds),
        min_workers=draw(st.integers(0, max_workers)),
        max_workers=max_workers,
        jobs_per_worker=draw(st.integers(1, 4)),
        idle_timeout=draw(seconds),
        container_start=tail(),
        model_load=tail(),
        cold_start_failure_prob=draw(prob),
        throttle_on_start_prob=draw(prob),
        throttle_duration=tail(),
        throttles_per_hour=draw(st.floats(0.0, 200.0)),
        unhealthy_per_hour=draw(st.floats(0.0, 100.0)),
        unhealthy_duration=tail(),
        unhealthy_recover_prob=draw(st.floats(0.0, 1.0)),
        webhook_prob=draw(st.floats(0.0, 1.0)),
        webhook_latency=tail(),
        webhook_success_prob=draw(st.floats(0.0, 1.0)),
        webhook_backoff=draw(seconds),
    )


@settings(max_examples=25)
@given(
    cfg=endpoint_configs(),
    seed=st.integers(0, 2**32),
    disorder_ms=st.integers(0, 3000),
    duplicates=st.sampled_from([0.0, 0.03, 0.3]),
)
def test_any_endpoint_aggregates_to_its_truth(
    cfg: EndpointConfig, seed: int, disorder_ms: int, duplicates: float
) -> None:
    result = simulate("5m", cfg, seed=seed, disorder=disorder_ms * 1000, duplicates=duplicates)
    truth = result.truth[cfg.name]
    if result.events.num_rows == 0:
        assert truth.counters["requests"] == 0
        return
    agg = aggregate(result.events, lateness=disorder_ms * 1000, batch=997)
    totals = agg.totals(cfg.name)
    assert {k: totals[k] for k in COUNTED} == {k: truth.counters[k] for k in COUNTED}
    assert (totals["in_queue"], totals["in_progress"]) == (truth.in_queue, truth.in_progress)
    assert totals["duplicates"] == result.truth.duplicates
    assert totals["invalid_transitions"] == totals["orphans"] == totals["late_events"] == 0
    for metric in METRICS:
        got = agg.histogram(cfg.name, metric)
        expected = HdrHistogram(1, got.highest, 2)
        expected.record(truth.durations_us(metric))
        assert got == expected, metric
    snap = agg.snapshot()
    for state in GAUGES:
        assert pc.sum(snap[f"workers_{state}_us"]).as_py() in (
            None,
            truth.worker_time_ms(agg.watermark // 1000)[state] * 1000,
        )
    # the pool limit holds however the parameters are drawn
    t, _, d = truth.worker_changes
    order = np.argsort(t, kind="stable")
    level = np.cumsum(d[order])
    assert level.size == 0 or level[np.r_[t[order][1:] != t[order][:-1], True]].max() <= cfg.max_workers


# ---------------------------------------------------------------------------- delivery


def test_disorder_within_lateness_gives_the_ordered_snapshot() -> None:
    result = simulate("20m", "three", seed=5, disorder="2s")
    assert not result.events.equals(result.ordered_events)
    ts = result.events["ts"].cast(pa.int64()).to_numpy()
    assert (np.diff(ts) < 0).sum() > result.events.num_rows // 10  # really out of order
    assert (np.maximum.accumulate(ts) - ts).max() <= 2000  # never more than the bound
    shuffled = aggregate(result.events, lateness="2s").snapshot()
    ordered = aggregate(result.ordered_events, lateness="2s").snapshot()
    assert shuffled.equals(ordered)
    # the same disorder judged with less lateness does make late events
    strict = aggregate(result.events, lateness="500ms")
    assert sum(strict.totals(n)["late_events"] for n in result.truth) > 0


def test_duplicates_are_counted_and_change_nothing_else() -> None:
    clean = simulate("20m", "three", seed=6)
    dup = simulate("20m", "three", seed=6, duplicates=0.05)
    assert dup.events.num_rows == clean.events.num_rows + dup.truth.duplicates
    assert dup.ordered_events.equals(clean.events)
    a = aggregate(dup.events).snapshot()
    b = aggregate(clean.events).snapshot()
    assert pc.sum(a["duplicates"]).as_py() == dup.truth.duplicates > 0
    assert pc.sum(b["duplicates"]).as_py() == 0
    assert a.drop_columns(["duplicates"]).equals(b.drop_columns(["duplicates"]))

    # duplicates are job events only: worker heartbeats and webhook deliveries are not repeated
    def webhooks(events: pa.Table) -> int:
        return int(pc.sum(pc.equal(events["kind"], "webhook")).as_py())

    assert webhooks(dup.events) == webhooks(clean.events)


def test_delivery_order_respects_the_bound() -> None:
    rng = np.random.default_rng(0)
    ts = np.sort(rng.integers(0, 100_000, 20_000)).astype(np.int64)
    job = rng.random(ts.size) < 0.5
    order, dups = delivery_order(ts, job, disorder_ms=250, duplicates=0.1, rng=rng)
    assert order.size == ts.size + dups
    assert 800 < dups < 1200
    counts = np.bincount(order, minlength=ts.size)
    assert counts.min() == 1 and counts.max() == 2
    assert not (counts[~job] > 1).any()  # only eligible rows repeat
    delivered = ts[order]
    assert (np.maximum.accumulate(delivered) - delivered).max() <= 250
    with pytest.raises(ValueError, match="disorder_ms"):
        delivery_order(ts, job, disorder_ms=-1, duplicates=0.0, rng=rng)
    with pytest.raises(ValueError, match="duplicates"):
        delivery_order(ts, job, disorder_ms=0, duplicates=1.5, rng=rng)


# ---------------------------------------------------------------------------- determinism


def test_same_seed_same_log_and_truth() -> None:
    a = simulate("15m", "three", seed=3, disorder="1s", duplicates=0.01)
    b = simulate("15m", "three", seed=3, disorder="1s", duplicates=0.01)
    c = simulate("15m", "three", seed=4, disorder="1s", duplicates=0.01)
    assert a.events.equals(b.events)
    assert a.truth.to_json() == b.truth.to_json()
    assert not a.events.equals(c.events)
    assert a.truth.to_json() != c.truth.to_json()


def test_an_endpoint_does_not_depend_on_its_neighbours() -> None:
    alone = simulate("15m", "sdxl", seed=8)
    together = simulate("15m", "three", seed=8)
    mine = together.events.filter(pc.equal(together.events["endpoint"], "sdxl"))
    assert mine.equals(alone.events)
    assert alone.truth["sdxl"].summary() == together.truth["sdxl"].summary()


# ---------------------------------------------------------------------------- the log itself


@pytest.fixture(scope="module")
def busy() -> SimulationResult:
    return simulate("30m", EVERYTHING, seed=2)


def test_schema_and_columns(busy: SimulationResult) -> None:
    ev = busy.events
    assert ev.schema.equals(EVENT_SCHEMA)
    kinds = set(ev["kind"].to_pylist())
    assert kinds == {"job", "worker", "webhook"}
    is_job = pc.equal(ev["kind"], "job")
    is_worker = pc.equal(ev["kind"], "worker")
    is_hook = pc.equal(ev["kind"], "webhook")
    assert ev.filter(is_job)["job_id"].null_count == 0
    assert ev.filter(is_worker)["worker_id"].null_count == 0
    assert ev.filter(is_worker)["job_id"].null_count == pc.sum(is_worker).as_py()
    hooks = ev.filter(is_hook)
    assert hooks["status_code"].null_count == 0 and hooks["state"].null_count == hooks.num_rows
    assert ev.filter(pc.invert(is_hook))["status_code"].null_count == ev.num_rows - hooks.num_rows
    ts = ev["ts"].cast(pa.int64()).to_numpy()
    assert (np.diff(ts) >= 0).all()
    assert busy.start_ms <= ts.min() and ts.max() < busy.start_ms + busy.duration_ms


def _by_entity(table: pa.Table, kind: str, key: str) -> dict[str, list[tuple[int, str]]]:
    rows = table.filter(pc.equal(table["kind"], kind))
    ids = rows[key].to_pylist()
    ts = rows["ts"].cast(pa.int64()).to_pylist()
    states = rows["state"].to_pylist() if kind != "webhook" else rows["status_code"].to_pylist()
    out: dict[str, list[tuple[int, str]]] = {}
    for i, t, s in zip(ids, ts, states, strict=True):
        out.setdefault(i, []).append((t, s))
    return out


def test_per_job_and_per_worker_times_strictly_increase(busy: SimulationResult) -> None:
    for kind, key in (("job", "job_id"), ("worker", "worker_id")):
        for entity, events in _by_entity(busy.events, kind, key).items():
            times = [t for t, _ in events]
            assert all(a < b for a, b in itertools.pairwise(times)), (kind, entity)


def test_job_lifecycles_are_legal(busy: SimulationResult) -> None:
    cfg = EVERYTHING
    jobs = _by_entity(busy.events, "job", "job_id")
    assert len(jobs) == busy.truth["busy"].counters["requests"]
    for job, events in jobs.items():
        current = 0
        for _, state in events:
            new = int(JobState[state])
            assert legal_job_transition(current, new), (job, events)
            current = new
        assert sum(s == "FAILED" for _, s in events) <= cfg.max_retries + 1
    hooks = _by_entity(busy.events, "webhook", "job_id")
    for job, attempts in hooks.items():
        assert 1 <= len(attempts) <= 3
        final = jobs[job][-1][1]
        assert final in ("COMPLETED", "FAILED", "TIMED_OUT"), (job, final)
        codes = [c for _, c in attempts]
        assert all(c == 0 or c >= 500 for c in codes[:-1])  # only failures are retried


def test_worker_pool_limits(busy: SimulationResult) -> None:
    truth = busy.truth["busy"]
    t, s, d = truth.worker_changes
    order = np.argsort(t, kind="stable")
    alive = np.cumsum(np.where(s[order] <= 4, d[order], 0))  # initializing, idle, running, throttled
    pool = np.cumsum(d[order])  # and unhealthy: every worker that has not left
    end_of_ms = np.r_[t[order][1:] != t[order][:-1], True]
    assert pool[end_of_ms].max() == EVERYTHING.max_workers
    assert alive[end_of_ms][-1] >= EVERYTHING.min_workers
    workers = _by_entity(busy.events, "worker", "worker_id")
    assert len(workers) == truth.counters["workers_started"]
    for worker, events in workers.items():
        states = [st for _, st in events]
        assert "OFFLINE" not in states[:-1], worker  # nothing after leaving
        assert states[0] in ("INITIALIZING", "IDLE")
        for before, after in itertools.pairwise(states):
            assert before != after, worker  # every worker event is a change of state
            if before == "UNHEALTHY":
                assert after in ("IDLE", "RUNNING", "OFFLINE"), worker
    recovered = sum(
        1 for events in workers.values() for (_, a), (_, b) in itertools.pairwise(events)
        if a == "UNHEALTHY" and b != "OFFLINE"
    )  # fmt: skip
    assert recovered == truth.counters["worker_recoveries"] > 0


def test_every_feature_happens(busy: SimulationResult) -> None:
    c = busy.truth["busy"].counters
    for name in (
        "failed", "retried", "cancelled", "queue_timeouts", "execution_timeouts", "requeued",
        "cold_start_count", "cold_start_failures", "webhook_succeeded", "webhook_failed",
        "worker_recoveries",
    ):  # fmt: skip
        assert c[name] > 0, name
    assert c["timed_out"] == c["queue_timeouts"] + c["execution_timeouts"]
    assert c["webhook_requests"] == c["webhook_succeeded"] + c["webhook_failed"]
    states = set(busy.events.filter(pc.equal(busy.events["kind"], "worker"))["state"].to_pylist())
    assert states == {"INITIALIZING", "IDLE", "RUNNING", "THROTTLED", "UNHEALTHY", "OFFLINE"}
    codes = set(busy.events["status_code"].drop_null().to_pylist())
    assert 200 in codes and 0 in codes and any(500 <= x < 600 for x in codes)


def test_exec_timeout_caps_execution() -> None:
    cfg = EndpointConfig(name="slow", rate=1.0, execution=HeavyTail(10.0, 1.0), execution_timeout=15.0)
    result = simulate("20m", cfg, seed=1)
    truth = result.truth["slow"]
    assert truth.counters["execution_timeouts"] > 10
    assert truth.durations["execution_time"].max() <= 15_000


# ---------------------------------------------------------------------------- arrivals, config


def test_arrival_rate_and_daily_cycle() -> None:
    cfg = EndpointConfig(name="x", rate=2.0, diurnal_amplitude=0.5, diurnal_peak_hour=12.0, bursts_per_hour=0)
    day = 86_400_000
    t = arrival_times(cfg, 0, day, np.random.default_rng(0))
    assert abs(t.size - 2.0 * 86_400) < 4 * np.sqrt(2.0 * 86_400)
    hours = np.bincount(t // 3_600_000, minlength=24)
    assert hours[11:13].sum() > 2.5 * hours[[23, 0]].sum()  # peak at noon: 1.5x rate vs 0.5x


def test_bursts_raise_the_rate() -> None:
    cfg = EndpointConfig(name="x", rate=1.0, diurnal_amplitude=0.0, bursts_per_hour=2.0, burst_factor=5.0)
    rng = np.random.default_rng(4)
    starts, ends = bursts(cfg, 36_000_000, rng)
    assert starts.size > 5 and (ends >= starts).all()
    grid = np.arange(0, 36_000_000, 1000, dtype=np.int64)
    rate = rate_at(cfg, grid, 0, starts, ends)
    assert set(np.unique(rate).tolist()) == {1.0, 5.0}
    t = arrival_times(cfg, 0, 36_000_000, np.random.default_rng(5))
    assert (np.diff(t) >= 0).all() and t.min() >= 0 and t.max() < 36_000_000


def test_heavy_tail_draws() -> None:
    rng = np.random.default_rng(0)
    body = HeavyTail(2.0, 0.5).sample(rng, 50_000)
    assert abs(np.median(body) / 2.0 - 1) < 0.03
    tailed = HeavyTail(2.0, 0.5, 0.1, 1.2).sample(rng, 50_000)
    assert np.quantile(tailed, 0.999) > 3 * np.quantile(body, 0.999)
    ms = HeavyTail(0.0001, 0.0).sample_ms(rng, 10)
    assert (ms == 1).all()


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"failure_prob": 1.5}, "failure_prob"),
        ({"rate": -1.0}, "rate"),
        ({"min_workers": 5, "max_workers": 2}, "min_workers"),
        ({"max_workers": 0}, "max_workers"),
        ({"idle_timeout": 0.0}, "idle_timeout"),
        ({"diurnal_peak_hour": 24.0}, "diurnal_peak_hour"),
        ({"burst_factor": 0.5}, "burst_factor"),
        ({"name": ""}, "name"),
    ],
)
def test_config_errors_name_the_value(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EndpointConfig(**{"name": "x", **changes})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tail_prob"):
        HeavyTail(1.0, tail_prob=2.0)


def test_resolve_endpoints() -> None:
    assert [c.name for c in resolve_endpoints("three")] == list(PRESETS["three"])
    assert [c.name for c in resolve_endpoints("llm:a, llm:b")] == ["a", "b"]
    assert resolve_endpoints("llm:a")[0].rate == PROFILES["llm"].rate
    custom = resolve_endpoints({"mine": {"rate": 3.0}, "copy": PROFILES["embed"]})
    assert [(c.name, c.rate) for c in custom] == [("mine", 3.0), ("copy", PROFILES["embed"].rate)]
    with pytest.raises(ValueError, match="'nope'"):
        resolve_endpoints("llm,nope")
    with pytest.raises(ValueError, match="distinct"):
        resolve_endpoints("llm,llm")
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration": "0s"}, "duration"),
        ({"duration": "forever"}, "duration"),
        ({"seed": -1}, "seed"),
        ({"duplicates": 1.5}, "duplicates"),
        ({"disorder": "soon"}, "disorder"),
        ({"rate_scale": -2.0}, "rate_scale"),
    ],
)
def test_simulate_errors_name_the_option(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        simulate(**{"duration": "1m", "endpoints": "embed", **kwargs})  # type: ignore[arg-type]


def test_rate_scale_and_progress() -> None:
    seen: list[float] = []
    small = simulate("10m", "embed", seed=1)
    big = simulate("10m", "embed", seed=1, rate_scale=3.0, progress=seen.append)
    assert 2.5 < big.truth["embed"].counters["requests"] / small.truth["embed"].counters["requests"] < 3.5
    assert seen and seen[-1] == 1.0 and all(a <= b for a, b in itertools.pairwise(seen))


def test_an_hour_of_three_endpoints_is_quick() -> None:
    result = simulate("1h", "three", seed=0)
    assert result.events.num_rows > 20_000
    assert result.elapsed < 10.0  # a few tenths of a second on a quiet machine


# ---------------------------------------------------------------------------- event log files


def _read_back(path: Path, ts_format: str = "iso") -> pa.Table:
    fmt, gz = event_format(path)
    if fmt == "parquet":
        return pq.read_table(path)
    if fmt == "ipc":
        with ipc.open_file(path) as f:
            return f.read_all()
    data = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    buf = pa.BufferReader(data)
    if fmt == "jsonl":
        return pjson.read_json(buf)
    # CSV: every column as text (empty = null), as a reader should take it
    names = pcsv.read_csv(pa.BufferReader(data)).column_names
    types = dict.fromkeys(names, pa.string())
    types["ts"] = pa.int64() if ts_format == "ms" else pa.string()
    options = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pcsv.read_csv(buf, convert_options=options)


@pytest.fixture(scope="module")
def small() -> SimulationResult:
    return simulate("10m", (*preset("three"), EVERYTHING), seed=9)


@pytest.mark.parametrize(
    ("name", "ts_format"),
    [
        ("log.parquet", "iso"),
        ("log.arrow", "iso"),
        ("log.feather", "iso"),
        ("log.jsonl", "iso"),
        ("log.jsonl", "ms"),
        ("log.ndjson.gz", "iso"),
        ("log.csv", "iso"),
        ("log.csv", "ms"),
        ("log.csv.gz", "ms"),
    ],
)
def test_each_format_reads_back_to_the_same_snapshot(
    tmp_path: Path, small: SimulationResult, name: str, ts_format: str
) -> None:
    path = tmp_path / name
    written = write_events(small.events, path, ts_format=ts_format, batch_rows=5000)  # type: ignore[arg-type]
    assert written == path and [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left
    back = _read_back(path, ts_format)
    assert back.num_rows == small.events.num_rows
    if name.endswith((".parquet", ".arrow", ".feather")):
        assert back.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
        assert back.equals(small.events)
    expected = aggregate(small.events).snapshot()
    assert aggregate(back).snapshot().equals(expected)


@pytest.mark.parametrize(
    ("name", "codec"), [("log.parquet", "snappy"), ("log.arrow", "zstd"), ("log.arrow", "lz4")]
)
def test_compression(tmp_path: Path, small: SimulationResult, name: str, codec: str) -> None:
    path = write_events(small.events, tmp_path / name, compression=codec)
    assert _read_back(path).equals(small.events)
    if name.endswith(".parquet"):
        assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == codec.upper()


def test_jsonl_text_is_valid_json_with_escapes(tmp_path: Path) -> None:
    tricky = ["plain", 'quote"d', "back\\slash", "new\nline", "tab\tand\x01ctl", "ünïcødé ✓", None]
    n = len(tricky)
    table = pa.table(
        {
            "ts": pa.array(np.arange(n) + 1_736_121_600_000, pa.int64()),
            "endpoint": ["ep"] * n,
            "job_id": tricky,
            "state": ["IN_QUEUE"] * n,
            "status_code": pa.array([200, None, 0, 503, None, None, 1], pa.int32()),
            "ratio": [0.5, float("nan"), None, 1.0, 2.0, -1.0, 0.0],
            "flag": [True, False, None, True, True, False, True],
        }
    )
    path = write_events(table, tmp_path / "t.jsonl")
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["job_id"] for r in rows] == tricky
    assert rows[0]["ts"] == "2025-01-06T00:00:00.000Z"
    assert [r["status_code"] for r in rows] == [200, None, 0, 503, None, None, 1]
    assert rows[1]["ratio"] is None and rows[0]["ratio"] == 0.5
    assert [r["flag"] for r in rows][:3] == [True, False, None]
    ms = write_events(table, tmp_path / "m.jsonl", ts_format="ms").read_text().splitlines()
    assert json.loads(ms[3])["ts"] == 1_736_121_600_003


def test_timestamps_of_any_unit_or_zone_are_written_as_utc_ms(tmp_path: Path) -> None:
    us = pa.array([1_736_121_600_123_456], pa.timestamp("us", tz="Europe/Paris"))
    table = pa.table({"ts": us, "endpoint": ["e"], "job_id": ["j"], "state": ["IN_QUEUE"]})
    back = pq.read_table(write_events(table, tmp_path / "t.parquet"))
    assert back["ts"].type == pa.timestamp("ms", tz="UTC")
    assert back["ts"].cast(pa.int64()).to_pylist() == [1_736_121_600_123]
    text = write_events(table, tmp_path / "t.csv").read_text().splitlines()
    assert text[1].startswith('"2025-01-06T00:00:00.123Z"')


def test_writer_errors(tmp_path: Path, small: SimulationResult) -> None:
    with pytest.raises(ValueError, match=r"log\.txt"):
        write_events(small.events, tmp_path / "log.txt")
    with pytest.raises(ValueError, match="gzip"):
        write_events(small.events, tmp_path / "log.parquet.gz")
    with pytest.raises(ValueError, match="'xml'"):
        write_events(small.events, tmp_path / "log.parquet", format="xml")
    with pytest.raises(IsADirectoryError, match="directory"):
        write_events(small.events, tmp_path)
    with pytest.raises(ValueError, match="ts_format"):
        write_events(small.events, tmp_path / "log.csv", ts_format="unix")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'ts'"):
        write_events(pa.table({"ts": ["x"], "endpoint": ["e"]}), tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []
    # an explicit format wins over the extension
    path = write_events(small.events.slice(0, 10), tmp_path / "log.data", format="csv")
    assert path.read_text().startswith('"ts","kind"')


def test_an_interrupted_write_leaves_the_previous_file(tmp_path: Path, small: SimulationResult) -> None:
    path = write_events(small.events.slice(0, 5), tmp_path / "log.jsonl")
    before = path.read_bytes()

    def boom(rows: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_events(small.events, path, batch_rows=100, progress=boom)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["log.jsonl"]
