"""Window rows and the event-time clock: creating rows, rolling windows over, sweeping tables.

Every function returns a status from :mod:`.layout` (``OK`` or what it needs) and keeps its
progress in ``st`` so the caller can grow arrays and call again.
"""

from __future__ import annotations

from ._intrinsics import prefetch_row
from ._jit import kernel
from .layout import (
    C_COLD_START_FAILURES,
    C_EXPIRED,
    C_WORKERS_LOST,
    CFG_N_ENDPOINTS,
    CFG_RETENTION,
    CFG_SWEEP,
    CFG_TTL,
    CFG_WIDTH,
    CFG_WORKER_TTL,
    COMPLETED,
    E_PROGRESS,
    E_QUEUE,
    E_WINT,
    E_WLAST,
    E_WLEVEL,
    E_WMAX,
    F_KEY,
    F_TIME,
    IN_PROGRESS,
    IN_QUEUE,
    J_ENTER,
    J_META,
    N_METRICS,
    N_WORKER_GAUGES,
    NEED_RING,
    NEED_ROWS,
    NO_TIME,
    NO_TIME_MAX,
    OK,
    PREFETCH_DISTANCE,
    R_CNT,
    R_EP,
    R_HIST,
    R_PROGRESS,
    R_QUEUE,
    R_W,
    R_WINT,
    R_WMAX,
    RING,
    ST_CLOCK_W,
    ST_FIFO_HEAD,
    ST_FIFO_TAIL,
    ST_JOBS,
    ST_MIN_IN_FLIGHT,
    ST_NEXT_SWEEP,
    ST_ROW_TOP,
    ST_WORKERS,
    W_INIT,
    W_META,
    W_SEEN,
)
from .table import home_slot, table_bits, table_delete, table_find


@kernel
def find_row(slot_of, rows, e, w):
    """Row of (endpoint ``e``, window ``w``) or -1."""
    r = slot_of[e, w & (RING - 1)]
    if r >= 0 and rows[r, R_W] == w:
        return r
    return -1


@kernel
def new_row(slot_of, rows, row_free, st, e, w):
    """Take a zeroed row for (e, w) off the free stack; -1 when its ring slot is taken."""
    ring = w & (RING - 1)
    if slot_of[e, ring] >= 0:
        return -1
    top = st[ST_ROW_TOP] - 1
    r = row_free[top]
    st[ST_ROW_TOP] = top
    slot_of[e, ring] = r
    rows[r, :] = 0
    rows[r, R_EP] = e
    rows[r, R_W] = w
    for m in range(N_METRICS):
        rows[r, R_HIST + m] = -1
    return r


@kernel
def row_for(slot_of, rows, row_free, st, e, w):
    r = find_row(slot_of, rows, e, w)
    if r < 0:
        r = new_row(slot_of, rows, row_free, st, e, w)
    return r


@kernel
def worker_level_change(epa, e, t, old, new):
    """A worker of endpoint ``e`` moves from state ``old`` to ``new`` (0 or OFFLINE: none) at ``t``.

    The levels that held since the last change are integrated and, as they held for a while,
    count towards the maxima; a level that exists only between two events of one timestamp
    does not (maxima are taken per instant, after all of its events).
    """
    dt = t - epa[e, E_WLAST]
    if dt > 0:
        for s in range(N_WORKER_GAUGES):
            lvl = epa[e, E_WLEVEL + s]
            epa[e, E_WINT + s] += lvl * dt
            if lvl > epa[e, E_WMAX + s]:
                epa[e, E_WMAX + s] = lvl
    epa[e, E_WLAST] = t
    if 1 <= old <= N_WORKER_GAUGES:
        epa[e, E_WLEVEL + old - 1] -= 1
    if 1 <= new <= N_WORKER_GAUGES:
        epa[e, E_WLEVEL + new - 1] += 1


@kernel
def _endpoint_active(epa, e):
    if epa[e, E_QUEUE] != 0 or epa[e, E_PROGRESS] != 0:
        return True
    for s in range(N_WORKER_GAUGES):
        if epa[e, E_WLEVEL + s] != 0 or epa[e, E_WINT + s] != 0 or epa[e, E_WMAX + s] != 0:
            return True
    return False


@kernel
def roll_to(w_target, slot_of, rows, row_free, epa, st, cfg):
    """Advance the clock to window ``w_target``, closing each passed window's gauges: jobs in
    queue/in progress at its end, worker-µs per state and the most workers at once."""
    n_ep = cfg[CFG_N_ENDPOINTS]
    width = cfg[CFG_WIDTH]
    clock = st[ST_CLOCK_W]
    if clock == NO_TIME:
        st[ST_CLOCK_W] = w_target
        for e in range(n_ep):
            epa[e, E_WLAST] = w_target * width
        return OK
    while clock < w_target:
        if st[ST_ROW_TOP] < n_ep:
            return NEED_ROWS
        # Check every endpoint's ring slot before closing any gauges of this window: the loop
        # below zeroes each endpoint's running worker-µs as it goes, so stopping half-way for room
        # and redoing the window would lose the worker-µs of the endpoints already done.
        ring = clock & (RING - 1)
        for e in range(n_ep):
            if slot_of[e, ring] >= 0 and find_row(slot_of, rows, e, clock) < 0 and _endpoint_active(epa, e):
                return NEED_RING
        end = (clock + 1) * width
        for e in range(n_ep):
            r = find_row(slot_of, rows, e, clock)
            if r < 0 and _endpoint_active(epa, e):
                r = new_row(slot_of, rows, row_free, st, e, clock)
                if r < 0:
                    return NEED_RING
            worker_level_change(epa, e, end, 0, 0)
            if r >= 0:
                rows[r, R_QUEUE] = epa[e, E_QUEUE]
                rows[r, R_PROGRESS] = epa[e, E_PROGRESS]
                for s in range(N_WORKER_GAUGES):
                    rows[r, R_WINT + s] = epa[e, E_WINT + s]
                    rows[r, R_WMAX + s] = epa[e, E_WMAX + s]
            for s in range(N_WORKER_GAUGES):
                epa[e, E_WINT + s] = 0
                epa[e, E_WMAX + s] = epa[e, E_WLEVEL + s]
        clock += 1
        st[ST_CLOCK_W] = clock
    return OK


@kernel
def _sweep_jobs(boundary, jt, fifo, slot_of, rows, row_free, epa, st, cfg):
    """Forget finished jobs past their retention and evict lost in-flight jobs (expired, counted).

    Finished jobs come off the front of the time-ordered ``fifo``; the table is scanned for lost
    in-flight jobs only when the lower bound of their entry times says one can be due.
    """
    cap = jt.shape[0]
    bits = table_bits(cap)
    mask = fifo.shape[0] - 1
    retention = cfg[CFG_RETENTION]
    head = st[ST_FIFO_HEAD]
    tail = st[ST_FIFO_TAIL]
    while head < tail and fifo[head & mask, F_TIME] <= boundary - retention:
        if head + PREFETCH_DISTANCE < tail:  # their slots were last touched long ago: fetch ahead
            prefetch_row(jt, home_slot(fifo[(head + PREFETCH_DISTANCE) & mask, F_KEY], bits))
        key = fifo[head & mask, F_KEY]
        s = table_find(jt, key, bits)
        if (
            jt[s, 0] == key
            and jt[s, J_ENTER] == fifo[head & mask, F_TIME]
            and (jt[s, J_META] & 0xFF) >= COMPLETED
        ):
            table_delete(jt, s, bits)
            st[ST_JOBS] -= 1
        head += 1
        st[ST_FIFO_HEAD] = head
    ttl = cfg[CFG_TTL]
    if st[ST_JOBS] == 0 or st[ST_MIN_IN_FLIGHT] > boundary - ttl:
        return OK
    w = boundary // cfg[CFG_WIDTH]
    oldest = NO_TIME_MAX
    start = 0  # right after an empty slot, so no probe chain wraps over the scan's start
    while jt[start, 0] != 0:
        start += 1
    i = 0
    while i < cap:
        s = (start + 1 + i) & (cap - 1)
        state = jt[s, J_META] & 0xFF
        if jt[s, 0] == 0 or not (state == IN_QUEUE or state == IN_PROGRESS):
            i += 1
            continue
        if jt[s, J_ENTER] <= boundary - ttl:
            e = jt[s, J_META] >> 32
            r = row_for(slot_of, rows, row_free, st, e, w)
            if r < 0:
                return NEED_RING
            rows[r, R_CNT + C_EXPIRED] += 1
            epa[e, E_QUEUE if state == IN_QUEUE else E_PROGRESS] -= 1
            table_delete(jt, s, bits)
            st[ST_JOBS] -= 1
            continue  # an entry may have shifted into slot s
        oldest = min(oldest, jt[s, J_ENTER])
        i += 1
    st[ST_MIN_IN_FLIGHT] = oldest
    return OK


@kernel
def _sweep_workers(boundary, wt, slot_of, rows, row_free, epa, st, cfg):
    """Workers silent for the worker TTL leave the pool at ``boundary`` (counted as lost)."""
    cap = wt.shape[0]
    if st[ST_WORKERS] == 0:
        return OK
    bits = table_bits(cap)
    ttl = cfg[CFG_WORKER_TTL]
    w = boundary // cfg[CFG_WIDTH]
    start = 0
    while wt[start, 0] != 0:
        start += 1
    i = 0
    while i < cap:
        s = (start + 1 + i) & (cap - 1)
        if wt[s, 0] == 0 or wt[s, W_SEEN] + ttl > boundary:
            i += 1
            continue
        meta = wt[s, W_META]
        e = meta >> 32
        r = row_for(slot_of, rows, row_free, st, e, w)
        if r < 0:
            return NEED_RING
        rows[r, R_CNT + C_WORKERS_LOST] += 1
        if wt[s, W_INIT] >= 0:
            rows[r, R_CNT + C_COLD_START_FAILURES] += 1
        worker_level_change(epa, e, boundary, meta & 0xFF, 0)
        table_delete(wt, s, bits)
        st[ST_WORKERS] -= 1
    return OK


@kernel
def catch_up(t, jt, wt, fifo, slot_of, rows, row_free, epa, st, cfg):
    """Run the sweeps due by time ``t`` (boundary <= t) and roll the clock to ``t``'s window."""
    sweep = cfg[CFG_SWEEP]
    width = cfg[CFG_WIDTH]
    nxt = st[ST_NEXT_SWEEP]
    if nxt == NO_TIME:
        nxt = -((-t) // sweep) * sweep  # first boundary >= t
        st[ST_NEXT_SWEEP] = nxt
    while nxt <= t:
        if st[ST_JOBS] == 0 and st[ST_WORKERS] == 0:
            nxt = -((-t) // sweep) * sweep  # nothing to sweep: skip to the first boundary >= t
            st[ST_NEXT_SWEEP] = nxt
            break
        status = roll_to(nxt // width, slot_of, rows, row_free, epa, st, cfg)
        if status != OK:
            return status
        if st[ST_ROW_TOP] < cfg[CFG_N_ENDPOINTS]:
            return NEED_ROWS
        status = _sweep_jobs(nxt, jt, fifo, slot_of, rows, row_free, epa, st, cfg)
        if status != OK:
            return status
        status = _sweep_workers(nxt, wt, slot_of, rows, row_free, epa, st, cfg)
        if status != OK:
            return status
        nxt += sweep
        st[ST_NEXT_SWEEP] = nxt
    return roll_to(t // width, slot_of, rows, row_free, epa, st, cfg)


@kernel
def advance_clock(t, jt, wt, fifo, slot_of, rows, row_free, epa, st, cfg):
    """The watermark moved to ``t``: run the sweeps due and roll the clock to ``t``'s window."""
    if st[ST_CLOCK_W] == NO_TIME:
        return OK
    return catch_up(t, jt, wt, fifo, slot_of, rows, row_free, epa, st, cfg)
