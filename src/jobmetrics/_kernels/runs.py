"""Runs of equal timestamps: events whose order the input does not fix.

Events of one job (or worker) that share a timestamp must give the same result whatever order
they arrived in. :func:`repeated_runs` finds, in one cheap pass before the lifecycle kernel, the
runs that hold two events of one job or worker (most runs hold none); the kernel calls
:func:`reorder_run` on those when it reaches them, because the best order depends on the job's
state at that moment.
"""

from __future__ import annotations

import numpy as np

from ._jit import kernel
from .layout import IN_QUEUE, J_KEY, J_META, KIND_JOB, KIND_WORKER, LEGAL
from .table import GOLDEN, entity_key, table_bits, table_find

__all__ = ["best_group_order", "reorder_run", "repeated_runs"]

_WORKER_SALT = np.int64(0x3C6EF372FE94F82B)  # keeps worker keys apart from job keys in a run
_MAX_PROBE = 64  # a run crowding the scratch set this much is reordered without a full check


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
def reorder_run(a, b, kind, ep, job, state, worker, status_code, job_keys, jt, adopt):
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
    job_keys[a:b] = job_keys[a:b][final]


@kernel
def repeated_runs(ts, kind, ep, job, worker, start, scratch_key, scratch_time, job_keys):
    """Start positions (ascending) of the runs of equal timestamps in ``start..n-1`` that hold two
    events about one job or one worker.

    One pass through an open-addressing set (``scratch_key``, a power of two long) whose slots are
    stamped with the timestamp of the run that filled them (``scratch_time``): a slot stamped with
    another time is free, so the set never needs clearing. A run whose probe grows past
    ``_MAX_PROBE`` is reported without looking further (reordering a run without repeats is
    correct, only slower). Writes the table key of each job event into ``job_keys`` (0 for other
    events) on the way, for the lifecycle kernel. Costs about 2 ns per event.
    """
    n = ts.shape[0]
    mask = np.uint64(scratch_key.shape[0] - 1)
    shift = np.uint64(64 - table_bits(scratch_key.shape[0]))
    out = np.empty((n - start) // 2 + 1, dtype=np.int64)  # a run holds two events or more
    n_out = 0
    run_start = start
    prev = ts[start] if start < n else np.int64(0)
    for i in range(start, n):
        t = ts[i]
        run_start = i if t != prev else run_start
        prev = t
        kd = kind[i]
        if kd == KIND_JOB:
            key = entity_key(job[i], ep[i])
            job_keys[i] = key
        else:
            job_keys[i] = 0
            if kd != KIND_WORKER:
                continue  # webhooks and markers
            key = _run_key(kd, ep[i], job[i], worker[i])
        h = (np.uint64(key) * GOLDEN) >> shift
        probes = 0
        while scratch_time[h] == t:
            if scratch_key[h] == key or probes == _MAX_PROBE:
                if n_out == 0 or out[n_out - 1] != run_start:
                    out[n_out] = run_start
                    n_out += 1
                break
            h = (h + np.uint64(1)) & mask
            probes += 1
        scratch_time[h] = t
        scratch_key[h] = key
    return out[:n_out].copy()
