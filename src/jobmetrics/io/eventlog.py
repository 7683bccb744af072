"""Writing event tables (SPEC §1) as Parquet, Arrow IPC, JSON Lines or CSV.

:func:`write_events` picks the format from the file name (``.parquet``/``.pq``, ``.arrow``/
``.feather``/``.ipc``, ``.jsonl``/``.ndjson``/``.json``, ``.csv``; ``.gz`` may follow the text
formats) or from ``format``, and writes atomically: a temporary file beside the target, renamed
over it at the end, so an interrupted write never leaves a partial log.

Timestamps are written as ``timestamp[ms, UTC]`` in Parquet and Arrow, and as ISO-8601 text in UTC
with milliseconds (``2025-01-06T00:00:00.069Z``) or as integer epoch milliseconds
(``ts_format="ms"``) in JSON Lines and CSV — all forms :func:`jobmetrics.events.normalize` and the
log readers accept. JSON Lines are built with Arrow string kernels a batch at a time, not a Python
loop per row.

Examples
--------
>>> import os, tempfile
>>> import pyarrow as pa
>>> events = pa.table({"ts": [1_736_121_600_000], "endpoint": ["gpu"], "job_id": ["j1"],
...                    "state": ["IN_QUEUE"]})
>>> path = os.path.join(tempfile.mkdtemp(), "log.jsonl")
>>> write_events(events, path).name
'log.jsonl'
>>> from pathlib import Path
>>> Path(path).read_text()
'{"ts":"2025-01-06T00:00:00.000Z","endpoint":"gpu","job_id":"j1","state":"IN_QUEUE"}\\n'
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from .files import atomic_file, check_writable

__all__ = ["WRITE_FORMATS", "event_format", "write_events"]

#: Formats :func:`write_events` writes, by name, with the names accepted as aliases.
WRITE_FORMATS: dict[str, str] = {
    "parquet": "parquet",
    "pq": "parquet",
    "ipc": "ipc",
    "arrow": "ipc",
    "feather": "ipc",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "json": "jsonl",
    "csv": "csv",
}
_TEXT_FORMATS = ("jsonl", "csv")
_TS_TYPE = pa.timestamp("ms", tz="UTC")
_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
DEFAULT_BATCH_ROWS = 262_144


def event_format(path: str | os.PathLike[str], format: str | None = None) -> tuple[str, bool]:
    """``(format, gzip)`` of an output path: from ``format`` if given, else from the extension.

    Raises :class:`ValueError` naming the path or the format when neither tells a known format.
    """
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    if format is not None:
        fmt = WRITE_FORMATS.get(format.lower().lstrip("."))
        if fmt is None:
            raise ValueError(f"unknown event log format {format!r}; expected one of {sorted(WRITE_FORMATS)}")
    else:
        fmt = WRITE_FORMATS.get(suffixes[-1].lstrip(".")) if suffixes else None
        if fmt is None:
            known = ", ".join(f".{k}" for k in WRITE_FORMATS)
            raise ValueError(
                f"cannot tell the format of {str(path)!r} from its extension; use one of {known} "
                "(.gz may follow .jsonl or .csv) or give the format"
            )
    if gz and fmt not in _TEXT_FORMATS:
        raise ValueError(f"{str(path)!r}: only JSON Lines and CSV can be gzip-compressed, not {fmt}")
    return fmt, gz


def write_events(
    table: pa.Table | pa.RecordBatch,
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    ts_format: Literal["iso", "ms"] = "iso",
    compression: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write an event table to ``path``, atomically; return the path written.

    Parameters
    ----------
    table:
        Events (any columns; the SPEC §1 ones are ``ts``, ``kind``, ``endpoint``, ``job_id``,
        ``state``, ``worker_id``, ``status_code``). ``ts`` may be an Arrow timestamp or int64
        epoch milliseconds; it is written as ``timestamp[ms, UTC]`` (sub-millisecond parts are
        truncated).
    path:
        Output file; its folder is created if needed. The extension gives the format unless
        ``format`` is set; ``.gz`` after ``.jsonl``/``.csv`` compresses with gzip.
    format:
        ``parquet``, ``ipc`` (``arrow``, ``feather``), ``jsonl`` or ``csv``.
    ts_format:
        JSON Lines and CSV only: ``"iso"`` (ISO-8601 UTC text with milliseconds) or ``"ms"``
        (integer epoch milliseconds).
    compression:
        Parquet codec (default ``zstd``) or Arrow IPC buffer compression (default none:
        ``lz4``/``zstd``); ignored for text formats (use ``.gz``).
    batch_rows:
        Rows converted and written at a time (bounds the extra memory of text formats).
    progress:
        Called with the number of rows written after each batch.
    """
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise TypeError(f"events must be a pyarrow Table or RecordBatch, got {type(table).__name__}")
    if ts_format not in ("iso", "ms"):
        raise ValueError(f"ts_format must be 'iso' or 'ms', got {ts_format!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows!r}")
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(
            f"output {target} is a directory; give a file name such as {target}/events.parquet"
        )
    fmt, gz = event_format(path, format)
    check_writable(target)
    table = _with_ms_ts(table)
    with atomic_file(target) as f:
        if fmt == "parquet":
            _write_parquet(table, f, compression or "zstd", batch_rows, progress)
        elif fmt == "ipc":
            _write_ipc(table, f, compression, batch_rows, progress)
        else:
            # GzipFile leaves ``f`` open when it closes
            with (
                gzip.GzipFile(fileobj=f, mode="wb", compresslevel=6)
                if gz
                else contextlib.nullcontext(f) as out
            ):
                if fmt == "jsonl":
                    _write_jsonl(table, cast(BinaryIO, out), ts_format, batch_rows, progress)
                else:
                    _write_csv(table, cast(BinaryIO, out), ts_format, batch_rows, progress)
    return target


# ------------------------------------------------------------------------------------- helpers


def _with_ms_ts(table: pa.Table) -> pa.Table:
    """``table`` with ``ts`` as timestamp[ms, UTC] (from any timestamp, or integer epoch ms)."""
    if "ts" not in table.column_names:
        return table
    i = table.column_names.index("ts")
    col = table.column(i)
    t = col.type
    if t == _TS_TYPE:
        return table
    if pa.types.is_timestamp(t):
        col = pc.cast(col.cast(pa.timestamp(t.unit, tz="UTC")), _TS_TYPE, safe=False)
    elif pa.types.is_integer(t):
        col = pc.cast(col, pa.int64()).cast(_TS_TYPE)
    else:
        raise TypeError(
            f"column 'ts' must be a timestamp or integer epoch milliseconds to be written, got {t}"
        )
    return table.set_column(i, pa.field("ts", _TS_TYPE, nullable=table.field(i).nullable), col)


def _batches(table: pa.Table, batch_rows: int) -> Iterator[pa.RecordBatch]:
    yield from table.to_batches(max_chunksize=batch_rows)


def _write_parquet(
    table: pa.Table, f: BinaryIO, compression: str, batch_rows: int, progress: Callable[[int], None] | None
) -> None:
    done = 0
    with pq.ParquetWriter(f, table.schema, compression=compression) as writer:
        for start in range(0, max(table.num_rows, 1), max(batch_rows, 1 << 20)):
            part = table.slice(start, max(batch_rows, 1 << 20))
            writer.write_table(part, row_group_size=1 << 20)
            done += part.num_rows
            if progress is not None:
                progress(done)


def _write_ipc(
    table: pa.Table,
    f: BinaryIO,
    compression: str | None,
    batch_rows: int,
    progress: Callable[[int], None] | None,
) -> None:
    options = ipc.IpcWriteOptions(compression=compression)
    done = 0
    with ipc.new_file(f, table.schema, options=options) as writer:
        for batch in _batches(table, batch_rows):
            writer.write_batch(batch)
            done += batch.num_rows
            if progress is not None:
                progress(done)


def _text_ts(col: pa.Array, ts_format: str) -> pa.Array:
    """Epoch ms integers, or ISO-8601 UTC text, of a UTC timestamp array."""
    if ts_format == "ms":
        return col.cast(pa.int64())
    # formatting a naive timestamp is many times faster than a zoned one (or strftime)
    naive = col.view(pa.int64()).view(pa.timestamp(col.type.unit))
    text = pc.replace_substring(naive.cast(pa.string()), " ", "T", max_replacements=1)
    return pc.binary_join_element_wise(text, "Z", "")


def _plain(col: pa.Array) -> pa.Array:
    """Dictionary arrays decoded, string views cast to strings."""
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if pa.types.is_string_view(col.type):
        col = col.cast(pa.large_string())
    return col


def _json_strings(col: pa.Array) -> pa.Array:
    """JSON text of each string (quoted and escaped), ``null`` for nulls."""
    needs = pc.match_substring_regex(col, _NEEDS_ESCAPE)
    if pc.any(needs).as_py():
        # rare: escape those values with the json module
        values = col.to_pylist()
        flags = needs.to_pylist()
        quoted = pa.array(
            [
                None if v is None else (json.dumps(v, ensure_ascii=False) if flag else f'"{v}"')
                for v, flag in zip(values, flags, strict=True)
            ],
            pa.string(),
        )
    else:
        quoted = pc.binary_join_element_wise('"', col, '"', "")
    return pc.fill_null(quoted, "null")


def _json_values(name: str, col: pa.Array, ts_format: str) -> pa.Array:
    """``"name":<value>`` text of every row of ``col``.

    Columns with few distinct values (kind, endpoint, state, status, ...) are formatted once per
    distinct value and expanded with ``take``.
    """
    col = _plain(col)
    t = col.type
    if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t)) and len(col) > 64:
        enc = pc.dictionary_encode(col, null_encoding="encode")
        if len(enc.dictionary) * 4 <= len(col):
            return _json_values(name, enc.dictionary, ts_format).take(enc.indices)
    prefix = json.dumps(name) + ":"
    if name == "ts" and pa.types.is_timestamp(t):
        text = _text_ts(col.cast(pa.timestamp(t.unit, tz="UTC")), ts_format)
        values = _json_strings(text) if ts_format == "iso" else pc.fill_null(text.cast(pa.string()), "null")
    elif pa.types.is_timestamp(t):
        values = _json_strings(_text_ts(col.cast(pa.timestamp(t.unit, tz="UTC")), "iso"))
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        values = _json_strings(col)
    elif pa.types.is_integer(t):
        values = pc.fill_null(col.cast(pa.string()), "null")
    elif pa.types.is_floating(t):
        finite = pc.is_finite(col)
        values = pc.fill_null(pc.if_else(finite, col.cast(pa.string()), pa.scalar(None, pa.string())), "null")
    elif pa.types.is_boolean(t):
        values = pc.fill_null(pc.if_else(col, "true", "false"), "null")
    elif pa.types.is_null(t):
        values = pa.array(["null"] * len(col), pa.string())
    else:
        raise TypeError(f"column {name!r} of type {t} cannot be written as JSON Lines")
    return pc.binary_join_element_wise(prefix, values.cast(pa.string()), "")


def _write_jsonl(
    table: pa.Table, f: BinaryIO, ts_format: str, batch_rows: int, progress: Callable[[int], None] | None
) -> None:
    done = 0
    for batch in _batches(table, batch_rows):
        if batch.num_rows == 0:
            continue
        fields = [_json_values(name, batch.column(i), ts_format) for i, name in enumerate(batch.schema.names)]
        lines = pc.binary_join_element_wise("{", pc.binary_join_element_wise(*fields, ","), "}\n", "")
        f.write(_string_data(lines))
        done += batch.num_rows
        if progress is not None:
            progress(done)


def _string_data(arr: pa.Array) -> bytes | memoryview:
    """The concatenated bytes of a string array without nulls (its data buffer, no copy)."""
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    offsets = memoryview(arr.buffers()[1]).cast("q")
    lo, hi = offsets[arr.offset], offsets[arr.offset + len(arr)]
    data: Any = arr.buffers()[2]
    return memoryview(data)[lo:hi]


def _write_csv(
    table: pa.Table, f: BinaryIO, ts_format: str, batch_rows: int, progress: Callable[[int], None] | None
) -> None:
    writer: pcsv.CSVWriter | None = None
    done = 0
    try:
        for batch in _batches(table, batch_rows):
            columns = []
            for name, col in zip(batch.schema.names, batch.columns, strict=True):
                col = _plain(col)
                if pa.types.is_timestamp(col.type):
                    col = _text_ts(
                        col.cast(pa.timestamp(col.type.unit, tz="UTC")), ts_format if name == "ts" else "iso"
                    )
                columns.append(col)
            out = pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
            if writer is None:
                writer = pcsv.CSVWriter(f, out.schema)
            writer.write_batch(out)
            done += batch.num_rows
            if progress is not None:
                progress(done)
        if writer is None:  # no rows: the header only
            schema = pa.schema([pa.field(n, pa.string()) for n in table.schema.names])
            writer = pcsv.CSVWriter(f, schema)
    finally:
        if writer is not None:
            writer.close()
