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
    ST_GEN,
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
from .table import GOLDEN, entity_key, table_bits, table_delete, table_find

__all__ = ["apply_events", "best_group_order"]

_WORKER_SALT = np.int64(0x3C6EF372FE94F82B)  # keeps worker keys apart from job keys in a run
SHORT_RUN = 8  # runs of equal timestamps up to this long are checked pairwise


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
def _step(s, x, adopt):
    """(new state, 1 if legal) when a job in ``s`` (0 = unknown) receives state ``x``."""
    if s == 0:
        if x == IN_QUEUE:
            return x, 1
        return (x if adopt else s), 0
    if x != s and LEGAL[s, x]:
        return x, 1
    return s, 0


@kernel
def best_group_order(states, cur, adopt):
    """Positions into ``states`` (one job's events at one timestamp, sorted by state) in the order
    that makes the most transitions legal from ``cur``; among equally good orders the first in
    state order. A depth-first search over distinct orders, pruned by the best score found."""
    k = states.shape[0]
    remaining = np.zeros(7, dtype=np.int64)
    for j in range(k):
        remaining[states[j]] += 1
    chosen = np.zeros(k, dtype=np.int64)  # state picked at each depth
    job_state = np.zeros(k + 1, dtype=np.int64)
    score = np.zeros(k + 1, dtype=np.int64)
    best = np.zeros(k, dtype=np.int64)
    best_score = -1
    job_state[0] = cur
    depth = 0
    chosen[0] = 0  # next candidate state at depth 0 is chosen[0] + 1
    while depth >= 0:
        # next candidate state at this depth
        x = chosen[depth] + 1
        while x <= 6 and remaining[x] == 0:
            x += 1
        if x > 6:
            depth -= 1
            if depth >= 0:
                remaining[chosen[depth]] += 1
            continue
        chosen[depth] = x
        remaining[x] -= 1
        nxt, legal = _step(job_state[depth], x, adopt)
        job_state[depth + 1] = nxt
        score[depth + 1] = score[depth] + legal
        if depth + 1 == k:
            if score[k] > best_score:
                best_score = score[k]
                best[:] = chosen
            remaining[x] += 1
        elif score[depth + 1] + (k - depth - 1) > best_score:
            depth += 1
            chosen[depth] = 0
        else:
            remaining[x] += 1  # cannot beat the best: try the next state here
    # states -> positions: equal states keep their order
    used = np.zeros(k, dtype=np.bool_)
    order = np.empty(k, dtype=np.int64)
    for d in range(k):
        for j in range(k):
            if not used[j] and states[j] == best[d]:
                used[j] = True
                order[d] = j
                break
    return order


@kernel
def _run_key(kd, e, job, worker):
    """Who an event is about: a job or worker key (never 0), or 0 for webhooks and markers.

    Takes scalars: it runs for every event that shares its timestamp with another.
    """
    if kd == KIND_JOB:
        return entity_key(job, e)
    if kd == KIND_WORKER:
        k = entity_key(worker, e) ^ _WORKER_SALT
        return k if k != 0 else np.int64(1)
    return np.int64(0)


@kernel
def _reorder_run(a, b, kind, ep, job, state, worker, status_code, jt, adopt):
    """Rearrange events ``[a, b)`` (one timestamp) in place so the result does not depend on
    their arrival order: events of one job or worker together, a job's in the order that makes
    the most of its transitions legal, a worker's in state order; webhooks and markers first."""
    length = b - a
    keys = np.empty(length, dtype=np.int64)
    rank = np.empty(length, dtype=np.int64)
    for j in range(length):
        i = a + j
        keys[j] = _run_key(kind[i], ep[i], job[i], worker[i])
        rank[j] = state[i]
    order = np.argsort(rank, kind="mergesort")
    order = order[np.argsort(keys[order], kind="mergesort")]  # by key, then state: deterministic
    final = np.empty(length, dtype=np.int64)
    bits = table_bits(jt.shape[0])
    j = 0
    while j < length:
        k = keys[order[j]]
        g_end = j + 1
        while g_end < length and keys[order[g_end]] == k:
            g_end += 1
        size = g_end - j
        if size == 1 or k == 0 or kind[a + order[j]] != KIND_JOB:
            final[j:g_end] = order[j:g_end]
        else:
            states = np.empty(size, dtype=np.int64)
            for m in range(size):
                states[m] = state[a + order[j + m]]
            slot = table_find(jt, k, bits)
            cur = jt[slot, J_META] & 0xFF if jt[slot, J_KEY] != 0 else 0
            best = best_group_order(states, cur, adopt)
            for m in range(size):
                final[j + m] = order[j + best[m]]
        j = g_end
    kind[a:b] = kind[a:b][final]
    ep[a:b] = ep[a:b][final]
    job[a:b] = job[a:b][final]
    state[a:b] = state[a:b][final]
    worker[a:b] = worker[a:b][final]
    status_code[a:b] = status_code[a:b][final]


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
    scratch_key,
    scratch_gen,
):
    """Apply events ``start..n-1`` (sorted by time); return (status, position)."""
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
    scratch_size = scratch_key.shape[0]
    scratch_bits = table_bits(scratch_size)
    checked_to = start  # runs starting before this position were already examined
    w = np.int64(0)
    w_start = np.int64(1)  # empty cached window: the first event computes its own
    w_end = np.int64(0)
    i = start
    while i < n:
        ahead = i + PREFETCH_DISTANCE
        if ahead < n and kind[ahead] == KIND_JOB:
            prefetch_row(
                jt,
                np.int64((np.uint64(entity_key(job[ahead], ep[ahead])) * GOLDEN) >> np.uint64(64 - bits)),
            )
        t = ts[i]
        if t < w_start or t >= w_end:  # a division only when the event leaves the cached window
            w = t // width
            w_start = w * width
            w_end = w_start + width
        if t >= st[ST_NEXT_SWEEP] or w != st[ST_CLOCK_W]:
            status = catch_up(t, jt, wt, fifo, slot_of, rows, row_free, epa, st, cfg)
            if status != OK:
                return status, i
        # a run of equal timestamps holding two events of one job is reordered first
        if i >= checked_to and i + 1 < n and ts[i + 1] == t:
            run_end = i + 2
            while run_end < n and ts[run_end] == t:
                run_end += 1
            checked_to = run_end
            repeat = False
            if run_end - i <= SHORT_RUN:
                # most runs are a few events: compare who they are about pairwise, no hashing
                for j in range(i, run_end - 1):
                    kj = kind[j]
                    if kj != KIND_JOB and kj != KIND_WORKER:
                        continue
                    for m in range(j + 1, run_end):
                        if kind[m] == kj and ep[m] == ep[j]:
                            if kj == KIND_JOB:
                                if job[m] == job[j]:
                                    repeat = True
                                    break
                            elif worker[m] == worker[j]:
                                repeat = True
                                break
                    if repeat:
                        break
            elif (run_end - i) * 2 <= scratch_size:
                st[ST_GEN] += 1
                gen = st[ST_GEN]
                for j in range(i, run_end):
                    key = _run_key(kind[j], ep[j], job[j], worker[j])
                    if key == 0:
                        continue
                    h = np.int64((np.uint64(key) * GOLDEN) >> np.uint64(64 - scratch_bits))
                    while scratch_gen[h] == gen:
                        if scratch_key[h] == key:
                            repeat = True
                            break
                        h = (h + 1) & (scratch_size - 1)
                    if repeat:
                        break
                    scratch_gen[h] = gen
                    scratch_key[h] = key
            else:
                repeat = True  # too long to check cheaply; reordering is correct either way
            if repeat:
                _reorder_run(i, run_end, kind, ep, job, state, worker, status_code, jt, adopt)
        if st[ST_JOBS] >= jt_limit:
            return NEED_JOB_TABLE, i
        if st[ST_WORKERS] >= wt_limit:
            return NEED_WORKER_TABLE, i
        if st[ST_ROW_TOP] < 1:
            return NEED_ROWS, i
        if st[ST_POOL_TOP] < N_METRICS:
            return NEED_POOL, i
        if st[ST_FIFO_TAIL] - st[ST_FIFO_HEAD] >= fifo_cap:
            return NEED_FIFO, i
        e = ep[i]
        r = slot_of[e, w & (RING - 1)]
        if r < 0 or rows[r, R_W] != w:
            r = row_for(slot_of, rows, row_free, st, e, w)
            if r < 0:
                return NEED_RING, i
        kd = kind[i]
        if kd == KIND_JOB:
            s_new = np.int64(state[i])
            key = entity_key(job[i], e)
            slot = np.int64((np.uint64(key) * GOLDEN) >> np.uint64(64 - bits))
            while True:
                k = jt[slot, J_KEY]
                if k == key or k == 0:
                    break
                slot = (slot + 1) & (cap - 1)
            metric = -1
            duration = np.int64(0)
            entered = 0  # the state the job entered, if the event changed it
            if jt[slot, J_KEY] == 0:
                if s_new == IN_QUEUE:
                    entered = IN_QUEUE
                    jt[slot, J_KEY] = key
                    jt[slot, J_ENTER] = t
                    jt[slot, J_META] = IN_QUEUE | (np.int64(e) << 32)
                    st[ST_JOBS] += 1
                    rows[r, R_CNT + C_REQUESTS] += 1
                    epa[e, E_QUEUE] += 1
                else:
                    rows[r, R_CNT + C_ORPHANS] += 1
                    if adopt:
                        entered = s_new
                        jt[slot, J_KEY] = key
                        jt[slot, J_ENTER] = t
                        jt[slot, J_META] = s_new | (np.int64(e) << 32)
                        st[ST_JOBS] += 1
                        if s_new == IN_PROGRESS:
                            epa[e, E_PROGRESS] += 1
                        else:
                            rows[r, R_CNT + C_COMPLETED + s_new - COMPLETED] += 1
            else:
                meta = jt[slot, J_META]
                cur = meta & 0xFF
                if cur == s_new:
                    rows[r, R_CNT + C_DUPLICATES] += 1
                elif not LEGAL[cur, s_new]:
                    rows[r, R_CNT + C_INVALID] += 1
                    invalid_pairs[cur, s_new] += 1
                else:
                    entered = s_new
                    attempt = (meta >> 8) & 0xFFFFFF
                    if s_new == IN_QUEUE:
                        rows[r, R_CNT + C_RETRIED] += 1
                        attempt += 1
                        epa[e, E_QUEUE] += 1
                    elif s_new == IN_PROGRESS:
                        epa[e, E_PROGRESS] += 1
                        duration = t - jt[slot, J_ENTER]
                        metric = M_DELAY
                    else:
                        rows[r, R_CNT + C_COMPLETED + s_new - COMPLETED] += 1
                        if cur == IN_PROGRESS and (s_new == COMPLETED or s_new == FAILED):
                            duration = t - jt[slot, J_ENTER]
                            metric = M_EXECUTION
                    if cur == IN_QUEUE:
                        epa[e, E_QUEUE] -= 1
                    elif cur == IN_PROGRESS:
                        epa[e, E_PROGRESS] -= 1
                    jt[slot, J_META] = s_new | (attempt << 8) | (np.int64(e) << 32)
                    jt[slot, J_ENTER] = t
            if entered == IN_QUEUE or entered == IN_PROGRESS:
                if t < st[ST_MIN_IN_FLIGHT]:
                    st[ST_MIN_IN_FLIGHT] = t
            elif entered != 0:  # finished: queued for the retention sweep
                tail = st[ST_FIFO_TAIL]
                fifo[tail & (fifo_cap - 1), F_KEY] = key
                fifo[tail & (fifo_cap - 1), F_TIME] = t
                st[ST_FIFO_TAIL] = tail + 1
            if metric >= 0:
                p = rows[r, R_HIST + metric]
                if p < 0:
                    top = st[ST_POOL_TOP] - 1
                    p = pool_free[top]
                    st[ST_POOL_TOP] = top
                    rows[r, R_HIST + metric] = p
                if duration > highest:
                    duration = highest
                    rows[r, R_CNT + C_CLAMPED] += 1
                bucket = hbase - leading_zeros(duration | hmask)
                k = ((bucket + 1) << half) + (duration >> (bucket + unit)) - half_count
                # count_in(), written out: calling it here costs ~10 ns/event (three arrays' refcounts)
                c = pool[p, k] + 1
                if c == SPILL_AT:
                    spill[p, k] += c
                    pool[p, k] = 0
                    st[ST_SPILLED] = 1
                else:
                    pool[p, k] = c
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
    return OK, n
