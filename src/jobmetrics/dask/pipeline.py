"""The Dask graph: read, normalise, judge lateness globally, shuffle, aggregate, merge, write.

See :func:`aggregate_logs` and ``docs/dask.md``; the per-partition steps are in
:mod:`jobmetrics.dask.partials`.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import dask
import dask.base
import dask.dataframe as dd
import distributed
import numpy as np
import pyarrow as pa
from dask.delayed import Delayed, delayed

from ..windows import RowBlock
from . import partials as P

__all__ = ["aggregate_logs", "input_partitions"]

_NO_TIME = np.iinfo(np.int64).min

#: File suffixes of each input format.
FORMATS: dict[str, tuple[str, ...]] = {
    "parquet": (".parquet", ".pq", ".parq"),
    "jsonl": (".jsonl", ".ndjson", ".json"),
    "csv": (".csv",),
    "ipc": (".arrow", ".feather", ".ipc"),
}
#: Bytes of text per partition when reading CSV or JSON Lines.
TEXT_BLOCKSIZE = 64 * 2**20
#: Text columns read as strings whatever they look like (an id "007" stays "007").
_STRING_COLUMNS = ("kind", "endpoint", "job_id", "state", "worker_id")
#: Events per partition after the shuffle when ``npartitions`` is not given (each partition's
#: aggregator holds its events in memory; every partition reports a row per (endpoint, window)).
EVENTS_PER_PARTITION = 1_000_000
_LOCAL = re.compile(r"^local(?::(\d+))?$")

# Dask's functions, typed for the strict type checker (Dask ships without annotations).
_compute: Callable[..., tuple[Any, ...]] = dask.base.compute
_persist: Callable[..., tuple[Any, ...]] = dask.base.persist
_default_client: Callable[[], Any] = distributed.default_client
_Client: Callable[..., Any] = distributed.Client
_LocalCluster: Callable[..., Any] = distributed.LocalCluster


# ---------------------------------------------------------------------------------- input
def _expand(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[str]:
    """Files named by ``paths`` in order: a directory's files (recursively, skipping names that
    start with ``.`` or ``_``) and a glob's matches sorted by name."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    if not items:
        raise ValueError("no input paths given")
    files: list[str] = []
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found = sorted(
                str(p)
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
            )
            if not found:
                raise FileNotFoundError(f"input directory {text!r} holds no files")
            files += found
        elif path.is_file():
            files.append(text)
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise FileNotFoundError(f"no input file matches {text!r}")
            files += [m for m in matches if Path(m).is_file()]
        else:
            raise FileNotFoundError(f"input not found: {text!r}")
    return files


def _format_of(files: Sequence[str]) -> str:
    kinds = set()
    for f in files:
        suffix = Path(f).suffix.lower()
        kind = next((k for k, sufs in FORMATS.items() if suffix in sufs), None)
        if kind is None:
            known = sorted(s for sufs in FORMATS.values() for s in sufs)
            raise ValueError(f"cannot tell the format of {f!r} from its suffix; expected one of {known}")
        kinds.add(kind)
    if len(kinds) > 1:
        raise ValueError(f"inputs mix formats {sorted(kinds)}; aggregate one format at a time")
    return kinds.pop()


def _read_row_group(path: str, index: int) -> pa.Table:
    """Row group ``index`` of a Parquet file, as Arrow (no pandas conversion)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(index)


def _read_ipc(path: str) -> pa.Table:
    """One Arrow IPC file (file or stream format)."""
    import pyarrow.ipc as ipc

    with pa.memory_map(path) as source:
        try:
            return ipc.open_file(source).read_all()
        except pa.ArrowInvalid:
            source.seek(0)
            return ipc.open_stream(source).read_all()


def input_partitions(paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Delayed]:
    """Tasks that read an event log (SPEC §1) in file order, one partition each.

    Parquet: a pyarrow table per row group; Arrow IPC: a table per file; CSV and JSON Lines:
    :func:`dask.dataframe.read_csv` / :func:`~dask.dataframe.read_json` in blocks of
    :data:`TEXT_BLOCKSIZE` bytes, the id, endpoint, kind and state columns read as strings.
    ``paths``: files, directories (their files in name order) and globs, in the order given; one
    format per call.
    """
    import pyarrow.parquet as pq

    files = _expand(paths)
    fmt = _format_of(files)
    if fmt == "parquet":
        return [
            delayed(_read_row_group, pure=True)(f, i)
            for f in files
            for i in range(pq.ParquetFile(f).metadata.num_row_groups)
        ]
    if fmt == "ipc":
        return [delayed(_read_ipc, pure=True)(f) for f in files]
    strings = {c: "string[pyarrow]" for c in _STRING_COLUMNS}
    if fmt == "csv":
        ddf = dd.read_csv(
            files,
            blocksize=TEXT_BLOCKSIZE,
            dtype_backend="pyarrow",
            dtype={**strings, "status_code": "int64[pyarrow]"},
        )
    else:
        ddf = dd.read_json(
            files, lines=True, blocksize=TEXT_BLOCKSIZE, dtype_backend="pyarrow", dtype=strings
        )
    return list(ddf.to_delayed())


# ---------------------------------------------------------------------------------- scheduler
@contextmanager
def _scheduler(address: str | None, client: Any) -> Iterator[Any]:
    """The client to run on (None: an active client if there is one, else dask's default
    scheduler); ``"local"``/``"local:N"`` starts a LocalCluster for the duration."""
    if client is not None:
        yield client
        return
    if address is None:
        try:
            active = _default_client()
        except ValueError:  # no client: dask's default scheduler
            active = None
        yield active
        return
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"address must be a scheduler address or 'local[:N]', got {address!r}")
    m = _LOCAL.match(address.strip())
    if m is None:
        with _Client(address.strip(), set_as_default=False) as c:
            yield c
        return
    n = int(m.group(1)) if m.group(1) else os.cpu_count() or 1
    if n < 1:
        raise ValueError(f"address 'local:N' needs N >= 1 workers, got {address!r}")
    with (
        _LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # no dashboard; the scheduler's other HTTP routes on a free port of 127.0.0.1, not 8787
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        ) as cluster,
        _Client(cluster, set_as_default=False) as c,
    ):
        yield c


def _threads(client: Any) -> int:
    if client is None:
        return os.cpu_count() or 1
    threads: dict[str, int] = client.nthreads()
    return max(1, sum(threads.values()))


# ---------------------------------------------------------------------------------- the graph
def aggregate_logs(
    paths_or_ddf: Any,
    output: str | os.PathLike[str] | None = None,
    *,
    address: str | None = None,
    npartitions: int | None = None,
    client: Any = None,
    **config: Any,
) -> pa.Table | None:
    """Aggregate an event log on a Dask cluster: the same snapshot as one process, exactly.

    The result equals ``Aggregator(**config)`` fed the whole log in file order, then
    ``flush()`` and ``snapshot()``: every column, histograms byte for byte, late events included
    (see ``docs/dask.md`` for how, and what it costs).

    Parameters
    ----------
    paths_or_ddf:
        Event log files, directories or globs (Parquet, JSON Lines, CSV or Arrow IPC; see
        :func:`read_events`), or a ``dask.dataframe.DataFrame`` with the SPEC §1 columns whose
        partition order is the arrival order.
    output:
        Parquet file to write the snapshot to (SPEC §4), written by a worker (atomically: a
        temporary file, then a rename); it must be a path the workers can write. None returns
        the table to the caller instead.
    address:
        Scheduler address (``"tcp://host:8786"``), or ``"local"`` / ``"local:N"`` for a
        LocalCluster on 127.0.0.1 with N worker processes (default: one per CPU), closed when
        done. None: the active ``distributed`` client if there is one, else Dask's default
        scheduler.
    npartitions:
        Partitions after the shuffle, each aggregated by one task (default: one per
        :data:`EVENTS_PER_PARTITION` events, rounded up to a multiple of the worker threads).
    client:
        A ``distributed.Client`` to use (instead of ``address``).
    **config:
        :class:`~jobmetrics.Aggregator` options (``window``, ``quantiles``, ``allowed_lateness``,
        ``significant_figures``, ``job_ttl``, ``retention``, ``history``, …).

    Returns
    -------
    pyarrow.Table or None
        The snapshot when ``output`` is None; None once it is written.

    Examples
    --------
    >>> from jobmetrics.dask import aggregate_logs  # doctest: +SKIP
    >>> aggregate_logs("logs/*.parquet", "metrics.parquet", address="local:2", window="60s")  # doctest: +SKIP
    """
    P.check_options(config)
    if npartitions is not None and (not isinstance(npartitions, int) or npartitions < 1):
        raise ValueError(f"npartitions must be a positive integer, got {npartitions!r}")
    if address is not None and client is not None:
        raise ValueError("pass either address or client, not both")
    with _scheduler(address, client) as c:
        if isinstance(paths_or_ddf, dd.DataFrame):
            frame: Any = paths_or_ddf
            inputs = list(frame.to_delayed())
        else:
            inputs = input_partitions(paths_or_ddf)
        context = c.as_current() if c is not None else nullcontext()
        with context:
            return run(inputs, output, npartitions=npartitions, threads=_threads(c), options=config)


def run(
    inputs: Sequence[Delayed],
    output: str | os.PathLike[str] | None,
    *,
    npartitions: int | None,
    options: Mapping[str, Any],
    threads: int = 1,
    shuffle: bool = True,
    split_every: int = 8,
) -> pa.Table | None:
    """Build and compute the graph on the current scheduler (see :func:`aggregate_logs`).

    ``shuffle`` False aggregates the input partitions as they are, without routing each job's and
    endpoint's events together: wrong unless the input happens to be partitioned that way (the
    tests use it to show that the shuffle is needed).
    """
    P.check_options(options)
    lateness = P.lateness_of(options)
    # 1. normalise each input partition where it is read; keep it in the workers' memory
    prepared = [delayed(P.prepare, pure=True)(part, i) for i, part in enumerate(inputs)]
    prepared = list(_persist(*prepared))
    summaries: list[P.Summary] = list(_compute(*[delayed(P.summarise)(p) for p in prepared]))
    names = sorted({name for s in summaries for name in s.names})
    maxima = [s.max_ts for s in summaries]
    watermark = max(maxima, default=_NO_TIME)
    if watermark == _NO_TIME:  # no usable event at all
        return P.write_or_return(P.empty_snapshot(options), output)
    # 2. lateness in arrival order: each partition starts from the largest time before it
    before = np.maximum.accumulate([_NO_TIME, *maxima[:-1]]).tolist()
    marked = [
        delayed(P.mark, pure=True)(p, b, lateness, names, shuffle=shuffle)
        for p, b in zip(prepared, before, strict=True)
    ]
    late = [delayed(_late_of, pure=True)(m, options, watermark) for m in marked]
    frames: list[Delayed] = [delayed(_frame_of, pure=True)(m) for m in marked]
    # 3. shuffle: a job's events, and every worker event of an endpoint, into one partition
    if shuffle:
        events = dd.from_delayed(frames, meta=P.empty_frame(), verify_meta=False)
        if npartitions is None:
            events_total = sum(s.events for s in summaries)
            # a multiple of the worker threads, so that no thread is left with one partition more
            per_thread = max(1, -(-events_total // (EVENTS_PER_PARTITION * threads)))
            npartitions = threads * per_thread
        method = dask.config.get("dataframe.shuffle.method", None) or "tasks"
        frames = list(events.shuffle(on="route", npartitions=npartitions, shuffle_method=method).to_delayed())
    # 4. one Aggregator per partition; 5. exact tree merge; 6. written where the root runs
    partial = [delayed(P.aggregate_partition)(f, names, options, watermark) for f in frames]
    root = _tree(partial + late, split_every)
    out = None if output is None else str(output)
    result: pa.Table | None = _compute(delayed(P.finish)(root, names, options, watermark, out))[0]
    return result


def _frame_of(marked: P.Marked) -> Any:
    return marked.frame


def _late_of(marked: P.Marked, options: Mapping[str, Any], watermark: int) -> RowBlock:
    return P.late_partial(marked.late_endpoint, marked.late_mark, options, watermark)


def _tree(items: list[Delayed], split_every: int) -> Delayed:
    """Merge ``items`` (partial rows) in a tree of fan-in ``split_every``."""
    if split_every < 2:
        raise ValueError(f"split_every must be >= 2, got {split_every!r}")
    level = items
    while True:
        level = [delayed(P.merge)(level[i : i + split_every]) for i in range(0, len(level), split_every)]
        if len(level) == 1:
            return level[0]
