"""What every trace adapter shares: the event columns, time ordering with bounded memory, writing
an event log in the format its file name asks for, and the summary of a conversion."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ..io.files import atomic_file, check_writable

__all__ = [
    "FORMATS",
    "JOB_SCHEMA",
    "WORKER_SCHEMA",
    "Summary",
    "TimeOrder",
    "check_output",
    "drop",
    "job_events",
    "ordered",
    "output_format",
    "write_events",
]

#: Job events (SPEC §1): ``ts`` int64 epoch milliseconds.
JOB_SCHEMA = pa.schema(
    [
        pa.field("ts", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("endpoint", pa.string(), nullable=False),
        pa.field("job_id", pa.string()),
        pa.field("state", pa.string(), nullable=False),
    ]
)
#: Worker events: the job columns plus ``worker_id``.
WORKER_SCHEMA = JOB_SCHEMA.append(pa.field("worker_id", pa.string()))

#: Output formats, by file name suffix.
FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",
    ".ipc": "arrow",
    ".feather": "arrow",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}


@dataclass
class Summary:
    """What a conversion read, wrote and left out."""

    source: str
    records: int = 0  # data rows / job lines read
    jobs: int = 0  # jobs (or workers) that produced events
    events: int = 0  # events written
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> records left out
    first_bad: list[str] = field(default_factory=list)  # first few malformed lines, "line N: why"
    disordered: int = 0  # events written before an earlier one (unsorted input)
    first_ts: int | None = None  # epoch ms
    last_ts: int | None = None
    notes: list[str] = field(default_factory=list)
    states: Counter[str] = field(default_factory=Counter)  # events by state

    def bad_line(self, where: str, why: str) -> None:
        """Count one malformed record; keep the first five for the report."""
        self.skipped["malformed"] += 1
        if len(self.first_bad) < 5:
            self.first_bad.append(f"{where}: {why}")


def drop(keep: npt.NDArray[np.bool_], mask: npt.NDArray[np.bool_], reason: str, summary: Summary) -> None:
    """Leave out the records of ``mask`` still kept, counting them under ``reason``."""
    hit = mask & keep
    if hit.any():
        summary.skipped[reason] += int(hit.sum())
        keep[hit] = False


def job_events(
    ts: list[npt.NDArray[np.int64]],
    states: list[npt.NDArray[Any]],
    keep: list[npt.NDArray[np.bool_]],
    job_id: npt.NDArray[Any],
    endpoint: npt.NDArray[Any],
) -> pa.Table:
    """Job events from per-step columns: step ``k`` of job ``i`` is ``states[k][i]`` at ``ts[k][i]``,
    present when ``keep[k][i]``. Rows come job by job, each job's steps in lifecycle order."""
    n_steps = len(ts)
    t = np.stack(ts, axis=1)
    s = np.stack(states, axis=1)
    k = np.stack(keep, axis=1)
    n = t.shape[0]
    jobs = np.broadcast_to(np.asarray(job_id, dtype=object)[:, None], (n, n_steps))
    eps = np.broadcast_to(np.asarray(endpoint, dtype=object)[:, None], (n, n_steps))
    count = int(k.sum())
    return pa.table(
        {
            "ts": pa.array(t[k], type=pa.int64()),
            "kind": pa.array(np.full(count, "job", dtype=object), type=pa.string()),
            "endpoint": pa.array(eps[k], type=pa.string()),
            "job_id": pa.array(jobs[k], type=pa.string()),
            "state": pa.array(s[k], type=pa.string()),
        },
        schema=JOB_SCHEMA,
    )


class TimeOrder:
    """Puts events in time order while they stream in, holding only the ones still in the future.

    Traces list jobs by submission time and each job's events happen at or after its submission,
    so once the input has reached submission time ``bound`` no later job can add an event before
    it: everything up to ``bound`` is released, sorted, and only the events of jobs still in flight
    stay held. Memory is bounded by the jobs in flight, not by the length of the trace. Input that
    is not sorted by submission time still converts; events that end up before an earlier one are
    counted in :attr:`disordered`.
    """

    def __init__(self, schema: pa.Schema) -> None:
        self._schema = schema
        self._held = schema.empty_table()
        self._bound = np.iinfo(np.int64).min
        self._last = np.iinfo(np.int64).min
        self.disordered = 0

    def push(self, events: pa.Table, bound: int) -> pa.Table:
        """Add ``events`` (each job's events in lifecycle order); return those up to ``bound``
        (the submission time no later job precedes), in time order."""
        self._bound = max(self._bound, int(bound))
        table = pa.concat_tables([self._held, events.select(self._schema.names).cast(self._schema)])
        table = table.take(pc.sort_indices(table, [("ts", "ascending")]))  # stable
        ts = table.column("ts").to_numpy()
        cut = int(np.searchsorted(ts, self._bound, side="right"))
        self._held = table.slice(cut).combine_chunks()
        return self._release(table.slice(0, cut))

    def finish(self) -> pa.Table:
        """Everything still held, in time order."""
        out, self._held = self._held, self._schema.empty_table()
        return self._release(out)

    def _release(self, table: pa.Table) -> pa.Table:
        if table.num_rows:
            ts = table.column("ts").to_numpy()
            self.disordered += int(np.count_nonzero(ts < np.maximum.accumulate(np.r_[self._last, ts[:-1]])))
            self._last = max(self._last, int(ts[-1]))
        return table

    @property
    def held(self) -> int:
        """Events waiting for the input to pass their time."""
        return int(self._held.num_rows)


def ordered(
    chunks: Iterable[tuple[pa.Table, int]], schema: pa.Schema, summary: Summary
) -> Iterator[pa.Table]:
    """Time-ordered batches of ``chunks`` (events, submission-time bound), counting into ``summary``."""
    order = TimeOrder(schema)
    for events, bound in chunks:
        out = order.push(events, bound)
        if out.num_rows:
            yield _count(out, summary)
    out = order.finish()
    if out.num_rows:
        yield _count(out, summary)
    summary.disordered = order.disordered


def _count(table: pa.Table, summary: Summary) -> pa.Table:
    summary.events += table.num_rows
    ts = table.column("ts")
    lo, hi = int(pc.min(ts).as_py()), int(pc.max(ts).as_py())
    summary.first_ts = lo if summary.first_ts is None else min(summary.first_ts, lo)
    summary.last_ts = hi if summary.last_ts is None else max(summary.last_ts, hi)
    counts = pc.value_counts(table.column("state"))
    for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
        summary.states[str(value)] += int(n)
    return table


def check_output(source: str | Path, output: str | Path) -> None:
    """Refuse to write the event log over its own input."""
    if Path(output).resolve() == Path(source).resolve():
        raise ValueError(f"the output {output} is the input file: choose another name")


def output_format(path: Path, fmt: str | None = None) -> str:
    """The output format: ``fmt`` if given, else from the file name's suffix."""
    if fmt is not None:
        if fmt not in set(FORMATS.values()):
            raise ValueError(f"format must be one of {sorted(set(FORMATS.values()))}, got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(
            f"cannot tell the output format of {path.name!r} from its suffix; use one of "
            f"{', '.join(sorted(FORMATS))} or give the format"
        )
    return FORMATS[suffix]


def write_events(
    batches: Iterable[pa.Table], path: str | Path, schema: pa.Schema, fmt: str | None = None
) -> None:
    """Write ``batches`` (tables of ``schema``) as one event log at ``path``, streaming.

    The file appears only when complete: it is written to a temporary file beside ``path``, then
    renamed (an interrupted run leaves no half-written log).
    """
    out = check_writable(path)
    kind = output_format(out, fmt)
    with atomic_file(out) as f:
        _write(batches, f, schema, kind)


def _write(batches: Iterable[pa.Table], sink: BinaryIO, schema: pa.Schema, kind: str) -> None:
    if kind == "parquet":
        import pyarrow.parquet as pq

        with pq.ParquetWriter(sink, schema) as pw:
            for b in batches:
                pw.write_table(b)
            # an empty log still gets a valid file with the schema
    elif kind == "arrow":
        import pyarrow.ipc as ipc

        with ipc.new_file(sink, schema) as w:
            for b in batches:
                w.write_table(b)
    elif kind == "csv":
        import pyarrow.csv as pcsv

        with pcsv.CSVWriter(sink, schema) as w:
            for b in batches:
                w.write_table(b)
    else:  # jsonl
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="\n")
        for b in batches:
            for row in b.to_pylist():
                text.write(json.dumps({k: v for k, v in row.items() if v is not None}, separators=(",", ":")))
                text.write("\n")
        text.flush()
        text.detach()  # the sink stays open: atomic_file closes it
