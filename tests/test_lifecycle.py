"""The engine (``jobmetrics.Aggregator``) against the plain-Python reference of docs/lifecycle.md.

Every counter, every level, every invalid (from, to) pair and every duration histogram bucket
must equal the reference's exactly, however the input is fed: one batch, random chunks of mixed
types, or one event at a time.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import COUNTERS, LEVELS, Params, Result, run
from streams import (
    SCENARIOS,
    Stream,
    events_to_table,
    job_streams,
    shuffle_within,
    synthetic_events,
    table_to_events,
)

HIGHEST_US = 7 * 86_400 * 1_000_000
METRICS = {"execution_time": "execution_us", "delay_time": "delay_us"}


# The engine is imported when a test runs, not when this module is collected, so that an engine
# that does not import fails these tests one by one instead of stopping the whole session.
def aggregator(params: Params) -> Any:
    from jobmetrics import Aggregator

    return Aggregator(**params.aggregator_options(), significant_figures=2)


def expected_histogram(values: list[int]) -> Any:
    from jobmetrics import HdrHistogram

    histogram = HdrHistogram(lowest=1, highest=HIGHEST_US, significant_figures=2)
    if values:
        histogram.record(np.asarray(values, dtype=np.int64))
    return histogram


def aggregate_table(table: pa.Table, params: Params) -> Any:
    agg = aggregator(params)
    agg.ingest(table)
    agg.flush()
    return agg


def assert_matches(agg: Any, ref: Result) -> None:
    """Every figure the engine reports equals the reference's."""
    assert sorted(agg.endpoints()) == ref.endpoints
    for endpoint in ref.endpoints:
        expected = ref.totals(endpoint)
        got = agg.totals(endpoint)
        assert {name: got[name] for name in (*COUNTERS, *LEVELS)} == expected.counts(), endpoint
        for metric, attribute in METRICS.items():
            values = getattr(expected, attribute)
            want = expected_histogram(values)
            have = agg.histogram(endpoint, metric)
            assert have.total_count == len(values), (endpoint, metric)
            np.testing.assert_array_equal(have.counts, want.counts, err_msg=f"{endpoint} {metric}")
            assert have == want, (endpoint, metric)
    invalid = {pair: n for pair, n in agg.invalid_transition_counts().items() if n}
    assert invalid == dict(ref.invalid_pairs)
    assert agg.jobs_in_memory() == ref.jobs_in_memory


def summary(agg: Any) -> dict[str, Any]:
    """Everything the engine reports, in plain types (to compare two engines)."""
    endpoints = sorted(agg.endpoints())
    return {
        "totals": {ep: dict(agg.totals(ep)) for ep in endpoints},
        "histograms": {
            (ep, metric): agg.histogram(ep, metric).counts.tolist() for ep in endpoints for metric in METRICS
        },
        "invalid": {pair: n for pair, n in agg.invalid_transition_counts().items() if n},
        "jobs": agg.jobs_in_memory(),
    }


# -- hand-written scenarios ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str) -> None:
    scenario = SCENARIOS[name]
    agg = aggregate_table(events_to_table(scenario.events), scenario.params)
    assert_matches(agg, run(scenario.events, scenario.params))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_event_by_event(name: str) -> None:
    scenario = SCENARIOS[name]
    agg = aggregator(scenario.params)
    for ev in scenario.events:
        agg.record(ts=ev.ts // 1000, endpoint=ev.endpoint, job_id=ev.job_id, state=ev.state)
    agg.flush()
    assert_matches(agg, run(scenario.events, scenario.params))


# -- generated streams ---------------------------------------------------------------------------


@given(job_streams())
def test_one_batch(stream: Stream) -> None:
    agg = aggregate_table(events_to_table(stream.arrival), stream.params)
    assert_matches(agg, run(stream.arrival, stream.params))


def _as_input(table: pa.Table, kind: int) -> Any:
    """The same rows as a Table, a RecordBatch or a pandas DataFrame."""
    if kind == 0:
        return table
    if kind == 1:
        return table.combine_chunks().to_batches()[0]
    return table.to_pandas()


@given(job_streams(), st.data())
def test_random_chunks(stream: Stream, data: st.DataObject) -> None:
    table = events_to_table(stream.arrival)
    cuts = data.draw(st.lists(st.integers(0, table.num_rows), max_size=8), label="cuts")
    bounds = sorted({0, table.num_rows, *cuts})
    agg = aggregator(stream.params)
    for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
        agg.ingest(_as_input(table.slice(start, stop - start), i % 3))
    agg.flush()
    assert_matches(agg, run(stream.arrival, stream.params))


@given(job_streams(max_jobs=6))
def test_event_by_event(stream: Stream) -> None:
    agg = aggregator(stream.params)
    for ev in stream.arrival:
        agg.record(ts=ev.ts // 1000, endpoint=ev.endpoint, job_id=ev.job_id, state=ev.state)
    agg.flush()
    assert_matches(agg, run(stream.arrival, stream.params))


@given(job_streams(late_events=False))
def test_disorder_within_lateness_gives_sorted_result(stream: Stream) -> None:
    ref = run(stream.true_order, stream.params)
    in_order = aggregate_table(events_to_table(stream.true_order), stream.params)
    assert_matches(in_order, ref)
    shuffled = aggregate_table(events_to_table(stream.arrival), stream.params)
    assert summary(shuffled) == summary(in_order)
    reshuffled = shuffle_within(
        stream.true_order, stream.params.allowed_lateness_us, random.Random(len(stream.arrival))
    )
    assert summary(aggregate_table(events_to_table(reshuffled), stream.params)) == summary(in_order)


@given(job_streams(ties=True))
def test_events_of_one_job_at_one_timestamp(stream: Stream) -> None:
    agg = aggregate_table(events_to_table(stream.arrival), stream.params)
    assert_matches(agg, run(stream.arrival, stream.params))


@given(job_streams(orphans="drop"))
def test_orphans_dropped(stream: Stream) -> None:
    agg = aggregate_table(events_to_table(stream.arrival), stream.params)
    assert_matches(agg, run(stream.arrival, stream.params))


# -- larger synthetic streams --------------------------------------------------------------------

_LONG_PARAMS = Params(
    window_us=60_000_000,
    allowed_lateness_us=5_000_000,
    job_ttl_us=600_000_000,
    retention_us=60_000_000,
    sweep_interval_us=10_000_000,
)


def test_job_table_stays_bounded() -> None:
    # 20 000 jobs over about 7 minutes, all finishing, disordered within the lateness: only the
    # jobs finished within the last minute of retention (and none in flight) stay in memory.
    n_jobs = 20_000
    table = synthetic_events(n_jobs, seed=3, rate_per_s=50.0, jitter_ms=4_000)
    ref = run(table_to_events(table), _LONG_PARAMS)
    agg = aggregate_table(table, _LONG_PARAMS)
    assert_matches(agg, ref)
    assert ref.jobs_in_memory < n_jobs // 5
    assert sum(ref.totals(ep).in_queue + ref.totals(ep).in_progress for ep in ref.endpoints) == 0
    assert sum(ref.totals(ep).late_events for ep in ref.endpoints) == 0


@pytest.mark.parametrize("job_ids", ["int", "uuid"])
def test_synthetic_stream_with_job_id_types(job_ids: str) -> None:
    table = synthetic_events(
        3_000, seed=5, rate_per_s=20.0, in_flight_rate=0.05, jitter_ms=6_000, job_ids=job_ids
    )
    agg = aggregate_table(table, _LONG_PARAMS)
    assert_matches(agg, run(table_to_events(table), _LONG_PARAMS))
