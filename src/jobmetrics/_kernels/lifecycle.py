"""The single pass: sorted events in, job table, window rows, counters and histogram counts out.

One call walks a time-sorted slice of events (columns of int arrays) and, for each event, in order:

1. runs the job-table sweeps (expiry and retention) whose boundaries the event has reached;
2. rolls the window clock forward, writing each finished window's ``in_queue``/``in_progress``;
3. applies the event: a job transition (validated against SPEC §2), a webhook delivery, or a late
   marker, into the row of its (endpoint, window).

Everything the pass needs lives in arrays owned by :class:`jobmetrics.aggregator.Aggregator`, so a
call can stop before any event whose capacity needs are not met (job table, rows, histogram pool)
and be resumed from that event after the caller grows the arrays: the return value is
``(status, position)``.

Layouts
-------
Job table ``jt[slot, field]`` (open addressing, linear probing, Fibonacci hashing, backward-shift
deletion; one 32-byte record per slot so a probe touches one cache line): field 0 the key (0 =
empty), 1 the time the job entered its current state (also the time of its last applied
transition), 2 the state in bits 0–7, attempt in bits 8–31 and endpoint in bits 32–63; field 3 is
spare.

Window rows: ``row_ep``, ``row_w`` (window index), ``row_cnt[r, COUNTER]``, ``row_hist[r, METRIC]``
(index into ``pool`` or -1), ``row_gauge[r, 0|1]`` (in_queue, in_progress at the window's end), and a
free-list stack ``row_free``. ``slot_of[e, w % RING]`` finds the row of endpoint ``e`` for window ``w``.
Histogram pool: dense HDR counts ``pool[p, :]`` with a free-list ``pool_free``.

State vector ``st`` and config vector ``cfg``: see the ``ST_*`` and ``CFG_*`` constants.
"""

from __future__ import annotations

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

from ._intrinsics import prefetch_row
from ._jit import kernel

# ---------------------------------------------------------------- codes shared with Python
KIND_JOB = 0
KIND_WORKER = 1
KIND_WEBHOOK = 2
KIND_LATE = 3  # internal marker: one late event, counted at the marker's time

IN_QUEUE = 1
IN_PROGRESS = 2
COMPLETED = 3
FAILED = 4
CANCELLED = 5
TIMED_OUT = 6

# row counters
C_REQUESTS = 0
C_COMPLETED = 1
C_FAILED = 2
C_CANCELLED = 3
C_TIMED_OUT = 4
C_RETRIED = 5
C_DUPLICATES = 6
C_INVALID = 7
C_ORPHANS = 8
C_EXPIRED = 9
C_LATE = 10
C_COLD_STARTS = 11
C_WEBHOOK_REQUESTS = 12
C_WEBHOOK_SUCCEEDED = 13
C_WEBHOOK_FAILED = 14
C_CLAMPED = 15
N_COUNTERS = 16

# histogram metrics
M_EXECUTION = 0
M_DELAY = 1
M_COLD_START = 2
N_METRICS = 3

# state vector
ST_JT_COUNT = 0  # occupied job-table slots
ST_CLOCK_W = 1  # window of the last applied event (or sweep / advance); NO_WINDOW before any
ST_NEXT_SWEEP = 2  # next sweep boundary (µs); NO_WINDOW before any job
ST_ROW_TOP = 3  # number of free rows on the row_free stack
ST_POOL_TOP = 4  # number of free pool slots on the pool_free stack
ST_GEN = 5  # generation counter of the scratch set used to find repeated jobs in a run
N_STATE = 6

# config vector
CFG_WIDTH = 0  # window width, µs
CFG_SWEEP = 1  # sweep interval, µs
CFG_TTL = 2  # job TTL, µs
CFG_RETENTION = 3  # retention of finished jobs, µs
CFG_ADOPT = 4  # 1: adopt orphans, 0: drop them
CFG_UNIT = 5  # HDR unit magnitude
CFG_HALF = 6  # HDR half magnitude
CFG_HIGHEST = 7  # HDR highest trackable value (durations above are clamped and counted)
CFG_N_ENDPOINTS = 8
N_CFG = 9

RING = 64
PREFETCH_DISTANCE = 16  # events ahead whose job-table slot is prefetched
JT_FIELDS = 4
NO_WINDOW = np.iinfo(np.int64).min

# statuses returned to the caller
OK = 0
NEED_JOB_TABLE = 1
NEED_ROWS = 2
NEED_POOL = 3
NEED_RING = 4

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MAX_GROUP_PERMUTE = 6


def _legal_table() -> np.ndarray:
    legal = np.zeros((7, 7), dtype=np.bool_)
    legal[0, IN_QUEUE] = True
    for a, b in (
        (IN_QUEUE, IN_PROGRESS),
        (IN_QUEUE, CANCELLED),
        (IN_QUEUE, TIMED_OUT),
        (IN_PROGRESS, COMPLETED),
        (IN_PROGRESS, FAILED),
        (IN_PROGRESS, CANCELLED),
        (IN_PROGRESS, TIMED_OUT),
        (IN_PROGRESS, IN_QUEUE),
        (FAILED, IN_QUEUE),
        (TIMED_OUT, IN_QUEUE),
    ):
        legal[a, b] = True
    return legal


LEGAL = _legal_table()


# ---------------------------------------------------------------- small helpers
@kernel
def window_of(t, width):  # type: ignore[no-untyped-def]
    """Epoch-aligned window index of time ``t`` (floor division, also for negative times)."""
    return t // width


@kernel
def job_slot_key(job, endpoint):  # type: ignore[no-untyped-def]
    """Job-table key of (endpoint, job key): a job is identified by both; never 0."""
    k = np.uint64(job) ^ (np.uint64(endpoint + 1) * np.uint64(0xD6E8FEB86659FD93))
    k ^= k >> np.uint64(32)
    k = np.int64(k)
    if k == 0:
        k = np.int64(0x5BD1E995)
    return k


@kernel
def _home(key, bits):  # type: ignore[no-untyped-def]
    return np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(64 - bits))


@kernel
def jt_find(jt, key, bits):  # type: ignore[no-untyped-def]
    """Slot of ``key`` or -1."""
    mask = jt.shape[0] - 1
    s = _home(key, bits)
    while True:
        k = jt[s, 0]
        if k == key:
            return s
        if k == 0:
            return -1
        s = (s + 1) & mask


@kernel
def jt_insert(jt, key, enter, meta, bits):  # type: ignore[no-untyped-def]
    mask = jt.shape[0] - 1
    s = _home(key, bits)
    while jt[s, 0] != 0:
        s = (s + 1) & mask
    jt[s, 0] = key
    jt[s, 1] = enter
    jt[s, 2] = meta
    return s


@kernel
def jt_delete(jt, s, bits):  # type: ignore[no-untyped-def]
    """Backward-shift deletion: no tombstones, probe chains stay intact."""
    mask = jt.shape[0] - 1
    hole = s
    j = s
    while True:
        j = (j + 1) & mask
        k = jt[j, 0]
        if k == 0:
            break
        home = _home(k, bits)
        # move k into the hole unless its home lies cyclically in (hole, j]
        if hole <= j:
            stays = hole < home <= j
        else:
            stays = home > hole or home <= j
        if not stays:
            jt[hole, 0] = k
            jt[hole, 1] = jt[j, 1]
            jt[hole, 2] = jt[j, 2]
            hole = j
    jt[hole, 0] = 0
    jt[hole, 1] = 0
    jt[hole, 2] = 0


@kernel
def table_bits(capacity):  # type: ignore[no-untyped-def]
    return 63 - leading_zeros(np.int64(capacity))


@kernel
def jt_rehash(old, new):  # type: ignore[no-untyped-def]
    """Move every entry of the old table into a new (empty, power-of-two) table."""
    bits = table_bits(new.shape[0])
    for s in range(old.shape[0]):
        k = old[s, 0]
        if k != 0:
            jt_insert(new, k, old[s, 1], old[s, 2], bits)


@kernel
def _meta(state, attempt, endpoint):  # type: ignore[no-untyped-def]
    return np.int64(state) | (np.int64(attempt) << 8) | (np.int64(endpoint) << 32)


@kernel
def meta_state(meta):  # type: ignore[no-untyped-def]
    return meta & 0xFF


@kernel
def meta_attempt(meta):  # type: ignore[no-untyped-def]
    return (meta >> 8) & 0xFFFFFF


@kernel
def meta_endpoint(meta):  # type: ignore[no-untyped-def]
    return meta >> 32


# ---------------------------------------------------------------- rows
@kernel
def _find_row(slot_of, row_w, e, w):  # type: ignore[no-untyped-def]
    r = slot_of[e, w % RING]
    if r >= 0 and row_w[r] == w:
        return r
    return -1


@kernel
def _new_row(slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, st, e, w):  # type: ignore[no-untyped-def]
    """Take a row for (e, w) from the free stack; -1 when the ring slot is held by another window."""
    ring = w % RING
    held = slot_of[e, ring]
    if held >= 0:
        return -1
    top = st[ST_ROW_TOP] - 1
    r = row_free[top]
    st[ST_ROW_TOP] = top
    slot_of[e, ring] = r
    row_ep[r] = e
    row_w[r] = w
    row_cnt[r, :] = 0
    row_hist[r, :] = -1
    row_gauge[r, 0] = 0
    row_gauge[r, 1] = 0
    return r


# ---------------------------------------------------------------- clock, sweeps
@kernel
def _roll_to(w_target, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg):  # type: ignore[no-untyped-def]
    """Advance the window clock to ``w_target``, closing the gauges of each window passed.

    Returns a status (OK, NEED_ROWS or NEED_RING); progress is kept in ``st`` so it can resume.
    """
    n_ep = cfg[CFG_N_ENDPOINTS]
    clock = st[ST_CLOCK_W]
    if clock == NO_WINDOW:
        st[ST_CLOCK_W] = w_target
        return OK
    while clock < w_target:
        if st[ST_ROW_TOP] < n_ep:
            return NEED_ROWS
        for e in range(n_ep):
            lq = levels[e, 0]
            lp = levels[e, 1]
            r = _find_row(slot_of, row_w, e, clock)
            if r < 0 and (lq != 0 or lp != 0):
                r = _new_row(slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, st, e, clock)
                if r < 0:
                    return NEED_RING
            if r >= 0:
                row_gauge[r, 0] = lq
                row_gauge[r, 1] = lp
        clock += 1
        st[ST_CLOCK_W] = clock
    return OK


@kernel
def _sweep(boundary, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg):  # type: ignore[no-untyped-def]
    """Evict lost in-flight jobs (expired, counted) and forget old finished ones, at ``boundary``."""
    cap = jt.shape[0]
    if st[ST_JT_COUNT] == 0:
        return OK
    if st[ST_ROW_TOP] < cfg[CFG_N_ENDPOINTS]:
        return NEED_ROWS
    bits = table_bits(cap)
    ttl = cfg[CFG_TTL]
    retention = cfg[CFG_RETENTION]
    w = window_of(boundary, cfg[CFG_WIDTH])
    # start right after an empty slot so that no probe cluster wraps over the scan's start
    start = 0
    while jt[start, 0] != 0:
        start += 1
    i = 0
    while i < cap:
        s = (start + 1 + i) & (cap - 1)
        k = jt[s, 0]
        if k == 0:
            i += 1
            continue
        meta = jt[s, 2]
        state = meta_state(meta)
        age_limit = ttl if state == IN_QUEUE or state == IN_PROGRESS else retention
        if jt[s, 1] + age_limit <= boundary:
            if state == IN_QUEUE or state == IN_PROGRESS:
                e = meta_endpoint(meta)
                r = _find_row(slot_of, row_w, e, w)
                if r < 0:
                    r = _new_row(slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, st, e, w)
                    if r < 0:
                        return NEED_RING
                row_cnt[r, C_EXPIRED] += 1
                levels[e, state - 1] -= 1
            jt_delete(jt, s, bits)
            st[ST_JT_COUNT] -= 1
            # re-examine slot s: an entry may have shifted into it
            continue
        i += 1
    return OK


@kernel
def _catch_up(t, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg):  # type: ignore[no-untyped-def]
    """Run sweeps with boundaries <= t and roll the clock to t's window."""
    sweep = cfg[CFG_SWEEP]
    width = cfg[CFG_WIDTH]
    nxt = st[ST_NEXT_SWEEP]
    if nxt == NO_WINDOW:
        nxt = -((-t) // sweep) * sweep  # first boundary >= t
        st[ST_NEXT_SWEEP] = nxt
    while nxt <= t:
        if st[ST_JT_COUNT] == 0:
            # nothing to sweep: jump straight to the first boundary >= t
            nxt = -((-t) // sweep) * sweep
            st[ST_NEXT_SWEEP] = nxt
            break
        status = _roll_to(window_of(nxt, width), slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg)
        if status != OK:
            return status
        status = _sweep(nxt, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg)
        if status != OK:
            return status
        nxt += sweep
        st[ST_NEXT_SWEEP] = nxt
    return _roll_to(window_of(t, width), slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg)


# ---------------------------------------------------------------- one event
@kernel
def _alloc_pool(pool_free, row_hist, st, r, m):  # type: ignore[no-untyped-def]
    top = st[ST_POOL_TOP] - 1
    p = pool_free[top]
    st[ST_POOL_TOP] = top
    row_hist[r, m] = p
    return p


@kernel
def _simulate_score(states, order, k, cur, adopt):  # type: ignore[no-untyped-def]
    """Number of legal transitions when a job in ``cur`` receives ``states[order[:k]]`` in order."""
    score = 0
    s = cur
    for j in range(k):
        x = states[order[j]]
        if s == 0:
            if x == IN_QUEUE:
                score += 1
                s = x
            elif adopt:
                s = x
        elif x != s and LEGAL[s, x]:
            score += 1
            s = x
    return score


@kernel
def _next_permutation(a, k):  # type: ignore[no-untyped-def]
    i = k - 2
    while i >= 0 and a[i] >= a[i + 1]:
        i -= 1
    if i < 0:
        return False
    j = k - 1
    while a[j] <= a[i]:
        j -= 1
    a[i], a[j] = a[j], a[i]
    lo = i + 1
    hi = k - 1
    while lo < hi:
        a[lo], a[hi] = a[hi], a[lo]
        lo += 1
        hi -= 1
    return True


@kernel
def best_group_order(states, cur, adopt):  # type: ignore[no-untyped-def]
    """Order (positions into ``states``) that makes the most transitions legal from ``cur``.

    ``states`` are one job's events at one timestamp, in state order; ties keep the
    lexicographically first order, so state order wins when it is as good as any other.
    """
    k = states.shape[0]
    best = np.arange(k)
    if k > _MAX_GROUP_PERMUTE:
        return best
    perm = np.arange(k)
    best_score = _simulate_score(states, perm, k, cur, adopt)
    while _next_permutation(perm, k):
        sc = _simulate_score(states, perm, k, cur, adopt)
        if sc > best_score:
            best_score = sc
            best[:] = perm
    return best


@kernel
def _reorder_run(a, b, kind, ep, job, state, status_code, jt, adopt):  # type: ignore[no-untyped-def]
    """Rearrange events ``[a, b)`` (one timestamp) in place: other kinds first, then each job's
    events together, in the order that makes the most of its transitions legal."""
    length = b - a
    keys = np.empty(length, dtype=np.int64)
    rank = np.empty(length, dtype=np.int64)
    for j in range(length):
        i = a + j
        keys[j] = job_slot_key(job[i], ep[i]) if kind[i] == KIND_JOB else np.int64(0)
        rank[j] = state[i]
    # by key, then state: deterministic whatever the arrival order
    order = np.argsort(rank, kind="mergesort")
    order = order[np.argsort(keys[order], kind="mergesort")]
    final = np.empty(length, dtype=np.int64)
    bits = table_bits(jt.shape[0])
    j = 0
    while j < length:
        k = keys[order[j]]
        g_end = j + 1
        if k != 0:
            while g_end < length and keys[order[g_end]] == k:
                g_end += 1
        size = g_end - j
        if size == 1 or k == 0:
            for m in range(j, g_end):
                final[m] = order[m]
        else:
            states = np.empty(size, dtype=np.int64)
            for m in range(size):
                states[m] = state[a + order[j + m]]
            slot = jt_find(jt, k, bits)
            cur = meta_state(jt[slot, 2]) if slot >= 0 else 0
            best = best_group_order(states, cur, adopt)
            for m in range(size):
                final[j + m] = order[j + best[m]]
        j = g_end
    kind[a:b] = kind[a:b][final]
    ep[a:b] = ep[a:b][final]
    job[a:b] = job[a:b][final]
    state[a:b] = state[a:b][final]
    status_code[a:b] = status_code[a:b][final]


@kernel
def apply_events(ts, kind, ep, job, state, status_code, start, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, pool, pool_free, levels, invalid_pairs, st, cfg, scratch_key, scratch_gen):  # type: ignore[no-untyped-def]
    """Apply events ``start..n-1`` (sorted by time, ties in state order). Returns (status, position).

    The common path is written out in this loop on purpose: calling a helper that takes many
    arrays costs reference-count updates per call, so helpers are called only on rare paths
    (new row, new histogram, window roll-over, sweep, a run of equal timestamps holding two
    events of one job). The columns of such a run are reordered in place.
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
    scratch_size = scratch_key.shape[0]
    scratch_bits = table_bits(scratch_size)
    checked_to = start  # runs starting before this index were already examined
    i = start
    while i < n:
        ahead = i + PREFETCH_DISTANCE
        if ahead < n and kind[ahead] == KIND_JOB:
            prefetch_row(jt, np.int64((np.uint64(job_slot_key(job[ahead], ep[ahead])) * _GOLDEN) >> np.uint64(64 - bits)))
        t = ts[i]
        w = t // width
        if t >= st[ST_NEXT_SWEEP] or w != st[ST_CLOCK_W]:
            status = _catch_up(t, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg)
            if status != OK:
                return status, i
        # a run of equal timestamps holding two events of one job is reordered first
        if i >= checked_to and i + 1 < n and ts[i + 1] == t:
            run_end = i + 2
            while run_end < n and ts[run_end] == t:
                run_end += 1
            checked_to = run_end
            length = run_end - i
            repeat = False
            if length * 2 <= scratch_size:
                st[ST_GEN] += 1
                gen = st[ST_GEN]
                for j in range(i, run_end):
                    if kind[j] != KIND_JOB:
                        continue
                    key = job_slot_key(job[j], ep[j])
                    h = np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(64 - scratch_bits))
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
                repeat = True  # too long to check cheaply: reorder, which is correct either way
            if repeat:
                _reorder_run(i, run_end, kind, ep, job, state, status_code, jt, adopt)
        # capacity for this event
        if st[ST_JT_COUNT] >= jt_limit:
            return NEED_JOB_TABLE, i
        if st[ST_ROW_TOP] < 1:
            return NEED_ROWS, i
        if st[ST_POOL_TOP] < N_METRICS:
            return NEED_POOL, i
        e = ep[i]
        r = slot_of[e, w % RING]
        if r < 0 or row_w[r] != w:
            r = _new_row(slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, st, e, w)
            if r < 0:
                return NEED_RING, i
        kd = kind[i]
        if kd == KIND_JOB:
            s_new = np.int64(state[i])
            key = job_slot_key(job[i], e)
            # find the job (inline linear probe)
            slot = np.int64((np.uint64(key) * _GOLDEN) >> np.uint64(64 - bits))
            while True:
                k = jt[slot, 0]
                if k == key or k == 0:
                    break
                slot = (slot + 1) & (cap - 1)
            duration = np.int64(-1)
            metric = -1
            if jt[slot, 0] == 0:
                if s_new == IN_QUEUE:
                    jt[slot, 0] = key
                    jt[slot, 1] = t
                    jt[slot, 2] = _meta(IN_QUEUE, 0, e)
                    st[ST_JT_COUNT] += 1
                    row_cnt[r, C_REQUESTS] += 1
                    levels[e, 0] += 1
                else:
                    row_cnt[r, C_ORPHANS] += 1
                    if adopt:
                        jt[slot, 0] = key
                        jt[slot, 1] = t
                        jt[slot, 2] = _meta(s_new, 0, e)
                        st[ST_JT_COUNT] += 1
                        if s_new == IN_PROGRESS:
                            levels[e, 1] += 1
                        else:
                            row_cnt[r, s_new - 2] += 1  # COMPLETED..TIMED_OUT -> C_COMPLETED..
            else:
                meta = jt[slot, 2]
                cur = meta & 0xFF
                if cur == s_new:
                    row_cnt[r, C_DUPLICATES] += 1
                elif not LEGAL[cur, s_new]:
                    row_cnt[r, C_INVALID] += 1
                    invalid_pairs[cur, s_new] += 1
                else:
                    attempt = (meta >> 8) & 0xFFFFFF
                    if s_new == IN_QUEUE:
                        row_cnt[r, C_RETRIED] += 1
                        attempt += 1
                        levels[e, 0] += 1
                    elif s_new == IN_PROGRESS:
                        levels[e, 1] += 1
                        duration = t - jt[slot, 1]
                        metric = M_DELAY
                    else:
                        row_cnt[r, s_new - 2] += 1
                        if cur == IN_PROGRESS and (s_new == COMPLETED or s_new == FAILED):
                            duration = t - jt[slot, 1]
                            metric = M_EXECUTION
                    if cur == IN_QUEUE:
                        levels[e, 0] -= 1
                    elif cur == IN_PROGRESS:
                        levels[e, 1] -= 1
                    jt[slot, 2] = _meta(s_new, attempt, e)
                    jt[slot, 1] = t
            if metric >= 0:
                p = row_hist[r, metric]
                if p < 0:
                    p = _alloc_pool(pool_free, row_hist, st, r, metric)
                v = duration
                if v > highest:
                    v = highest
                    row_cnt[r, C_CLAMPED] += 1
                bucket = hbase - leading_zeros(v | hmask)
                pool[p, ((bucket + 1) << half) + (v >> (bucket + unit)) - half_count] += 1
        elif kd == KIND_WEBHOOK:
            row_cnt[r, C_WEBHOOK_REQUESTS] += 1
            code = status_code[i]
            if 200 <= code < 300:
                row_cnt[r, C_WEBHOOK_SUCCEEDED] += 1
            else:
                row_cnt[r, C_WEBHOOK_FAILED] += 1
        elif kd == KIND_LATE:
            row_cnt[r, C_LATE] += 1
        i += 1
    return OK, n


@kernel
def advance_clock(t, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg):  # type: ignore[no-untyped-def]
    """Run sweeps due by time ``t`` and roll the window clock to ``t``'s window (watermark moves)."""
    if st[ST_CLOCK_W] == NO_WINDOW:
        return OK
    return _catch_up(t, jt, slot_of, row_ep, row_w, row_cnt, row_hist, row_gauge, row_free, levels, st, cfg)
