"""Event-log readers: files, directories and globs of Parquet, Arrow IPC, JSON Lines and CSV.

:func:`discover` turns what a user typed into a list of :class:`Source` files (format from the
extension); :func:`read_batches` streams one source as Arrow record batches of at most
``batch_size`` rows, so memory stays bounded however large the log. Parquet goes through
:meth:`pyarrow.parquet.ParquetFile.iter_batches`, Arrow IPC through :mod:`pyarrow.dataset`, CSV
through the streaming :func:`pyarrow.csv.open_csv`, JSON Lines through :mod:`pyarrow.json` a block
of lines at a time. The binary formats read only the event columns.

Timestamps are passed on as they arrive (Arrow timestamps, epoch milliseconds, ISO-8601 text):
:meth:`jobmetrics.Aggregator.ingest` normalises them. Malformed input that the file format itself
rejects — a line that is not JSON, a CSV row with the wrong number of fields — is reported through
an ``on_malformed`` callback with its line number and skipped; the rest of the file is read.

Examples
--------
>>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
>>> folder = tempfile.mkdtemp()
>>> pq.write_table(pa.table({"ts": [1, 2], "endpoint": ["a", "a"]}), os.path.join(folder, "x.parquet"))
>>> [s.format for s in discover([folder])]
['parquet']
>>> [chunk.data.num_rows for chunk in read_batches(discover([folder])[0])]
[2]
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.dataset as pds
import pyarrow.json as pjson
import pyarrow.parquet as pq

__all__ = [
    "FORMATS",
    "Chunk",
    "LogReadError",
    "Malformed",
    "Source",
    "discover",
    "read_batches",
]

#: File extension -> format. ``.gz`` may follow a JSON Lines or CSV extension.
FORMATS: Final[dict[str, str]] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "ipc",
    ".feather": "ipc",
    ".ipc": "ipc",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
_COMPRESSIBLE: Final = ("jsonl", "csv")
_GLOB_CHARS: Final = frozenset("*?[")
#: Columns CSV reads as text whatever the first block suggests, converted per batch (see _csv_ts).
_CSV_TEXT_COLUMNS: Final = ("ts", "kind", "endpoint", "job_id", "state", "worker_id", "status_code")  # all
#: The columns of an event (SPEC §1); the binary formats read only these.
EVENT_COLUMNS: Final = ("ts", "kind", "endpoint", "job_id", "state", "worker_id", "status_code")
#: Parquet columns read as dictionaries (few distinct values).
_FEW_VALUES: Final = ("kind", "endpoint", "state")
DEFAULT_BATCH_SIZE: Final = 262_144
_JSON_BLOCK_BYTES: Final = 16 << 20


class LogReadError(OSError):
    """An input file that cannot be read at all (not the format its extension says, truncated,
    unreadable); the message names the file."""


@dataclass(frozen=True, slots=True)
class Source:
    """One input file: its path, format (``parquet``, ``ipc``, ``jsonl``, ``csv``), whether it is
    gzip-compressed, and its size in bytes."""

    path: Path
    format: str
    gzip: bool
    size: int

    @property
    def unit(self) -> str:
        """What row numbers count in reports: ``line`` (JSON Lines, CSV) or ``row`` (others)."""
        return "line" if self.format in _COMPRESSIBLE else "row"

    def __str__(self) -> str:
        return str(self.path)


@dataclass(frozen=True, slots=True)
class Malformed:
    """A line or row the file format rejected: where (1-based ``number``, see :attr:`Source.unit`;
    None when unknown), why (``reason``, one of a few fixed phrases, and ``detail``), and its text
    (shortened)."""

    source: Source
    number: int | None
    reason: str
    detail: str
    text: str


@dataclass(frozen=True, slots=True, eq=False)
class Chunk:
    """A record batch read from ``source``, with the number (1-based line or row) of each row.

    Rows are numbered ``first, first + 1, …`` unless ``numbers`` gives them one by one (when
    malformed or blank lines were skipped). ``position`` is how many bytes of the file have been
    consumed (for progress).
    """

    source: Source
    data: pa.RecordBatch | pa.Table
    first: int
    numbers: npt.NDArray[np.int64] | None
    position: int

    def number(self, row: int) -> int:
        """Line or row number of the ``row``-th row of :attr:`data`."""
        if self.numbers is not None:
            return int(self.numbers[row])
        return self.first + row


OnMalformed = Callable[[Malformed], None]


def _ignore(_: Malformed) -> None:
    return None


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------


def format_of(path: str | os.PathLike[str]) -> tuple[str, bool] | None:
    """``(format, gzip)`` from the extension of ``path``, or None when it is not a known one."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    if not suffixes:
        return None
    fmt = FORMATS.get(suffixes[-1])
    if fmt is None or (compressed and fmt not in _COMPRESSIBLE):
        return None
    return fmt, compressed


def _hidden(path: Path, root: Path) -> bool:
    """True for files a data tool leaves beside its output (``.x``, ``_SUCCESS``), at any depth."""
    return any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def _source(path: Path, fmt: str | None) -> Source:
    found = format_of(path)
    if fmt is not None:
        compressed = path.suffix.lower() == ".gz"
        if compressed and fmt not in _COMPRESSIBLE:
            raise ValueError(f"{path}: only JSON Lines and CSV may be gzip-compressed, not {fmt}")
        found = (fmt, compressed)
    if found is None:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"{path}: unknown log format; expected one of {known} (optionally .gz for text)")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise LogReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return Source(path, found[0], found[1], size)


def discover(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, format: str | None = None
) -> list[Source]:
    """The input files named by ``paths``: files, directories (searched recursively for files with
    a known extension, hidden files and ``_``-prefixed ones skipped) and glob patterns (``**``
    allowed), in the order given, each directory's and pattern's files sorted, duplicates dropped.
    Directories and patterns take only files with a known extension; a file named explicitly must
    have one.

    ``format`` forces the format of every file (``parquet``, ``ipc``, ``jsonl`` or ``csv``) instead of
    reading it from the extension (directories then take every non-hidden file).

    Raises
    ------
    FileNotFoundError
        A path that does not exist, a pattern or directory that matches no log file.
    ValueError
        A file whose extension is not a known format, or an unknown ``format``.
    LogReadError
        A file that cannot be accessed.
    """
    if format is not None and format not in set(FORMATS.values()):
        raise ValueError(f"format must be one of {sorted(set(FORMATS.values()))}, got {format!r}")
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    items = [os.fspath(p) for p in paths]
    if not items:
        raise FileNotFoundError("no input paths given")
    out: dict[Path, Source] = {}
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(
                f
                for f in path.rglob("*")
                if f.is_file() and not _hidden(f, path) and (format is not None or format_of(f))
            )
            if not files:
                raise FileNotFoundError(f"no log files ({', '.join(sorted(FORMATS))}) in directory {item}")
        elif path.exists():
            files = [path]
        elif _GLOB_CHARS & set(item):
            matched = sorted(Path(m) for m in glob.glob(os.path.expanduser(item), recursive=True))
            files = [m for m in matched if m.is_file() and (format is not None or format_of(m))]
            if not files:
                raise FileNotFoundError(f"no log file matches {item!r}")
        else:
            raise FileNotFoundError(f"input not found: {item}")
        for f in files:
            if f not in out:
                out[f] = _source(f, format)
    return list(out.values())


# --------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------


def read_batches(
    source: Source,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    use_threads: bool = True,
    on_malformed: OnMalformed | None = None,
) -> Iterator[Chunk]:
    """Stream ``source`` as :class:`Chunk` s of at most ``batch_size`` rows (CSV and JSON Lines:
    about that many), in file order.

    ``on_malformed`` is called for each line the format rejects (then skipped); it may raise to
    stop reading. ``use_threads`` lets Arrow decode with its thread pool.

    Raises
    ------
    LogReadError
        When the file cannot be opened or decoded as its format.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    report = on_malformed or _ignore
    if source.size == 0:  # an empty file holds no events, whatever its format
        return
    readers = {"parquet": _read_parquet, "ipc": _read_ipc, "csv": _read_csv, "jsonl": _read_jsonl}
    try:
        yield from readers[source.format](source, batch_size, use_threads, report)
    except LogReadError:
        raise
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as exc:
        what = {"parquet": "Parquet", "ipc": "Arrow IPC", "csv": "CSV", "jsonl": "JSON Lines"}[source.format]
        raise LogReadError(f"cannot read {source.path} as {what}: {exc}") from exc


def _read_parquet(source: Source, batch_size: int, use_threads: bool, report: OnMalformed) -> Iterator[Chunk]:
    """Parquet through :meth:`pyarrow.parquet.ParquetFile.iter_batches`, which decodes a row group
    page by page: on a 10 M-event file it peaks at a third of the memory the dataset scanner takes
    (190 MB instead of 400-600 MB above the interpreter) and is faster on one core."""
    with pq.ParquetFile(source.path, pre_buffer=False) as probe:
        names = probe.schema_arrow.names
    few = [name for name in _FEW_VALUES if name in names]
    columns = [name for name in EVENT_COLUMNS if name in names]
    with pq.ParquetFile(source.path, read_dictionary=few, pre_buffer=False) as f:
        total = f.metadata.num_rows
        done = 0
        for batch in f.iter_batches(batch_size=batch_size, columns=columns or None, use_threads=use_threads):
            if batch.num_rows == 0:
                continue
            first = done + 1
            done += batch.num_rows
            yield Chunk(
                source, batch, first, None, source.size if total == 0 else source.size * done // total
            )


def _read_ipc(source: Source, batch_size: int, use_threads: bool, report: OnMalformed) -> Iterator[Chunk]:
    try:
        dataset = pds.dataset(str(source.path), format="ipc")
        total = dataset.count_rows()
    except pa.ArrowInvalid:
        yield from _read_ipc_stream(source, batch_size)
        return
    # only the event columns; read ahead one batch (Arrow's default of 16 batches of 4 files would
    # hold much of a large file in memory)
    columns = [name for name in EVENT_COLUMNS if name in dataset.schema.names]
    batches = dataset.to_batches(
        columns=columns or None, batch_size=batch_size, batch_readahead=1, fragment_readahead=1,
        use_threads=use_threads,
    )  # fmt: skip
    done = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        first = done + 1
        done += batch.num_rows
        yield Chunk(source, batch, first, None, source.size if total == 0 else source.size * done // total)


def _read_ipc_stream(source: Source, batch_size: int) -> Iterator[Chunk]:
    """An Arrow IPC *stream* (not file) saved with an IPC extension."""
    with pa.OSFile(str(source.path), "rb") as f, pa.ipc.open_stream(f) as reader:
        done = 0
        for batch in reader:
            for start in range(0, batch.num_rows, batch_size):
                part = batch.slice(start, batch_size)
                yield Chunk(source, part, done + 1, None, f.tell())
                done += part.num_rows


def _open_text(source: Source) -> tuple[IO[bytes], IO[bytes]]:
    """``(raw, stream)``: the file (its ``tell()`` gives progress) and the bytes to parse."""
    raw: IO[bytes] = open(source.path, "rb")  # noqa: SIM115 - closed by the caller
    if source.gzip:
        stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        return raw, stream
    return raw, raw


def _shorten(text: str, limit: int = 120) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- CSV -----------------------------------------------------------------------------------------


def _read_csv(source: Source, batch_size: int, use_threads: bool, report: OnMalformed) -> Iterator[Chunk]:
    # Arrow numbers rows only when it parses on one thread; the numbers are what reports need.
    del use_threads
    raw, stream = _open_text(source)
    skipped: list[int] = []  # numbers of the rows dropped so far (header = 1)
    stop: list[BaseException] = []  # what on_malformed raised: parsing stops, then it is re-raised

    def on_invalid(row: Any) -> str:
        number = None if row.number is None or row.number < 0 else int(row.number)
        if number is not None:
            skipped.append(number)
        detail = f"expected {row.expected_columns} fields, got {row.actual_columns}"
        try:
            report(Malformed(source, number, "wrong number of CSV fields", detail, _shorten(str(row.text))))
        except BaseException as exc:
            stop.append(exc)
            return "error"
        return "skip"

    with raw, stream:
        try:
            reader = pcsv.open_csv(
                stream,
                read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 22),
                parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pcsv.ConvertOptions(
                    column_types=dict.fromkeys(_CSV_TEXT_COLUMNS, pa.string()), strings_can_be_null=True
                ),
            )
            done = 0  # good data rows yielded so far
            for batch in reader:
                for start in range(0, batch.num_rows, batch_size):
                    part = batch.slice(start, batch_size)
                    numbers = _csv_numbers(done, part.num_rows, skipped)
                    yield Chunk(source, _csv_convert(part), done + 2, numbers, raw.tell())
                    done += part.num_rows
        except pa.ArrowInvalid:
            if stop:
                raise stop[0] from None
            raise


def _csv_numbers(done: int, n: int, skipped: list[int]) -> npt.NDArray[np.int64] | None:
    """Row numbers (header = 1) of good rows ``done .. done + n - 1``, knowing the numbers of the
    rows skipped so far; None when no row was skipped before them (numbers are then consecutive)."""
    if not skipped or min(skipped) > done + n + 1:
        return None
    bad = np.unique(np.asarray(skipped, dtype=np.int64))
    # the k-th good row (0-based) has number k + 2 + (skipped rows with a number <= its own)
    k = np.arange(done, done + n, dtype=np.int64) + 2
    numbers = k.copy()
    for _ in range(bad.size + 1):  # converges in as many steps as skipped rows at most
        nxt = k + np.searchsorted(bad, numbers, side="right")
        if np.array_equal(nxt, numbers):
            break
        numbers = nxt
    return numbers


def _csv_convert(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Numbers read as text (so a late odd value cannot stop the reader) back to numbers."""
    names = batch.schema.names
    columns = list(batch.columns)
    if "ts" in names:
        i = names.index("ts")
        columns[i] = _csv_ts(columns[i])
    if "status_code" in names:
        i = names.index("status_code")
        columns[i] = _csv_status(columns[i])
    return pa.RecordBatch.from_arrays(columns, names=names)


def _csv_ts(col: pa.Array) -> pa.Array:
    """Epoch milliseconds (integer or decimal text) as numbers; ISO-8601 text unchanged; in a
    column mixing both, the numbers become ISO-8601 text."""
    text = pc.utf8_trim_whitespace(col)
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid:
        pass
    numeric = pc.match_substring_regex(text, r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
    n_numeric = pc.sum(numeric).as_py() or 0
    if n_numeric == 0:
        return col
    valid = len(col) - col.null_count
    as_float = pc.cast(pc.if_else(numeric, text, pa.scalar(None, pa.string())), pa.float64())
    if n_numeric == valid:
        return as_float
    us = pc.cast(pc.round(pc.multiply(as_float, 1000.0)), pa.int64()).cast(pa.timestamp("us"))
    iso = pc.strftime(us, format="%Y-%m-%dT%H:%M:%SZ")
    return pc.if_else(numeric, iso, col)


def _csv_status(col: pa.Array) -> pa.Array:
    """HTTP status codes as integers; text that is not a number becomes -1 (rejected as invalid)."""
    text = pc.utf8_trim_whitespace(col)
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid:
        pass
    numeric = pc.match_substring_regex(text, r"^[+-]?\d+(\.0*)?$")
    clean = pc.if_else(numeric, pc.replace_substring_regex(text, r"\.0*$", ""), pa.scalar("-1"))
    return pc.if_else(pc.is_null(col), pa.scalar(None, pa.int64()), pc.cast(clean, pa.int64()))


# -- JSON Lines ----------------------------------------------------------------------------------


def _blocks(stream: IO[bytes], size: int) -> Iterator[bytes]:
    """Blocks of whole lines (the last may lack its newline)."""
    rest = b""
    while True:
        data = stream.read(size)
        if not data:
            if rest:
                yield rest
            return
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1 :]
        yield data[: cut + 1]


def _read_jsonl(source: Source, batch_size: int, use_threads: bool, report: OnMalformed) -> Iterator[Chunk]:
    raw, stream = _open_text(source)
    with raw, stream:
        line = 1  # number of the block's first line
        checked_array = False
        for block in _blocks(stream, _JSON_BLOCK_BYTES):
            if not checked_array:
                head = block.lstrip()
                if head.startswith(b"["):
                    raise LogReadError(
                        f"{source.path} holds a JSON array; jobmetrics reads JSON Lines (one object per line)"
                    )
                checked_array = bool(head)
            n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            for table, numbers in _parse_block(source, block, line, use_threads, report):
                first = 0
                for batch in table.to_batches(max_chunksize=batch_size):
                    nums = numbers[first : first + batch.num_rows]
                    first += batch.num_rows
                    consecutive = nums.size == 0 or int(nums[-1]) - int(nums[0]) == nums.size - 1
                    yield Chunk(
                        source,
                        batch,
                        int(nums[0]) if nums.size else line,
                        None if consecutive else nums,
                        raw.tell(),
                    )
            line += n_lines


def _json_options(use_threads: bool, nbytes: int) -> pjson.ReadOptions:
    return pjson.ReadOptions(use_threads=use_threads, block_size=max(1 << 20, min(nbytes + 1, 1 << 24)))


def _parse_block(
    source: Source, block: bytes, first_line: int, use_threads: bool, report: OnMalformed
) -> Iterator[tuple[pa.Table, npt.NDArray[np.int64]]]:
    """Tables of the objects in ``block`` with the line number of each row.

    The whole block is parsed by Arrow; if that fails, each line is checked with :mod:`json` and
    the bad ones reported and dropped; lines whose types do not fit together are parsed one by one.
    """
    try:
        table = pjson.read_json(io.BytesIO(block), read_options=_json_options(use_threads, len(block)))
    except pa.ArrowInvalid:
        table = None
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    if table is not None:
        if table.num_rows == len(lines):
            yield table, np.arange(first_line, first_line + len(lines), dtype=np.int64)
            return
        kept = np.array([i for i, ln in enumerate(lines) if ln.strip()], dtype=np.int64)
        if kept.size == table.num_rows:
            yield table, kept + first_line
            return
    good: list[int] = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            obj = json.loads(ln)
        except ValueError as exc:
            detail = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            text = _shorten(ln.decode("utf-8", "replace"))
            report(Malformed(source, first_line + i, "not JSON", detail, text))
            continue
        if not isinstance(obj, dict):
            detail = f"a JSON {type(obj).__name__}"
            text = _shorten(ln.decode("utf-8", "replace"))
            report(Malformed(source, first_line + i, "not a JSON object", detail, text))
            continue
        good.append(i)
    if not good:
        return
    numbers = np.asarray(good, dtype=np.int64) + first_line
    payload = b"\n".join(lines[i] for i in good) + b"\n"
    try:
        table = pjson.read_json(io.BytesIO(payload), read_options=_json_options(use_threads, len(payload)))
    except pa.ArrowInvalid:
        yield from _parse_lines(source, [lines[i] for i in good], numbers, report)
        return
    yield table, numbers


def _parse_lines(
    source: Source, lines: Sequence[bytes], numbers: npt.NDArray[np.int64], report: OnMalformed
) -> Iterator[tuple[pa.Table, npt.NDArray[np.int64]]]:
    """Lines parsed one by one; consecutive lines with the same schema grouped into one table."""
    group: list[pa.Table] = []
    group_numbers: list[int] = []
    for ln, number in zip(lines, numbers.tolist(), strict=True):
        try:
            one = pjson.read_json(io.BytesIO(ln + b"\n"), read_options=_json_options(False, len(ln) + 1))
        except pa.ArrowInvalid as exc:
            text = _shorten(ln.decode("utf-8", "replace"))
            report(Malformed(source, number, "not JSON", str(exc), text))
            continue
        if group and not one.schema.equals(group[0].schema):
            yield pa.concat_tables(group), np.asarray(group_numbers, dtype=np.int64)
            group, group_numbers = [], []
        group.append(one)
        group_numbers.append(number)
    if group:
        yield pa.concat_tables(group), np.asarray(group_numbers, dtype=np.int64)
