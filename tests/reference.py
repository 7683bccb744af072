"""A plain-Python reference of the job lifecycle rules in ``docs/lifecycle.md``.

This is the test-suite's independent oracle: the engine (numba kernels) must reproduce it exactly.
It favours being obviously correct over being fast: one event at a time, dictionaries, no numpy,
no numba. Everything is in integer microseconds since the Unix epoch.

How a stream is processed (each step is a rule of ``docs/lifecycle.md``):

1. **Lateness**, in arrival order: an event is late when its ``ts`` is older than the largest ``ts``
   that arrived before it minus ``allowed_lateness``. It is counted in ``late_events`` of its own
   endpoint, in the window containing that watermark, and dropped.
2. **Application order**: the other events are applied in timestamp order (what holding events
   until the watermark passes them achieves, after a final flush). Events of one job at the same
   timestamp are applied in the order that makes the most transitions legal, ties going to state
   order ``IN_QUEUE < IN_PROGRESS < COMPLETED < FAILED < CANCELLED < TIMED_OUT``.
3. **Sweeps**: before an event at ``t`` is applied, every sweep at a multiple ``B`` of
   ``sweep_interval`` with ``B <= t`` that has not run yet runs, in order. The first boundary is the
   first multiple at or after the first applied event. In-flight jobs idle for ``job_ttl`` expire
   (counted in the window containing ``B``); finished jobs idle for ``retention`` are forgotten.
4. **Transitions**: new job, duplicate, invalid, orphan (``adopt`` or ``drop``), legal transition,
   with the counters and durations of the doc's tables, in the window of the event.

Jobs are identified by ``(endpoint, job_id)``.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "COUNTERS",
    "LEVELS",
    "Event",
    "Params",
    "Result",
    "Row",
    "normalize_state",
    "run",
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


def normalize_state(state: str) -> str:
    """The canonical name of a job state (``RUNNING`` is ``IN_PROGRESS``)."""
    state = ALIASES.get(state, state)
    if state not in LEGAL:
        raise ValueError(f"unknown job state {state!r}")
    return state


@dataclass(frozen=True, slots=True)
class Event:
    """One job event; ``ts`` in microseconds since the epoch, ``state`` as spelled on input."""

    ts: int
    endpoint: str
    job_id: str
    state: str


@dataclass(frozen=True, slots=True)
class Params:
    """Aggregator options, every duration in microseconds (defaults as in the docs)."""

    window_us: int = 60_000_000
    allowed_lateness_us: int = 5_000_000
    job_ttl_us: int = 86_400_000_000
    retention_us: int = 3_600_000_000
    sweep_interval_us: int = 300_000_000
    orphans: Literal["adopt", "drop"] = "adopt"

    def __post_init__(self) -> None:
        if self.orphans not in ("adopt", "drop"):
            raise ValueError(f"orphans must be 'adopt' or 'drop', got {self.orphans!r}")
        for name in ("window_us", "sweep_interval_us"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("allowed_lateness_us", "job_ttl_us", "retention_us"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


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

    def counts(self) -> dict[str, int]:
        """The counters and levels, keyed as in ``Aggregator.totals``."""
        return {name: getattr(self, name) for name in (*COUNTERS, *LEVELS)}


@dataclass
class Job:
    endpoint: str
    state: str
    last_ts: int  # time of the last applied (legal or adopted) event
    entered_ts: int  # when the job entered its current state
    attempt: int = 1


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

    def window_start(self, ts: int) -> int:
        return ts // self.params.window_us * self.params.window_us

    def row(self, endpoint: str, ts: int) -> Row:
        """The row of the window containing ``ts`` (an empty row when nothing happened there)."""
        start = self.window_start(ts)
        row = self.rows.get((endpoint, start))
        if row is None:
            row = Row(endpoint, start)
            row.in_queue, row.in_progress = self.level_before(
                endpoint, start + self.params.window_us
            )
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
            for name in COUNTERS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
            total.execution_us.extend(row.execution_us)
            total.delay_us.extend(row.delay_us)
        level = self.levels.get(endpoint, Counter())
        total.in_queue = level[IN_QUEUE]
        total.in_progress = level[IN_PROGRESS]
        return total


def run(events: Iterable[Event], params: Params | None = None) -> Result:
    """Apply ``events`` (in arrival order) with ``params`` and return the metrics."""
    return _Reference(params or Params()).run(list(events))


class _Reference:
    def __init__(self, params: Params) -> None:
        self.p = params
        self.jobs: dict[tuple[str, str], Job] = {}
        self.rows: dict[tuple[str, int], Row] = {}
        self.invalid_pairs: Counter[tuple[str, str]] = Counter()
        self.levels: dict[str, Counter[str]] = defaultdict(Counter)
        self.history: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
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

    # -- the rules -----------------------------------------------------------------------------

    def run(self, events: list[Event]) -> Result:
        for ev in events:
            normalize_state(ev.state)  # reject unknown states up front
        on_time, late = self.split_late(events)
        applied: list[Event] = []
        for ts, group in _groups_by_ts(on_time):
            self.sweep_until(ts)
            for key, job_events in _groups_by_job(group):
                for ev in self.order_same_ts(key, job_events):
                    self.apply(ev)
                    applied.append(ev)
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
            if not self.jobs:  # nothing to sweep: jump to the last boundary <= t
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

    def order_same_ts(self, key: tuple[str, str], events: list[Event]) -> list[Event]:
        """Order the events of one job at one timestamp: most legal transitions first, then
        state order."""
        if len(events) == 1:
            return events
        job = self.jobs.get(key)
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
            row.delay_us.append(ev.ts - job.entered_ts)
        else:
            if state in (COMPLETED, FAILED):
                row.execution_us.append(ev.ts - job.entered_ts)
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


def _groups_by_job(events: list[Event]) -> list[tuple[tuple[str, str], list[Event]]]:
    """Events grouped by job, jobs in order of first appearance."""
    groups: dict[tuple[str, str], list[Event]] = {}
    for ev in events:
        groups.setdefault((ev.endpoint, ev.job_id), []).append(ev)
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
