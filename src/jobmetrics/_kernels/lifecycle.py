"""The single pass: time-sorted events in; job and worker tables, window rows, counters and
histogram counts out.

:func:`apply_events` walks a sorted slice of event columns. For each event it runs the sweeps and
window roll-overs the event's time has reached (:mod:`.clock`), then applies the event to the row of
its (endpoint, window): a job transition validated against SPEC §2, a worker state change, a
webhook delivery, or a late marker. Before any event whose capacity needs are not met it returns
``(status, position)``; the caller grows the arrays and calls again from that position.

The common path (job events) is written out inside the loop on purpose: a call to a helper that
takes many arrays pays reference-count updates on each, hundreds of nanoseconds per call, so
helpers run only on rare paths (new row, new histogram, roll-over, sweep, worker events, a run of
equal timestamps that holds two events of one job).
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from ._intrinsics import prefetch_row
from ._jit import kernel
from .clock import catch_up, row_for, worker_level_change
from .layout import (
    C_CLAMPED,
    C_COLD_START_FAILURES,
    C_COLD_STARTS,
    C_COMPLETED,
    C_DUPLICATES,
    C_INVALID,
    C_LATE,
    C_ORPHANS,
    C_REQUESTS,
    C_RETRIED,
    C_WEBHOOK_FAILED,
    C_WEBHOOK_REQUESTS,
    C_WEBHOOK_SUCCEEDED,
    CFG_ADOPT,
    CFG_HALF,
    CFG_HIGHEST,
    CFG_UNIT,
    CFG_WIDTH,
    COMPLETED,
    E_PROGRESS,
    E_QUEUE,
    F_KEY,
    F_TIME,
    FAILED,
    IN_PROGRESS,
    IN_QUEUE,
    J_ENTER,
    J_KEY,
    J_META,
    KIND_JOB,
    KIND_LATE,
    KIND_WEBHOOK,
    KIND_WORKER,
    LEGAL,
    M_COLD_START,
    M_DELAY,
    M_EXECUTION,
    N_METRICS,
    NEED_FIFO,
    NEED_JOB_TABLE,
    NEED_POOL,
    NEED_RING,
    NEED_ROWS,
    NEED_WORKER_TABLE,
    OK,
    PREFETCH_DISTANCE,
    R_CNT,
    R_HIST,
    R_W,
    RING,
    SPILL_AT,
    ST_CLOCK_W,
    ST_FIFO_HEAD,
    ST_FIFO_TAIL,
    ST_JOBS,
    ST_MIN_IN_FLIGHT,
    ST_NEXT_SWEEP,
    ST_POOL_TOP,
    ST_ROW_TOP,
    ST_SPILLED,
    ST_WORKERS,
    W_ENTER,
    W_IDLE,
    W_INIT,
    W_INITIALIZING,
    W_META,
    W_OFFLINE,
    W_RUNNING,
    W_SEEN,
    W_UNHEALTHY,
)
from .runs import reorder_run
from .table import GOLDEN, entity_key, table_bits, table_delete, table_find

__all__ = ["apply_events"]


@kernel
def count_in(pool, spill, st, p, k):
    """Add one to int32 ``pool[p, k]``, moving the count into the int64 ``spill`` at SPILL_AT."""
    c = pool[p, k] + 1
    if c == SPILL_AT:
        spill[p, k] += c
        pool[p, k] = 0
        st[ST_SPILLED] = 1
    else:
        pool[p, k] = c


@kernel
def _hist_add(pool, spill, pool_free, rows, st, r, m, value, unit, half, highest):
    """Count ``value`` (µs, clamped to [0, highest]) in metric ``m`` of row ``r``; True if clamped."""
    p = rows[r, R_HIST + m]
    if p < 0:
        top = st[ST_POOL_TOP] - 1
        p = pool_free[top]
        st[ST_POOL_TOP] = top
        rows[r, R_HIST + m] = p
    clamped = False
    v = np.int64(value)
    if v < 0:
        v = np.int64(0)
        clamped = True
    elif v > highest:
        v = np.int64(highest)
        clamped = True
    sub_mag = half + 1
    bucket = 64 - unit - sub_mag - leading_zeros(v | np.int64(((1 << sub_mag) - 1) << unit))
    count_in(pool, spill, st, p, ((bucket + 1) << half) + (v >> (bucket + unit)) - (np.int64(1) << half))
    return clamped


@kernel
def _apply_worker(t, e, wkey, s_new, wt, rows, r, epa, pool, spill, pool_free, st, cfg):
    """A worker event: state machine, cold starts and the worker gauges of endpoint ``e``."""
    bits = table_bits(wt.shape[0])
    s = table_find(wt, wkey, bits)
    if wt[s, 0] == 0:
        if s_new == W_OFFLINE:
            return  # a worker we never saw leaves: nothing to count
        wt[s, 0] = wkey
        wt[s, W_ENTER] = t
        wt[s, W_META] = np.int64(s_new) | (np.int64(e) << 32)
        wt[s, W_SEEN] = t
        wt[s, W_INIT] = t if s_new == W_INITIALIZING else -1
        st[ST_WORKERS] += 1
        worker_level_change(epa, e, t, 0, s_new)
        return
    wt[s, W_SEEN] = t
    cur = wt[s, W_META] & 0xFF
    if cur == s_new:
        return  # a heartbeat
    init = wt[s, W_INIT]
    if init >= 0:
        if s_new == W_IDLE or s_new == W_RUNNING:
            rows[r, R_CNT + C_COLD_STARTS] += 1
            if _hist_add(
                pool,
                spill,
                pool_free,
                rows,
                st,
                r,
                M_COLD_START,
                t - init,
                cfg[CFG_UNIT],
                cfg[CFG_HALF],
                cfg[CFG_HIGHEST],
            ):
                rows[r, R_CNT + C_CLAMPED] += 1
            wt[s, W_INIT] = -1
        elif s_new == W_UNHEALTHY or s_new == W_OFFLINE:
            rows[r, R_CNT + C_COLD_START_FAILURES] += 1
            wt[s, W_INIT] = -1
    elif s_new == W_INITIALIZING:
        wt[s, W_INIT] = t  # restarting: a new cold start
    worker_level_change(epa, e, t, cur, s_new)
    if s_new == W_OFFLINE:
        table_delete(wt, s, bits)
        st[ST_WORKERS] -= 1
    else:
        wt[s, W_META] = np.int64(s_new) | (np.int64(e) << 32)
        wt[s, W_ENTER] = t


@kernel
def apply_events(
    ts,
    kind,
    ep,
    job,
    state,
    worker,
    status_code,
    start,
    jt,
    wt,
    fifo,
    slot_of,
    rows,
    row_free,
    epa,
    pool,
    spill,
    pool_free,
    invalid_pairs,
    st,
    cfg,
    repeats,
    job_keys,
):
    """Apply events ``start..n-1`` (sorted by time); return (status, position).

    ``repeats`` holds the start positions of the runs that :func:`.runs.repeated_runs` found, and
    ``job_keys`` the table key of each job event, as it computed them.
    """
    n = ts.shape[0]
    width = cfg[CFG_WIDTH]
    adopt = cfg[CFG_ADOPT] != 0
    unit = cfg[CFG_UNIT]
    half = cfg[CFG_HALF]
    highest = cfg[CFG_HIGHEST]
    sub_mag = half + 1
    hmask = np.int64(((1 << sub_mag) - 1) << unit)
    hbase = 64 - unit - sub_mag
    half_count = np.int64(1) << half
    cap = jt.shape[0]
    bits = table_bits(cap)
    jt_limit = (cap * 3) // 4
    wt_limit = (wt.shape[0] * 3) // 4
    fifo_cap = fifo.shape[0]
    n_repeats = repeats.shape[0]
    ri = 0
    while ri < n_repeats and repeats[ri] < start:
        ri += 1  # runs before a restart were reordered already
    next_repeat = repeats[ri] if ri < n_repeats else n
    w = np.int64(0)
    w_start = np.int64(1)  # empty cached window: the first event computes its own
    w_end = np.int64(0)
    # State the hot path changes, kept in locals (numba cannot keep ``st`` in registers: any store
    # to another int64 array might alias it); written back before helpers that read it, and at exit.
    jobs = st[ST_JOBS]
    tail = st[ST_FIFO_TAIL]
    min_in_flight = st[ST_MIN_IN_FLIGHT]
    next_sweep = st[ST_NEXT_SWEEP]
    clock_w = st[ST_CLOCK_W]
    fifo_head = st[ST_FIFO_HEAD]
    status = OK
    i = start
    while i < n:
        # Hot-path indices are uint64: numba adds negative-index wraparound code to every access
        # with a signed index (a compare and a select each), ~2 ns per event in all.
        ui = np.uint64(i)
        ahead = i + PREFETCH_DISTANCE
        ua = np.uint64(ahead)
        if ahead < n and kind[ua] == KIND_JOB:
            prefetch_row(jt, np.int64((np.uint64(job_keys[ua]) * GOLDEN) >> np.uint64(64 - bits)))
        t = ts[ui]
        if t < w_start or t >= w_end:  # a division only when the event leaves the cached window
            w = t // width
            w_start = w * width
            w_end = w_start + width
        if t >= next_sweep or w != clock_w:
            st[ST_JOBS] = jobs
            st[ST_FIFO_TAIL] = tail
            st[ST_MIN_IN_FLIGHT] = min_in_flight
            status = catch_up(t, jt, wt, fifo, slot_of, rows, row_free, epa, st, cfg)
            # reloaded as before the loop (written out: a helper returning them measured 4 % slower)
            jobs = st[ST_JOBS]
            tail = st[ST_FIFO_TAIL]
            min_in_flight = st[ST_MIN_IN_FLIGHT]
            next_sweep = st[ST_NEXT_SWEEP]
            clock_w = st[ST_CLOCK_W]
            fifo_head = st[ST_FIFO_HEAD]
            if status != OK:
                break
        if i == next_repeat:  # a run of equal timestamps holding two events of one job or worker
            run_end = i + 1
            while run_end < n and ts[run_end] == t:
                run_end += 1
            reorder_run(i, run_end, kind, ep, job, state, worker, status_code, job_keys, jt, adopt)
            ri += 1
            next_repeat = repeats[ri] if ri < n_repeats else n
        if jobs >= jt_limit:
            status = NEED_JOB_TABLE
            break
        if st[ST_WORKERS] >= wt_limit:
            status = NEED_WORKER_TABLE
            break
        if st[ST_ROW_TOP] < 1:
            status = NEED_ROWS
            break
        if st[ST_POOL_TOP] < N_METRICS:
            status = NEED_POOL
            break
        if tail - fifo_head >= fifo_cap:
            status = NEED_FIFO
            break
        e = ep[ui]
        ue = np.uint64(e)
        r = slot_of[ue, np.uint64(w & (RING - 1))]
        if r < 0 or rows[np.uint64(r), R_W] != w:
            r = row_for(slot_of, rows, row_free, st, e, w)
            if r < 0:
                status = NEED_RING
                break
        ur = np.uint64(r)
        kd = kind[ui]
        if kd == KIND_JOB:
            s_new = np.int64(state[ui])
            key = job_keys[ui]
            h = np.int64((np.uint64(key) * GOLDEN) >> np.uint64(64 - bits))
            while True:
                k = jt[np.uint64(h), J_KEY]
                if k == key or k == 0:
                    break
                h = (h + 1) & (cap - 1)
            slot = np.uint64(h)
            metric = -1
            duration = np.int64(0)
            entered = 0  # the state the job entered, if the event changed it
            if jt[slot, J_KEY] == 0:
                if s_new == IN_QUEUE:
                    entered = IN_QUEUE
                    jt[slot, J_KEY] = key
                    jt[slot, J_ENTER] = t
                    jt[slot, J_META] = IN_QUEUE | (np.int64(e) << 32)
                    jobs += 1
                    rows[ur, R_CNT + C_REQUESTS] += 1
                    epa[ue, E_QUEUE] += 1
                else:
                    rows[ur, R_CNT + C_ORPHANS] += 1
                    if adopt:
                        entered = s_new
                        jt[slot, J_KEY] = key
                        jt[slot, J_ENTER] = t
                        jt[slot, J_META] = s_new | (np.int64(e) << 32)
                        jobs += 1
                        if s_new == IN_PROGRESS:
                            epa[ue, E_PROGRESS] += 1
                        else:
                            rows[ur, R_CNT + C_COMPLETED + s_new - COMPLETED] += 1
            else:
                meta = jt[slot, J_META]
                cur = meta & 0xFF
                if cur == s_new:
                    rows[ur, R_CNT + C_DUPLICATES] += 1
                elif not LEGAL[cur, s_new]:
                    rows[ur, R_CNT + C_INVALID] += 1
                    invalid_pairs[cur, s_new] += 1
                else:
                    entered = s_new
                    attempt = (meta >> 8) & 0xFFFFFF
                    if s_new == IN_QUEUE:
                        rows[ur, R_CNT + C_RETRIED] += 1
                        attempt += 1
                        epa[ue, E_QUEUE] += 1
                    elif s_new == IN_PROGRESS:
                        epa[ue, E_PROGRESS] += 1
                        duration = t - jt[slot, J_ENTER]
                        metric = M_DELAY
                    else:
                        rows[ur, R_CNT + C_COMPLETED + s_new - COMPLETED] += 1
                        if cur == IN_PROGRESS and (s_new == COMPLETED or s_new == FAILED):
                            duration = t - jt[slot, J_ENTER]
                            metric = M_EXECUTION
                    if cur == IN_QUEUE:
                        epa[ue, E_QUEUE] -= 1
                    elif cur == IN_PROGRESS:
                        epa[ue, E_PROGRESS] -= 1
                    jt[slot, J_META] = s_new | (attempt << 8) | (np.int64(e) << 32)
                    jt[slot, J_ENTER] = t
            if entered == IN_QUEUE or entered == IN_PROGRESS:
                if t < min_in_flight:
                    min_in_flight = t
            elif entered != 0:  # finished: queued for the retention sweep
                fifo[tail & (fifo_cap - 1), F_KEY] = key
                fifo[tail & (fifo_cap - 1), F_TIME] = t
                tail += 1
            if metric >= 0:
                p = rows[ur, R_HIST + metric]
                if p < 0:
                    top = st[ST_POOL_TOP] - 1
                    p = pool_free[top]
                    st[ST_POOL_TOP] = top
                    rows[ur, R_HIST + metric] = p
                if duration > highest:
                    duration = highest
                    rows[ur, R_CNT + C_CLAMPED] += 1
                bucket = hbase - leading_zeros(duration | hmask)
                k = ((bucket + 1) << half) + (duration >> (bucket + unit)) - half_count
                # count_in(), written out: calling it here costs ~10 ns/event (three arrays' refcounts)
                c = pool[np.uint64(p), np.uint64(k)] + 1
                if c == SPILL_AT:
                    spill[p, k] += c
                    pool[np.uint64(p), np.uint64(k)] = 0
                    st[ST_SPILLED] = 1
                else:
                    pool[np.uint64(p), np.uint64(k)] = c
        elif kd == KIND_WORKER:
            _apply_worker(
                t,
                e,
                entity_key(worker[i], e),
                np.int64(state[i]),
                wt,
                rows,
                r,
                epa,
                pool,
                spill,
                pool_free,
                st,
                cfg,
            )
        elif kd == KIND_WEBHOOK:
            rows[r, R_CNT + C_WEBHOOK_REQUESTS] += 1
            code = status_code[i]
            if 200 <= code < 300:
                rows[r, R_CNT + C_WEBHOOK_SUCCEEDED] += 1
            else:
                rows[r, R_CNT + C_WEBHOOK_FAILED] += 1
        elif kd == KIND_LATE:
            rows[r, R_CNT + C_LATE] += 1
        i += 1
    st[ST_JOBS] = jobs
    st[ST_FIFO_TAIL] = tail
    st[ST_MIN_IN_FLIGHT] = min_in_flight
    return status, i
