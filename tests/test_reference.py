"""The plain-Python reference against numbers worked out by hand (scenarios in ``streams.py``),
plus properties any correct implementation of docs/lifecycle.md has."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given

from reference import COUNTERS, Event, Params, Result, run
from streams import SCENARIOS, T0, Stream, job_streams, shuffle_within

S = 1_000_000  # one second in microseconds
W = 10 * S  # the scenarios' window


def result(name: str) -> Result:
    scenario = SCENARIOS[name]
    return run(scenario.events, scenario.params)


def counts(row: object, **expected: int) -> None:
    """Assert the named counters of ``row`` and that every other counter is zero."""
    for name in COUNTERS:
        assert getattr(row, name) == expected.get(name, 0), name


def test_retry() -> None:
    res = result("retry")
    total = res.totals("ep")
    counts(total, requests=1, failed=1, retried=1, completed=1)
    assert total.delay_us == [1 * S, 2 * S]  # 0 -> 1, then 4 -> 6 (RUNNING is IN_PROGRESS)
    assert total.execution_us == [2 * S, 3 * S]  # 1 -> 3, then 6 -> 9
    assert (total.in_queue, total.in_progress) == (0, 0)
    assert list(res.rows) == [("ep", T0)]
    assert res.jobs_in_memory == 1


def test_duplicates() -> None:
    res = result("duplicate")
    total = res.totals("ep")
    # IN_QUEUE copy, IN_PROGRESS repeat at 2 s, COMPLETED copy arriving after b.
    counts(total, requests=2, completed=1, duplicates=3)
    assert total.delay_us == [1 * S]
    assert total.execution_us == [2 * S]
    assert (total.in_queue, total.in_progress) == (1, 0)


def test_invalid_transitions() -> None:
    res = result("invalid")
    total = res.totals("ep")
    counts(total, requests=1, completed=1, invalid_transitions=3)
    assert res.invalid_pairs == Counter(
        {
            ("IN_QUEUE", "COMPLETED"): 1,
            ("COMPLETED", "IN_PROGRESS"): 1,
            ("COMPLETED", "FAILED"): 1,
        }
    )
    # The invalid COMPLETED at 1 s does not move the job: delay 0 -> 2, execution 2 -> 3.
    assert total.delay_us == [2 * S]
    assert total.execution_us == [1 * S]


def test_orphans_adopt() -> None:
    res = result("orphans_adopt")
    total = res.totals("ep")
    # b adopted running then completes (execution 1 -> 4 s); c adopted completed (counted, no
    # duration); d adopted failed (counted), retried, delay 5 -> 6, execution 6 -> 8.
    counts(total, orphans=3, completed=3, failed=1, retried=1)
    assert total.execution_us == [3 * S, 2 * S]
    assert total.delay_us == [1 * S]
    assert res.jobs_in_memory == 3


def test_orphans_drop() -> None:
    res = result("orphans_drop")
    total = res.totals("ep")
    # b's two events, c's and d's FAILED are orphans; d's IN_QUEUE at 5 s is then a new job.
    counts(total, orphans=4, requests=1, completed=1)
    assert total.execution_us == [2 * S]
    assert total.delay_us == [1 * S]
    assert res.jobs_in_memory == 1


def test_late_events() -> None:
    res = result("late")
    assert res.endpoints == ["ep", "other"]
    assert [ev.ts - T0 for ev in res.late] == [9 * S, 8 * S]
    first, second = res.rows[("ep", T0)], res.rows[("ep", T0 + W)]
    counts(first, requests=1)
    assert first.delay_us == [1 * S]
    assert (first.in_queue, first.in_progress) == (0, 1)
    # The watermark was 12 - 2 = 10 s when the late events arrived: window [10 s, 20 s).
    counts(second, requests=1, completed=1, late_events=1)
    assert second.execution_us == [10 * S]  # the on-time COMPLETED at 11 s
    assert (second.in_queue, second.in_progress) == (1, 0)
    counts(res.rows[("other", T0 + W)], late_events=1)
    counts(res.totals("other"), late_events=1)
    assert set(res.rows) == {("ep", T0), ("ep", T0 + W), ("other", T0 + W)}


def test_expiry_at_sweep_boundary() -> None:
    res = result("expiry")
    total = res.totals("ep")
    counts(total, requests=3, completed=2, duplicates=1, expired=1, orphans=1)
    assert total.delay_us == [5 * S, 1 * S, 4 * S]
    assert total.execution_us == [1 * S]  # b; a's COMPLETED after expiry is an adopted orphan
    counts(res.rows[("ep", T0 + 2 * W)], duplicates=1)
    counts(res.rows[("ep", T0 + 3 * W)], requests=1, expired=1, orphans=1, completed=1)
    levels = {start - T0: (row.in_queue, row.in_progress) for (_, start), row in res.rows.items()}
    assert levels == {0: (0, 1), W: (0, 1), 2 * W: (0, 1), 3 * W: (0, 1)}
    assert (total.in_queue, total.in_progress) == (0, 1)  # c
    assert res.jobs_in_memory == 2  # c, and a (adopted completed); b was forgotten


def test_expiry_needs_the_full_ttl() -> None:
    # Same as the scenario without the event at 35 s: the sweep at 35 s never runs.
    scenario = SCENARIOS["expiry"]
    events = [ev for ev in scenario.events if ev.ts - T0 < 35 * S]
    total = run(events, scenario.params).totals("ep")
    counts(total, requests=3, completed=1, duplicates=1)
    assert (total.in_queue, total.in_progress) == (1, 1)


def test_retention_forgets_finished_jobs() -> None:
    res = result("retention")
    total = res.totals("ep")
    # a, b, then a again after being forgotten; only b's IN_QUEUE at 20 s is a retry.
    counts(total, requests=3, failed=2, retried=1, completed=1)
    assert total.delay_us == [1 * S, 1 * S, 1 * S]
    assert total.execution_us == [1 * S, 1 * S, 2 * S]
    assert (total.in_queue, total.in_progress) == (1, 0)
    counts(res.rows[("ep", T0 + 3 * W)], requests=1)
    assert res.jobs_in_memory == 2


def test_levels_at_window_end() -> None:
    res = result("levels")
    rows = {start - T0: row for (_, start), row in res.rows.items()}
    assert sorted(rows) == [0, W, 2 * W]
    counts(rows[0], requests=3)
    assert (rows[0].in_queue, rows[0].in_progress) == (2, 1)  # b, c queued; a running
    counts(rows[W], cancelled=1, completed=1)  # b's cancellation at exactly 10 s is here
    assert (rows[W].in_queue, rows[W].in_progress) == (1, 0)
    assert rows[2 * W].delay_us == [22 * S]
    assert (rows[2 * W].in_queue, rows[2 * W].in_progress) == (0, 1)
    # A window with no row reports the level carried over.
    assert (res.row("ep", T0 + 100 * S).in_queue, res.row("ep", T0 + 100 * S).in_progress) == (
        0,
        1,
    )
    assert res.level_before("ep", T0 + 10 * S) == (2, 1)
    assert res.level_before("ep", T0 + 10 * S + 1) == (1, 1)  # b cancelled at 10 s


def test_same_timestamp_order() -> None:
    res = result("same_ts")
    total = res.totals("ep")
    # a: FAILED then the retry at 3 s (2 legal transitions rather than 1); b's three events at
    # 6 s in lifecycle order; c: CANCELLED then TIMED_OUT (invalid), either order making one
    # transition legal; d: IN_PROGRESS then CANCELLED, both legal.
    counts(
        total,
        requests=4,
        failed=1,
        retried=1,
        completed=2,
        cancelled=2,
        invalid_transitions=1,
    )
    assert res.invalid_pairs == Counter({("CANCELLED", "TIMED_OUT"): 1})
    assert total.delay_us == [1 * S, 1 * S, 0, 2 * S]
    assert total.execution_us == [2 * S, 1 * S, 0]
    by_job: dict[str, list[str]] = {}
    for ev in res.applied:
        by_job.setdefault(ev.job_id, []).append(ev.state)
    assert by_job == {
        "a": ["IN_QUEUE", "IN_PROGRESS", "FAILED", "IN_QUEUE", "IN_PROGRESS", "COMPLETED"],
        "b": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"],
        "c": ["IN_QUEUE", "CANCELLED", "TIMED_OUT"],
        "d": ["IN_QUEUE", "IN_PROGRESS", "CANCELLED"],
    }


def test_same_timestamp_group_of_seven() -> None:
    res = result("same_ts_retry_loop")
    total = res.totals("ep")
    counts(total, requests=1, failed=2, retried=2, completed=1)  # all seven at 2 s legal
    assert total.delay_us == [1 * S, 0, 0]
    assert total.execution_us == [1 * S, 0, 0]
    assert [ev.state for ev in res.applied[2:]] == [
        "FAILED",
        "IN_QUEUE",
        "IN_PROGRESS",
        "FAILED",
        "IN_QUEUE",
        "IN_PROGRESS",
        "COMPLETED",
    ]


def test_jobs_are_per_endpoint() -> None:
    res = result("same_id_two_endpoints")
    counts(res.totals("ep1"), requests=1)
    assert (res.totals("ep1").in_queue, res.totals("ep1").in_progress) == (0, 1)
    assert res.totals("ep1").delay_us == [2 * S]
    counts(res.totals("ep2"), orphans=1, completed=1)
    assert res.totals("ep2").execution_us == [2 * S]


def test_unknown_state_is_rejected() -> None:
    with pytest.raises(ValueError, match="PAUSED"):
        run([Event(T0, "ep", "a", "PAUSED")], Params())


# -- properties --------------------------------------------------------------------------------


@given(job_streams(late_events=False, ties=True))
def test_disorder_within_lateness_does_not_matter(stream: Stream) -> None:
    sorted_result = run(stream.true_order, stream.params)
    shuffled_result = run(stream.arrival, stream.params)
    assert not shuffled_result.late
    assert shuffled_result.rows == sorted_result.rows
    assert shuffled_result.invalid_pairs == sorted_result.invalid_pairs
    assert shuffled_result.jobs_in_memory == sorted_result.jobs_in_memory
    again = shuffle_within(stream.true_order, stream.params.allowed_lateness_us, random.Random(0))
    assert run(again, stream.params).rows == sorted_result.rows


@given(job_streams())
def test_every_event_is_accounted_for(stream: Stream) -> None:
    res = run(stream.arrival, stream.params)
    n_events = 0
    for endpoint in res.endpoints:
        total = res.totals(endpoint)
        outcomes = (
            total.late_events
            + total.duplicates
            + total.invalid_transitions
            + total.orphans
            + total.requests
            + total.retried
            + len(total.delay_us)  # IN_QUEUE -> IN_PROGRESS
            + total.completed
            + total.failed
            + total.cancelled
            + total.timed_out
        )
        n_events = sum(ev.endpoint == endpoint for ev in stream.arrival)
        # An adopted terminal orphan counts as an orphan and in its terminal counter.
        extra = outcomes - n_events
        if stream.params.orphans == "drop":
            assert extra == 0
        else:
            assert 0 <= extra <= total.orphans
        assert len(total.execution_us) <= total.completed + total.failed
        assert all(d >= 0 for d in total.execution_us + total.delay_us)
        assert total.in_queue >= 0
        assert total.in_progress >= 0
    assert sum(res.totals(ep).late_events for ep in res.endpoints) == len(res.late)
    assert res.jobs_in_memory <= len({(ev.endpoint, ev.job_id) for ev in stream.arrival})


@given(job_streams())
def test_rows_sum_to_totals_and_levels_end_consistently(stream: Stream) -> None:
    res = run(stream.arrival, stream.params)
    for endpoint in res.endpoints:
        total = res.totals(endpoint)
        rows = [row for (ep, _), row in sorted(res.rows.items()) if ep == endpoint]
        for name in COUNTERS:
            assert sum(getattr(row, name) for row in rows) == getattr(total, name)
        if res.applied:
            # After the last applied event nothing changes: the level at the end of its window.
            last = res.applied[-1].ts
            assert res.level_before(endpoint, last + 1) == (total.in_queue, total.in_progress)
