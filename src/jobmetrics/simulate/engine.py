"""The discrete-event simulation of one endpoint: a queue, a worker pool, jobs and webhooks.

Time is whole milliseconds from the simulation start. Arrivals come pre-drawn (:mod:`.arrivals`);
everything else happens through a heap of timed actions ``(time, seq, action, a, b)``. Actions
that became stale (a job that moved on, a worker whose state changed) are recognised by a token
stored with them and dropped. Random draws come from buffered vectorised streams (:mod:`.draws`),
one per quantity, so a run is a pure function of its seed.

Two invariants keep the emitted log unambiguous to any consumer: a job's events, and a worker's,
have strictly increasing timestamps (an action that would give an entity a second event in the
same millisecond waits one millisecond), and a worker that takes the next job straight after
finishing one stays ``RUNNING`` without an ``IDLE`` in between.

The run emits events into a flat list (six integers per event: time, kind, state, job, worker,
status) and tallies the ground truth as it goes.
"""

from __future__ import annotations

import array
import functools
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..states import JobState, Kind, WorkerState
from .arrivals import arrival_times
from .config import EndpointConfig, HeavyTail
from .draws import Stream
from .truth import COUNTERS, DURATIONS, EndpointTruth

__all__ = ["EndpointRun", "RunOutput"]

I64 = npt.NDArray[np.int64]

# job and worker state codes (SPEC §1, as jobmetrics.states numbers them)
IN_QUEUE, IN_PROGRESS, COMPLETED, FAILED, CANCELLED, TIMED_OUT = (int(s) for s in JobState)
W_INIT, W_IDLE, W_RUNNING, W_THROTTLED, W_UNHEALTHY, W_OFFLINE = (int(s) for s in WorkerState)
K_JOB, K_WORKER, K_WEBHOOK = int(Kind.JOB), int(Kind.WORKER), int(Kind.WEBHOOK)

# actions on the heap
(
    A_VISIBLE,  # a queued job becomes visible to workers (a = job, b = token)
    A_FINISH,  # an attempt ends as planned at its start (job, token)
    A_EXPIRE,  # queue TTL of one queue entry (job, token)
    A_RETRY,  # a failed job re-enters the queue (job, token)
    A_CANCEL,  # the client cancels (job, -)
    A_WEBHOOK,  # one webhook delivery attempt (job, attempt number)
    A_READY,  # cold start done (worker, token)
    A_START_THROTTLE,  # a starting worker waits for a GPU (worker, token)
    A_COLD_FAIL,  # a cold start fails (worker, token)
    A_IDLE_TIMEOUT,  # an idle worker may leave (worker, token)
    A_THROTTLE,  # an idle worker is throttled (worker, token)
    A_UNTHROTTLE,  # a throttled worker is back (worker, token)
    A_UNHEALTHY,  # a ready worker turns unhealthy (worker, -)
    A_OFFLINE,  # an unhealthy worker leaves (worker, token)
    A_DISPATCH,  # retry matching queue and idle workers one millisecond later (-, -)
    A_RECOVER,  # an unhealthy worker is back (worker, token)
) = range(16)

#: HTTP status of failed webhook attempts, and their weights: no response, 5xx (retried), 4xx.
WEBHOOK_FAILURES: tuple[tuple[int, float], ...] = (
    (0, 0.35), (500, 0.2), (502, 0.15), (503, 0.15), (504, 0.05), (400, 0.05), (404, 0.05),
)  # fmt: skip
WEBHOOK_ATTEMPTS = 3
#: Emitted integers kept in a Python list before they move to a numpy chunk (6 per event).
_CHUNK = 6 * 65_536


@dataclass(frozen=True, eq=False)
class RunOutput:
    """Events of one endpoint (time-ordered, times in ms from the start) and its truth."""

    t: I64
    kind: npt.NDArray[np.int8]
    state: npt.NDArray[np.int8]
    job: I64
    worker: I64
    status: npt.NDArray[np.int32]
    truth: EndpointTruth
    jobs: int
    workers: int


def _column(chunks: list[npt.NDArray[np.int64]], k: int, dtype: type[np.generic]) -> npt.NDArray[Any]:
    """Field ``k`` of the flat six-field events in ``chunks``, as one array of ``dtype`` (built
    column by column so that the events are never held twice at 8 bytes a field)."""
    return np.concatenate([ch[k::6] for ch in chunks]).astype(dtype, copy=False)


def _ms_stream(dist: HeavyTail, rng: np.random.Generator) -> Stream:
    """Draws of ``dist`` in whole milliseconds."""
    return Stream(functools.partial(dist.sample_ms, rng))


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000.0))


class EndpointRun:
    """One endpoint's simulation; :meth:`run` executes it once.

    Parameters
    ----------
    cfg:
        The endpoint.
    start_ms:
        Epoch ms of the simulation start (the daily cycle follows the UTC clock).
    duration_ms:
        Simulated span: requests arrive in ``[0, duration_ms)`` and events after it are not
        emitted (jobs still queued or running then are left in flight).
    seed:
        Entropy for this endpoint's random streams.
    """

    def __init__(
        self, cfg: EndpointConfig, start_ms: int, duration_ms: int, seed: np.random.SeedSequence
    ) -> None:
        self.cfg = cfg
        self.start_ms = start_ms
        self.duration_ms = duration_ms
        rngs = [np.random.default_rng(s) for s in seed.spawn(12)]
        self.arrivals = arrival_times(cfg, start_ms, duration_ms, rngs[0])
        n = int(self.arrivals.size)
        # per-job draws, vectorised
        jr = rngs[1]
        wait = np.maximum(1, np.rint(jr.exponential(cfg.cancel_after * 1000.0, n))).astype(np.int64)
        self.cancel_at = np.where(jr.random(n) < cfg.cancel_prob, self.arrivals + wait, -1).tolist()
        self.has_webhook = (jr.random(n) < cfg.webhook_prob).tolist()
        # per-attempt and per-worker streams
        self.s_exec = _ms_stream(cfg.execution, rngs[2])
        self.s_latency = _ms_stream(cfg.dispatch_latency, rngs[3])
        self.s_uniform = Stream(rngs[4].random)
        self.s_container = _ms_stream(cfg.container_start, rngs[5])
        self.s_model = _ms_stream(cfg.model_load, rngs[6])
        self.s_throttle = _ms_stream(cfg.throttle_duration, rngs[7])
        self.s_unhealthy = _ms_stream(cfg.unhealthy_duration, rngs[8])
        self.s_hook_latency = _ms_stream(cfg.webhook_latency, rngs[9])
        self.s_exp = Stream(rngs[10].standard_exponential)
        self.s_hook = Stream(rngs[11].random)
        codes, weights = zip(*WEBHOOK_FAILURES, strict=True)
        self.hook_codes = codes
        self.hook_cdf = np.cumsum(np.asarray(weights) / sum(weights)).tolist()

    # ------------------------------------------------------------------------------------ run
    def run(self, progress: Callable[[float], None] | None = None) -> RunOutput:
        """Simulate; ``progress`` is called now and then with the fraction of time simulated."""
        cfg = self.cfg
        end = self.duration_ms
        arrivals = self.arrivals.tolist()
        n_jobs = len(arrivals)
        out: list[int] = []
        emit = out.extend
        chunks: list[npt.NDArray[np.int64]] = []  # emitted events, moved out of ``out`` now and then
        heap: list[tuple[int, int, int, int, int]] = []
        # timeouts of constant length come due in the order they are set: FIFO queues, not the heap
        expire_q: deque[tuple[int, int, int]] = deque()  # (time, job, token)
        idle_q: deque[tuple[int, int, int]] = deque()  # (time, worker, token)
        push = heapq.heappush
        pop = heapq.heappop
        next_seq = itertools.count(1).__next__  # ties in the heap: first scheduled, first run

        # counters of the truth
        c = dict.fromkeys(COUNTERS, 0)
        # int64 arrays, not lists: no Python int object per value
        dur: dict[str, array.array[int]] = {m: array.array("q") for m in DURATIONS}
        dur_at: dict[str, array.array[int]] = {m: array.array("q") for m in DURATIONS}
        exec_d, exec_at = dur["execution_time"], dur_at["execution_time"]
        delay_d, delay_at = dur["delay_time"], dur_at["delay_time"]
        cold_d, cold_at = dur["cold_start_time"], dur_at["cold_start_time"]
        lv = array.array("q")  # worker level changes: time, state, delta

        # jobs
        j_state = [0] * n_jobs
        j_token = [0] * n_jobs
        j_last = [-1] * n_jobs
        j_enter = [0] * n_jobs
        j_worker = [-1] * n_jobs
        j_fails = [0] * n_jobs
        j_outcome = [0] * n_jobs
        cancel_at = self.cancel_at
        has_webhook = self.has_webhook
        queue: deque[tuple[int, int]] = deque()  # visible queue entries (job, token)
        n_queued = 0
        n_running = 0

        # workers
        w_state: list[int] = []
        w_token: list[int] = []
        w_last: list[int] = []
        w_init: list[int] = []
        w_job: list[int] = []
        idle: list[int] = []  # idle workers, most recently idle last
        n_active = 0  # initializing, idle, running or throttled
        n_unhealthy = 0  # unhealthy workers hold their slot of the pool until they leave
        dispatch_pending = False

        ttl = _ms(cfg.queue_ttl)
        timeout = _ms(cfg.execution_timeout)
        idle_timeout = _ms(cfg.idle_timeout)
        backoff = cfg.retry_backoff * 1000.0
        hook_backoff = cfg.webhook_backoff * 1000.0
        max_retries = cfg.max_retries
        min_w, max_w, per_w = cfg.min_workers, cfg.max_workers, cfg.jobs_per_worker
        p_fail, p_cold_fail = cfg.failure_prob, cfg.cold_start_failure_prob
        p_throttle = cfg.throttle_on_start_prob
        p_recover = cfg.unhealthy_recover_prob
        throttle_mean = 3_600_000.0 / cfg.throttles_per_hour if cfg.throttles_per_hour > 0 else 0.0
        unhealthy_mean = 3_600_000.0 / cfg.unhealthy_per_hour if cfg.unhealthy_per_hour > 0 else 0.0
        p_hook_ok = cfg.webhook_success_prob
        hook_cdf, hook_codes = self.hook_cdf, self.hook_codes
        s_exec, s_latency, s_u = self.s_exec.next, self.s_latency.next, self.s_uniform.next
        s_container, s_model = self.s_container.next, self.s_model.next
        s_throttle, s_unhealthy = self.s_throttle.next, self.s_unhealthy.next
        s_hook_latency, s_exp, s_hook = self.s_hook_latency.next, self.s_exp.next, self.s_hook.next

        def set_worker(w: int, s: int, now: int) -> None:
            """Worker ``w`` enters state ``s`` at ``now``: emit, update levels and the idle list."""
            nonlocal n_active, n_unhealthy
            old = w_state[w]
            emit((now, K_WORKER, s, -1, w, -1))
            if 0 < old < W_OFFLINE:
                lv.extend((now, old, -1))
            if s < W_OFFLINE:
                lv.extend((now, s, 1))
            was_active = 0 < old < W_UNHEALTHY
            is_active = s < W_UNHEALTHY
            n_active += is_active - was_active
            n_unhealthy += (s == W_UNHEALTHY) - (old == W_UNHEALTHY)
            if old == W_IDLE:
                idle.remove(w)
            w_state[w] = s
            w_token[w] += 1
            w_last[w] = now
            if s == W_IDLE:
                idle.append(w)
                tok = w_token[w]
                idle_q.append((now + idle_timeout, w, tok))
                if throttle_mean:
                    wait = s_exp() * throttle_mean
                    if wait < end:  # else it would come after the end (and might not fit an int)
                        push(heap, (now + 1 + int(wait), next_seq(), A_THROTTLE, w, tok))

        def start_worker(now: int, warm: bool) -> None:
            w = len(w_state)
            w_state.append(0)
            w_token.append(0)
            w_last.append(-1)
            w_init.append(now)
            w_job.append(-1)
            c["workers_started"] += 1
            if warm:
                set_worker(w, W_IDLE, now)
                became_ready(w, now)
                return
            set_worker(w, W_INIT, now)
            tok = w_token[w]
            container = s_container()
            model = s_model()
            if s_u() < p_cold_fail:
                push(heap, (now + container + int(s_u() * model), next_seq(), A_COLD_FAIL, w, tok))
            elif s_u() < p_throttle:
                push(heap, (now + container, next_seq(), A_START_THROTTLE, w, model))
            else:
                push(heap, (now + container + model, next_seq(), A_READY, w, tok))

        def became_ready(w: int, now: int) -> None:
            if unhealthy_mean:
                wait = s_exp() * unhealthy_mean
                if wait < end:
                    push(heap, (now + 1 + int(wait), next_seq(), A_UNHEALTHY, w, 0))

        def work_or_idle(w: int, now: int) -> None:
            """Worker ``w``, ready at ``now`` (not running a job): the next job, or idle."""
            j = take_job(now)
            if j >= 0:
                set_worker(w, W_RUNNING, now)
                start_job(j, w, now)
            else:
                set_worker(w, W_IDLE, now)

        def wanted() -> int:
            """Workers the scaler wants for the jobs queued and running now."""
            return min(max(-(-(n_queued + n_running) // per_w), min_w), max_w)

        def scale(now: int) -> None:
            if n_active + n_unhealthy >= max_w:
                return
            want = min(wanted(), max_w - n_unhealthy)
            while n_active < want:
                start_worker(now, False)

        def take_job(now: int) -> int:
            """The first visible, still queued job (removed from the queue), or -1."""
            while queue:
                j, tok = queue[0]
                if j_token[j] != tok:
                    queue.popleft()  # cancelled or expired meanwhile
                    continue
                queue.popleft()
                return j
            return -1

        def start_job(j: int, w: int, now: int) -> None:
            """Worker ``w`` (already RUNNING or about to be) takes job ``j`` at ``now``."""
            nonlocal n_queued, n_running
            emit((now, K_JOB, IN_PROGRESS, j, w, -1))
            delay_d.append(now - j_enter[j])
            delay_at.append(now)
            n_queued -= 1
            n_running += 1
            j_state[j] = IN_PROGRESS
            j_token[j] += 1
            j_last[j] = now
            j_enter[j] = now
            j_worker[j] = w
            w_job[w] = j
            length = s_exec()
            outcome = COMPLETED
            if s_u() < p_fail:
                outcome = FAILED
                length = max(1, int(s_u() * length))
            if length > timeout:
                outcome, length = TIMED_OUT, timeout
            j_outcome[j] = outcome
            push(heap, (now + length, next_seq(), A_FINISH, j, j_token[j]))

        def dispatch(now: int) -> None:
            """Match visible queued jobs with idle workers that have no event at ``now``."""
            nonlocal dispatch_pending
            while queue and idle:
                w = -1
                for k in range(len(idle) - 1, -1, -1):
                    if w_last[idle[k]] < now:
                        w = idle[k]
                        break
                if w < 0:
                    if not dispatch_pending:
                        dispatch_pending = True
                        push(heap, (now + 1, next_seq(), A_DISPATCH, 0, 0))
                    return
                j = take_job(now)
                if j < 0:
                    return
                set_worker(w, W_RUNNING, now)
                start_job(j, w, now)

        def release(w: int, now: int) -> None:
            """Worker ``w`` finished its job at ``now``: the next job, or idle."""
            w_job[w] = -1
            j = take_job(now)
            if j >= 0:
                start_job(j, w, now)
            else:
                set_worker(w, W_IDLE, now)

        def enqueue(j: int, now: int) -> None:
            """Job ``j`` (re-)enters the queue at ``now`` (its IN_QUEUE event is emitted)."""
            nonlocal n_queued
            emit((now, K_JOB, IN_QUEUE, j, -1, -1))
            n_queued += 1
            j_state[j] = IN_QUEUE
            j_token[j] += 1
            j_last[j] = now
            j_enter[j] = now
            j_worker[j] = -1
            tok = j_token[j]
            push(heap, (now + s_latency(), next_seq(), A_VISIBLE, j, tok))
            expire_q.append((now + ttl, j, tok))
            scale(now)

        def job_final(j: int, now: int) -> None:
            if has_webhook[j]:
                push(heap, (now + s_hook_latency(), next_seq(), A_WEBHOOK, j, 1))

        # warm workers, present from the start
        for _ in range(min_w):
            start_worker(0, True)

        next_arrival = arrivals[0] if n_jobs else end
        never = end + 1
        ai = 0
        steps = 0
        while True:
            # the earliest of: the heap, the two timeout queues, the next arrival (in this order
            # on ties)
            now = heap[0][0] if heap else never
            source = 0
            if expire_q and expire_q[0][0] < now:
                now = expire_q[0][0]
                source = 1
            if idle_q and idle_q[0][0] < now:
                now = idle_q[0][0]
                source = 2
            if next_arrival < now:
                now = next_arrival
                if now >= end:
                    break
                j = ai
                ai += 1
                next_arrival = arrivals[ai] if ai < n_jobs else end
                c["requests"] += 1
                enqueue(j, now)
                if cancel_at[j] >= 0:
                    push(heap, (cancel_at[j], next_seq(), A_CANCEL, j, 0))
                continue
            if now >= end:
                break
            if source == 0:
                _, _, action, a, b = pop(heap)
            elif source == 1:
                _, a, b = expire_q.popleft()
                action = A_EXPIRE
            else:
                _, a, b = idle_q.popleft()
                action = A_IDLE_TIMEOUT
            steps += 1
            if not steps & 0x3FFF:
                if len(out) >= _CHUNK:
                    chunks.append(np.asarray(out, dtype=np.int64))
                    out.clear()
                if progress is not None:
                    progress(now / end)

            if action == A_VISIBLE:
                if j_token[a] == b:
                    queue.append((a, b))
                    dispatch(now)
            elif action == A_FINISH:
                if j_token[a] != b:
                    continue
                w = j_worker[a]
                outcome = j_outcome[a]
                emit((now, K_JOB, outcome, a, w, -1))
                n_running -= 1
                j_state[a] = outcome
                j_token[a] += 1
                j_last[a] = now
                if outcome == TIMED_OUT:
                    c["timed_out"] += 1
                    c["execution_timeouts"] += 1
                else:
                    exec_d.append(now - j_enter[a])
                    exec_at.append(now)
                    c["completed" if outcome == COMPLETED else "failed"] += 1
                release(w, now)
                if outcome == FAILED and j_fails[a] < max_retries:
                    j_fails[a] += 1
                    wait = max(1, round(backoff * 2 ** (j_fails[a] - 1)))
                    push(heap, (now + wait, next_seq(), A_RETRY, a, j_token[a]))
                else:
                    job_final(a, now)
            elif action == A_EXPIRE:
                if j_token[a] != b:
                    continue
                emit((now, K_JOB, TIMED_OUT, a, -1, -1))
                n_queued -= 1
                j_state[a] = TIMED_OUT
                j_token[a] += 1
                j_last[a] = now
                c["timed_out"] += 1
                c["queue_timeouts"] += 1
                job_final(a, now)
            elif action == A_RETRY:
                if j_token[a] != b:
                    continue
                c["retried"] += 1
                enqueue(a, now)
            elif action == A_CANCEL:
                st = j_state[a]
                if st != IN_QUEUE and st != IN_PROGRESS:
                    continue
                w = j_worker[a]
                if j_last[a] >= now or (w >= 0 and w_last[w] >= now):
                    push(heap, (now + 1, next_seq(), A_CANCEL, a, 0))
                    continue
                emit((now, K_JOB, CANCELLED, a, w, -1))
                j_state[a] = CANCELLED
                j_token[a] += 1
                j_last[a] = now
                c["cancelled"] += 1
                if st == IN_QUEUE:
                    n_queued -= 1
                else:
                    n_running -= 1
                    release(w, now)
            elif action == A_WEBHOOK:
                u = s_hook()
                if u < p_hook_ok:
                    status = 200
                else:
                    x = (u - p_hook_ok) / (1.0 - p_hook_ok)
                    k = 0
                    while k < len(hook_cdf) - 1 and x >= hook_cdf[k]:
                        k += 1
                    status = hook_codes[k]
                emit((now, K_WEBHOOK, 0, a, -1, status))
                c["webhook_requests"] += 1
                if 200 <= status < 300:
                    c["webhook_succeeded"] += 1
                else:
                    c["webhook_failed"] += 1
                    if (status == 0 or status >= 500) and b < WEBHOOK_ATTEMPTS:
                        wait = round(hook_backoff * 2 ** (b - 1)) + s_hook_latency()
                        push(heap, (now + wait, next_seq(), A_WEBHOOK, a, b + 1))
            elif action == A_READY:
                if w_token[a] != b:
                    continue
                cold_d.append(now - w_init[a])
                cold_at.append(now)
                c["cold_start_count"] += 1
                became_ready(a, now)
                work_or_idle(a, now)
            elif action == A_START_THROTTLE:
                set_worker(a, W_THROTTLED, now)
                push(heap, (now + s_throttle() + b, next_seq(), A_READY, a, w_token[a]))
            elif action == A_COLD_FAIL:
                if w_token[a] != b:
                    continue
                c["cold_start_failures"] += 1
                set_worker(a, W_UNHEALTHY, now)
                push(heap, (now + s_unhealthy(), next_seq(), A_OFFLINE, a, w_token[a]))
                scale(now)
            elif action == A_IDLE_TIMEOUT:
                if w_token[a] == b and n_active > wanted():
                    set_worker(a, W_OFFLINE, now)
            elif action == A_THROTTLE:
                if w_token[a] == b:
                    set_worker(a, W_THROTTLED, now)
                    push(heap, (now + s_throttle(), next_seq(), A_UNTHROTTLE, a, w_token[a]))
            elif action == A_UNTHROTTLE:
                if w_token[a] != b:
                    continue
                work_or_idle(a, now)
            elif action == A_UNHEALTHY:
                st = w_state[a]
                if st != W_IDLE and st != W_RUNNING and st != W_THROTTLED:
                    continue
                j = w_job[a]
                if w_last[a] >= now or (j >= 0 and j_last[j] >= now):
                    push(heap, (now + 1, next_seq(), A_UNHEALTHY, a, 0))
                    continue
                set_worker(a, W_UNHEALTHY, now)
                then = A_RECOVER if s_u() < p_recover else A_OFFLINE
                push(heap, (now + s_unhealthy(), next_seq(), then, a, w_token[a]))
                if j >= 0:  # the job goes back to the queue
                    w_job[a] = -1
                    n_running -= 1
                    c["retried"] += 1
                    c["requeued"] += 1
                    enqueue(j, now)
                scale(now)
            elif action == A_OFFLINE:
                if w_token[a] == b:
                    set_worker(a, W_OFFLINE, now)
            elif action == A_DISPATCH:
                dispatch_pending = False
                dispatch(now)
            elif action == A_RECOVER:
                if w_token[a] != b:
                    continue
                c["worker_recoveries"] += 1
                became_ready(a, now)
                work_or_idle(a, now)

        if progress is not None:
            progress(1.0)
        chunks.append(np.asarray(out, dtype=np.int64))
        del out

        columns = (
            _column(chunks, 0, np.int64), _column(chunks, 1, np.int8), _column(chunks, 2, np.int8),
            _column(chunks, 3, np.int64), _column(chunks, 4, np.int64), _column(chunks, 5, np.int32),
        )  # fmt: skip
        del chunks
        t0 = self.start_ms
        levels = np.frombuffer(lv, dtype=np.int64).reshape(-1, 3)
        truth = EndpointTruth(
            endpoint=cfg.name,
            counters=c,
            durations={m: np.frombuffer(v, dtype=np.int64).copy() for m, v in dur.items()},
            durations_at={m: np.frombuffer(v, dtype=np.int64) + t0 for m, v in dur_at.items()},
            in_queue=n_queued,
            in_progress=n_running,
            worker_changes=(levels[:, 0] + t0, levels[:, 1].copy(), levels[:, 2].copy()),
        )
        return RunOutput(
            *columns,
            truth=truth,
            jobs=ai,
            workers=len(w_state),
        )
