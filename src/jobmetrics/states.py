"""Event kinds and state codes (SPEC §1), shared by normalisation, kernels and tests.

Codes are small integers so that kernels can use them as array indices. ``0`` means "none"
everywhere (an empty job-table slot, a job not seen yet).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "FINISHED_JOB_STATES",
    "JOB_STATE_ALIASES",
    "JobState",
    "Kind",
    "WorkerState",
    "legal_job_transition",
]


class Kind(IntEnum):
    """What an event is about."""

    JOB = 0
    WORKER = 1
    WEBHOOK = 2


class JobState(IntEnum):
    """Job states in lifecycle order (equal timestamps are resolved in this order)."""

    IN_QUEUE = 1
    IN_PROGRESS = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 5
    TIMED_OUT = 6


class WorkerState(IntEnum):
    """Worker states."""

    INITIALIZING = 1
    IDLE = 2
    RUNNING = 3
    THROTTLED = 4
    UNHEALTHY = 5
    OFFLINE = 6


#: Extra spellings accepted on input.
JOB_STATE_ALIASES: dict[str, JobState] = {"RUNNING": JobState.IN_PROGRESS}

#: States after which a job is "finished" (kept for the retention period, not in flight).
FINISHED_JOB_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})

_LEGAL: frozenset[tuple[int, int]] = frozenset(
    {
        (JobState.IN_QUEUE, JobState.IN_PROGRESS),
        (JobState.IN_QUEUE, JobState.CANCELLED),
        (JobState.IN_QUEUE, JobState.TIMED_OUT),
        (JobState.IN_PROGRESS, JobState.COMPLETED),
        (JobState.IN_PROGRESS, JobState.FAILED),
        (JobState.IN_PROGRESS, JobState.CANCELLED),
        (JobState.IN_PROGRESS, JobState.TIMED_OUT),
        (JobState.IN_PROGRESS, JobState.IN_QUEUE),
        (JobState.FAILED, JobState.IN_QUEUE),
        (JobState.TIMED_OUT, JobState.IN_QUEUE),
    }
)


def legal_job_transition(current: int, new: int) -> bool:
    """True when ``current -> new`` is a legal job transition (SPEC §2); 0 is "new job"."""
    if current == 0:
        return new == JobState.IN_QUEUE
    return (current, new) in _LEGAL
