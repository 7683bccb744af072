"""``Aggregator.snapshot()`` (SPEC §4) against the plain-Python reference.

Every row the reference expects is in the snapshot and no other; every counter and gauge is equal,
worker averages are the exact quotient of worker-µs by the time covered, and each ``*_hdr`` column
decodes to the HDR histogram of exactly the durations the reference recorded, with percentiles,
min, max and mean read from that histogram (null when it is empty). Feeding the events in one
batch, in chunks or one at a time gives the same table.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import (
    GAUGED_STATES,
    SNAPSHOT_COUNTERS,
    SNAPSHOT_GAUGES,
    Event,
    Params,
    Result,
    SnapshotRow,
    run,
    webhook_event,
    worker_event,
)
from streams import BASE_MS, Stream, events_to_table, mixed_streams

HIGHEST_US = 7 * 86_400 * 1_000_000
QUANTILES = (0.7, 0.9, 0.98)
S = 1_000_000  # one second in µs
T0 = BASE_MS * 1000 // (3600 * S) * (3600 * S)  # an hour boundary near the generated streams


# The engine is imported when a test runs, so that an engine that does not import fails these
# tests one by one instead of stopping the whole session.
def aggregator(params: Params, **overrides: Any) -> Any:
    from jobmetrics import Aggregator

    options = {**params.aggregator_options(), "significant_figures": 2, "quantiles": QUANTILES}
    return Aggregator(**{**options, **overrides})


def snapshot_of(events: list[Event], params: Params, **overrides: Any) -> pa.Table:
    """The snapshot after ingesting ``events`` (arrival order) in one batch and a final flush."""
    agg = aggregator(params, **overrides)
    agg.ingest(events_to_table(events))
    agg.flush()
    return agg.snapshot()


def expected_histogram(values: list[int]) -> Any:
    from jobmetrics import HdrHistogram

    histogram = HdrHistogram(lowest=1, highest=HIGHEST_US, significant_figures=2)
    if values:
        histogram.record(np.asarray(values, dtype=np.int64))
    return histogram


def quantile_label(q: float) -> str:
    """SPEC §4: 0.7 -> ``p70``, 0.999 -> ``p99_9``."""
    return "p" + f"{q * 100:.6f}".rstrip("0").rstrip(".").replace(".", "_")


def row_list(table: pa.Table) -> list[dict[str, Any]]:
    """Snapshot rows as plain dicts, in table order; times in µs."""
    columns = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_timestamp(column.type):
            column = pc.cast(column, pa.int64())
        columns[name] = column.to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def table_rows(table: pa.Table) -> dict[tuple[str, int], dict[str, Any]]:
    """Snapshot rows keyed by (endpoint, window start in µs), one per key."""
    rows = row_list(table)
    keyed = {(row["endpoint"], row["window_start"]): row for row in rows}
    assert len(keyed) == len(rows), "two rows for one (endpoint, window)"
    return keyed


def compared_rows(res: Result) -> dict[tuple[str, int], SnapshotRow]:
    """The reference's rows, open-window rows without events included."""
    return res.snapshot()


def assert_row_matches(got: dict[str, Any], want: SnapshotRow) -> None:
    where = f"{want.endpoint} @ {want.window_start}"
    assert got["window_end"] == want.window_end, where
    assert got["final"] == want.final, where
    for name in (*SNAPSHOT_COUNTERS, *SNAPSHOT_GAUGES):
        assert got[name] == want.counts[name], (where, name)
    for name, value in want.averages.items():
        assert got[name] == value, (where, name)  # the same division, so exactly equal
    for metric, values in want.durations.items():
        assert_histogram_columns(got, metric, values, where)


def assert_histogram_columns(got: dict[str, Any], metric: str, values: list[int], where: str):
    from jobmetrics import HdrHistogram

    assert got[f"{metric}_count"] == len(values), (where, metric)
    stats = [f"{metric}_{quantile_label(q)}_ms" for q in QUANTILES]
    stats += [f"{metric}_{s}_ms" for s in ("min", "max", "mean")]
    if not values:
        assert got[f"{metric}_hdr"] is None, (where, metric)
        assert all(got[name] is None for name in stats), (where, metric)  # null, never 0
        return
    want = expected_histogram(values)
    have = HdrHistogram.decode(got[f"{metric}_hdr"])
    np.testing.assert_array_equal(have.counts, want.counts, err_msg=f"{where} {metric}")
    assert have == want, (where, metric)
    ordered = sorted(values)
    for q in QUANTILES:
        value_us = want.value_at_quantile(q)
        assert got[f"{metric}_{quantile_label(q)}_ms"] == value_us / 1000, (where, metric, q)
        # Within the HDR bound of the exact order statistic (rank ceil(q * n), at least 1): the
        # reported value is the top of the bucket holding it, at most 1/128 above it.
        exact = ordered[max(1, math.ceil(math.nextafter(q, 0.0) * len(values))) - 1]
        assert exact <= value_us <= exact + exact / 128, (where, metric, q, exact)
    assert got[f"{metric}_min_ms"] == want.min / 1000, (where, metric)
    assert got[f"{metric}_max_ms"] == want.max / 1000, (where, metric)
    assert got[f"{metric}_mean_ms"] == want.mean / 1000, (where, metric)
    assert want.min <= ordered[0] and ordered[-1] <= want.max <= ordered[-1] * (1 + 1 / 128)


def assert_snapshot_matches(table: pa.Table, res: Result) -> None:
    got = table_rows(table)
    want = compared_rows(res)
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        assert_row_matches(got[key], row)


# -- schema --------------------------------------------------------------------------------------

METRICS = ("execution_time", "delay_time", "cold_start_time")
WORKER_GAUGE_STATES = tuple(s.lower() for s in GAUGED_STATES)


def spec_columns(quantiles: tuple[float, ...]) -> list[tuple[str, pa.DataType]]:
    """SPEC §4's columns, in its order."""
    ts = pa.timestamp("us", tz="UTC")
    cols = [("endpoint", pa.string()), ("window_start", ts), ("window_end", ts)]
    cols += [("final", pa.bool_())]
    cols += [
        (c, pa.int64()) for c in ("requests", "completed", "failed", "cancelled", "timed_out", "retried")
    ]
    for m in METRICS:
        cols.append((f"{m}_count", pa.int64()))
        cols += [(f"{m}_{quantile_label(q)}_ms", pa.float64()) for q in quantiles]
        cols += [(f"{m}_{s}_ms", pa.float64()) for s in ("min", "max", "mean")]
        cols.append((f"{m}_hdr", pa.binary()))
    cols += [
        (c, pa.int64())
        for c in ("cold_start_count", "webhook_requests", "webhook_succeeded", "webhook_failed")
    ]
    for s in WORKER_GAUGE_STATES:
        cols += [(f"workers_{s}_avg", pa.float64()), (f"workers_{s}_max", pa.int64())]
    cols += [(c, pa.int64()) for c in ("in_queue", "in_progress")]
    quality = ("invalid_transitions", "duplicates", "orphans", "expired", "late_events")
    cols += [(c, pa.int64()) for c in quality]
    return cols


EXTRA_COLUMNS = [
    ("cold_start_failures", pa.int64()),
    ("workers_lost", pa.int64()),
    ("clamped_durations", pa.int64()),
    *((f"workers_{s}_us", pa.int64()) for s in WORKER_GAUGE_STATES),
]


@pytest.mark.parametrize(
    ("quantiles", "labels"),
    [
        (QUANTILES, ["p70", "p90", "p98"]),
        ((0.5, 0.999), ["p50", "p99_9"]),
        ((0.25, 0.9999, 1.0), ["p25", "p99_99", "p100"]),
    ],
)
def test_schema(quantiles: tuple[float, ...], labels: list[str]) -> None:
    agg = aggregator(Params(), quantiles=quantiles)
    assert agg.snapshot().num_rows == 0
    agg.record(ts=BASE_MS, endpoint="ep", job_id="a", state="IN_QUEUE")
    agg.flush()
    schema = agg.snapshot().schema
    spec = spec_columns(quantiles)
    types = {field.name: field.type for field in schema}
    assert len(types) == len(schema.names)  # no name twice
    assert types == dict(spec + EXTRA_COLUMNS)
    # SPEC §4's columns keep their order; the extras come in between.
    assert [name for name in schema.names if name in dict(spec)] == [name for name, _ in spec]
    for m in METRICS:
        assert [n for n in schema.names if n.startswith(m) and n.endswith("_ms")][: len(labels)] == [
            f"{m}_{label}_ms" for label in labels
        ]
    assert {quantile_label(q) for q in quantiles} == set(labels)


def test_empty_snapshot_has_the_schema() -> None:
    agg = aggregator(Params())
    agg.flush()
    table = agg.snapshot()
    assert table.num_rows == 0
    assert {f.name: f.type for f in table.schema} == dict(spec_columns(QUANTILES) + EXTRA_COLUMNS)


# -- engine against reference on generated streams ---------------------------------------------


@given(mixed_streams())
def test_snapshot_matches_reference(stream: Stream) -> None:
    table = snapshot_of(stream.arrival, stream.params)
    assert_snapshot_matches(table, run(stream.arrival, stream.params))


@given(mixed_streams(orphans="drop", max_endpoints=2, max_workers=4))
def test_snapshot_matches_reference_orphans_dropped(stream: Stream) -> None:
    table = snapshot_of(stream.arrival, stream.params)
    assert_snapshot_matches(table, run(stream.arrival, stream.params))


@given(mixed_streams(late_events=False))
def test_disorder_within_lateness_gives_the_sorted_snapshot(stream: Stream) -> None:
    assert snapshot_of(stream.arrival, stream.params).equals(
        snapshot_of(stream.true_order, stream.params), check_metadata=True
    )


# -- conservation --------------------------------------------------------------------------------


def late_flags(events: list[Event], lateness_us: int) -> list[bool]:
    """Which events are late: older than the largest ``ts`` before them minus the lateness."""
    flags = []
    top: int | None = None
    for ev in events:
        late = top is not None and ev.ts < top - lateness_us
        flags.append(late)
        if not late:
            top = ev.ts if top is None else max(top, ev.ts)
    return flags


@given(mixed_streams())
def test_every_event_is_counted_once(stream: Stream) -> None:
    table = snapshot_of(stream.arrival, stream.params)
    sums: dict[str, Counter[str]] = {}  # column -> endpoint -> sum over the snapshot's rows
    for name in (*SNAPSHOT_COUNTERS, *(f"{m}_count" for m in METRICS)):
        counter: Counter[str] = Counter()
        for endpoint, value in zip(
            table.column("endpoint").to_pylist(), table.column(name).to_pylist(), strict=True
        ):
            counter[endpoint] += value
        sums[name] = counter
    late = late_flags(stream.arrival, stream.params.allowed_lateness_us)
    events: dict[tuple[str, str, bool], int] = Counter(
        (ev.endpoint, ev.kind, is_late) for ev, is_late in zip(stream.arrival, late, strict=True)
    )
    endpoints = {ev.endpoint for ev in stream.arrival}
    assert set(table.column("endpoint").to_pylist()) == endpoints
    for ep in endpoints:
        s = {name: counter[ep] for name, counter in sums.items()}
        # Every late event, of any kind, is one late_events and nothing else.
        assert s["late_events"] == sum(events[(ep, kind, True)] for kind in ("job", "worker", "webhook"))
        # Every other webhook event is one webhook request, succeeded or failed.
        assert s["webhook_requests"] == events[(ep, "webhook", False)]
        assert s["webhook_requests"] == s["webhook_succeeded"] + s["webhook_failed"]
        # Every other job event is exactly one of: a new request, a retry, a pick-up (one delay
        # time), a transition into a terminal state, a duplicate, an invalid transition, an
        # orphan. An adopted orphan in a terminal state also counts in that state's counter.
        outcomes = (
            s["requests"]
            + s["retried"]
            + s["delay_time_count"]
            + s["completed"]
            + s["failed"]
            + s["cancelled"]
            + s["timed_out"]
            + s["duplicates"]
            + s["invalid_transitions"]
            + s["orphans"]
        )
        extra = outcomes - events[(ep, "job", False)]
        if stream.params.orphans == "drop":
            assert extra == 0, ep
        else:
            assert 0 <= extra <= s["orphans"], ep
        # Durations: one execution time per IN_PROGRESS -> COMPLETED/FAILED, one cold start time
        # per cold start; no duration here is clamped.
        assert s["execution_time_count"] <= s["completed"] + s["failed"]
        assert s["cold_start_time_count"] == s["cold_start_count"]
        assert s["clamped_durations"] == 0
        # Cold starts end once: ready, failed, or lost while starting.
        starts = sum(
            1
            for ev, is_late in zip(stream.arrival, late, strict=True)
            if ev.endpoint == ep and ev.kind == "worker" and not is_late and ev.state == "INITIALIZING"
        )
        assert s["cold_start_count"] + s["cold_start_failures"] <= starts
    expected = run(stream.arrival, stream.params)
    for ep in endpoints:
        total = expected.totals(ep)
        for name in SNAPSHOT_COUNTERS:
            assert sums[name][ep] == getattr(total, name), (ep, name)


# -- feeding ---------------------------------------------------------------------------------------


def _as_input(table: pa.Table, kind: int) -> Any:
    """The same rows as a Table, a RecordBatch or a pandas DataFrame."""
    if kind == 0:
        return table
    if kind == 1:
        return table.combine_chunks().to_batches()[0]
    return table.to_pandas()


@given(mixed_streams(), st.data())
def test_batch_chunks_and_single_events_give_the_same_snapshot(stream: Stream, data: st.DataObject) -> None:
    table = events_to_table(stream.arrival, all_columns=True)
    whole = aggregator(stream.params)
    whole.ingest(table)
    whole.flush()
    expected = whole.snapshot()

    cuts = data.draw(st.lists(st.integers(0, table.num_rows), max_size=8), label="cuts")
    bounds = sorted({0, table.num_rows, *cuts})
    chunked = aggregator(stream.params)
    for i, (start, stop) in enumerate(itertools.pairwise(bounds)):
        chunked.ingest(_as_input(table.slice(start, stop - start), i % 3))
    chunked.flush()
    assert chunked.snapshot().equals(expected, check_metadata=True)

    single = aggregator(stream.params, staging_size=data.draw(st.sampled_from([1, 7, 4096])))
    for ev in stream.arrival:
        single.record(
            ts=ev.ts // 1000,
            endpoint=ev.endpoint,
            job_id=ev.job_id,
            state=ev.state,
            kind=ev.kind,
            worker_id=ev.worker_id,
            status_code=ev.status_code,
        )
    single.flush()
    assert single.snapshot().equals(expected, check_metadata=True)


# -- hand-worked examples --------------------------------------------------------------------------

#: 10 s windows, no lateness, a sweep every 5 s, workers silent for 12 s are lost.
WORKER_PARAMS = Params(window_us=10 * S, allowed_lateness_us=0, sweep_interval_us=5 * S, worker_ttl_us=12 * S)


def _w(seconds: float, worker: str, state: str, endpoint: str = "ep") -> Event:
    return worker_event(T0 + round(seconds * S), endpoint, worker, state)


def _hook(seconds: float, status: int, endpoint: str = "ep") -> Event:
    return webhook_event(T0 + round(seconds * S), endpoint, "job", status)


WORKER_SCENARIO = [
    _w(0, "w1", "INITIALIZING"),
    _w(1, "w2", "IDLE"),  # joins without a cold start, then falls silent: lost at the 15 s sweep
    _w(2, "w1", "THROTTLED"),  # does not end the cold start
    _hook(2, 200),
    _w(3, "w1", "IDLE"),  # cold start 0 -> 3 s
    _hook(3, 0),  # no response: failed
    _w(3, "w6", "RUNNING", "ep2"),  # last seen at 3 s: 3 + 12 <= 15, lost at the 15 s sweep
    _w(4, "w3", "INITIALIZING"),
    _w(4, "w7", "RUNNING", "ep2"),  # 4 + 12 > 15: lost at the 20 s sweep
    _w(5, "w4", "OFFLINE"),  # never seen: ignored (the event still makes a row)
    _w(6, "w1", "RUNNING"),
    _w(7, "w3", "UNHEALTHY"),  # a failed cold start
    _w(8, "w1", "RUNNING"),  # a heartbeat
    _w(9, "w3", "INITIALIZING"),  # a new cold start, then silent: lost while starting at 25 s
    _hook(11, 299),
    _hook(11, 300),
    _w(12, "w1", "INITIALIZING"),  # a ready worker restarts
    _hook(12, 199),
    _w(14, "w1", "RUNNING"),  # cold start 12 -> 14 s
    _w(16, "w1", "OFFLINE"),
    _w(26, "w5", "IDLE"),  # the watermark: window [20 s, 30 s) stays open
]


def test_worker_scenario() -> None:
    res = run(WORKER_SCENARIO, WORKER_PARAMS)
    rows = {(ep, start - T0): row for (ep, start), row in res.snapshot().items()}
    assert sorted(rows) == [
        ("ep", 0),
        ("ep", 10 * S),
        ("ep", 20 * S),
        ("ep2", 0),
        ("ep2", 10 * S),
        ("ep2", 20 * S),
    ]

    def check(key: tuple[str, int], final: bool, **expected: int | float | list[int]) -> None:
        row = rows[key]
        assert row.final == final
        values: dict[str, Any] = {**row.counts, **row.averages, **row.durations}
        got = {name: value for name, value in values.items() if value}
        assert got == {name: value for name, value in expected.items() if value}, key

    check(
        ("ep", 0),
        True,
        cold_start_count=1,
        cold_start_time=[3 * S],
        cold_start_failures=1,
        webhook_requests=2,
        webhook_succeeded=1,
        webhook_failed=1,
        # w1 [0, 2 s), w3 [4, 7 s) and [9, 10 s); w2 [1, 10 s), w1 [3, 6 s); w1 [6, 10 s) ...
        workers_initializing_us=6 * S,
        workers_initializing_max=1,
        workers_initializing_avg=0.6,
        workers_idle_us=12 * S,
        workers_idle_max=2,
        workers_idle_avg=1.2,
        workers_running_us=4 * S,
        workers_running_max=1,
        workers_running_avg=0.4,
        workers_throttled_us=1 * S,
        workers_throttled_max=1,
        workers_throttled_avg=0.1,
        workers_unhealthy_us=2 * S,
        workers_unhealthy_max=1,
        workers_unhealthy_avg=0.2,
    )
    check(
        ("ep", 10 * S),
        True,
        cold_start_count=1,
        cold_start_time=[2 * S],
        webhook_requests=3,
        webhook_succeeded=1,
        webhook_failed=2,
        workers_lost=1,
        # w3 all along, w1 [12, 14 s); w2 until lost at 15 s; w1 [10, 12 s) and [14, 16 s)
        workers_initializing_us=12 * S,
        workers_initializing_max=2,
        workers_initializing_avg=1.2,
        workers_idle_us=5 * S,
        workers_idle_max=1,
        workers_idle_avg=0.5,
        workers_running_us=4 * S,
        workers_running_max=1,
        workers_running_avg=0.4,
    )
    # Open: w3 lost while starting at the 25 s sweep; w5 idle from 26 s, the watermark.
    check(
        ("ep", 20 * S),
        False,
        workers_lost=1,
        cold_start_failures=1,
        workers_initializing_us=5 * S,
        workers_initializing_max=1,
        workers_initializing_avg=5 / 6,
        workers_idle_max=1,
    )
    check(
        ("ep2", 0),
        True,
        workers_running_us=13 * S,
        workers_running_max=2,
        workers_running_avg=1.3,
    )
    check(
        ("ep2", 10 * S),
        True,
        workers_lost=1,
        workers_running_us=15 * S,
        workers_running_max=2,
        workers_running_avg=1.5,
    )
    # w7 is lost at 20 s, the window's start: carried in (max 1), no time in the window. The row
    # is counted (the lost worker) and open.
    check(("ep2", 20 * S), False, workers_lost=1, workers_running_max=1)
    assert res.workers_in_memory == 1  # w5

    assert_snapshot_matches(snapshot_of(WORKER_SCENARIO, WORKER_PARAMS), res)


def test_open_row_average_at_its_start() -> None:
    # The watermark is the open window's start: nothing elapsed, averages 0.0.
    events = [_w(0, "w1", "IDLE"), _hook(10, 204)]
    res = run(events, WORKER_PARAMS)
    row = res.snapshot()[("ep", T0 + 10 * S)]
    assert not row.final
    assert row.counts["workers_idle_max"] == 1 and row.counts["workers_idle_us"] == 0
    assert row.averages["workers_idle_avg"] == 0.0
    assert_snapshot_matches(snapshot_of(events, WORKER_PARAMS), res)


def test_durations_beyond_the_histogram_are_clamped() -> None:
    day = 86_400 * S
    params = Params(
        window_us=day,
        allowed_lateness_us=0,
        job_ttl_us=30 * day,
        worker_ttl_us=30 * day,
        sweep_interval_us=3600 * S,
    )
    events = [
        Event(T0, "ep", "a", "IN_QUEUE"),
        worker_event(T0, "ep", "w", "INITIALIZING"),
        Event(T0 + 8 * day, "ep", "a", "IN_PROGRESS"),  # 8 days in the queue
        worker_event(T0 + 8 * day + S, "ep", "w", "IDLE"),  # an 8-day cold start
        Event(T0 + 8 * day + 2 * S, "ep", "a", "COMPLETED"),
    ]
    res = run(events, params)
    total = res.totals("ep")
    assert total.clamped_durations == 2
    assert total.delay_us == [HIGHEST_US] and total.cold_start_us == [HIGHEST_US]
    assert total.execution_us == [2 * S]
    assert len(res.snapshot()) == 9  # a queued job and a starting worker: a row every day
    assert_snapshot_matches(snapshot_of(events, params), res)


def test_open_window_row_without_events() -> None:
    # a's job is queued from 0 s; b's event at 15 s sets the watermark: [10 s, 20 s) is open.
    events = [Event(T0, "a", "j", "IN_QUEUE"), Event(T0 + 15 * S, "b", "k", "IN_QUEUE")]
    res = run(events, WORKER_PARAMS)
    assert res.snapshot()[("a", T0 + 10 * S)].counts["in_queue"] == 1
    rows = table_rows(snapshot_of(events, WORKER_PARAMS))
    assert rows[("a", T0 + 10 * S)]["in_queue"] == 1


def test_worker_max_is_taken_at_instants() -> None:
    # w1 and w2 swap IDLE and RUNNING at 2 s: one idle worker at every instant, never two.
    events = [
        _w(0, "w1", "RUNNING"),
        _w(0, "w2", "IDLE"),
        _w(2, "w1", "IDLE"),
        _w(2, "w2", "RUNNING"),
    ]
    res = run(events, WORKER_PARAMS)
    assert res.snapshot()[("ep", T0)].counts["workers_idle_max"] == 1
    rows = table_rows(snapshot_of(events, WORKER_PARAMS))
    assert rows[("ep", T0)]["workers_idle_max"] == 1


@given(mixed_streams(worker_ties=True, max_workers=4))
def test_worker_events_sharing_timestamps(stream: Stream) -> None:
    # Everything agrees when workers of one endpoint share timestamps, but the maxima: the
    # engine's may also count a state held only between events of one timestamp (see above).
    got = table_rows(snapshot_of(stream.arrival, stream.params))
    want = compared_rows(run(stream.arrival, stream.params))
    assert sorted(got) == sorted(want)
    for key, row in want.items():
        for name in row.counts:
            if name.startswith("workers_") and name.endswith("_max"):
                assert got[key][name] >= row.counts[name], (key, name)
                row.counts[name] = got[key][name]
        assert_row_matches(got[key], row)
