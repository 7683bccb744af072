"""A plain-Python reference of the rules in ``docs/lifecycle.md``: jobs, workers, webhooks, and the
rows of a snapshot.

This is the test-suite's independent oracle: the engine (numba kernels) must reproduce it exactly.
It favours being obviously correct over being fast: one event at a time, dictionaries, no numpy,
no numba. Everything is in integer microseconds since the Unix epoch.

How a stream is processed (each step is a rule of ``docs/lifecycle.md``):

1. **Lateness**, in arrival order: an event (of any kind) is late when its ``ts`` is older than the
   largest ``ts`` that arrived before it minus ``allowed_lateness``. It is counted in
   ``late_events`` of its own endpoint, in the window containing that watermark, and dropped.
2. **Application order**: the other events are applied in timestamp order (what holding events
   until the watermark passes them achieves, after a final flush). Events of one job at the same
   timestamp are applied in the order that makes the most transitions legal, ties going to state
   order ``IN_QUEUE < IN_PROGRESS < COMPLETED < FAILED < CANCELLED < TIMED_OUT``. Events of one
   worker at the same timestamp (the doc is silent; generated streams never have them) are applied
   in worker state order ``INITIALIZING < IDLE < RUNNING < THROTTLED < UNHEALTHY < OFFLINE``.
3. **Sweeps**: before an event at ``t`` is applied, every sweep at a multiple ``B`` of
   ``sweep_interval`` with ``B <= t`` that has not run yet runs, in order. The first boundary is the
   first multiple at or after the first applied event. In-flight jobs idle for ``job_ttl`` expire
   (counted in the window containing ``B``); finished jobs idle for ``retention`` are forgotten;
   workers silent for ``worker_ttl`` leave the pool at ``B`` (``workers_lost``, and
   ``cold_start_failures`` when still starting, in the window containing ``B``).
4. **Job transitions**: new job, duplicate, invalid, orphan (``adopt`` or ``drop``), legal
   transition, with the counters and durations of the doc's tables, in the window of the event.
5. **Workers** (``kind="worker"``, identified by ``(endpoint, worker_id)``): any state may follow
   any; a repeat of the current state is a heartbeat (it only refreshes the last-seen time);
   ``OFFLINE`` removes the worker (ignored for a worker never seen); the first event
   ``INITIALIZING`` starts a cold start, any other first state joins without one; the cold start
   ends at the first ``IDLE`` or ``RUNNING`` (duration recorded, ``cold_start_count``) or fails at
   ``UNHEALTHY``/``OFFLINE`` (``cold_start_failures``); a worker that is not starting and returns to
   ``INITIALIZING`` starts a new one.
6. **Webhooks** (``kind="webhook"``): one ``webhook_requests``, and ``webhook_succeeded`` when
   ``200 <= status_code < 300``, else ``webhook_failed``.
7. **Snapshot rows** (:meth:`Result.snapshot`), after a final flush: the watermark is the largest
   ``ts``; a window is final when it ends at or before the watermark, and the window containing
   the watermark is open. A row exists for each window in which something was counted (any
   event, even a duplicate or an ignored ``OFFLINE``; a late marker; an expiry; a lost worker),
   at whose end the endpoint had jobs in flight (for the open window: at its start), or in which
   it had workers. ``in_queue``/``in_progress`` are the levels at the window's end (the current
   ones for the open window). Worker gauges integrate the number of the endpoint's workers in each
   state over the window (up to the watermark for the open window); the maximum is taken over
   instants: the count carried in from the previous window, and the count after all steps at each
   time in the window, so the order of events at one timestamp does not change it.

Jobs are identified by ``(endpoint, job_id)``.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "COUNTERS",
    "GAUGED_STATES",
    "HISTOGRAMS",
    "LEVELS",
    "SNAPSHOT_COUNTERS",
    "SNAPSHOT_GAUGES",
    "WORKER_STATES",
    "Event",
    "Params",
    "Result",
    "Row",
    "SnapshotRow",
    "normalize_state",
    "normalize_worker_state",
    "run",
    "webhook_event",
    "worker_event",
]

IN_QUEUE = "IN_QUEUE"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"

#: State order, used to break ties between events of one job at one timestamp.
STATE_ORDER = (IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT)
ALIASES = {"RUNNING": IN_PROGRESS}

IN_FLIGHT = frozenset({IN_QUEUE, IN_PROGRESS})
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT})

#: The legal transitions of docs/lifecycle.md (a new job may only enter ``IN_QUEUE``).
LEGAL: dict[str, frozenset[str]] = {
    IN_QUEUE: frozenset({IN_PROGRESS, CANCELLED, TIMED_OUT}),
    IN_PROGRESS: frozenset({COMPLETED, FAILED, CANCELLED, TIMED_OUT, IN_QUEUE}),
    FAILED: frozenset({IN_QUEUE}),
    TIMED_OUT: frozenset({IN_QUEUE}),
    COMPLETED: frozenset(),
    CANCELLED: frozenset(),
}

#: Counter entering each terminal state (a transition into it, or an adopted orphan in it).
TERMINAL_COUNTER = {
    COMPLETED: "completed",
    FAILED: "failed",
    CANCELLED: "cancelled",
    TIMED_OUT: "timed_out",
}

#: Counters summed over windows, in the order of ``Aggregator.totals``.
COUNTERS = (
    "requests",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "retried",
    "duplicates",
    "invalid_transitions",
    "orphans",
    "expired",
    "late_events",
)
#: Levels: jobs in that state at a window's end (or, in totals, after the last applied event).
LEVELS = ("in_queue", "in_progress")

# Worker states, in the order that breaks ties between events of one worker at one timestamp.
INITIALIZING = "INITIALIZING"
IDLE = "IDLE"
RUNNING = "RUNNING"
THROTTLED = "THROTTLED"
UNHEALTHY = "UNHEALTHY"
OFFLINE = "OFFLINE"
WORKER_STATES = (INITIALIZING, IDLE, RUNNING, THROTTLED, UNHEALTHY, OFFLINE)
#: States with worker gauges (an ``OFFLINE`` worker has left the pool).
GAUGED_STATES = WORKER_STATES[:5]
READY = frozenset({IDLE, RUNNING})
COLD_START_FAILED = frozenset({UNHEALTHY, OFFLINE})

#: Every counter of a snapshot row, in the snapshot's column order.
SNAPSHOT_COUNTERS = (
    "requests",
    "completed",
    "failed",
    "cancelled",
    "timed_out",
    "retried",
    "cold_start_count",
    "cold_start_failures",
    "webhook_requests",
    "webhook_succeeded",
    "webhook_failed",
    "invalid_transitions",
    "duplicates",
    "orphans",
    "expired",
    "late_events",
    "workers_lost",
    "clamped_durations",
)
#: Integer gauges of a snapshot row: worker-µs and most workers at once per state, then levels.
SNAPSHOT_GAUGES = (
    *(f"workers_{s.lower()}_{g}" for s in GAUGED_STATES for g in ("us", "max")),
    *LEVELS,
)
#: Histogram metric (snapshot column prefix) -> ``Row`` attribute holding its durations.
HISTOGRAMS = {
    "execution_time": "execution_us",
    "delay_time": "delay_us",
    "cold_start_time": "cold_start_us",
}


def normalize_state(state: str | None) -> str:
    """The canonical name of a job state (``RUNNING`` is ``IN_PROGRESS``)."""
    state = ALIASES.get(state, state) if state is not None else None
    if state not in LEGAL:
        raise ValueError(f"unknown job state {state!r}")
    return state


def normalize_worker_state(state: str | None) -> str:
    """A worker state, checked."""
    if state not in WORKER_STATES:
        raise ValueError(f"unknown worker state {state!r}")
    return state


@dataclass(frozen=True, slots=True)
class Event:
    """One event; ``ts`` in microseconds since the epoch, ``state`` as spelled on input.

    ``kind`` is ``"job"`` (``job_id`` and a job state; ``worker_id`` optional and ignored),
    ``"worker"`` (``worker_id`` and a worker state) or ``"webhook"`` (``job_id`` and
    ``status_code``, 0 for no response).
    """

    ts: int
    endpoint: str
    job_id: str | None
    state: str | None
    kind: Literal["job", "worker", "webhook"] = "job"
    worker_id: str | None = None
    status_code: int | None = None


def worker_event(ts: int, endpoint: str, worker_id: str, state: str) -> Event:
    """A worker event."""
    return Event(ts, endpoint, None, state, kind="worker", worker_id=worker_id)


def webhook_event(ts: int, endpoint: str, job_id: str, status_code: int) -> Event:
    """A webhook delivery attempt."""
    return Event(ts, endpoint, job_id, None, kind="webhook", status_code=status_code)


@dataclass(frozen=True, slots=True)
class Params:
    """Aggregator options, every duration in microseconds (defaults as in the docs)."""

    window_us: int = 60_000_000
    allowed_lateness_us: int = 5_000_000
    job_ttl_us: int = 86_400_000_000
    retention_us: int = 3_600_000_000
    sweep_interval_us: int = 300_000_000
    orphans: Literal["adopt", "drop"] = "adopt"
    worker_ttl_us: int = 86_400_000_000
    #: Durations above this are recorded as this value and counted in ``clamped_durations``.
    highest_us: int = 7 * 86_400_000_000

    def __post_init__(self) -> None:
        if self.orphans not in ("adopt", "drop"):
            raise ValueError(f"orphans must be 'adopt' or 'drop', got {self.orphans!r}")
        for name in ("window_us", "sweep_interval_us", "highest_us"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("allowed_lateness_us", "job_ttl_us", "retention_us", "worker_ttl_us"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def aggregator_options(self) -> dict[str, Any]:
        """These options as ``jobmetrics.Aggregator`` keyword arguments."""
        return {
            "window": self.window_us,
            "allowed_lateness": self.allowed_lateness_us,
            "job_ttl": self.job_ttl_us,
            "retention": self.retention_us,
            "sweep_interval": self.sweep_interval_us,
            "worker_ttl": self.worker_ttl_us,
            "orphans": self.orphans,
            "highest": self.highest_us,
        }


@dataclass
class Row:
    """Metrics of one endpoint over one window (or, from ``Result.totals``, over all windows)."""

    endpoint: str
    window_start_us: int | None
    requests: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    retried: int = 0
    duplicates: int = 0
    invalid_transitions: int = 0
    orphans: int = 0
    expired: int = 0
    late_events: int = 0
    in_queue: int = 0
    in_progress: int = 0
    execution_us: list[int] = field(default_factory=list)
    delay_us: list[int] = field(default_factory=list)
    cold_start_us: list[int] = field(default_factory=list)
    cold_start_count: int = 0
    cold_start_failures: int = 0
    webhook_requests: int = 0
    webhook_succeeded: int = 0
    webhook_failed: int = 0
    workers_lost: int = 0
    clamped_durations: int = 0

    def counts(self) -> dict[str, int]:
        """The counters and levels, keyed as in ``Aggregator.totals``."""
        return {name: getattr(self, name) for name in (*COUNTERS, *LEVELS)}


@dataclass
class SnapshotRow:
    """One row of a snapshot, as the snapshot table holds it (times in µs)."""

    endpoint: str
    window_start: int
    window_end: int
    final: bool
    #: Something happened in the window (an event, an expiry, a lost worker), as opposed to a row
    #: that exists only because the endpoint had jobs in flight or workers.
    counted: bool
    #: The snapshot's integer columns: ``SNAPSHOT_COUNTERS`` and ``SNAPSHOT_GAUGES``.
    counts: dict[str, int]
    #: ``workers_<state>_avg``: worker-µs over the window's width, or over the part elapsed up to
    #: the watermark for the open window (0.0 when none has).
    averages: dict[str, float]
    #: Recorded durations (µs) per histogram metric, keyed as the snapshot's column prefixes.
    durations: dict[str, list[int]]

    @property
    def key(self) -> tuple[str, int]:
        return self.endpoint, self.window_start


@dataclass
class Job:
    endpoint: str
    state: str
    last_ts: int  # time of the last applied (legal or adopted) event
    entered_ts: int  # when the job entered its current state
    attempt: int = 1


@dataclass
class Worker:
    endpoint: str
    state: str
    last_seen: int  # time of the worker's last event, heartbeats included
    starting_since: int | None  # start of the cold start in progress


@dataclass
class Result:
    """What the reference computed for one stream."""

    params: Params
    rows: dict[tuple[str, int], Row]
    invalid_pairs: Counter[tuple[str, str]]
    endpoints: list[str]
    #: Jobs remembered after the last applied event (in flight, or finished within retention).
    jobs_in_memory: int
    #: Jobs per state after the last applied event, per endpoint: ``levels[endpoint][state]``.
    levels: dict[str, Counter[str]]
    #: Level history per endpoint: ``(time, in_queue, in_progress)`` after each applied step.
    history: dict[str, list[tuple[int, int, int]]]
    #: Non-late events in the order they were applied.
    applied: list[Event]
    #: Late events, in arrival order.
    late: list[Event]
    #: Workers in the pool after the last applied event.
    workers_in_memory: int = 0
    #: Worker-level history per endpoint: ``(time, workers per GAUGED_STATES)`` after each change.
    worker_history: dict[str, list[tuple[int, tuple[int, ...]]]] = field(default_factory=dict)
    #: The watermark after a final flush: the largest ``ts`` of the stream (None when empty).
    watermark: int | None = None

    def window_start(self, ts: int) -> int:
        return ts // self.params.window_us * self.params.window_us

    def row(self, endpoint: str, ts: int) -> Row:
        """The row of the window containing ``ts`` (an empty row when nothing happened there)."""
        start = self.window_start(ts)
        row = self.rows.get((endpoint, start))
        if row is None:
            row = Row(endpoint, start)
            row.in_queue, row.in_progress = self.level_before(endpoint, start + self.params.window_us)
        return row

    def level_before(self, endpoint: str, t: int) -> tuple[int, int]:
        """``(in_queue, in_progress)`` of ``endpoint`` after every step at a time ``< t``."""
        history = self.history.get(endpoint, [])
        i = bisect.bisect_left([step[0] for step in history], t)
        if i == 0:
            return 0, 0
        _, in_queue, in_progress = history[i - 1]
        return in_queue, in_progress

    def totals(self, endpoint: str) -> Row:
        """Counters summed over every window of ``endpoint``, durations concatenated in window
        order, and the levels after the last applied event."""
        total = Row(endpoint, None)
        for key in sorted(k for k in self.rows if k[0] == endpoint):
            row = self.rows[key]
            for name in SNAPSHOT_COUNTERS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
            for attribute in HISTOGRAMS.values():
                getattr(total, attribute).extend(getattr(row, attribute))
        level = self.levels.get(endpoint, Counter())
        total.in_queue = level[IN_QUEUE]
        total.in_progress = level[IN_PROGRESS]
        return total

    def worker_gauges(self, endpoint: str, start: int, stop: int) -> tuple[list[int], list[int]]:
        """Per ``GAUGED_STATES``: worker-µs over ``[start, stop)`` and the most workers at once in
        the window starting at ``start`` (up to ``stop``), the count carried in included."""
        steps = self.worker_history.get(endpoint, [])
        end = start + self.params.window_us
        n = len(GAUGED_STATES)
        level: tuple[int, ...] = (0,) * n
        i = 0
        while i < len(steps) and steps[i][0] < start:
            level = steps[i][1]
            i += 1
        most = list(level)  # the count carried in from the previous window
        integral = [0] * n
        t_prev = start
        while i < len(steps) and steps[i][0] < end and steps[i][0] <= stop:
            t, after = steps[i]
            for k in range(n):
                integral[k] += level[k] * (t - t_prev)
            level, t_prev = after, t
            last_at_t = i + 1 == len(steps) or steps[i + 1][0] != t
            if last_at_t:  # the count at instant t: after every step at t
                most = [max(a, b) for a, b in zip(most, level, strict=True)]
            i += 1
        for k in range(n):
            integral[k] += level[k] * (stop - t_prev)
        return integral, most

    def snapshot(self) -> dict[tuple[str, int], SnapshotRow]:
        """Every row of the snapshot taken after a final flush, keyed by (endpoint, window start).

        Rows of the open window that exist only because the endpoint had jobs in flight or workers
        (``counted`` False, ``final`` False) are included: docs/lifecycle.md says a row exists for
        every window in which the endpoint had workers or jobs in flight.
        """
        if self.watermark is None:
            return {}
        width = self.params.window_us
        wm = self.watermark
        open_start = self.window_start(wm)
        out: dict[tuple[str, int], SnapshotRow] = {}
        for endpoint in self.endpoints:
            starts = [start for ep, start in self.rows if ep == endpoint]
            for start in range(min(starts), open_start + width, width):
                row = self.rows.get((endpoint, start))
                final = start + width <= wm
                stop = start + width if final else wm
                integral, most = self.worker_gauges(endpoint, start, stop)
                in_queue, in_progress = self.level_before(endpoint, start + width)
                # Jobs in flight at the end of a closed window, or at the start of the open one.
                jobs = (in_queue, in_progress) if final else self.level_before(endpoint, start)
                if row is None and not any(jobs) and not any(most):
                    continue
                counts = {name: getattr(row, name) if row is not None else 0 for name in SNAPSHOT_COUNTERS}
                averages = {}
                for k, state in enumerate(GAUGED_STATES):
                    name = state.lower()
                    counts[f"workers_{name}_us"] = integral[k]
                    counts[f"workers_{name}_max"] = most[k]
                    elapsed = stop - start
                    averages[f"workers_{name}_avg"] = integral[k] / elapsed if elapsed else 0.0
                counts["in_queue"] = in_queue
                counts["in_progress"] = in_progress
                durations = {
                    metric: list(getattr(row, attribute)) if row is not None else []
                    for metric, attribute in HISTOGRAMS.items()
                }
                out[(endpoint, start)] = SnapshotRow(
                    endpoint=endpoint,
                    window_start=start,
                    window_end=start + width,
                    final=final,
                    counted=row is not None,
                    counts=counts,
                    averages=averages,
                    durations=durations,
                )
        return dict(sorted(out.items(), key=lambda item: (item[0][1], item[0][0])))


def run(events: Iterable[Event], params: Params | None = None) -> Result:
    """Apply ``events`` (in arrival order) with ``params`` and return the metrics."""
    return _Reference(params or Params()).run(list(events))


def _check(ev: Event) -> None:
    """Reject an event the aggregator would not accept, naming what is wrong."""
    if ev.kind == "job":
        normalize_state(ev.state)
        if ev.job_id is None:
            raise ValueError(f"job event without job_id: {ev!r}")
    elif ev.kind == "worker":
        normalize_worker_state(ev.state)
        if ev.worker_id is None:
            raise ValueError(f"worker event without worker_id: {ev!r}")
    elif ev.kind == "webhook":
        if ev.job_id is None or ev.status_code is None or not 0 <= ev.status_code <= 999:
            raise ValueError(f"webhook event needs job_id and a status_code in 0-999: {ev!r}")
    else:
        raise ValueError(f"unknown kind {ev.kind!r}")


class _Reference:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.jobs: dict[tuple[str, str], Job] = {}
        self.workers: dict[tuple[str, str], Worker] = {}
        self.rows: dict[tuple[str, int], Row] = {}
        self.invalid_pairs: Counter[tuple[str, str]] = Counter()
        self.levels: dict[str, Counter[str]] = defaultdict(Counter)
        self.history: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self.worker_levels: dict[str, Counter[str]] = defaultdict(Counter)
        self.worker_history: dict[str, list[tuple[int, tuple[int, ...]]]] = defaultdict(list)
        self.next_sweep: int | None = None

    # -- bookkeeping ---------------------------------------------------------------------------

    def row(self, endpoint: str, ts: int) -> Row:
        start = ts // self.p.window_us * self.p.window_us
        key = (endpoint, start)
        if key not in self.rows:
            self.rows[key] = Row(endpoint, start)
        return self.rows[key]

    def set_state(self, key: tuple[str, str], job: Job | None, state: str | None) -> None:
        """Put ``job`` in ``state`` (``None`` removes it from the table), keeping levels in step."""
        endpoint = key[0]
        old = self.jobs.get(key)
        if old is not None:
            self.levels[endpoint][old.state] -= 1
            del self.jobs[key]
        if job is not None and state is not None:
            job.state = state
            self.jobs[key] = job
            self.levels[endpoint][state] += 1

    def record_level(self, endpoint: str, t: int) -> None:
        level = self.levels[endpoint]
        self.history[endpoint].append((t, level[IN_QUEUE], level[IN_PROGRESS]))

    def set_worker(self, key: tuple[str, str], worker: Worker, state: str | None, t: int) -> None:
        """Move ``worker`` to ``state`` at ``t`` (``None`` or ``OFFLINE``: out of the pool),
        keeping the worker levels and their history in step."""
        endpoint = key[0]
        if key in self.workers:
            self.worker_levels[endpoint][worker.state] -= 1
            del self.workers[key]
        if state is not None and state != OFFLINE:
            worker.state = state
            self.workers[key] = worker
            self.worker_levels[endpoint][state] += 1
        level = self.worker_levels[endpoint]
        self.worker_history[endpoint].append((t, tuple(level[s] for s in GAUGED_STATES)))

    def record_duration(self, row: Row, values: list[int], duration: int) -> None:
        if duration > self.p.highest_us:
            duration = self.p.highest_us
            row.clamped_durations += 1
        values.append(duration)

    # -- the rules -----------------------------------------------------------------------------

    def run(self, events: list[Event]) -> Result:
        for ev in events:
            _check(ev)  # reject unknown states up front
        on_time, late = self.split_late(events)
        applied: list[Event] = []
        for ts, group in _groups_by_ts(on_time):
            self.sweep_until(ts)
            for key, same_entity in _groups_by_entity(group):
                for ev in self.order_same_ts(key, same_entity):
                    self.apply(ev)
                    applied.append(ev)
                    if ev.kind == "job":
                        self.record_level(ev.endpoint, ev.ts)

        self.finish_rows()
        endpoints = sorted({ev.endpoint for ev in events})
        return Result(
            params=self.p,
            rows=self.rows,
            invalid_pairs=self.invalid_pairs,
            endpoints=endpoints,
            jobs_in_memory=len(self.jobs),
            levels={ep: Counter(+self.levels[ep]) for ep in endpoints},
            history=dict(self.history),
            applied=applied,
            late=late,
            workers_in_memory=len(self.workers),
            worker_history=dict(self.worker_history),
            watermark=max((ev.ts for ev in events), default=None),
        )

    def split_late(self, events: list[Event]) -> tuple[list[Event], list[Event]]:
        """Judge lateness in arrival order; count late events, return the others."""
        on_time: list[Event] = []
        late: list[Event] = []
        max_ts: int | None = None
        for ev in events:
            if max_ts is not None and ev.ts < max_ts - self.p.allowed_lateness_us:
                watermark = max_ts - self.p.allowed_lateness_us
                self.row(ev.endpoint, watermark).late_events += 1
                late.append(ev)
                continue
            on_time.append(ev)
            max_ts = ev.ts if max_ts is None else max(max_ts, ev.ts)
        return on_time, late

    def sweep_until(self, t: int) -> None:
        """Run every sweep at a boundary ``B <= t`` that has not run yet."""
        interval = self.p.sweep_interval_us
        if self.next_sweep is None:
            self.next_sweep = -(-t // interval) * interval  # first multiple >= t
        while self.next_sweep <= t:
            if not self.jobs and not self.workers:  # nothing to sweep: to the last boundary <= t
                self.next_sweep = max(self.next_sweep, t // interval * interval)
            self.sweep(self.next_sweep)
            self.next_sweep += interval

    def sweep(self, boundary: int) -> None:
        touched = set()
        for key, job in list(self.jobs.items()):
            if job.state in IN_FLIGHT and job.last_ts + self.p.job_ttl_us <= boundary:
                self.row(job.endpoint, boundary).expired += 1
                self.set_state(key, None, None)
                touched.add(job.endpoint)
            elif job.state in FINISHED and job.last_ts + self.p.retention_us <= boundary:
                self.set_state(key, None, None)
        for endpoint in sorted(touched):
            self.record_level(endpoint, boundary)
        for key, worker in list(self.workers.items()):
            if worker.last_seen + self.p.worker_ttl_us <= boundary:
                row = self.row(worker.endpoint, boundary)
                row.workers_lost += 1
                if worker.starting_since is not None:
                    row.cold_start_failures += 1
                self.set_worker(key, worker, None, boundary)

    def order_same_ts(self, key: tuple[str, str | None, str | None], events: list[Event]) -> list[Event]:
        """Order the events of one entity at one timestamp. A job's: most legal transitions
        first, then state order; a worker's: worker state order; webhooks as they arrived."""
        if len(events) == 1:
            return events
        kind, endpoint, entity = key
        if kind == "worker":
            return sorted(events, key=lambda ev: WORKER_STATES.index(ev.state))
        if kind != "job":
            return events
        assert entity is not None
        job = self.jobs.get((endpoint, entity))
        current = job.state if job is not None else None
        by_state: dict[str, list[Event]] = defaultdict(list)
        for ev in events:
            by_state[normalize_state(ev.state)].append(ev)
        states = sorted((normalize_state(ev.state) for ev in events), key=STATE_ORDER.index)
        best = min(
            _distinct_permutations(states),
            key=lambda perm: (
                -self.count_legal(current, perm),
                [STATE_ORDER.index(s) for s in perm],
            ),
        )
        return [by_state[state].pop(0) for state in best]

    def count_legal(self, current: str | None, states: Sequence[str]) -> int:
        """How many of ``states``, applied in order from ``current``, are legal transitions."""
        legal = 0
        for state in states:
            if current is None:
                if state == IN_QUEUE:
                    legal += 1
                    current = state
                elif self.p.orphans == "adopt":
                    current = state
            elif state in LEGAL[current]:
                legal += 1
                current = state
        return legal

    def apply(self, ev: Event) -> None:
        if ev.kind == "worker":
            self.apply_worker(ev)
        elif ev.kind == "webhook":
            row = self.row(ev.endpoint, ev.ts)
            row.webhook_requests += 1
            assert ev.status_code is not None
            if 200 <= ev.status_code < 300:
                row.webhook_succeeded += 1
            else:
                row.webhook_failed += 1
        else:
            self.apply_job(ev)

    def apply_worker(self, ev: Event) -> None:
        assert ev.worker_id is not None
        key = (ev.endpoint, ev.worker_id)
        state = normalize_worker_state(ev.state)
        row = self.row(ev.endpoint, ev.ts)  # every event has a row, even one that counts nothing
        worker = self.workers.get(key)

        if worker is None:
            if state == OFFLINE:  # a worker never seen leaves: ignored
                return
            starting = ev.ts if state == INITIALIZING else None
            self.set_worker(key, Worker(ev.endpoint, state, ev.ts, starting), state, ev.ts)
            return

        worker.last_seen = ev.ts
        if state == worker.state:  # a heartbeat
            return
        if worker.starting_since is not None:
            if state in READY:
                row.cold_start_count += 1
                self.record_duration(row, row.cold_start_us, ev.ts - worker.starting_since)
                worker.starting_since = None
            elif state in COLD_START_FAILED:
                row.cold_start_failures += 1
                worker.starting_since = None
        elif state == INITIALIZING:  # (re)starting: a new cold start
            worker.starting_since = ev.ts
        self.set_worker(key, worker, state, ev.ts)

    def apply_job(self, ev: Event) -> None:
        assert ev.job_id is not None
        key = (ev.endpoint, ev.job_id)
        state = normalize_state(ev.state)
        row = self.row(ev.endpoint, ev.ts)
        job = self.jobs.get(key)

        if job is None:
            if state == IN_QUEUE:  # a new job: one request
                row.requests += 1
                self.set_state(key, Job(ev.endpoint, state, ev.ts, ev.ts), state)
                return
            row.orphans += 1
            if self.p.orphans == "adopt":
                # Created in that state; a terminal state is counted, no duration is recorded.
                self.set_state(key, Job(ev.endpoint, state, ev.ts, ev.ts), state)
                if state in TERMINAL_COUNTER:
                    name = TERMINAL_COUNTER[state]
                    setattr(row, name, getattr(row, name) + 1)
            return

        if state == job.state:
            row.duplicates += 1
            return
        if state not in LEGAL[job.state]:
            row.invalid_transitions += 1
            self.invalid_pairs[(job.state, state)] += 1
            return

        # A legal transition.
        if state == IN_QUEUE:
            row.retried += 1
            job.attempt += 1
        elif state == IN_PROGRESS:
            self.record_duration(row, row.delay_us, ev.ts - job.entered_ts)
        else:
            if state in (COMPLETED, FAILED):
                self.record_duration(row, row.execution_us, ev.ts - job.entered_ts)
            name = TERMINAL_COUNTER[state]
            setattr(row, name, getattr(row, name) + 1)
        job.last_ts = ev.ts
        job.entered_ts = ev.ts
        self.set_state(key, job, state)

    def finish_rows(self) -> None:
        """Fill ``in_queue``/``in_progress`` of every row: the level at the window's end."""
        times = {ep: [step[0] for step in steps] for ep, steps in self.history.items()}
        for (endpoint, start), row in self.rows.items():
            end = start + self.p.window_us
            i = bisect.bisect_left(times.get(endpoint, []), end)
            if i > 0:
                _, row.in_queue, row.in_progress = self.history[endpoint][i - 1]


def _groups_by_ts(events: list[Event]) -> Iterator[tuple[int, list[Event]]]:
    """Events sorted by timestamp (stable), grouped by timestamp."""
    ordered = sorted(events, key=lambda ev: ev.ts)
    i = 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j].ts == ordered[i].ts:
            j += 1
        yield ordered[i].ts, ordered[i:j]
        i = j


def _groups_by_entity(
    events: list[Event],
) -> list[tuple[tuple[str, str, str | None], list[Event]]]:
    """Events grouped by ``(kind, endpoint, job or worker id)`` (all webhooks of an endpoint
    together), entities in order of first appearance."""
    groups: dict[tuple[str, str, str | None], list[Event]] = {}
    for ev in events:
        entity = ev.worker_id if ev.kind == "worker" else ev.job_id if ev.kind == "job" else None
        groups.setdefault((ev.kind, ev.endpoint, entity), []).append(ev)
    return list(groups.items())


def _distinct_permutations(items: list[str]) -> Iterator[tuple[str, ...]]:
    """Every distinct ordering of the multiset ``items``."""
    counts = Counter(items)
    distinct = sorted(counts, key=STATE_ORDER.index)

    def extend(prefix: list[str], remaining: int) -> Iterator[tuple[str, ...]]:
        if remaining == 0:
            yield tuple(prefix)
            return
        for item in distinct:
            if counts[item]:
                counts[item] -= 1
                prefix.append(item)
                yield from extend(prefix, remaining - 1)
                prefix.pop()
                counts[item] += 1

    yield from extend([], len(items))
