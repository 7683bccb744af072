"""``rollup``: exact re-aggregation of snapshot rows (SPEC §4, docs/snapshot.md).

* 1-minute rows rolled up to 1 hour equal a 1-hour aggregation of the same events: counters,
  ``*_hdr`` bytes (byte for byte) and everything read from them, worker-µs and maxima, levels;
* rows of the same windows from two aggregators that split the stream by job (each endpoint's
  workers in one of them) roll up to one aggregator's rows;
* 1 minute -> 10 minutes -> 1 hour equals 1 minute -> 1 hour;
* ``final`` and the worker averages follow the contract of docs/snapshot.md, checked on every
  rolled-up table against its input rows.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given

from reference import GAUGED_STATES, Event, Params, webhook_event
from streams import Stream, mixed_streams
from test_snapshot import T0, S, row_list, snapshot_of, table_rows

MINUTE = 60 * S
HOUR = 3600 * S
WORKER_STATES = tuple(s.lower() for s in GAUGED_STATES)
AVERAGES = tuple(f"workers_{s}_avg" for s in WORKER_STATES)

#: Streams of 1-minute windows spanning about three hours: jobs, workers that pause for up to
#: 45 minutes, webhooks, late events.
hours_long = mixed_streams(window_ms=60_000, span_ms=3 * 3600 * 1000, max_endpoints=2)


def rollup(table: pa.Table, every: str | int) -> pa.Table:
    from jobmetrics.snapshot import rollup

    return rollup(table, every=every)


def at_width(params: Params, window_us: int) -> Params:
    return dataclasses.replace(params, window_us=window_us)


def additive(row: dict[str, Any]) -> dict[str, Any]:
    """Every column but ``final`` and the worker averages: what rollup must reproduce whatever
    the watermark (counters, histogram bytes and statistics, worker-µs and maxima, levels)."""
    return {name: value for name, value in row.items() if name != "final" and name not in AVERAGES}


def watermark_of(table: pa.Table) -> int:
    """The watermark a snapshot records in its metadata (µs)."""
    return int(json.loads(table.schema.metadata[b"jobmetrics"])["watermark_us"])


def assert_rollup_contract(fine: pa.Table, coarse: pa.Table, step: int) -> None:
    """``final`` and ``workers_<state>_avg`` of each rolled-up row, as docs/snapshot.md states them:
    a row is final when its window ends at or before the watermark recorded in the input's
    metadata; a final row's average is its worker-µs over ``step``, an open row's over the time
    from its start to the watermark. The output records the same watermark."""
    wm = watermark_of(fine)
    assert watermark_of(coarse) == wm
    fine_rows = row_list(fine)  # several rows of one window when they come from several sources
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in fine_rows:
        groups.setdefault((row["endpoint"], row["window_start"] // step * step), []).append(row)
    coarse_rows = table_rows(coarse)
    assert sorted(coarse_rows) == sorted(groups)
    for key, row in coarse_rows.items():
        start = key[1]
        final = start + step <= wm
        assert row["final"] == final, key
        assert row["window_end"] == start + step
        covered = step if final else min(max(wm - start, 0), step)
        for s in WORKER_STATES:
            expected = row[f"workers_{s}_us"] / covered if covered else 0.0
            assert row[f"workers_{s}_avg"] == expected, (key, s)


# -- coarser windows -------------------------------------------------------------------------------


def closed(events: list[Event], copies: int = 1, *, like: list[Event] | None = None) -> list[Event]:
    """``events`` followed by ``copies`` webhook deliveries per endpoint at the largest ``ts``
    (endpoints and largest ``ts`` of ``like`` when given).

    Used to give several sources the same watermark.
    """
    like = events if like is None else like
    watermark = max(ev.ts for ev in like)
    tail = [webhook_event(watermark, ep, "tail", 200) for ep in sorted({e.endpoint for e in like})]
    return [*events, *tail * copies]


@given(hours_long)
def test_minutes_rolled_up_to_hours_equal_hourly_aggregation(stream: Stream) -> None:
    events = stream.arrival
    minutes = snapshot_of(events, stream.params)
    hourly = rollup(minutes, "1h")
    assert_rollup_contract(minutes, hourly, HOUR)
    direct = table_rows(snapshot_of(events, at_width(stream.params, HOUR)))
    rolled = table_rows(hourly)
    assert sorted(rolled) == sorted(direct)
    for key, want in direct.items():
        got = rolled[key]
        assert additive(got) == additive(want), key  # *_hdr bytes included
        assert got == want, key  # final and the averages too: both use the same watermark


def test_open_minute_of_a_quiet_endpoint_is_rolled_up() -> None:
    events = [
        Event(T0 + 10 * S, "a", None, "INITIALIZING", "worker", "w-0"),
        webhook_event(T0 + 90 * S, "b", "x", 200),  # the watermark, in the second minute
    ]
    params = Params(window_us=MINUTE, allowed_lateness_us=0)
    direct = table_rows(snapshot_of(events, at_width(params, HOUR)))
    assert direct[("a", T0)]["workers_initializing_us"] == 80 * S
    rolled = table_rows(rollup(snapshot_of(events, params), "1h"))
    assert rolled[("a", T0)]["workers_initializing_us"] == 80 * S


@given(hours_long)
def test_rolling_up_twice_equals_once(stream: Stream) -> None:
    minutes = snapshot_of(stream.arrival, stream.params)
    ten = rollup(minutes, "10m")
    assert_rollup_contract(minutes, ten, 10 * MINUTE)
    twice = rollup(ten, "1h")
    assert_rollup_contract(ten, twice, HOUR)
    once = table_rows(rollup(minutes, "1h"))
    twice_rows = table_rows(twice)
    assert sorted(twice_rows) == sorted(once)
    for key, want in once.items():
        got = twice_rows[key]
        assert additive(got) == additive(want), key
        assert got == want, key
    # Rolling up again at the same width changes nothing.
    again = rollup(twice, "1h")
    assert_rollup_contract(twice, again, HOUR)
    again_rows = table_rows(again)
    assert again_rows == twice_rows
    assert sorted(again_rows) == sorted(twice_rows)
    for key, want in twice_rows.items():
        assert additive(again_rows[key]) == additive(want), key
        assert again_rows[key]["final"] == want["final"], key


def test_rollup_at_the_same_width_keeps_final_rows() -> None:
    events = [
        Event(T0 + 5 * S, "ep", "a", "IN_QUEUE"),
        Event(T0 + 70 * S, "ep", "a", "IN_PROGRESS"),
        Event(T0 + 200 * S, "ep", "a", "COMPLETED"),
        webhook_event(T0 + 230 * S, "other", "a", 500),
    ]
    snap = snapshot_of(events, Params(window_us=MINUTE, allowed_lateness_us=0))
    same = rollup(snap, "1m")
    assert_rollup_contract(snap, same, MINUTE)
    got, want = table_rows(same), table_rows(snap)
    assert sorted(got) == sorted(want)
    assert {k: r for k, r in got.items() if r["final"]} == {k: r for k, r in want.items() if r["final"]}
    assert [r["final"] for r in want.values()] == [True, True, True, False, False]


def test_closed_hour_is_final_after_rollup() -> None:
    # Watermark T0 + 1 h: the hour [T0, T0 + 1 h) is closed (SPEC §4: final = closed by the
    # watermark), as the direct 1-hour aggregation says. Its only minute row ends at T0 + 1 min.
    events = [webhook_event(T0 + 10 * S, "ep", "a", 200), webhook_event(T0 + HOUR, "ep", "a", 200)]
    params = Params(window_us=MINUTE, allowed_lateness_us=0)
    direct = table_rows(snapshot_of(events, at_width(params, HOUR)))
    assert direct[("ep", T0)]["final"]
    rolled = table_rows(rollup(snapshot_of(events, params), "1h"))
    assert rolled[("ep", T0)] == direct[("ep", T0)]


def test_rolling_up_twice_keeps_final() -> None:
    events = [
        webhook_event(T0 + 10 * S, "ep", "a", 200),  # hour 0, minute 0
        webhook_event(T0 + HOUR + 34 * MINUTE, "ep", "a", 200),  # a final minute ending 1:35
        webhook_event(T0 + HOUR + 35 * MINUTE, "ep", "a", 200),  # the watermark, minute open
    ]
    minutes = snapshot_of(events, Params(window_us=MINUTE, allowed_lateness_us=0))
    once = table_rows(rollup(minutes, "1h"))
    assert once[("ep", T0)]["final"]
    twice = table_rows(rollup(rollup(minutes, "10m"), "1h"))
    assert twice[("ep", T0)]["final"]


# -- several sources -------------------------------------------------------------------------------


def split_by_job(events: list[Event], seed: int) -> tuple[list[Event], list[Event]]:
    """Two sub-streams (arrival order kept): each job's events, each endpoint's worker events
    and each webhook delivery go to one of them."""
    rnd = random.Random(seed)
    owner: dict[tuple[str, str, str], int] = {}
    parts: tuple[list[Event], list[Event]] = ([], [])
    for ev in events:
        if ev.kind == "job":
            key = ("job", ev.endpoint, str(ev.job_id))
        elif ev.kind == "worker":
            key = ("worker", ev.endpoint, "")
        else:
            key = ("webhook", ev.endpoint, str(rnd.random()))
        parts[owner.setdefault(key, rnd.randrange(2))].append(ev)
    return parts


@given(mixed_streams(late_events=False))
def test_split_by_job_rolls_up_to_one_aggregator(stream: Stream) -> None:
    # Without late events, lateness is judged alike in any sub-stream: every delivery is within
    # allowed_lateness of every event before it. Each source gets an event per endpoint at the
    # watermark (closed), so both have the same watermark and rows in the open window.
    first, second = split_by_job(stream.arrival, seed=len(stream.arrival))
    parts = [snapshot_of(closed(part, like=stream.arrival), stream.params) for part in (first, second)]
    both = pa.concat_tables(parts)
    width = stream.params.window_us
    assert watermark_of(parts[0]) == watermark_of(parts[1])
    merged = rollup(both, width)
    assert_rollup_contract(both, merged, width)
    got = table_rows(merged)
    whole = table_rows(snapshot_of(closed(stream.arrival, copies=2), stream.params))
    assert sorted(got) == sorted(whole)
    for key, want in whole.items():
        assert additive(got[key]) == additive(want), key
        assert got[key]["final"] == want["final"], key
        if want["final"]:
            assert got[key] == want, key


# -- errors ----------------------------------------------------------------------------------------


def _minute_snapshot(events: list[Event]) -> pa.Table:
    return snapshot_of(events, Params(window_us=MINUTE, allowed_lateness_us=0))


def test_every_must_cover_whole_rows() -> None:
    snap = _minute_snapshot(
        [webhook_event(T0 + 10 * S, "ep", "a", 200), webhook_event(T0 + 70 * S, "ep", "a", 200)]
    )
    with pytest.raises(ValueError, match="not a multiple of the rows' window width"):
        rollup(snap, "90s")  # the row [60 s, 120 s) straddles [0, 90 s) and [90 s, 180 s)
    with pytest.raises(ValueError, match="not a multiple"):
        rollup(snap, "30s")
    with pytest.raises(ValueError, match="positive"):
        rollup(snap, 0)
    with pytest.raises(ValueError, match="missing columns"):
        rollup(snap.drop_columns(["final"]), "1h")


def test_every_not_a_multiple_is_rejected_whatever_the_rows() -> None:
    snap = _minute_snapshot([webhook_event(T0 + 10 * S, "ep", "a", 200)])
    with pytest.raises(ValueError, match="not a multiple"):
        rollup(snap, "90s")  # would give a 90 s row holding one minute
