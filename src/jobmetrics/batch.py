"""Batch aggregation of event logs: files in, one snapshot (SPEC §4) out.

:func:`aggregate_logs` reads Parquet, Arrow IPC, JSON Lines and CSV logs (files, directories,
globs) a record batch at a time, feeds an :class:`~jobmetrics.Aggregator`, flushes it at the end
and returns its snapshot, writing it to Parquet atomically when an output path is given.
:func:`run` does the same and also returns a :class:`Summary` of the run (events read, rows rejected
with their file and line, late events, invalid transitions, …), as ``jobmetrics aggregate`` prints.

Two ways to handle order (see docs/batch.md):

* streaming (default): events may arrive up to ``allowed_lateness`` out of order; memory is
  bounded by the jobs in flight and the held window of events;
* ``exact_order=True``: every event is held until the end and applied in time order, exact for
  any input order, at the cost of about 35 bytes per event held (plus a transient copy while
  sorting).
"""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .aggregator import Aggregator
from .io.parquet import check_writable, write_parquet
from .io.readers import DEFAULT_BATCH_SIZE, Chunk, Malformed, Source, discover, read_batches

__all__ = [
    "BatchResult",
    "MalformedInputError",
    "Progress",
    "RejectedEvent",
    "Summary",
    "aggregate_logs",
    "job_capacity_for",
    "progress_bar",
    "run",
    "summarize_snapshot",
]

#: Located rejected rows kept in a :class:`Summary`.
MAX_SAMPLES: Final = 20
#: Upper bound of :func:`job_capacity_for` (a job-table of this many jobs takes about 256 MiB).
MAX_JOB_CAPACITY: Final = 4_000_000
#: Rough bytes per event of a log in each format, to estimate its events from its size.
_BYTES_PER_EVENT: Final = {"parquet": 8, "ipc": 40, "jsonl": 100, "csv": 50}
_QUALITY: Final = ("late_events", "invalid_transitions", "duplicates", "orphans", "expired")


class MalformedInputError(ValueError):
    """Raised in strict mode at the first malformed or rejected row; ``rejection`` says where."""

    def __init__(self, rejection: RejectedEvent) -> None:
        super().__init__(f"{rejection} (strict mode stops at the first malformed row)")
        self.rejection = rejection


@dataclass(frozen=True, slots=True)
class RejectedEvent:
    """One rejected line or row: file, ``line`` or ``row`` number (1-based; CSV lines count the
    header as line 1), reason, the column at fault (if one) and the offending value or text."""

    file: str
    unit: str
    number: int | None
    reason: str
    column: str | None
    value: str

    def __str__(self) -> str:
        where = self.file if self.number is None else f"{self.file}:{self.number}"
        if self.unit == "row" and self.number is not None:
            where = f"{self.file} row {self.number}"
        what = f"{self.column}={self.value}" if self.column else self.value
        return f"{where}: {self.reason} ({what})"


@dataclass(slots=True)
class Summary:
    """What a batch run read and what it made of it.

    ``events_read`` counts the rows decoded from the files; lines the format rejects (bad JSON,
    wrong CSV field count) are ``malformed``; rows dropped by the endpoint filter are
    ``filtered_out``; rows whose values are unusable (null ``ts``, unknown state, …) are
    ``invalid_rows``. ``rejected`` is ``malformed + invalid_rows``, broken down in
    ``rejected_by_reason``, the first :data:`MAX_SAMPLES` located in ``samples``. The data-quality
    counts (late events, invalid transitions, duplicates, orphans, expired) are totals of the
    snapshot; ``invalid_pairs`` breaks invalid transitions down by (from, to) state.
    """

    files: list[str] = field(default_factory=list)
    events_read: int = 0
    malformed: int = 0
    invalid_rows: int = 0
    filtered_out: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    samples: list[RejectedEvent] = field(default_factory=list)
    late_events: int = 0
    invalid_transitions: int = 0
    duplicates: int = 0
    orphans: int = 0
    expired: int = 0
    invalid_pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    windows: int = 0
    endpoints: list[str] = field(default_factory=list)
    seconds: float = 0.0
    output: str | None = None

    @property
    def rejected(self) -> int:
        """Rows rejected: malformed lines plus rows with unusable values."""
        return self.malformed + self.invalid_rows

    @property
    def events_applied(self) -> int:
        """Events that reached the lifecycle engine (late events among them are counted, not applied)."""
        return self.events_read - self.filtered_out - self.invalid_rows

    @property
    def events_per_s(self) -> float:
        """Events read per second of the run."""
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def _reject(self, sample: RejectedEvent, count: int = 1) -> None:
        self.rejected_by_reason[sample.reason] = self.rejected_by_reason.get(sample.reason, 0) + count
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(sample)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a run is, passed to a progress callback after every batch: the ``phase``
    (``reading``, ``sorting``, ``writing``, ``done``), the current file, bytes of input consumed out
    of the total, events read and rows rejected so far, and seconds elapsed."""

    phase: str
    file: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    events: int
    rejected: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        """Events read per second so far."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The snapshot table and the :class:`Summary` of a :func:`run`."""

    table: pa.Table
    summary: Summary


ProgressCallback = Callable[[Progress], None]


def aggregate_logs(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    window: str | int = "60s",
    quantiles: Sequence[float] = (0.7, 0.9, 0.98),
    significant_figures: int = 2,
    allowed_lateness: str | int | None = "5s",
    exact_order: bool = False,
    endpoints: Iterable[str] | None = None,
    progress: bool | ProgressCallback = False,
    strict: bool = False,
    format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_threads: bool = True,
    **options: Any,
) -> pa.Table:
    """Aggregate event logs into the per-endpoint, per-window snapshot (SPEC §4).

    Parameters
    ----------
    paths:
        Files, directories (searched recursively) and glob patterns of Parquet (``.parquet``,
        ``.pq``), Arrow IPC (``.arrow``, ``.feather``, ``.ipc``), JSON Lines (``.jsonl``,
        ``.ndjson``, ``.json``) or CSV (``.csv``) logs; JSON Lines and CSV may be gzipped (``.gz``).
        Files are read in the order given (a directory's or pattern's files sorted by name).
    output:
        When given, the snapshot is written there as Parquet, atomically.
    window, quantiles, significant_figures:
        As for :class:`~jobmetrics.Aggregator`.
    allowed_lateness:
        How far out of order events may be (default ``"5s"``); older events are counted as late.
        ``None`` is the same as ``exact_order=True``.
    exact_order:
        Hold every event and apply them in time order at the end: exact for any input order; memory
        grows with the log (about 35 bytes per event, plus a transient copy).
    endpoints:
        Keep only these endpoints: names or shell-style patterns (``"sd-*"``).
    progress:
        ``True`` for a progress bar on stderr, or a callable given a :class:`Progress` after
        every batch.
    strict:
        Stop with :class:`MalformedInputError` at the first malformed or rejected row (by default
        such rows are counted, reported in the summary, and skipped).
    format:
        Force the format of every input (``parquet``, ``ipc``, ``jsonl``, ``csv``).
    batch_size:
        Rows per record batch read (bounds memory in streaming mode).
    use_threads:
        Let Arrow decode Parquet, IPC and JSON with its thread pool.
    **options:
        Further :class:`~jobmetrics.Aggregator` options (``job_ttl``, ``retention``, ``orphans``,
        ``highest``, ``job_capacity``, …).

    Returns
    -------
    pyarrow.Table
        The snapshot: one row per (endpoint, window).

    Raises
    ------
    FileNotFoundError
        An input path that does not exist or a pattern matching nothing.
    jobmetrics.io.LogReadError
        An input file that cannot be read as its format.
    MalformedInputError
        In strict mode, at the first malformed row.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> log = pa.table({
    ...     "ts": [0, 400, 2_900], "endpoint": ["sd"] * 3, "job_id": ["a"] * 3,
    ...     "state": ["IN_QUEUE", "IN_PROGRESS", "COMPLETED"],
    ... })
    >>> pq.write_table(log, os.path.join(folder, "events.parquet"))
    >>> snap = aggregate_logs(folder, os.path.join(folder, "out", "snapshot.parquet"))
    >>> snap.column("completed").to_pylist(), snap.column("delay_time_count").to_pylist()
    ([1], [1])
    """
    return run(
        paths,
        output,
        window=window,
        quantiles=quantiles,
        significant_figures=significant_figures,
        allowed_lateness=allowed_lateness,
        exact_order=exact_order,
        endpoints=endpoints,
        progress=progress,
        strict=strict,
        format=format,
        batch_size=batch_size,
        use_threads=use_threads,
        **options,
    ).table


def run(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str] | None = None,
    *,
    window: str | int = "60s",
    quantiles: Sequence[float] = (0.7, 0.9, 0.98),
    significant_figures: int = 2,
    allowed_lateness: str | int | None = "5s",
    exact_order: bool = False,
    endpoints: Iterable[str] | None = None,
    progress: bool | ProgressCallback = False,
    strict: bool = False,
    format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_threads: bool = True,
    **options: Any,
) -> BatchResult:
    """:func:`aggregate_logs`, returning the snapshot and the :class:`Summary` of the run.

    Same parameters as :func:`aggregate_logs`.
    """
    started = time.perf_counter()
    sources = discover(paths, format=format)  # missing inputs fail here, before any work
    target = None if output is None else check_writable(output)
    exact = exact_order or allowed_lateness is None
    if "job_capacity" not in options:
        options["job_capacity"] = job_capacity_for(sources)
    agg = Aggregator(
        window=window,
        quantiles=quantiles,
        significant_figures=significant_figures,
        allowed_lateness=None if exact else allowed_lateness,
        **options,
    )
    patterns = None if endpoints is None else _patterns(endpoints)
    summary = Summary(files=[str(s.path) for s in sources])
    with _progress_reporter(progress) as report:
        run_ = _Run(agg, sources, summary, patterns, strict, report, started)
        run_.read(batch_size, use_threads)
        run_.tick("sorting" if exact else "reading")
        agg.flush()
        table = agg.snapshot()
        summarize_snapshot(table, summary)
        summary.invalid_pairs = agg.invalid_transition_counts()
        for reason, count in agg.rejections.by_reason.items():
            summary.rejected_by_reason[reason] = summary.rejected_by_reason.get(reason, 0) + count
        if target is not None:
            run_.tick("writing")
            write_parquet(table, target)
            summary.output = str(target)
        summary.seconds = time.perf_counter() - started
        run_.tick("done")
    return BatchResult(table, summary)


def job_capacity_for(sources: Sequence[Source]) -> int:
    """Job-table size for reading ``sources``: about a third of their events (a job has at least
    an ``IN_QUEUE``, an ``IN_PROGRESS`` and a final event), between 1 024 and :data:`MAX_JOB_CAPACITY`.

    Sizing the table up front saves the rehashes of growing it one doubling at a time while the
    log is read; it still grows if more jobs are held at once. Parquet files give their row count;
    other formats are estimated from their size.
    """
    events = 0
    for source in sources:
        if source.format == "parquet":
            try:
                events += pq.ParquetFile(source.path).metadata.num_rows
                continue
            except (pa.ArrowException, OSError):
                pass  # read_batches reports the file properly
        events += source.size // _BYTES_PER_EVENT[source.format]
    return int(min(max(events // 3, 1024), MAX_JOB_CAPACITY))


def summarize_snapshot(table: pa.Table, summary: Summary | None = None) -> Summary:
    """Fill ``summary`` (a new one if None) with what a snapshot tells: rows, endpoints and the
    data-quality totals (late events, invalid transitions, duplicates, orphans, expired)."""
    out = Summary() if summary is None else summary
    out.windows = table.num_rows
    if "endpoint" in table.column_names:
        out.endpoints = sorted(
            str(e) for e in pc.unique(table.column("endpoint")).to_pylist() if e is not None
        )
    for name in _QUALITY:
        if name in table.column_names:
            setattr(out, name, int(pc.sum(table.column(name)).as_py() or 0))
    return out


# --------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------


def _patterns(endpoints: Iterable[str]) -> list[str]:
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    patterns = [str(e) for e in endpoints]
    if not patterns:
        raise ValueError("endpoints must name at least one endpoint or pattern (None keeps every endpoint)")
    return patterns


class _Run:
    """State of one batch run: the aggregator, the summary and where reading is."""

    def __init__(
        self,
        agg: Aggregator,
        sources: list[Source],
        summary: Summary,
        patterns: list[str] | None,
        strict: bool,
        report: ProgressCallback | None,
        started: float,
    ) -> None:
        self.agg = agg
        self.sources = sources
        self.summary = summary
        self.patterns = patterns
        self.strict = strict
        self.report = report
        self.started = started
        self.bytes_total = sum(s.size for s in sources)
        self.bytes_before = 0  # bytes of the files already read
        self.files_done = 0
        self.current: Source | None = None
        self.position = 0
        self.batch_number = 0
        self._chosen: dict[str, bool] = {}

    # -- progress --------------------------------------------------------------------------------
    def tick(self, phase: str) -> None:
        if self.report is None:
            return
        s = self.summary
        self.report(
            Progress(
                phase=phase,
                file=str(self.current.path) if self.current else "",
                files_done=self.files_done,
                files_total=len(self.sources),
                bytes_done=min(self.bytes_before + self.position, self.bytes_total),
                bytes_total=self.bytes_total,
                events=s.events_read,
                rejected=s.rejected,
                seconds=time.perf_counter() - self.started,
            )
        )

    # -- reading ---------------------------------------------------------------------------------
    def read(self, batch_size: int, use_threads: bool) -> None:
        for source in self.sources:
            self.current, self.position = source, 0
            for chunk in read_batches(
                source, batch_size=batch_size, use_threads=use_threads, on_malformed=self._malformed
            ):
                self.summary.events_read += chunk.data.num_rows
                self.position = chunk.position
                data, rows = self._select(chunk)
                if data.num_rows:
                    self._ingest(chunk, data, rows)
                self.tick("reading")
            self.bytes_before += source.size
            self.files_done += 1
            self.position = 0

    def _malformed(self, bad: Malformed) -> None:
        self.summary.malformed += 1
        sample = RejectedEvent(
            str(bad.source.path), bad.source.unit, bad.number, bad.reason, None, f"{bad.detail}: {bad.text}"
        )
        self.summary._reject(sample)
        if self.strict:
            raise MalformedInputError(sample)

    def _select(self, chunk: Chunk) -> tuple[pa.RecordBatch | pa.Table, np.ndarray | None]:
        """The rows of the selected endpoints, and their positions in the chunk (None: all)."""
        data = chunk.data
        if self.patterns is None or "endpoint" not in data.schema.names:
            return data, None
        col = data.column("endpoint")
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        values = [v for v in pc.unique(col).to_pylist() if v is not None]
        for v in values:
            if v not in self._chosen:
                self._chosen[v] = any(fnmatch.fnmatchcase(str(v), p) for p in self.patterns)
        chosen = [v for v in values if self._chosen[v]]
        if len(chosen) == len(values) and col.null_count == 0:
            return data, None
        mask = pc.is_in(col, value_set=pa.array(chosen, type=col.type))
        rows = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
        self.summary.filtered_out += data.num_rows - rows.size
        return data.take(pa.array(rows)), rows

    def _located(self, chunk: Chunk, rows: np.ndarray | None, row: int) -> int:
        return chunk.number(int(rows[row]) if rows is not None else row)

    def _record_rejections(
        self, chunk: Chunk, rows: np.ndarray | None, total_before: int, samples_before: int
    ) -> None:
        """Move the rows the aggregator rejected in this batch into the summary, located."""
        rej = self.agg.rejections
        new = rej.total - total_before
        if new == 0:
            return
        self.summary.invalid_rows += new
        located = [
            RejectedEvent(
                str(chunk.source.path),
                chunk.source.unit,
                self._located(chunk, rows, s.row),
                s.reason,
                s.column,
                s.value,
            )
            for s in rej.samples[samples_before:]
        ]
        if self.strict and located:
            self.summary.samples.append(located[0])
            raise MalformedInputError(located[0])
        room = MAX_SAMPLES - len(self.summary.samples)
        self.summary.samples.extend(located[: max(room, 0)])

    def _batch_error(self, chunk: Chunk, rows: np.ndarray | None, n: int, exc: Exception) -> None:
        """A batch refused as a whole (a required column missing, a column of the wrong type)."""
        self.summary.invalid_rows += n
        sample = RejectedEvent(
            str(chunk.source.path),
            chunk.source.unit,
            self._located(chunk, rows, 0),
            "unusable batch",
            None,
            str(exc),
        )
        self.summary._reject(sample, n)
        if self.strict:
            raise MalformedInputError(sample) from exc

    def _ingest(self, chunk: Chunk, data: pa.RecordBatch | pa.Table, rows: np.ndarray | None) -> None:
        rej = self.agg.rejections
        total_before, samples_before = rej.total, len(rej.samples)
        try:
            self.agg.ingest(data)
        except (ValueError, TypeError) as exc:
            self._batch_error(chunk, rows, data.num_rows, exc)
            return
        self._record_rejections(chunk, rows, total_before, samples_before)


# --------------------------------------------------------------------------------------------------
# Progress bar
# --------------------------------------------------------------------------------------------------


@contextmanager
def _progress_reporter(progress: bool | ProgressCallback) -> Iterator[ProgressCallback | None]:
    if progress is False or progress is None:
        yield None
    elif progress is True:
        with progress_bar() as callback:
            yield callback
    else:
        yield progress


@contextmanager
def progress_bar(console: Any = None) -> Iterator[ProgressCallback]:
    """A rich progress bar on stderr (or ``console``) driven by :class:`Progress` updates: input
    bytes consumed, events read, events/s, rows rejected."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    console = console or Console(stderr=True)
    bar = RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[events]:>12,} events"),
        TextColumn("{task.fields[rate]:>10,.0f} events/s"),
        TextColumn("{task.fields[rejected]:,} rejected"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    task = bar.add_task("reading", total=1, events=0, rate=0.0, rejected=0)

    def update(p: Progress) -> None:
        name = Path(p.file).name if p.file else ""
        label = {"reading": f"reading {name}", "sorting": "sorting", "writing": "writing"}.get(
            p.phase, p.phase
        )
        bar.update(
            task,
            description=label,
            total=max(p.bytes_total, 1),
            completed=p.bytes_done,
            events=p.events,
            rate=p.events_per_s,
            rejected=p.rejected,
        )
        if p.phase == "done":
            bar.update(task, completed=max(p.bytes_total, 1))

    with bar:
        yield update
