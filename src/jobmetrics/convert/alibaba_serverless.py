"""The Alibaba GenAI serverless inference trace (``cluster-trace-v2026-GenAI``) → SPEC events.

**Requests** (``lora_request_trace.csv``): one row per request with ``gmt_create``
(``YYYY-MM-DD HH:MM:SS``, taken as UTC), ``predict_type``, ``predict_status`` and
``exec_time_seconds``. The trace has no request id and no start time, so each row becomes a job
``<prefix>-<row number>`` (1-based data row) with

* ``IN_QUEUE`` and ``IN_PROGRESS`` at ``gmt_create`` — the trace does not separate queueing from
  execution, so ``delay_time`` is 0 by construction and ``execution_time`` is the published
  "total execution time";
* at ``gmt_create + exec_time_seconds``: ``SUCCEED`` → ``COMPLETED``, ``FAILED`` → ``FAILED``;
* ``PENDING`` → only ``IN_QUEUE`` (still queued when the trace was cut), ``PROCESSING`` → only
  ``IN_QUEUE`` and ``IN_PROGRESS`` (still running);
* rows with another status, no time, or a negative or missing execution time are left out and
  counted.

The endpoint is ``predict_type`` (``TXT_2_IMG``, ``IMG_2_IMG``, ``INPAINTING``) by default;
``endpoint_by="model"`` uses ``checkpoint_model_version_id``, ``"group"`` the ``groupId``. The CSV is
read with ``pyarrow.csv`` in blocks and events are released in time order as creation times advance.

**Cold starts** (``basemodel_update_latency_anon.tar.gz`` or its CSV): samples of base-model load
time (``value`` in ms, ``timestamp_anon`` in epoch seconds at the end of the load,
``container_ip``), not linked to requests. Each sample becomes one worker
``<container_ip>-<n>`` of the endpoint ``cold_start_endpoint``: ``INITIALIZING`` at
``timestamp - value``, ``IDLE`` at ``timestamp`` (one ``cold_start_time``), ``OFFLINE`` 1 ms later.
The publishers shifted these timestamps separately from the request log's, so the two do not line
up in time. The file is small and read whole.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from ._common import JOB_SCHEMA, WORKER_SCHEMA, Summary, check_output, drop, job_events, ordered, write_events

__all__ = [
    "cold_start_events",
    "convert_alibaba_cold_starts",
    "convert_alibaba_serverless",
    "request_events",
]

EndpointBy = Literal["type", "model", "group"]

_COLUMN_OF = {"type": "predict_type", "model": "checkpoint_model_version_id", "group": "groupId"}
_STATUS = {"SUCCEED": "COMPLETED", "FAILED": "FAILED", "PENDING": None, "PROCESSING": None}


def _reader(path: Path, by_column: str, block_size: int) -> pcsv.CSVStreamingReader:
    columns = ["gmt_create", "predict_status", "exec_time_seconds", by_column]
    types = {
        "gmt_create": pa.timestamp("s"),
        "predict_status": pa.string(),
        "exec_time_seconds": pa.float64(),
        by_column: pa.string(),
    }
    try:
        return pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=block_size),
            convert_options=pcsv.ConvertOptions(column_types=types, include_columns=columns),
        )
    except (pa.ArrowInvalid, KeyError) as exc:
        raise ValueError(
            f"{path} is not an Alibaba GenAI request trace (columns {', '.join(columns)} expected): {exc}"
        ) from None


def _chunks(
    path: Path,
    *,
    endpoint: str | None,
    endpoint_by: EndpointBy,
    prefix: str,
    block_size: int,
    summary: Summary,
) -> Iterator[tuple[pa.Table, int]]:
    by = _COLUMN_OF[endpoint_by]
    row0 = 0
    for batch in _reader(path, by, block_size):
        n_in = batch.num_rows
        summary.records += n_in
        rows = np.arange(row0 + 1, row0 + n_in + 1)
        row0 += n_in
        created = batch.column("gmt_create").cast(pa.int64())
        has_time = np.asarray(created.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        create_ms = np.asarray(created.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64) * 1000
        status = np.asarray(batch.column("predict_status").fill_null("").to_pylist(), dtype=object)
        exec_s = np.asarray(
            batch.column("exec_time_seconds").fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=float
        )
        keep = np.ones(n_in, dtype=bool)

        drop(keep, ~has_time, "gmt_create missing", summary)
        drop(keep, ~np.isin(status, list(_STATUS)), "unknown predict_status", summary)
        finished = np.isin(status, ("SUCCEED", "FAILED"))
        drop(keep, finished & ~(exec_s >= 0), "exec_time_seconds missing or negative", summary)
        if not keep.any():
            continue
        rows, create_ms, status, exec_s = rows[keep], create_ms[keep], status[keep], exec_s[keep]
        finished = np.isin(status, ("SUCCEED", "FAILED"))
        n = rows.size
        if endpoint is not None:
            eps = np.full(n, endpoint, dtype=object)
        else:
            eps = np.asarray(batch.column(by).fill_null("unknown").to_pylist(), dtype=object)[keep]
        end_ms = create_ms + np.round(np.where(finished, exec_s, 0.0) * 1000).astype(np.int64)
        terminal = np.where(status == "FAILED", "FAILED", "COMPLETED").astype(object)
        job_id = np.char.add(f"{prefix}-", np.char.zfill(rows.astype(str), 6)).astype(object)
        events = job_events(
            [create_ms, create_ms, end_ms],
            [np.full(n, "IN_QUEUE", dtype=object), np.full(n, "IN_PROGRESS", dtype=object), terminal],
            [np.ones(n, dtype=bool), status != "PENDING", finished],
            job_id,
            eps,
        )
        summary.jobs += n
        yield events, int(create_ms.max())


def request_events(
    path: str | Path,
    *,
    endpoint: str | None = None,
    endpoint_by: EndpointBy = "type",
    prefix: str = "req",
    block_size: int = 1 << 20,
    summary: Summary | None = None,
) -> Iterator[pa.Table]:
    """The events of ``lora_request_trace.csv`` as time-ordered Arrow tables, streaming.

    ``endpoint`` names one endpoint for every request; otherwise ``endpoint_by`` picks the column:
    ``"type"`` (``predict_type``, default), ``"model"`` or ``"group"``. Job ids are
    ``<prefix>-<row number>``.
    """
    p = Path(path)
    if endpoint_by not in _COLUMN_OF:
        raise ValueError(f"endpoint_by must be one of {sorted(_COLUMN_OF)}, got {endpoint_by!r}")
    if not p.is_file():
        raise FileNotFoundError(f"request trace not found: {p}")
    summary = summary if summary is not None else Summary(str(p))
    summary.notes.append("no start time in the trace: delay_time is 0 by construction")
    chunks = _chunks(
        p, endpoint=endpoint, endpoint_by=endpoint_by, prefix=prefix, block_size=block_size, summary=summary
    )
    return ordered(chunks, JOB_SCHEMA, summary)


def _read_samples(path: Path) -> pa.Table:
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and m.name.endswith(".csv")), None)
            if member is None:
                raise ValueError(f"{path}: no .csv member in the archive")
            f = tar.extractfile(member)
            assert f is not None
            data = f.read()
        source: object = io.BytesIO(data)
    else:
        source = path
    try:
        table = pcsv.read_csv(source)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: not a CSV file: {exc}") from None
    missing = [c for c in ("timestamp_anon", "value", "container_ip") if c not in table.column_names]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} of the cold-start samples")
    return table


def cold_start_events(
    path: str | Path,
    *,
    endpoint: str = "basemodel-load",
    summary: Summary | None = None,
) -> pa.Table:
    """Worker events (``INITIALIZING`` → ``IDLE`` → ``OFFLINE``) of the base-model load samples, in
    time order: one cold start per sample."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cold-start samples not found: {p}")
    summary = summary if summary is not None else Summary(str(p))
    table = _read_samples(p)
    summary.records += table.num_rows
    ready = pc.cast(table.column("timestamp_anon"), pa.float64()).fill_null(np.nan).to_numpy()
    value = pc.cast(table.column("value"), pa.float64()).fill_null(np.nan).to_numpy()
    ip = np.asarray(
        table.column("container_ip").cast(pa.string()).fill_null("unknown").to_pylist(), dtype=object
    )
    keep = np.isfinite(ready) & np.isfinite(value) & (value >= 0)
    if (~keep).any():
        summary.skipped["time or value missing or negative"] += int((~keep).sum())
    ready_ms = np.round(ready[keep] * 1000).astype(np.int64)
    start_ms = ready_ms - np.round(value[keep]).astype(np.int64)
    ip = ip[keep]
    n = ready_ms.size
    worker = np.char.add(np.char.add(ip.astype(str), "-"), np.arange(1, n + 1).astype(str)).astype(object)
    ts = np.stack([start_ms, ready_ms, ready_ms + 1], axis=1).ravel()
    state = np.tile(np.array(["INITIALIZING", "IDLE", "OFFLINE"], dtype=object), n)
    events = pa.table(
        {
            "ts": pa.array(ts, type=pa.int64()),
            "kind": pa.array(np.full(ts.size, "worker", dtype=object), type=pa.string()),
            "endpoint": pa.array(np.full(ts.size, endpoint, dtype=object), type=pa.string()),
            "job_id": pa.nulls(ts.size, type=pa.string()),
            "state": pa.array(state, type=pa.string()),
            "worker_id": pa.array(np.repeat(worker, 3), type=pa.string()),
        },
        schema=WORKER_SCHEMA,
    )
    summary.jobs += n
    out = pa.concat_tables(list(ordered([(events, np.iinfo(np.int64).min)], WORKER_SCHEMA, summary)))
    return out if out.num_rows else WORKER_SCHEMA.empty_table()


def convert_alibaba_serverless(
    path: str | Path, output: str | Path, *, fmt: str | None = None, **options: object
) -> Summary:
    """Convert the request trace into an event log file; ``options`` are those of
    :func:`request_events`."""
    check_output(path, output)
    summary = Summary(str(path))
    batches = request_events(path, summary=summary, **options)  # type: ignore[arg-type]
    write_events(batches, output, JOB_SCHEMA, fmt)
    return summary


def convert_alibaba_cold_starts(
    path: str | Path, output: str | Path, *, fmt: str | None = None, endpoint: str = "basemodel-load"
) -> Summary:
    """Convert the base-model load samples into a worker event log file."""
    check_output(path, output)
    summary = Summary(str(path))
    table = cold_start_events(path, endpoint=endpoint, summary=summary)
    write_events([table], output, WORKER_SCHEMA, fmt)
    return summary
