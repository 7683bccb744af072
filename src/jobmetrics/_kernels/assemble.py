"""One pass from Arrow columns to the internal event columns, for batches of job events.

:func:`assemble_job_rows` reads the columns of a batch as Arrow lays them out (dictionary indices,
epoch integers, integer ids or precomputed string-id keys) and writes every internal column in
the same pass. It stops at the first row that is not a valid job event; the caller then takes the
general path, which reports each bad row.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .hashing import _ZERO, _finalise

__all__ = ["assemble_job_rows"]


@kernel
def assemble_job_rows(
    ts,
    ts_factor,
    ts_limit,
    ts_ns,
    kind_idx,
    kind_tab,
    ep_idx,
    ep_tab,
    ep_seen,
    state_idx,
    state_tab,
    ids,
    ids_are_keys,
    out_ts,
    out_ep,
    out_job,
    out_state,
    out_status,
):
    """Fill the ``out_*`` columns from one chunk; return the first row that is not a valid job
    event (or -1 when every row is one).

    Parameters
    ----------
    ts, ts_factor, ts_limit, ts_ns
        Epoch integers, multiplied by ``ts_factor`` into microseconds (rows beyond ``±ts_limit``
        would overflow); with ``ts_ns`` they are nanoseconds, floor-divided by 1000 instead.
    kind_idx, kind_tab
        Per row an entry of ``kind_tab`` (the kind code of each distinct value); ``kind_idx`` is
        empty when the batch has no kind column (every row is a job event).
    ep_idx, ep_tab, ep_seen
        Per row an entry of ``ep_tab`` (the endpoint code of each distinct value); the entries
        used are marked in ``ep_seen``.
    state_idx, state_tab
        Per row an entry of ``state_tab`` (the job-state code of each value, 0 if none).
    ids, ids_are_keys
        Integer job ids, hashed here, or (``ids_are_keys``) keys already hashed from strings.
    """
    n = ts.shape[0]
    has_kind = kind_idx.shape[0] > 0
    for i in range(n):
        if has_kind and kind_tab[kind_idx[i]] != 0:
            return i
        s = state_tab[state_idx[i]]
        if s <= 0:
            return i
        v = ts[i]
        if ts_ns:
            v = v // 1000
        elif v > ts_limit or v < -ts_limit:
            return i
        else:
            v = v * ts_factor
        if ids_are_keys:
            key = np.int64(ids[i])
            if key == 0:
                return i
        else:
            h = _finalise(np.uint64(np.int64(ids[i])))
            if h == np.uint64(0):
                h = _ZERO
            key = np.int64(h)
        entry = ep_idx[i]
        ep_seen[entry] = 1
        out_ep[i] = ep_tab[entry]
        out_ts[i] = v
        out_job[i] = key
        out_state[i] = s
        out_status[i] = -1
    return -1
