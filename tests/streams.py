"""Job event streams for the tests and benchmarks.

* :func:`job_streams`: a hypothesis strategy of small, nasty, realistic streams (retries,
  cancellations, queue timeouts, duplicates, invalid transitions, orphans, idle jobs that expire,
  out-of-order and late arrival) together with the aggregator parameters to run them with.
* :func:`mixed_streams`: the same jobs plus workers (cold starts, failed cold starts, restarts,
  heartbeats, ``OFFLINE``, silent workers that get lost) and webhook deliveries, over several
  endpoints, optionally spanning hours.
* :func:`synthetic_events`: a seeded, vectorised generator of large realistic streams as a
  ``pyarrow.Table`` with the SPEC columns (10 M events in a few seconds).
* :data:`SCENARIOS`: small hand-written streams whose metrics are worked out by hand in
  ``test_reference.py``.
* :func:`events_to_table` / :func:`table_to_events`: between reference events and SPEC tables
  (``kind``, ``worker_id`` and ``status_code`` null where they do not apply).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import strategies as st

from reference import LEGAL, Event, Params

__all__ = [
    "BASE_MS",
    "SCENARIOS",
    "Scenario",
    "Stream",
    "events_to_table",
    "job_streams",
    "mixed_streams",
    "synthetic_events",
    "table_to_events",
]

#: 2023-11-14T22:13:20Z: a realistic epoch origin for generated streams (milliseconds).
BASE_MS = 1_700_000_000_000

STATES = ("IN_QUEUE", "IN_PROGRESS", "COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT")
ENDPOINT_NAMES = ("sdxl-turbo", "llama-3-70b", "whisper-v3", "flux-dev")
WORKER_STATES = ("INITIALIZING", "IDLE", "RUNNING", "THROTTLED", "UNHEALTHY", "OFFLINE")
WEBHOOK_STATUSES = (0, 200, 204, 404, 500)


# -- conversions ---------------------------------------------------------------------------------


def events_to_table(events: list[Event], *, all_columns: bool = False) -> pa.Table:
    """A SPEC event table (``ts`` int64 epoch milliseconds) of reference events, in list order.

    Columns ``ts``, ``kind``, ``endpoint``, ``job_id`` (null on worker rows), ``state`` (null on
    webhook rows), then ``worker_id`` (null where absent) when some event has one and
    ``status_code`` (int32, null on other rows) when some event is a webhook, or always with
    ``all_columns``.
    """
    for ev in events:
        if ev.ts % 1000:
            raise ValueError(f"event time {ev.ts} us is not a whole millisecond")
    columns = {
        "ts": pa.array([ev.ts // 1000 for ev in events], type=pa.int64()),
        "kind": pa.array([ev.kind for ev in events], type=pa.string()),
        "endpoint": pa.array([ev.endpoint for ev in events], type=pa.string()),
        "job_id": pa.array([ev.job_id for ev in events], type=pa.string()),
        "state": pa.array([ev.state for ev in events], type=pa.string()),
    }
    if all_columns or any(ev.worker_id is not None for ev in events):
        columns["worker_id"] = pa.array([ev.worker_id for ev in events], type=pa.string())
    if all_columns or any(ev.status_code is not None for ev in events):
        columns["status_code"] = pa.array([ev.status_code for ev in events], type=pa.int32())
    return pa.table(columns)


def table_to_events(table: pa.Table) -> list[Event]:
    """Reference events of a SPEC event table (``ts`` int64 epoch ms or an Arrow timestamp);
    ``kind``, ``worker_id`` and ``status_code`` are read when present."""
    n = table.num_rows
    ts = table.column("ts")
    if pa.types.is_timestamp(ts.type):
        ts_us = pc.cast(ts, pa.timestamp("us", tz=ts.type.tz), safe=False).cast(pa.int64())
    else:
        ts_us = pc.multiply(ts.cast(pa.int64()), 1000)

    def column(name: str, cast: pa.DataType | None = None) -> list[Any]:
        if name not in table.column_names:
            return [None] * n
        values = table.column(name)
        return (values.cast(cast) if cast is not None else values).to_pylist()

    return [
        Event(t, endpoint, job_id, state, kind or "job", worker_id, status)
        for t, endpoint, job_id, state, kind, worker_id, status in zip(
            ts_us.to_pylist(),
            table.column("endpoint").to_pylist(),
            column("job_id", pa.string()),
            column("state"),
            column("kind"),
            column("worker_id", pa.string()),
            column("status_code", pa.int64()),
            strict=True,
        )
    ]


# -- hypothesis streams --------------------------------------------------------------------------


class Stream(NamedTuple):
    """A generated stream: the events in event-time order, the same in arrival order, params."""

    true_order: list[Event]
    arrival: list[Event]
    params: Params


_SECOND = 1000  # in milliseconds

# Parameter menus, in milliseconds. Small TTL / retention / sweep values make expiry and
# forgetting happen inside short streams; the large ones are the production defaults.
_WINDOWS_MS = (1 * _SECOND, 5 * _SECOND, 60 * _SECOND)
_LATENESS_MS = (0, 1 * _SECOND, 5 * _SECOND)
_TTL_MS = (3 * _SECOND, 10 * _SECOND, 86_400 * _SECOND)
_RETENTION_MS = (2 * _SECOND, 10 * _SECOND, 3_600 * _SECOND)
_SWEEP_MS = (1 * _SECOND, 2 * _SECOND, 5 * _SECOND, 300 * _SECOND)

# Legal moves of the random walk, weighted by repetition.
_MOVES = {
    "IN_QUEUE": ("IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS", "CANCELLED", "TIMED_OUT"),
    "IN_PROGRESS": (
        "COMPLETED",
        "COMPLETED",
        "COMPLETED",
        "FAILED",
        "FAILED",
        "CANCELLED",
        "TIMED_OUT",
        "IN_QUEUE",
    ),
    "FAILED": ("IN_QUEUE",),
    "TIMED_OUT": ("IN_QUEUE",),
    "COMPLETED": (),
    "CANCELLED": (),
}
# States an event may name that are neither the current state nor a legal next one.
_INVALID = {s: tuple(t for t in STATES if t != s and t not in LEGAL[s]) for s in STATES}
# Actions after each event: "stop" first so that shrinking heads for short jobs.
_ACTIONS_IN_FLIGHT = ("stop", "move", "move", "move", "move", "invalid", "repeat")
_ACTIONS_FINISHED = ("stop", "stop", "move", "move", "invalid", "repeat")


def _spell(state: str, alias: bool) -> str:
    return "RUNNING" if alias and state == "IN_PROGRESS" else state


def _draw_params(
    draw: st.DrawFn,
    orphans: Literal["adopt", "drop"] | None,
    *,
    window_ms: int | None = None,
    workers: bool = False,
) -> Params:
    """Aggregator parameters for a drawn stream (a worker TTL too with ``workers``)."""
    window = window_ms if window_ms is not None else draw(st.sampled_from(_WINDOWS_MS))
    lateness = draw(st.sampled_from(_LATENESS_MS))
    ttl = draw(st.sampled_from(_TTL_MS))
    retention = draw(st.sampled_from(_RETENTION_MS))
    sweep = draw(st.sampled_from(_SWEEP_MS))
    extra = {"worker_ttl_us": draw(st.sampled_from(_WORKER_TTL_MS)) * 1000} if workers else {}
    policy: Literal["adopt", "drop"] = (
        orphans if orphans is not None else draw(st.sampled_from(("adopt", "drop")))
    )
    return Params(
        window_us=window * 1000,
        allowed_lateness_us=lateness * 1000,
        job_ttl_us=ttl * 1000,
        retention_us=retention * 1000,
        sweep_interval_us=sweep * 1000,
        orphans=policy,
        **extra,
    )


@st.composite
def job_streams(
    draw: st.DrawFn,
    *,
    max_jobs: int = 20,
    max_steps: int = 8,
    max_endpoints: int = 4,
    orphans: Literal["adopt", "drop"] | None = None,
    late_events: bool = True,
    idle: bool = True,
    ties: bool = False,
) -> Stream:
    """Random realistic job event streams with the parameters to aggregate them.

    Every job's timestamps are strictly increasing (with ``ties``, non-decreasing: several events
    of one job at one timestamp) and whole milliseconds; different jobs may share timestamps, and
    copies of delivered events have the timestamp of the original. Arrival
    order is event-time order perturbed by at most ``allowed_lateness`` (sort by ``ts`` plus a
    delay in ``[0, L]``), so nothing is late unless ``late_events`` adds a few events delayed
    beyond it. Job ids are unique across endpoints.
    """
    params = _draw_params(draw, orphans)
    ttl, retention, sweep = (
        params.job_ttl_us // 1000,
        params.retention_us // 1000,
        params.sweep_interval_us // 1000,
    )
    lateness = params.allowed_lateness_us // 1000
    endpoints = ENDPOINT_NAMES[: draw(st.integers(1, max_endpoints))]
    base = BASE_MS + draw(st.integers(0, 59_999))  # windows start anywhere relative to the data
    idle_gaps = [g for g in (ttl, retention) if g <= 60 * _SECOND] or [20 * _SECOND]
    emitted = _draw_jobs(
        draw,
        endpoints=endpoints,
        base=base,
        span=20 * _SECOND,
        n_jobs=draw(st.integers(1, max_jobs)),
        max_steps=max_steps,
        idle_gaps=idle_gaps if idle else [],
        sweep=sweep,
        ties=ties,
    )
    true_order, arrival = _deliver(draw, emitted, lateness, late_events)
    return Stream(true_order, arrival, params)


def _draw_jobs(
    draw: st.DrawFn,
    *,
    endpoints: Sequence[str],
    base: int,
    span: int,
    n_jobs: int,
    max_steps: int,
    idle_gaps: list[int],
    sweep: int,
    ties: bool,
) -> list[Event]:
    """``n_jobs`` random jobs starting within ``span`` ms of ``base`` (``ts`` in milliseconds), in
    generation order, each job's events in time order. Job ids are unique across endpoints."""
    emitted: list[Event] = []
    for k in range(n_jobs):
        endpoint = draw(st.sampled_from(endpoints))
        job_id = f"job-{k:05d}"
        t = base + draw(st.integers(0, span))
        alias = draw(st.integers(0, 3)) == 0  # spell IN_PROGRESS as RUNNING
        orphan = draw(st.integers(0, 9)) == 0  # an orphan: first event is not IN_QUEUE
        state = draw(st.sampled_from(STATES[1:])) if orphan else "IN_QUEUE"
        emitted.append(Event(t, endpoint, job_id, _spell(state, alias)))
        for _ in range(max_steps):
            actions = _ACTIONS_IN_FLIGHT if state in ("IN_QUEUE", "IN_PROGRESS") else _ACTIONS_FINISHED
            action = draw(st.sampled_from(actions))
            if action == "stop":
                break
            if idle_gaps and draw(st.integers(0, 9)) == 0:  # idle for about a TTL or a retention
                t += draw(st.sampled_from(idle_gaps)) + draw(st.integers(0, 3 * sweep))
            elif ties and draw(st.integers(0, 2)) == 0:  # at the same millisecond
                pass
            else:
                t += draw(st.integers(1, 3 * _SECOND))
            if action == "move" and _MOVES[state]:
                state = draw(st.sampled_from(_MOVES[state]))
                emitted.append(Event(t, endpoint, job_id, _spell(state, alias)))
            elif action == "invalid" and _INVALID[state]:
                invalid = draw(st.sampled_from(_INVALID[state]))
                emitted.append(Event(t, endpoint, job_id, _spell(invalid, alias)))
            else:  # a status repeat with a new timestamp: a duplicate
                emitted.append(Event(t, endpoint, job_id, _spell(state, alias)))
    return emitted


def _deliver(
    draw: st.DrawFn, emitted: list[Event], lateness: int, late_events: bool
) -> tuple[list[Event], list[Event]]:
    """``emitted`` (``ts`` in milliseconds) in event-time order and in arrival order, ``ts`` in
    microseconds.

    Each delivery is delayed by [0, L]; some deliveries are repeated (at-least-once), either right
    after the original or with their own delay; with ``late_events`` a few are delayed beyond L.
    """
    rnd = draw(st.randoms(use_true_random=False))
    deliveries: list[tuple[int, tuple[int, int], Event]] = []
    for seq, item in enumerate(emitted):
        delay = rnd.randint(0, lateness)
        deliveries.append((delay, (seq, 0), item))
        if rnd.random() < 0.1:
            copy_delay = delay if rnd.random() < 0.5 else rnd.randint(0, lateness)
            deliveries.append((copy_delay, (seq, 1), item))
    if late_events:
        for _ in range(draw(st.integers(0, 3))):
            i = rnd.randrange(len(deliveries))
            _, order, item = deliveries[i]
            deliveries[i] = (lateness + rnd.randint(1, 20 * _SECOND), order, item)

    def event(item: Event) -> Event:
        return dataclasses.replace(item, ts=item.ts * 1000)

    true_order = [event(item) for _, _, item in sorted(deliveries, key=lambda d: (d[2].ts, d[1]))]
    arrival = [event(item) for _, _, item in sorted(deliveries, key=lambda d: (d[2].ts + d[0], d[1]))]
    return true_order, arrival


_WORKER_TTL_MS = (5 * _SECOND, 30 * _SECOND, 86_400 * _SECOND)

# Worker walk: next states weighted by repetition; first states mostly INITIALIZING (a cold
# start); an OFFLINE first event is ignored by the rules.
_WORKER_FIRST = ("INITIALIZING",) * 5 + ("IDLE", "RUNNING", "THROTTLED", "UNHEALTHY", "OFFLINE")
_WORKER_MOVES = {
    "INITIALIZING": ("IDLE", "IDLE", "RUNNING", "THROTTLED", "UNHEALTHY", "OFFLINE"),
    "IDLE": ("RUNNING", "RUNNING", "THROTTLED", "INITIALIZING", "UNHEALTHY", "OFFLINE"),
    "RUNNING": ("IDLE", "IDLE", "THROTTLED", "INITIALIZING", "UNHEALTHY", "OFFLINE"),
    "THROTTLED": ("IDLE", "RUNNING", "INITIALIZING", "UNHEALTHY", "OFFLINE"),
    "UNHEALTHY": ("INITIALIZING", "IDLE", "OFFLINE", "OFFLINE"),
    "OFFLINE": _WORKER_FIRST,  # the worker comes back: a new worker with the same id
}
# "silent": no event for about worker_ttl (lost at a sweep, unless it heartbeats in time);
# "pause": a long gap (up to a quarter of the stream's span).
_WORKER_ACTIONS = ("stop", "move", "move", "move", "move", "heartbeat", "heartbeat", "silent", "pause")


@st.composite
def mixed_streams(
    draw: st.DrawFn,
    *,
    max_jobs: int = 12,
    max_steps: int = 6,
    max_endpoints: int = 3,
    max_workers: int = 3,
    max_worker_steps: int = 8,
    max_webhooks: int = 6,
    window_ms: int | None = None,
    span_ms: int = 20 * _SECOND,
    orphans: Literal["adopt", "drop"] | None = None,
    late_events: bool = True,
    worker_ties: bool = False,
) -> Stream:
    """Random streams of job, worker and webhook events with the parameters to aggregate them.

    Jobs are those of :func:`job_streams` (job events sometimes carry a ``worker_id``, which the
    rules ignore). Each endpoint gets up to ``max_workers`` workers (ids ``w-0``, ``w-1``, … on every
    endpoint: workers are per endpoint) walking through cold starts, failed cold starts, restarts,
    heartbeats, ``OFFLINE`` and back, silences long enough to be lost at a sweep, and long pauses.
    Webhook deliveries (status 0, 200, 204, 404, 500) mostly name existing jobs. Everything starts
    within ``span_ms`` of a random origin; a stream longer than a minute has a delivery at the end
    of the span.

    Each worker's timestamps are strictly increasing; without ``worker_ties`` no two worker events
    of one endpoint share a timestamp (copies of one delivery aside), so the most workers at once
    does not depend on how events of one timestamp are ordered. Arrival order is event-time order
    perturbed within ``allowed_lateness``, plus a few late events with ``late_events``.
    """
    params = _draw_params(draw, orphans, window_ms=window_ms, workers=True)
    ttl, retention, sweep = (
        params.job_ttl_us // 1000,
        params.retention_us // 1000,
        params.sweep_interval_us // 1000,
    )
    lateness, worker_ttl = params.allowed_lateness_us // 1000, params.worker_ttl_us // 1000
    endpoints = ENDPOINT_NAMES[: draw(st.integers(1, max_endpoints))]
    base = BASE_MS + draw(st.integers(0, 59_999))
    idle_gaps = [g for g in (ttl, retention) if g <= 60 * _SECOND] or [20 * _SECOND]
    jobs = _draw_jobs(
        draw,
        endpoints=endpoints,
        base=base,
        span=span_ms,
        n_jobs=draw(st.integers(0, max_jobs)),
        max_steps=max_steps,
        idle_gaps=idle_gaps,
        sweep=sweep,
        ties=False,
    )
    workers = _draw_workers(
        draw,
        endpoints=endpoints,
        base=base,
        span=span_ms,
        max_workers=max_workers,
        max_steps=max_worker_steps,
        # silent for about worker_ttl when that fits in a short stream
        silence=worker_ttl + draw(st.integers(0, 3 * sweep)) if worker_ttl <= 60 * _SECOND else None,
        ties=worker_ties,
    )
    # Some job events name the worker that ran them (ignored by the rules).
    worker_ids = sorted({ev.worker_id for ev in workers if ev.worker_id is not None})
    if worker_ids and draw(st.booleans()):
        tagged = draw(st.sampled_from(worker_ids))
        jobs = [dataclasses.replace(ev, worker_id=tagged) if ev.state != "IN_QUEUE" else ev for ev in jobs]
    webhooks: list[Event] = []
    for _ in range(draw(st.integers(0, max_webhooks))):
        if jobs and draw(st.integers(0, 4)):
            job = draw(st.sampled_from(jobs))
            endpoint, job_id, t = job.endpoint, job.job_id, job.ts
        else:  # a delivery for a job the stream never shows
            endpoint, job_id = draw(st.sampled_from(endpoints)), "job-unseen"
            t = base + draw(st.integers(0, span_ms))
        t += draw(st.integers(0, 5 * _SECOND))
        for _ in range(draw(st.integers(1, 3))):  # the first attempts may fail and be retried
            status = draw(st.sampled_from(WEBHOOK_STATUSES))
            webhooks.append(Event(t, endpoint, job_id, None, kind="webhook", status_code=status))
            if 200 <= status < 300:
                break
            t += draw(st.integers(1, 2 * _SECOND))
    if span_ms > 60 * _SECOND or not (jobs or workers or webhooks):
        # A delivery at the end of the span: a long stream does span it.
        endpoint = draw(st.sampled_from(endpoints))
        webhooks.append(Event(base + span_ms, endpoint, "job-unseen", None, "webhook", None, 200))
    true_order, arrival = _deliver(draw, [*jobs, *workers, *webhooks], lateness, late_events)
    return Stream(true_order, arrival, params)


def _draw_workers(
    draw: st.DrawFn,
    *,
    endpoints: Sequence[str],
    base: int,
    span: int,
    max_workers: int,
    max_steps: int,
    silence: int | None,
    ties: bool,
) -> list[Event]:
    """Random worker events (``ts`` in milliseconds), each worker's in strictly increasing time;
    without ``ties`` no two workers of one endpoint share a timestamp. A silent worker makes no
    event for ``silence`` ms (a pause when None)."""
    emitted: list[Event] = []
    for endpoint in endpoints:
        used: set[int] = set()  # this endpoint's worker event times
        for k in range(draw(st.integers(0, max_workers))):
            worker_id = f"w-{k}"
            t = _free_time(base + draw(st.integers(0, span)), used, ties)
            state = draw(st.sampled_from(_WORKER_FIRST))
            emitted.append(Event(t, endpoint, None, state, "worker", worker_id))
            for _ in range(max_steps):
                action = draw(st.sampled_from(_WORKER_ACTIONS))
                if action == "stop":
                    break
                if action == "silent" and silence is not None:
                    t += silence
                elif action in ("silent", "pause"):
                    t += draw(st.integers(1, max(1, span // 4)))
                else:
                    t += draw(st.integers(1, 3 * _SECOND))
                if draw(st.integers(0, 3)) == 0:  # on a whole second: a sweep or window boundary
                    t = -(-t // _SECOND) * _SECOND
                t = _free_time(t, used, ties)
                if action != "heartbeat":
                    state = draw(st.sampled_from(_WORKER_MOVES[state]))
                emitted.append(Event(t, endpoint, None, state, "worker", worker_id))
    return emitted


def _free_time(t: int, used: set[int], ties: bool) -> int:
    """``t``, or without ``ties`` the first time after it not in ``used``; marked as used."""
    while not ties and t in used:
        t += 1
    used.add(t)
    return t


def shuffle_within(events: list[Event], lateness_us: int, rnd: random.Random) -> list[Event]:
    """``events`` (in event-time order) re-ordered as if each arrived up to ``lateness_us`` late."""
    keyed = [(ev.ts + rnd.randint(0, lateness_us), i, ev) for i, ev in enumerate(events)]
    return [ev for _, _, ev in sorted(keyed, key=lambda k: (k[0], k[1]))]


# -- large synthetic streams ---------------------------------------------------------------------

_STATE_NAMES = pa.array(STATES, type=pa.string())
_QUEUE, _PROGRESS, _COMPLETED, _FAILED, _CANCELLED = 0, 1, 2, 3, 4  # indices into STATES


def synthetic_events(
    n_jobs: int,
    *,
    seed: int = 0,
    n_endpoints: int = 4,
    start_ms: int = BASE_MS,
    rate_per_s: float = 100.0,
    delay_median_ms: float = 400.0,
    delay_sigma: float = 1.2,
    execution_median_ms: float = 2_500.0,
    execution_sigma: float = 1.0,
    retry_backoff_median_ms: float = 1_000.0,
    failure_rate: float = 0.05,
    retry_rate: float = 0.8,
    max_attempts: int = 3,
    cancel_rate: float = 0.02,
    in_flight_rate: float = 0.0,
    jitter_ms: int = 0,
    job_ids: str = "str",
) -> pa.Table:
    """A realistic job event log of ``n_jobs`` jobs, deterministic for a given ``seed``.

    Jobs arrive as a Poisson process (``rate_per_s`` over all endpoints, which get Zipf-like
    shares); each attempt waits a lognormal queue delay, then runs a lognormal execution time.
    An attempt fails with ``failure_rate``; a failed attempt is retried (``FAILED -> IN_QUEUE``
    after a lognormal back-off) with ``retry_rate``, up to ``max_attempts``. A ``cancel_rate``
    share of jobs is cancelled (half in the queue, half while running), and an ``in_flight_rate``
    share is left unfinished (queued or running when the log ends). All durations are at least
    1 ms, so every job's events have strictly increasing timestamps.

    Rows are sorted by ``ts`` (stable), or, with ``jitter_ms > 0``, by ``ts`` plus a uniform delay
    in ``[0, jitter_ms]`` (arrival order disordered within that bound). ``job_ids`` is ``"str"``
    (``job-000123``), ``"uuid"`` (random uuid-like strings) or ``"int"`` (int64).

    Columns (SPEC §1): ``ts`` int64 epoch ms, ``kind`` ("job"), ``endpoint``, ``job_id``, ``state``.
    """
    if n_jobs < 0 or n_endpoints < 1 or max_attempts < 1:
        raise ValueError("n_jobs >= 0, n_endpoints >= 1 and max_attempts >= 1 are required")
    if job_ids not in ("str", "uuid", "int"):
        raise ValueError(f"job_ids must be 'str', 'uuid' or 'int', got {job_ids!r}")
    rng = np.random.default_rng(seed)
    n = n_jobs
    submit = start_ms + np.floor(np.cumsum(rng.exponential(1000.0 / rate_per_s, n))).astype(np.int64)
    shares = 1.0 / np.arange(1, n_endpoints + 1)
    endpoint = rng.choice(n_endpoints, size=n, p=shares / shares.sum())
    fate = rng.random(n)
    in_flight = fate < in_flight_rate
    cancelled = (fate >= in_flight_rate) & (fate < in_flight_rate + cancel_rate)
    halfway = rng.random(n) < 0.5  # cancelled in the queue / left queued rather than running

    def lognormal_ms(median: float, sigma: float, size: int) -> np.ndarray:
        values = rng.lognormal(np.log(median), sigma, size=size)
        return np.maximum(1, np.round(values)).astype(np.int64)

    # One vectorised step per attempt, over the jobs that reach it.
    parts_ts: list[np.ndarray] = []
    parts_state: list[np.ndarray] = []
    parts_job: list[np.ndarray] = []
    active = np.arange(n, dtype=np.int64)  # jobs making this attempt
    queued = submit  # when each active job (re-)entered the queue
    for attempt in range(max_attempts):
        m = active.size
        if m == 0:
            break
        started = queued + lognormal_ms(delay_median_ms, delay_sigma, m)
        ended = started + lognormal_ms(execution_median_ms, execution_sigma, m)
        failed = rng.random(m) < failure_rate
        retried = failed & (rng.random(m) < retry_rate)
        if attempt == max_attempts - 1:
            retried[:] = False
        last = ~retried
        stops_in_queue = last & halfway[active] & (cancelled[active] | in_flight[active])
        picked_up = ~stops_in_queue
        finished = ~(last & in_flight[active])
        terminal = np.where(failed, _FAILED, _COMPLETED)
        terminal = np.where(last & cancelled[active], _CANCELLED, terminal)
        terminal_ts = np.where(stops_in_queue, started, ended)  # queue cancellation at pickup

        parts_ts += [queued, started[picked_up], terminal_ts[finished]]
        parts_state += [
            np.full(m, _QUEUE, np.int8),
            np.full(np.count_nonzero(picked_up), _PROGRESS, np.int8),
            terminal[finished].astype(np.int8),
        ]
        parts_job += [active, active[picked_up], active[finished]]

        backoff = lognormal_ms(retry_backoff_median_ms, 0.5, int(np.count_nonzero(retried)))
        queued = ended[retried] + backoff
        active = active[retried]

    ts = np.concatenate(parts_ts)
    state = np.concatenate(parts_state)
    job = np.concatenate(parts_job)
    key = ts + rng.integers(0, jitter_ms + 1, size=ts.size) if jitter_ms > 0 else ts
    order = np.argsort(key, kind="stable")
    ts, state, job = ts[order], state[order], job[order]

    names = pa.array([f"ep-{k:02d}" for k in range(n_endpoints)], type=pa.string())
    return pa.table(
        {
            "ts": pa.array(ts, type=pa.int64()),
            "kind": pa.repeat(pa.scalar("job", pa.string()), ts.size),
            "endpoint": names.take(pa.array(endpoint[job])),
            "job_id": _job_ids(n, job_ids, rng).take(pa.array(job)),
            "state": _STATE_NAMES.take(pa.array(state)),
        }
    )


def _job_ids(n: int, kind: str, rng: np.random.Generator) -> pa.Array:
    """``n`` distinct job ids (vectorised)."""
    if kind == "int":
        return pa.array(np.arange(n, dtype=np.int64) + 1_000_000)
    if kind == "str":
        digits = pc.utf8_lpad(pa.array(np.arange(n)).cast(pa.string()), max(6, len(str(n))), "0")
        return pc.binary_join_element_wise("job-", digits, "")
    # uuid-like: 32 random hex digits as 8-4-4-4-12; 128 random bits make collisions negligible.
    hexdigits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    columns = [i for i in range(36) if i not in (8, 13, 18, 23)]
    chars[:, columns] = hexdigits[rng.integers(0, 16, size=(n, 32))]
    return pa.array(chars.view("S36").ravel()).cast(pa.string())


# -- hand-written scenarios ----------------------------------------------------------------------

#: 2023-11-14T22:00:00Z in microseconds: aligned to the hour, so to every window and sweep here.
T0 = 1_699_999_200_000_000
_S = 1_000_000  # one second in microseconds

#: Parameters of the scenarios unless they say otherwise: 10 s windows, 2 s lateness,
#: TTL 30 s, retention 20 s, a sweep every 5 s.
SCENARIO_PARAMS = Params(
    window_us=10 * _S,
    allowed_lateness_us=2 * _S,
    job_ttl_us=30 * _S,
    retention_us=20 * _S,
    sweep_interval_us=5 * _S,
)


@dataclass(frozen=True)
class Scenario:
    events: list[Event]  # in arrival order
    params: Params


def _ev(seconds: float, job: str, state: str, endpoint: str = "ep") -> Event:
    return Event(T0 + round(seconds * _S), endpoint, job, state)


def _scenario(events: list[Event], **changes: Any) -> Scenario:
    return Scenario(events, dataclasses.replace(SCENARIO_PARAMS, **changes))


SCENARIOS: dict[str, Scenario] = {
    # One job fails once, is retried, and completes (the second pick-up spelled RUNNING).
    "retry": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(3, "a", "FAILED"),
            _ev(4, "a", "IN_QUEUE"),
            _ev(6, "a", "RUNNING"),
            _ev(9, "a", "COMPLETED"),
        ]
    ),
    # Redelivered copies (right after, and later within lateness) and a status repeat.
    "duplicate": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(2, "a", "IN_PROGRESS"),
            _ev(3, "a", "COMPLETED"),
            _ev(4, "b", "IN_QUEUE"),
            _ev(3, "a", "COMPLETED"),
        ]
    ),
    # IN_QUEUE -> COMPLETED, COMPLETED -> IN_PROGRESS, COMPLETED -> FAILED: invalid.
    "invalid": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "COMPLETED"),
            _ev(2, "a", "IN_PROGRESS"),
            _ev(3, "a", "COMPLETED"),
            _ev(4, "a", "IN_PROGRESS"),
            _ev(5, "a", "FAILED"),
        ]
    ),
    # Jobs first seen running, completed, failed (then retried).
    **{
        f"orphans_{policy}": _scenario(
            [
                _ev(1, "b", "IN_PROGRESS"),
                _ev(2, "c", "COMPLETED"),
                _ev(3, "d", "FAILED"),
                _ev(4, "b", "COMPLETED"),
                _ev(5, "d", "IN_QUEUE"),
                _ev(6, "d", "IN_PROGRESS"),
                _ev(8, "d", "COMPLETED"),
            ],
            orphans=policy,
        )
        for policy in ("adopt", "drop")
    },
    # Watermark 12 - 2 = 10 s when a@9 and x@8 arrive: both late, counted in window [10, 20).
    "late": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(12, "b", "IN_QUEUE"),
            _ev(9, "a", "COMPLETED"),
            _ev(8, "x", "IN_QUEUE", endpoint="other"),
            _ev(11, "a", "COMPLETED"),
        ]
    ),
    # a goes idle at 5 s (its status repeat at 20 s does not refresh it): 5 + 30 <= 35, so the
    # sweep at 35 s, run before c's event at 35 s, expires it; b (finished at 12 s) is forgotten
    # at the same sweep; a's COMPLETED at 37 s is then an orphan.
    "expiry": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(5, "a", "IN_PROGRESS"),
            _ev(10, "b", "IN_QUEUE"),
            _ev(11, "b", "IN_PROGRESS"),
            _ev(12, "b", "COMPLETED"),
            _ev(20, "a", "IN_PROGRESS"),
            _ev(31, "c", "IN_QUEUE"),
            _ev(35, "c", "IN_PROGRESS"),
            _ev(37, "a", "COMPLETED"),
        ]
    ),
    # a fails at 2 s and is forgotten at the 25 s sweep (2 + 20 <= 25): its IN_QUEUE at 30 s is
    # a new request. b's retry at 20 s comes within retention: a retry.
    "retention": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(0, "b", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(1, "b", "IN_PROGRESS"),
            _ev(2, "a", "FAILED"),
            _ev(2, "b", "FAILED"),
            _ev(20, "b", "IN_QUEUE"),
            _ev(21, "b", "IN_PROGRESS"),
            _ev(23, "b", "COMPLETED"),
            _ev(30, "a", "IN_QUEUE"),
        ]
    ),
    # Levels at window ends; b's cancellation at exactly 10 s belongs to window [10, 20).
    "levels": _scenario(
        [
            _ev(1, "a", "IN_QUEUE"),
            _ev(2, "b", "IN_QUEUE"),
            _ev(3, "c", "IN_QUEUE"),
            _ev(5, "a", "IN_PROGRESS"),
            _ev(10, "b", "CANCELLED"),
            _ev(12, "a", "COMPLETED"),
            _ev(25, "c", "IN_PROGRESS"),
        ],
        job_ttl_us=60 * _S,
    ),
    # Events of one job at one timestamp, arriving in the wrong order: FAILED then a retry at 3 s;
    # a whole lifecycle of b at 6 s. c: TIMED_OUT and CANCELLED at once, as good in either order,
    # so state order (CANCELLED first); d: picked up and cancelled at once.
    "same_ts": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(3, "a", "IN_QUEUE"),
            _ev(3, "a", "FAILED"),
            _ev(4, "a", "IN_PROGRESS"),
            _ev(5, "a", "COMPLETED"),
            _ev(6, "b", "COMPLETED"),
            _ev(6, "b", "IN_PROGRESS"),
            _ev(6, "b", "IN_QUEUE"),
            _ev(7, "c", "IN_QUEUE"),
            _ev(8, "c", "TIMED_OUT"),
            _ev(8, "c", "CANCELLED"),
            _ev(7, "d", "IN_QUEUE"),
            _ev(9, "d", "CANCELLED"),
            _ev(9, "d", "IN_PROGRESS"),
        ]
    ),
    # Two quick retries and a completion of one job within one millisecond, delivered out of
    # order: seven events, all legal only in the order FAILED, IN_QUEUE, IN_PROGRESS, FAILED, ...
    "same_ts_retry_loop": _scenario(
        [
            _ev(0, "a", "IN_QUEUE"),
            _ev(1, "a", "IN_PROGRESS"),
            _ev(2, "a", "COMPLETED"),
            _ev(2, "a", "IN_QUEUE"),
            _ev(2, "a", "FAILED"),
            _ev(2, "a", "IN_PROGRESS"),
            _ev(2, "a", "IN_QUEUE"),
            _ev(2, "a", "FAILED"),
            _ev(2, "a", "IN_PROGRESS"),
        ]
    ),
    # Jobs are identified by (endpoint, job_id): "a" on ep2 is another job.
    "same_id_two_endpoints": _scenario(
        [
            _ev(0, "a", "IN_QUEUE", endpoint="ep1"),
            _ev(1, "a", "IN_PROGRESS", endpoint="ep2"),
            _ev(2, "a", "IN_PROGRESS", endpoint="ep1"),
            _ev(3, "a", "COMPLETED", endpoint="ep2"),
        ]
    ),
}
