"""Codes and array layouts shared by the lifecycle kernels and the engine that owns the arrays.

Window rows live in one int64 matrix ``rows[r, R_*]``; per-endpoint running state in
``epa[e, E_*]``; the job and worker tables are ``jt[slot, J_*]`` and ``wt[slot, W_*]``. The
state vector ``st[ST_*]`` and config vector ``cfg[CFG_*]`` carry scalars across calls so a pass can
stop and resume.
"""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------- event kinds and states
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

W_INITIALIZING = 1
W_IDLE = 2
W_RUNNING = 3
W_THROTTLED = 4
W_UNHEALTHY = 5
W_OFFLINE = 6
N_WORKER_GAUGES = 5  # INITIALIZING .. UNHEALTHY (OFFLINE workers have left the pool)

# ---------------------------------------------------------------- counters and metrics
COUNTER_NAMES = (
    "requests", "completed", "failed", "cancelled", "timed_out", "retried", "duplicates",
    "invalid_transitions", "orphans", "expired", "late_events", "cold_start_count",
    "cold_start_failures", "webhook_requests", "webhook_succeeded", "webhook_failed",
    "workers_lost", "clamped_durations",
)  # fmt: skip
C_REQUESTS = 0
C_COMPLETED = 1  # C_COMPLETED + (state - COMPLETED) for the four terminal states
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
C_COLD_START_FAILURES = 12
C_WEBHOOK_REQUESTS = 13
C_WEBHOOK_SUCCEEDED = 14
C_WEBHOOK_FAILED = 15
C_WORKERS_LOST = 16
C_CLAMPED = 17
N_COUNTERS = len(COUNTER_NAMES)

METRIC_NAMES = ("execution_time", "delay_time", "cold_start_time")
M_EXECUTION = 0
M_DELAY = 1
M_COLD_START = 2
N_METRICS = 3

# ---------------------------------------------------------------- window rows
R_EP = 0  # endpoint code, -1 for a free row
R_W = 1  # window index
R_CNT = 2  # counters
R_QUEUE = R_CNT + N_COUNTERS  # jobs IN_QUEUE at the window's end
R_PROGRESS = R_QUEUE + 1  # jobs IN_PROGRESS at the window's end
R_WINT = R_PROGRESS + 1  # worker-µs spent in each worker state during the window
R_WMAX = R_WINT + N_WORKER_GAUGES  # most workers in each state at once during the window
R_HIST = R_WMAX + N_WORKER_GAUGES  # index into the histogram pool per metric, -1 for none
R_COLS = R_HIST + N_METRICS

# ---------------------------------------------------------------- per-endpoint running state
E_QUEUE = 0  # jobs IN_QUEUE now
E_PROGRESS = 1  # jobs IN_PROGRESS now
E_WLEVEL = 2  # workers in each state now
E_WLAST = E_WLEVEL + N_WORKER_GAUGES  # time of the last worker-level change (or window start)
E_WINT = E_WLAST + 1  # worker-µs accumulated in the clock's window so far
E_WMAX = E_WINT + N_WORKER_GAUGES  # most workers at once in the clock's window so far
E_COLS = E_WMAX + N_WORKER_GAUGES

# ---------------------------------------------------------------- tables
J_KEY = 0  # 0 = empty slot
J_ENTER = 1  # time the job entered its current state (= its last applied transition)
J_META = 2  # state (bits 0-7), attempt (8-31), endpoint (32-63)
J_FIELDS = 4  # one 32-byte record: a probe touches one cache line

W_KEY = 0
W_ENTER = 1  # time the worker entered its current state
W_META = 2  # state (bits 0-7), endpoint (32-63)
W_SEEN = 3  # time of the worker's last event (heartbeats included)
W_INIT = 4  # start of the cold start in progress, or -1
W_FIELDS = 8

# Finished-jobs queue ``fifo[k & (len - 1)]``: (key, finish time) of each transition into a
# finished state, in time order, so retention needs no table scan.
F_KEY = 0
F_TIME = 1

# ---------------------------------------------------------------- state and config vectors
ST_JOBS = 0  # occupied job-table slots
ST_CLOCK_W = 1  # window of the clock: last applied event, sweep or watermark; NO_TIME before any
ST_NEXT_SWEEP = 2  # next sweep boundary (µs); NO_TIME before the first
ST_ROW_TOP = 3  # free rows on the row_free stack
ST_POOL_TOP = 4  # free histograms on the pool_free stack
ST_GEN = 5  # unused (kept so that saved states keep their layout)
ST_WORKERS = 6  # occupied worker-table slots
ST_FIFO_HEAD = 7  # next entry to pop from the finished-jobs queue (a running count)
ST_FIFO_TAIL = 8  # next entry to push
ST_MIN_IN_FLIGHT = 9  # a lower bound of the entry times of jobs in flight (NO_TIME_MAX if none)
ST_SPILLED = 10  # 1 once a dense histogram count reached SPILL_AT and moved into the int64 spill
N_STATE = 11

CFG_WIDTH = 0  # window width, µs
CFG_SWEEP = 1  # sweep interval, µs
CFG_TTL = 2  # job TTL, µs
CFG_RETENTION = 3  # retention of finished jobs, µs
CFG_ADOPT = 4  # 1: adopt orphans, 0: drop them
CFG_UNIT = 5  # HDR unit magnitude
CFG_HALF = 6  # HDR half magnitude
CFG_HIGHEST = 7  # durations above are clamped to it and counted
CFG_N_ENDPOINTS = 8
CFG_WORKER_TTL = 9  # a worker silent this long leaves the pool (counted as lost)
N_CFG = 10

RING = 64  # open windows one endpoint may hold at once
# Open histograms count in int32 (half the cache footprint of int64); a count that reaches SPILL_AT
# moves into an int64 "spill" matrix of the same shape, which stays untouched (and unallocated by
# the OS) unless that ever happens.
SPILL_AT = 2**31 - 1
PREFETCH_DISTANCE = 16  # events ahead whose job-table slot is prefetched
NO_TIME = np.iinfo(np.int64).min
NO_TIME_MAX = np.iinfo(np.int64).max

# statuses returned to the caller
OK = 0
NEED_JOB_TABLE = 1
NEED_ROWS = 2
NEED_POOL = 3
NEED_RING = 4
NEED_WORKER_TABLE = 5
NEED_FIFO = 6


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


#: LEGAL[from, to] for job states; from = 0 is a job not seen yet.
LEGAL = _legal_table()
