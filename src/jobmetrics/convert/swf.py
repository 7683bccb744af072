"""Standard Workload Format (SWF) job logs of the Parallel Workloads Archive → SPEC job events.

An SWF file (plain or gzip) has header lines starting with ``;`` (``UnixStartTime: <epoch s>`` is
time 0) and one line per job of 18 whitespace-separated numbers, ``-1`` meaning unknown. Fields used:
1 job number, 2 submit, 3 wait, 4 run (seconds), 9 requested time, 11 status, 15 queue,
16 partition. Each job becomes

* ``IN_QUEUE`` at submit, ``IN_PROGRESS`` at submit + wait, and at submit + wait + run the state of
  its status: 1 → ``COMPLETED``, 0 → ``FAILED`` (``TIMED_OUT`` instead when ``infer_timeouts`` and
  the run reached the requested time), 5 → ``CANCELLED``;
* a cancelled job that never ran (wait or run unknown, or run 0) is ``CANCELLED`` from the queue at
  submit + wait (at submit when the wait is unknown);
* status -1 (unknown) ends as ``unknown_status`` says (``COMPLETED`` by default; ``"skip"`` leaves
  the job out);
* records of partial executions (status 2, 3, 4: a checkpointed job's parts) are left out — the
  job's summary line carries the whole job — and so are jobs with an unknown submit time, and
  completed/failed jobs with an unknown wait or run time. Every record left out is counted by reason.

The endpoint is the queue (``queue-<n>``) when field 15 is known, else the partition
(``partition-<n>``) when field 16 is, else the log's name; ``endpoint_by`` and ``endpoint`` change
that. Lines are read in chunks and events are released in time order as the submit times advance,
so memory is bounded by the jobs in flight, not by the size of the log.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._common import JOB_SCHEMA, Summary, check_output, drop, job_events, ordered, write_events

__all__ = ["EndpointBy", "UnknownStatus", "convert_swf", "swf_events"]

EndpointBy = Literal["auto", "queue", "partition", "log"]
UnknownStatus = Literal["completed", "failed", "skip"]

N_FIELDS = 18
# 0-based field indices
_JOB, _SUBMIT, _WAIT, _RUN, _REQ_TIME, _STATUS, _QUEUE, _PARTITION = 0, 1, 2, 3, 8, 10, 14, 15
_USED = (_JOB, _SUBMIT, _WAIT, _RUN, _REQ_TIME, _STATUS, _QUEUE, _PARTITION)


def log_name(path: Path) -> str:
    """The log's name: the file name without ``.gz`` and ``.swf``."""
    name = path.name
    for suffix in (".gz", ".swf"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return name


def _open_text(path: Path) -> Iterator[str]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as lines:
        yield from lines


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return int(float(text))  # a few archive logs write some fields as decimals


def _records(
    path: Path, chunk_jobs: int, summary: Summary, header: dict[str, str]
) -> Iterator[npt.NDArray[np.int64]]:
    rows: list[list[int]] = []
    for number, line in enumerate(_open_text(path), 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith(";"):
            key, sep, value = text[1:].partition(":")
            if sep and key.strip() and key.strip() not in header:
                header[key.strip()] = value.strip()
            continue
        fields = text.split()
        if len(fields) < N_FIELDS:
            summary.bad_line(f"line {number}", f"{len(fields)} fields, expected {N_FIELDS}")
            continue
        try:
            rows.append([_parse_int(fields[i]) for i in _USED])
        except ValueError:
            summary.bad_line(f"line {number}", "a field is not a number")
            continue
        summary.records += 1
        if len(rows) >= chunk_jobs:
            yield np.array(rows, dtype=np.int64)
            rows = []
    if rows:
        yield np.array(rows, dtype=np.int64)


def _chunks(
    path: Path,
    *,
    endpoint: str | None,
    endpoint_by: EndpointBy,
    unknown_status: UnknownStatus,
    infer_timeouts: bool,
    unix_start: int | None,
    chunk_jobs: int,
    summary: Summary,
) -> Iterator[tuple[pa.Table, int]]:
    header: dict[str, str] = {}
    name = log_name(path)
    start: int | None = unix_start
    for data in _records(path, chunk_jobs, summary, header):
        if start is None:
            text = header.get("UnixStartTime")
            if text is None:
                summary.notes.append("no UnixStartTime in the header: times count from the epoch")
                start = 0
            else:
                try:
                    start = _parse_int(text.split()[0])
                except (ValueError, IndexError):
                    raise ValueError(f"{path}: UnixStartTime {text!r} is not a number") from None
        job, submit, wait, run, req, status, queue, part = (data[:, k] for k in range(len(_USED)))
        keep = np.ones(job.size, dtype=bool)

        drop(keep, np.isin(status, (2, 3, 4)), "partial execution records (status 2/3/4)", summary)
        drop(keep, ~np.isin(status, (-1, 0, 1, 5, 2, 3, 4)), "unknown status value", summary)
        if unknown_status == "skip":
            drop(keep, status == -1, "status unknown (-1)", summary)
        drop(keep, submit < 0, "submit time unknown", summary)
        cancelled = status == 5
        drop(keep, ~cancelled & ((wait < 0) | (run < 0)), "wait or run time unknown", summary)
        if not keep.any():
            continue
        job, submit, wait, run, req, status, queue, part = (
            a[keep] for a in (job, submit, wait, run, req, status, queue, part)
        )
        cancelled = status == 5
        ran = (wait >= 0) & (run >= 0) & ~(cancelled & (run <= 0))
        terminal = np.where(status == 0, "FAILED", "COMPLETED").astype(object)
        if unknown_status == "failed":
            terminal[status == -1] = "FAILED"
        if infer_timeouts:
            timed_out = (status == 0) & (req > 0) & (run >= req)
            terminal[timed_out] = "TIMED_OUT"
        terminal[cancelled] = "CANCELLED"
        queued_ms = (start + submit) * 1000
        started_ms = queued_ms + np.maximum(wait, 0) * 1000
        ended_ms = np.where(ran, started_ms + np.maximum(run, 0) * 1000, started_ms)
        n = job.size
        events = job_events(
            [queued_ms, started_ms, ended_ms],
            [np.full(n, "IN_QUEUE", dtype=object), np.full(n, "IN_PROGRESS", dtype=object), terminal],
            [np.ones(n, dtype=bool), ran, np.ones(n, dtype=bool)],
            job.astype(str).astype(object),
            _endpoints(queue, part, name, endpoint, endpoint_by),
        )
        summary.jobs += n
        yield events, int(queued_ms.max())


def _endpoints(
    queue: npt.NDArray[np.int64],
    part: npt.NDArray[np.int64],
    name: str,
    endpoint: str | None,
    endpoint_by: EndpointBy,
) -> npt.NDArray[np.object_]:
    out = np.full(queue.size, endpoint or name, dtype=object)
    if endpoint is not None or endpoint_by == "log":
        return out
    if endpoint_by in ("auto", "partition"):
        has = part >= 0
        out[has] = np.char.add("partition-", part[has].astype(str)).astype(object)
    if endpoint_by in ("auto", "queue"):
        has = queue >= 0
        out[has] = np.char.add("queue-", queue[has].astype(str)).astype(object)
    return out


def _check(endpoint_by: str, unknown_status: str, chunk_jobs: int) -> None:
    if endpoint_by not in ("auto", "queue", "partition", "log"):
        raise ValueError(f"endpoint_by must be 'auto', 'queue', 'partition' or 'log', got {endpoint_by!r}")
    if unknown_status not in ("completed", "failed", "skip"):
        raise ValueError(f"unknown_status must be 'completed', 'failed' or 'skip', got {unknown_status!r}")
    if chunk_jobs < 1:
        raise ValueError(f"chunk_jobs must be >= 1, got {chunk_jobs!r}")


def swf_events(
    path: str | Path,
    *,
    endpoint: str | None = None,
    endpoint_by: EndpointBy = "auto",
    unknown_status: UnknownStatus = "completed",
    infer_timeouts: bool = False,
    unix_start: int | None = None,
    chunk_jobs: int = 8_192,
    summary: Summary | None = None,
) -> Iterator[pa.Table]:
    """The events of an SWF log as time-ordered Arrow tables (SPEC §1 columns), streaming.

    Parameters
    ----------
    path:
        An SWF file, plain or gzip-compressed (recognised by its content).
    endpoint:
        One endpoint name for every job (default: from the queue/partition fields, see the module).
    endpoint_by:
        ``"auto"`` (queue, else partition, else the log name), ``"queue"``, ``"partition"`` or
        ``"log"`` (the log name for every job).
    unknown_status:
        Terminal state of jobs with status -1: ``"completed"``, ``"failed"`` or ``"skip"``.
    infer_timeouts:
        A failed job whose run reached its requested time (field 9) ends ``TIMED_OUT``.
    unix_start:
        Epoch seconds of time 0 (default: the header's ``UnixStartTime``; 0 without one).
    summary:
        Filled with what was read, written and left out.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny.swf")
    >>> with open(path, "w") as f:
    ...     _ = f.write("; UnixStartTime: 60\\n1 0 5 10 1 -1 -1 1 60 -1 1 1 1 -1 -1 -1 -1 -1\\n")
    >>> log = pa.concat_tables(swf_events(path))
    >>> log.column("ts").to_pylist(), log.column("state").to_pylist(), log.column("endpoint")[0]
    ([60000, 65000, 75000], ['IN_QUEUE', 'IN_PROGRESS', 'COMPLETED'], <pyarrow.StringScalar: 'tiny'>)
    """
    p = Path(path)
    _check(endpoint_by, unknown_status, chunk_jobs)
    if not p.is_file():
        raise FileNotFoundError(f"SWF log not found: {p}")
    summary = summary if summary is not None else Summary(str(p))
    chunks = _chunks(
        p,
        endpoint=endpoint,
        endpoint_by=endpoint_by,
        unknown_status=unknown_status,
        infer_timeouts=infer_timeouts,
        unix_start=unix_start,
        chunk_jobs=chunk_jobs,
        summary=summary,
    )
    return ordered(chunks, JOB_SCHEMA, summary)


def convert_swf(
    path: str | Path, output: str | Path, *, fmt: str | None = None, **options: object
) -> Summary:
    """Convert an SWF log into an event log file (format from ``output``'s suffix, or ``fmt``).

    ``options`` are those of :func:`swf_events`. Returns the :class:`Summary` of the conversion.
    """
    check_output(path, output)
    summary = Summary(str(path))
    batches = swf_events(path, summary=summary, **options)  # type: ignore[arg-type]
    write_events(batches, output, JOB_SCHEMA, fmt)
    return summary
