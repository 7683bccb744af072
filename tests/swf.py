"""Read a Standard Workload Format (SWF) job log into SPEC job events.

SWF (Parallel Workloads Archive, v2.2): header lines start with ``;`` (``UnixStartTime: <s>`` gives
the epoch of time 0), then one line per job with 18 whitespace-separated integers, ``-1`` meaning
unknown. Fields used here: 1 job number, 2 submit time, 3 wait time, 4 run time (seconds relative
to UnixStartTime) and 11 status (1 = completed, 0 = failed, 5 = cancelled).

Each job becomes ``IN_QUEUE`` at submit, ``IN_PROGRESS`` at submit + wait and its terminal state at
submit + wait + run; a cancelled job with no recorded start is cancelled from the queue.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["SwfLog", "read_swf", "swf_events"]

N_FIELDS = 18
_STATUS = {1: "COMPLETED", 0: "FAILED", 5: "CANCELLED"}


@dataclass(frozen=True)
class SwfLog:
    """The fields of an SWF log that describe the job lifecycle (times in seconds)."""

    unix_start: int
    job: np.ndarray
    submit: np.ndarray
    wait: np.ndarray
    run: np.ndarray
    status: np.ndarray

    def __len__(self) -> int:
        return int(self.job.size)


def read_swf(path: str | Path) -> SwfLog:
    """Parse an SWF log (plain or gzip-compressed)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    unix_start: int | None = None
    rows: list[list[str]] = []
    with opener(path, "rt", encoding="ascii") as lines:
        for number, line in enumerate(lines, 1):
            if line.startswith(";"):
                key, _, value = line[1:].partition(":")
                if key.strip() == "UnixStartTime":
                    unix_start = int(value)
                continue
            fields = line.split()
            if not fields:
                continue
            if len(fields) != N_FIELDS:
                raise ValueError(f"{path}:{number}: expected {N_FIELDS} fields, got {len(fields)}")
            rows.append(fields)
    if unix_start is None:
        raise ValueError(f"{path}: no UnixStartTime in the header")
    data = np.array(rows, dtype=np.int64).reshape(-1, N_FIELDS)
    return SwfLog(
        unix_start=unix_start,
        job=data[:, 0],
        submit=data[:, 1],
        wait=data[:, 2],
        run=data[:, 3],
        status=data[:, 10],
    )


def swf_events(log: SwfLog, *, endpoint: str = "kth-sp2", sort: bool = True) -> pa.Table:
    """The log as a SPEC job-event table (``ts`` int64 epoch milliseconds, ``job_id`` string).

    With ``sort`` (default) rows are ordered by ``ts`` (stable, so each job's events stay in
    lifecycle order); otherwise job by job.
    """
    unknown = sorted(set(np.unique(log.status).tolist()) - set(_STATUS))
    if unknown:
        raise ValueError(f"unsupported SWF status values {unknown}; known: {sorted(_STATUS)}")
    started = log.wait >= 0
    ran = started & (log.run >= 0)
    if np.any(~ran & (log.status != 5)):
        raise ValueError("completed or failed jobs need a wait and a run time")

    n = len(log)
    queued_at = log.submit
    started_at = log.submit + np.maximum(log.wait, 0)
    ended_at = started_at + np.maximum(log.run, 0)
    names = np.array(["IN_QUEUE", "IN_PROGRESS", *_STATUS.values()], dtype=object)
    terminal = np.select([log.status == 1, log.status == 0], [2, 3], default=4)

    ts = np.stack([queued_at, started_at, ended_at], axis=1)
    state = np.stack([np.zeros(n, np.int64), np.ones(n, np.int64), terminal], axis=1)
    job = np.broadcast_to(log.job[:, None], (n, 3))
    keep = np.stack([np.ones(n, bool), ran, np.ones(n, bool)], axis=1)
    ts, state, job = ts[keep], state[keep], job[keep]  # job by job, in lifecycle order
    if sort:
        order = np.argsort(ts, kind="stable")
        ts, state, job = ts[order], state[order], job[order]
    return pa.table(
        {
            "ts": pa.array((ts + log.unix_start) * 1000, type=pa.int64()),
            "kind": pa.array(np.full(ts.size, "job", dtype=object), type=pa.string()),
            "endpoint": pa.array(np.full(ts.size, endpoint, dtype=object), type=pa.string()),
            "job_id": pa.array(job.astype(str).astype(object), type=pa.string()),
            "state": pa.array(names[state], type=pa.string()),
        }
    )
