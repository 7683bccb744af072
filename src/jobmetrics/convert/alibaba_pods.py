"""The Alibaba GPU cluster pod list (``cluster-trace-gpu-v2023``, ``openb_pod_list_*.csv``) → SPEC
job events.

One row per pod: ``name``, requested resources, ``qos``, ``pod_phase`` (the last phase) and
``creation_time``, ``scheduled_time``, ``deletion_time`` in integer seconds from the trace start.
Each pod is one job (``job_id`` = ``name``):

* ``IN_QUEUE`` at ``creation_time``; ``IN_PROGRESS`` at ``scheduled_time`` (so the delay is the
  scheduling wait); at ``deletion_time`` a terminal state by phase:
  ``Succeeded`` → ``COMPLETED``, ``Failed`` → ``FAILED``, ``Running`` → ``running_deleted``
  (``CANCELLED`` by default: deleted while running, outcome not recorded; ``"completed"`` keeps
  their run times as execution times);
* ``Pending`` (never scheduled) → ``CANCELLED`` from the queue at ``deletion_time``;
* a pod whose ``deletion_time`` is the trace end (the largest ``deletion_time`` in the file, or
  ``trace_end``) was still there when the trace stopped: no terminal event (it stays queued or
  running, right-censored);
* a ``Failed``/``Succeeded`` pod without ``scheduled_time`` ends from the queue as ``CANCELLED``
  (``IN_QUEUE`` → ``FAILED`` is not a legal transition); rows without ``creation_time``, with an
  unknown phase or with times out of order are left out and counted.

The endpoint is the pod's ``qos`` class by default (``endpoint_by="gpu"``: ``gpu-<num_gpu>``;
``endpoint`` names one endpoint for all). Times are seconds after ``origin`` (epoch milliseconds;
default 0: the trace publishes no absolute date). The CSV is read with ``pyarrow.csv`` in blocks and
events are released in time order as creation times advance (rows are sorted by creation time).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ._common import JOB_SCHEMA, Summary, check_output, drop, job_events, ordered, write_events

__all__ = ["convert_alibaba_pods", "pod_events"]

EndpointBy = Literal["qos", "gpu"]
RunningDeleted = Literal["cancelled", "completed"]

_COLUMNS = ("name", "num_gpu", "qos", "pod_phase", "creation_time", "deletion_time", "scheduled_time")
_TYPES = {
    "name": pa.string(),
    "num_gpu": pa.int64(),
    "qos": pa.string(),
    "pod_phase": pa.string(),
    "creation_time": pa.int64(),
    "deletion_time": pa.int64(),
    "scheduled_time": pa.int64(),
}
_PHASES = ("Succeeded", "Failed", "Running", "Pending")


def _reader(path: Path, block_size: int) -> pcsv.CSVStreamingReader:
    try:
        return pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=block_size),
            convert_options=pcsv.ConvertOptions(column_types=_TYPES, include_columns=list(_COLUMNS)),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise ValueError(
            f"{path} is not an Alibaba pod list (columns {', '.join(_COLUMNS)} expected): {exc}"
        ) from None


def _trace_end(path: Path, block_size: int) -> int:
    end = -1
    for batch in _reader(path, block_size):
        m = pc.max(batch.column("deletion_time")).as_py()
        if m is not None:
            end = max(end, int(m))
    return end


def _np(batch: pa.RecordBatch, name: str, fill: int = -1) -> np.ndarray:  # type: ignore[type-arg]
    return np.asarray(batch.column(name).fill_null(fill).to_numpy(zero_copy_only=False))


def _chunks(
    path: Path,
    *,
    endpoint: str | None,
    endpoint_by: EndpointBy,
    running_deleted: RunningDeleted,
    origin_ms: int,
    trace_end: int,
    block_size: int,
    summary: Summary,
) -> Iterator[tuple[pa.Table, int]]:
    for batch in _reader(path, block_size):
        summary.records += batch.num_rows
        name = np.asarray(batch.column("name").to_pylist(), dtype=object)
        phase = np.asarray(batch.column("pod_phase").fill_null("").to_pylist(), dtype=object)
        create = _np(batch, "creation_time")
        sched = _np(batch, "scheduled_time")
        delete = _np(batch, "deletion_time")
        keep = np.ones(name.size, dtype=bool)

        drop(keep, ~np.isin(phase, _PHASES), "unknown pod_phase", summary)
        drop(keep, create < 0, "creation_time missing", summary)
        drop(keep, (sched >= 0) & (sched < create), "scheduled before created", summary)
        drop(
            keep,
            (delete >= 0) & (delete < np.maximum(create, sched)),
            "deleted before created or scheduled",
            summary,
        )
        if not keep.any():
            continue
        name, phase, create, sched, delete = (a[keep] for a in (name, phase, create, sched, delete))
        qos = np.asarray(batch.column("qos").fill_null("unknown").to_pylist(), dtype=object)[keep]
        gpus = _np(batch, "num_gpu")[keep]
        n = name.size
        started = (sched >= 0) & (phase != "Pending")
        censored = (delete < 0) | (delete >= trace_end)
        terminal = np.full(n, "CANCELLED", dtype=object)
        terminal[started & (phase == "Succeeded")] = "COMPLETED"
        terminal[started & (phase == "Failed")] = "FAILED"
        if running_deleted == "completed":
            terminal[started & (phase == "Running")] = "COMPLETED"
        if endpoint is not None:
            eps = np.full(n, endpoint, dtype=object)
        elif endpoint_by == "gpu":
            eps = np.char.add("gpu-", gpus.astype(str)).astype(object)
        else:
            eps = qos
        queued = origin_ms + create * 1000
        events = job_events(
            [queued, origin_ms + np.maximum(sched, create) * 1000, origin_ms + np.maximum(delete, 0) * 1000],
            [np.full(n, "IN_QUEUE", dtype=object), np.full(n, "IN_PROGRESS", dtype=object), terminal],
            [np.ones(n, dtype=bool), started, ~censored],
            name,
            eps,
        )
        summary.jobs += n
        yield events, int(queued.max())


def pod_events(
    path: str | Path,
    *,
    endpoint: str | None = None,
    endpoint_by: EndpointBy = "qos",
    running_deleted: RunningDeleted = "cancelled",
    origin_ms: int = 0,
    trace_end: int | None = None,
    block_size: int = 1 << 20,
    summary: Summary | None = None,
) -> Iterator[pa.Table]:
    """The events of an Alibaba pod list as time-ordered Arrow tables (SPEC §1 columns), streaming.

    Parameters
    ----------
    path:
        ``openb_pod_list_*.csv``.
    endpoint, endpoint_by:
        One endpoint for every pod, or the pod's ``"qos"`` (default) or ``"gpu"`` count.
    running_deleted:
        Terminal state of ``Running`` pods deleted before the trace end: ``"cancelled"`` (default)
        or ``"completed"``.
    origin_ms:
        Epoch milliseconds of the trace's time 0.
    trace_end:
        Seconds at which the trace stopped (default: the largest ``deletion_time``, read in a first
        pass over that column).
    summary:
        Filled with what was read, written and left out.
    """
    p = Path(path)
    if endpoint_by not in ("qos", "gpu"):
        raise ValueError(f"endpoint_by must be 'qos' or 'gpu', got {endpoint_by!r}")
    if running_deleted not in ("cancelled", "completed"):
        raise ValueError(f"running_deleted must be 'cancelled' or 'completed', got {running_deleted!r}")
    if not p.is_file():
        raise FileNotFoundError(f"pod list not found: {p}")
    summary = summary if summary is not None else Summary(str(p))
    end = _trace_end(p, block_size) if trace_end is None else int(trace_end)
    summary.notes.append(f"trace end at {end} s: pods deleted then are left queued or running")
    chunks = _chunks(
        p,
        endpoint=endpoint,
        endpoint_by=endpoint_by,
        running_deleted=running_deleted,
        origin_ms=int(origin_ms),
        trace_end=end,
        block_size=block_size,
        summary=summary,
    )
    return ordered(chunks, JOB_SCHEMA, summary)


def convert_alibaba_pods(
    path: str | Path, output: str | Path, *, fmt: str | None = None, **options: object
) -> Summary:
    """Convert a pod list into an event log file; ``options`` are those of :func:`pod_events`."""
    check_output(path, output)
    summary = Summary(str(path))
    batches = pod_events(path, summary=summary, **options)  # type: ignore[arg-type]
    write_events(batches, output, JOB_SCHEMA, fmt)
    return summary
