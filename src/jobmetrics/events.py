"""Event input: any table of lifecycle events -> one columnar integer batch.

:func:`normalize` is the single entry point through which every event reaches the engine. It accepts
an Arrow table or record batch, a pandas DataFrame or a mapping of columns (SPEC §1), and returns an
:class:`EventBatch`: seven equal-length numpy arrays of integers, in input order, with every row
that cannot be used dropped and accounted for in a :class:`Rejections` report.

Everything is vectorised: ids are hashed by a numba kernel straight from the Arrow string buffers,
columns with few distinct values (endpoint, state, kind) are mapped once per distinct value, and
timestamps are converted by Arrow compute or numpy. See ``docs/events.md`` for the user guide.

Examples
--------
>>> import pyarrow as pa
>>> registry = EndpointRegistry()
>>> table = pa.table({
...     "ts": [1_700_000_000_000, 1_700_000_000_500, None],
...     "endpoint": ["gpu-a", "gpu-a", "gpu-b"],
...     "job_id": ["j1", "j1", "j2"],
...     "state": ["IN_QUEUE", "running", "COMPLETED"],
... })
>>> batch, rejected = normalize(table, registry)
>>> batch.ts.tolist(), batch.state.tolist(), registry.names()
([1700000000000000, 1700000000500000], [1, 2], ['gpu-a'])
>>> rejected.by_reason
{'null ts': 1}
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ._kernels.hashing import (
    ISO_BAD,
    ISO_NULL,
    ISO_OK,
    hash_ints,
    hash_strings,
    parse_iso,
    string_codes,
)
from .states import JOB_STATE_ALIASES, JobState, Kind, WorkerState

__all__ = [
    "EndpointRegistry",
    "EventBatch",
    "RejectedRow",
    "Rejections",
    "hash_id",
    "hash_ids",
    "normalize",
]

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
Column: TypeAlias = pa.ChunkedArray


# --------------------------------------------------------------------------------------------------
# The batch
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class EventBatch:
    """Events as equal-length integer columns, in input order.

    Attributes
    ----------
    ts:
        int64, microseconds since the Unix epoch (UTC).
    kind:
        int8, :class:`~jobmetrics.states.Kind` codes.
    endpoint:
        int32, code of the endpoint in the :class:`EndpointRegistry` that normalised the batch.
    job:
        int64 key of ``job_id`` (see :func:`hash_ids`); never 0 for a present id, 0 where absent.
    state:
        int8, :class:`~jobmetrics.states.JobState` code on job rows,
        :class:`~jobmetrics.states.WorkerState` code on worker rows, 0 on webhook rows.
    worker:
        int64 key of ``worker_id``, 0 where absent.
    status:
        int32 HTTP status of a webhook row, -1 on other rows.

    Arrays are converted to these dtypes on construction; their lengths must agree.
    """

    ts: I64
    kind: I8
    endpoint: I32
    job: I64
    state: I8
    worker: I64
    status: I32

    def __post_init__(self) -> None:
        n = None
        for name, dtype in _BATCH_DTYPES.items():
            arr = np.asarray(getattr(self, name), dtype=dtype)
            if arr.ndim != 1:
                raise ValueError(f"EventBatch.{name} must be 1-D, got shape {arr.shape}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(
                    f"EventBatch columns must have equal lengths: ts has {n}, {name} has {arr.shape[0]}"
                )
            object.__setattr__(self, name, arr)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def __repr__(self) -> str:
        return f"EventBatch(<{len(self)} events>)"

    @classmethod
    def empty(cls) -> EventBatch:
        """A batch with no events."""
        return cls(**{name: np.empty(0, dtype=dt) for name, dt in _BATCH_DTYPES.items()})

    def take(self, idx: npt.ArrayLike) -> EventBatch:
        """The rows at ``idx`` (integer positions or a boolean mask), every column alike."""
        idx = np.asarray(idx)
        return EventBatch(**{name: getattr(self, name)[idx] for name in _BATCH_DTYPES})

    def writable(self) -> EventBatch:
        """This batch, with copies of any read-only columns (kernels may reorder rows in place)."""
        if all(getattr(self, name).flags.writeable for name in _BATCH_DTYPES):
            return self
        return EventBatch(
            **{
                name: col if col.flags.writeable else col.copy()
                for name in _BATCH_DTYPES
                for col in (getattr(self, name),)
            }
        )

    def slice(self, start: int, stop: int) -> EventBatch:
        """Rows ``start:stop`` as views of these columns (no copy)."""
        return EventBatch(**{name: getattr(self, name)[start:stop] for name in _BATCH_DTYPES})

    @staticmethod
    def concat(batches: Sequence[EventBatch]) -> EventBatch:
        """One batch with the rows of ``batches`` in order (their endpoint codes must share a
        registry)."""
        if len(batches) == 0:
            return EventBatch.empty()
        if len(batches) == 1:
            return batches[0]
        return EventBatch(
            **{name: np.concatenate([getattr(b, name) for b in batches]) for name in _BATCH_DTYPES}
        )


_BATCH_DTYPES: Final[dict[str, type[np.generic]]] = {
    "ts": np.int64,
    "kind": np.int8,
    "endpoint": np.int32,
    "job": np.int64,
    "state": np.int8,
    "worker": np.int64,
    "status": np.int32,
}


# --------------------------------------------------------------------------------------------------
# Rejections
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RejectedRow:
    """One dropped row: where it was, which column made it unusable, why, and the value as text."""

    batch: int
    row: int
    column: str
    reason: str
    value: str

    def __str__(self) -> str:
        return f"batch {self.batch} row {self.row}: {self.reason} ({self.column}={self.value})"


@dataclass(slots=True)
class Rejections:
    """Rows dropped by :func:`normalize`, accumulated across batches.

    ``total`` rows were dropped, ``by_reason`` counts them by reason (one reason per row: the first
    problem found, in the order of :data:`REASONS`) and ``samples`` keeps the first ``max_samples``
    of them for inspection.
    """

    total: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    samples: list[RejectedRow] = field(default_factory=list)
    max_samples: int = 20

    def merge(self, other: Rejections) -> Rejections:
        """Add ``other``'s counts and samples (up to ``max_samples``) to this report; return it."""
        self.total += other.total
        for reason, count in other.by_reason.items():
            self.by_reason[reason] = self.by_reason.get(reason, 0) + count
        room = self.max_samples - len(self.samples)
        if room > 0:
            self.samples.extend(other.samples[:room])
        return self

    def __str__(self) -> str:
        if self.total == 0:
            return "no rows rejected"
        lines = [f"{self.total} row{'s' if self.total != 1 else ''} rejected"]
        width = max(len(r) for r in self.by_reason)
        for reason, count in sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<{width}}  {count}")
        if self.samples:
            shown = len(self.samples)
            lines.append(f"first {shown} of {self.total}:" if shown < self.total else "rows:")
            lines.extend(f"  {s}" for s in self.samples)
        return "\n".join(lines)


#: Reasons a row is rejected, in the order they are checked, with the column each one is about.
REASONS: Final[tuple[tuple[str, str], ...]] = (
    ("unknown kind", "kind"),
    ("null ts", "ts"),
    ("unparsable ts", "ts"),
    ("ts out of range", "ts"),
    ("null endpoint", "endpoint"),
    ("null job_id", "job_id"),
    ("invalid job_id", "job_id"),
    ("null worker_id", "worker_id"),
    ("invalid worker_id", "worker_id"),
    ("null state", "state"),
    ("unknown state", "state"),
    ("null status_code", "status_code"),
    ("invalid status_code", "status_code"),
)
_REASON_CODE: Final = {reason: i + 1 for i, (reason, _) in enumerate(REASONS)}


class _Verdicts:
    """Per-row reason codes (0 = keep), allocated on the first problem found."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.why: I8 | None = None

    def flag(self, reason: str, mask: Bool | None) -> None:
        if mask is None or not mask.any():
            return
        if self.why is None:
            self.why = np.zeros(self.n, dtype=np.int8)
        self.why[mask & (self.why == 0)] = _REASON_CODE[reason]


# --------------------------------------------------------------------------------------------------
# Arrow helpers
# --------------------------------------------------------------------------------------------------


def _u8(buf: pa.Buffer | None) -> npt.NDArray[np.uint8]:
    if buf is None or buf.size == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.frombuffer(buf, dtype=np.uint8)


def _string_buffers(arr: pa.Array) -> tuple[Any, ...]:
    """``(offsets, data, validity, bit_offset)`` of a string/binary array, as kernels take them."""
    validity, offsets, data = arr.buffers()[:3]
    wide = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    off = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)
    off = off[arr.offset : arr.offset + len(arr) + 1]
    valid = _u8(validity) if arr.null_count > 0 else np.zeros(0, dtype=np.uint8)
    return off, _u8(data), valid, arr.offset


def _is_stringlike(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _plain_strings(arr: pa.Array) -> pa.Array:
    """``arr`` as a string/binary array the kernels can read (view types are cast)."""
    t = arr.type
    if _is_stringlike(t):
        return arr
    if pa.types.is_string_view(t):
        return arr.cast(pa.large_string())
    if pa.types.is_binary_view(t):
        return arr.cast(pa.large_binary())
    raise TypeError(f"expected strings, got {t}")


def _is_stringish(t: pa.DataType) -> bool:
    return _is_stringlike(t) or pa.types.is_string_view(t) or pa.types.is_binary_view(t)


def _null_mask(arr: pa.Array) -> Bool | None:
    """Boolean null mask, or None when the array has no nulls."""
    if arr.null_count == 0:
        return None
    return np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _numbers(arr: pa.Array, dtype: type[np.generic]) -> tuple[npt.NDArray[Any], Bool | None]:
    """Values of a numeric array (nulls filled with 0) and its null mask."""
    nulls = _null_mask(arr)
    if nulls is not None:
        arr = arr.fill_null(0)
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype), nulls


def _chunks(col: Column) -> Iterator[tuple[int, pa.Array]]:
    """``(start_row, chunk)`` of every non-empty chunk."""
    start = 0
    for chunk in col.chunks:
        if len(chunk):
            yield start, chunk
        start += len(chunk)


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _value_text(col: Column | None, row: int) -> str:
    if col is None:
        return "<missing>"
    scalar = col[row]
    if not scalar.is_valid:
        return "null"
    try:
        return _text(scalar.as_py())
    except (ValueError, OverflowError, pa.ArrowException):  # e.g. a timestamp Python can't hold
        return str(scalar)


# --------------------------------------------------------------------------------------------------
# Columns with few distinct values: encode by hash, map the distinct values
# --------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Encoded:
    """Dense codes of a string column: ``codes[i]`` indexes ``values`` (-1 for null).

    A dictionary column keeps its row indices and the code of each dictionary entry apart
    (``row_index``, ``entry_codes``, whose last entry is -1 for null rows): lookups then gather
    over the rows once, instead of once to build ``codes`` and again to map them.
    """

    _codes: I32 | None
    values: list[Any]
    #: every value in ``values`` occurs in some row (no unused dictionary entries).
    all_used: bool
    row_index: npt.NDArray[np.intp] | None = None
    entry_codes: I32 | None = None

    @property
    def codes(self) -> I32:
        if self._codes is None:
            assert self.entry_codes is not None and self.row_index is not None
            self._codes = self.entry_codes[self.row_index]
        return self._codes

    def used(self, keep: Bool | None) -> npt.NDArray[np.bool_]:
        """Whether each value occurs in a row (of the rows in ``keep``, if given)."""
        if self.row_index is not None and self.entry_codes is not None:
            rows = self.row_index if keep is None else self.row_index[keep]
            per_entry = np.bincount(rows, minlength=len(self.entry_codes))
            counts = np.zeros(len(self.values) + 1, dtype=np.int64)
            np.add.at(counts, self.entry_codes, per_entry)  # entry -1 (null rows) lands in the spare
            return counts[: len(self.values)] > 0
        codes = self.codes if keep is None else self.codes[keep]
        return np.bincount(codes[codes >= 0], minlength=len(self.values)) > 0

    def lookup(self, table: npt.NDArray[Any], null: Any) -> npt.NDArray[Any]:
        """``table[code]`` per row, ``null`` for null rows (``table`` has one entry per value)."""
        full = np.empty(len(table) + 1, dtype=table.dtype)
        full[:-1] = table
        full[-1] = null
        if self._codes is None and self.entry_codes is not None and self.row_index is not None:
            return full[self.entry_codes][self.row_index]
        return full[self.codes]


def _encode_dictionary(arr: pa.DictionaryArray) -> _Encoded:
    """Codes of a dictionary array, kept as row indices into per-entry codes (see :class:`_Encoded`)."""
    inner, values, _ = _encode_chunk(arr.dictionary)
    idx, nulls = _numbers(arr.indices, np.intp)
    if nulls is not None:
        idx[nulls] = len(inner)  # the spare entry, coded -1
    entry_codes = np.append(inner, np.int32(-1)).astype(np.int32)
    return _Encoded(None, values, False, idx, entry_codes)


def _encode_chunk(arr: pa.Array) -> tuple[I32, list[Any], bool]:
    if pa.types.is_dictionary(arr.type):
        inner, values, _ = _encode_chunk(arr.dictionary)
        if len(values) == 0:  # an all-null dictionary array
            return np.full(len(arr), -1, dtype=np.int32), values, True
        idx, nulls = _numbers(arr.indices, np.intp)
        codes = inner[idx]
        if nulls is not None:
            codes[nulls] = -1
        return codes, values, False
    if pa.types.is_null(arr.type):
        return np.full(len(arr), -1, dtype=np.int32), [], True
    arr = _plain_strings(arr)
    codes, first = string_codes(*_string_buffers(arr))
    return codes, arr.take(pa.array(first)).to_pylist(), True


def _encode(col: Column, n: int) -> _Encoded:
    """Dense codes of a string (or dictionary of strings) column, by 64-bit hash.

    Codes number the distinct values in order of first appearance. Values are hashed with the id
    hash and distinct hashes are mapped back to one representative row, so this costs one kernel
    pass however many rows there are (and two values with equal 64-bit hashes would share a code).
    """
    chunks = list(_chunks(col))
    if len(chunks) == 1 and chunks[0][0] == 0 and len(chunks[0][1]) == n:
        only = chunks[0][1]
        if pa.types.is_dictionary(only.type) and len(only.dictionary):
            return _encode_dictionary(only)
        codes, values, all_used = _encode_chunk(only)
        return _Encoded(codes, values, all_used)
    out = np.full(n, -1, dtype=np.int32)
    index: dict[Any, int] = {}
    all_used = True
    for start, chunk in chunks:
        codes, values, used = _encode_chunk(chunk)
        all_used &= used
        remap = np.array([index.setdefault(v, len(index)) for v in values] + [-1], dtype=np.int32)
        out[start : start + len(chunk)] = remap[codes]
    return _Encoded(out, list(index), all_used)


def _map_small(
    col: Column, n: int, fn: Callable[[Any], int], *, null: int, dtype: type[np.generic]
) -> npt.NDArray[Any]:
    """``fn(value)`` for every row of a string column, calling ``fn`` once per distinct value."""
    enc = _encode(col, n)
    table = np.array([fn(v) for v in enc.values], dtype=dtype)
    return enc.lookup(table, null)


# --------------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------------


class EndpointRegistry:
    """Endpoint names <-> dense int32 codes, stable for the registry's lifetime.

    Codes are given in order of first appearance and never change, so batches normalised with the
    same registry can be mixed freely. The registry grows as new endpoints appear; it pickles as its
    list of names. Not thread-safe: share one per aggregator.

    Examples
    --------
    >>> import pyarrow as pa
    >>> reg = EndpointRegistry(["a"])
    >>> reg.codes(pa.array(["b", "a", None, "b"])).tolist()
    [1, 0, -1, 1]
    >>> reg.name(1), len(reg)
    ('b', 2)
    """

    __slots__ = ("_index", "_names")

    def __init__(self, names: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        for name in names:
            self.code(name)

    def code(self, name: str) -> int:
        """Code of ``name``, registering it if new."""
        code = self._index.get(name)
        if code is None:
            if not isinstance(name, str):
                raise TypeError(f"endpoint names are strings, got {type(name).__name__} {name!r}")
            code = len(self._names)
            self._index[name] = code
            self._names.append(name)
        return code

    def get(self, name: str) -> int | None:
        """Code of ``name`` if registered, else None (never registers)."""
        return self._index.get(name)

    def name(self, code: int) -> str:
        """Name of ``code``; KeyError for a code this registry did not give."""
        if not 0 <= code < len(self._names):
            raise KeyError(f"unknown endpoint code {code} (registry has {len(self._names)})")
        return self._names[code]

    def names(self) -> list[str]:
        """All names, indexed by code."""
        return list(self._names)

    def codes(self, values: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> I32:
        """int32 code of every value (-1 for null), registering new names.

        One hashing pass over the strings and one dictionary lookup per distinct value; dictionary
        arrays map their dictionary only.
        """
        col = _as_chunked(values, "values")
        return self._codes(_encode_endpoints(col, len(col)), None)

    def _codes(self, enc: _Encoded, keep: Bool | None) -> I32:
        """Codes of encoded endpoint names; registers only the names used by rows in ``keep``."""
        used = [True] * len(enc.values) if keep is None and enc.all_used else enc.used(keep).tolist()
        table = np.array(
            [self.code(_text(v)) if u else -1 for v, u in zip(enc.values, used, strict=True)],
            dtype=np.int32,
        )
        return np.asarray(enc.lookup(table, -1), dtype=np.int32)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EndpointRegistry):
            return NotImplemented
        return self._names == other._names

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"EndpointRegistry({self._names!r})"

    def __getstate__(self) -> list[str]:
        return list(self._names)

    def __setstate__(self, names: list[str]) -> None:
        self._names = list(names)
        self._index = {name: i for i, name in enumerate(self._names)}


def _encode_endpoints(col: Column, n: int) -> _Encoded:
    if pa.types.is_integer(col.type):  # numeric endpoint ids: their decimal text is the name
        col = col.cast(pa.string())
    return _encode(col, n)


# --------------------------------------------------------------------------------------------------
# Ids
# --------------------------------------------------------------------------------------------------


def _keys_chunk(arr: pa.Array, out: I64) -> Bool | None:
    """Keys of one chunk into ``out``; returns the mask of invalid (non-integral float) values."""
    t = arr.type
    if pa.types.is_dictionary(t):
        dict_keys = np.empty(len(arr.dictionary) + 1, dtype=np.int64)
        dict_keys[-1] = 0
        bad = _keys_chunk(arr.dictionary, dict_keys[:-1])
        if bad is not None:
            raise TypeError(f"expected string or integer ids, got {t}")
        idx, nulls = _numbers(arr.indices, np.intp)
        if nulls is not None:
            idx[nulls] = -1
        out[:] = dict_keys[idx]
        return None
    if pa.types.is_null(t):
        out[:] = 0
        return None
    if _is_stringish(t):
        hash_strings(*_string_buffers(_plain_strings(arr)), out)
        return None
    if pa.types.is_integer(t):
        values, nulls = _numbers(arr, np.int64) if pa.types.is_signed_integer(t) else _uints(arr)
        hash_ints(values, out)
        if nulls is not None:
            out[nulls] = 0
        return None
    if pa.types.is_floating(t):  # integer ids that went through pandas with missing values
        x, nulls = _numbers(arr, np.float64)
        nan = np.isnan(x)
        if nan.any():  # NaN is pandas' null
            nulls = nan if nulls is None else nulls | nan
        bad = ~np.isfinite(x) | (np.floor(x) != x) | (np.abs(x) >= 2.0**63)
        if nulls is not None:
            bad &= ~nulls
        hash_ints(np.where(bad | nan, 0, x).astype(np.int64), out)
        if nulls is not None:
            out[nulls] = 0
        out[bad] = 0
        return bad if bad.any() else None
    raise TypeError(f"expected string or integer ids, got {t}")


def _uints(arr: pa.Array) -> tuple[I64, Bool | None]:
    values, nulls = _numbers(arr, np.uint64)
    return values.view(np.int64), nulls


def _keys(col: Column, n: int) -> tuple[I64, Bool | None]:
    """int64 key of every id (0 for null) and the mask of invalid ids (or None)."""
    out = np.empty(n, dtype=np.int64)
    bad_all: Bool | None = None
    for start, chunk in _chunks(col):
        bad = _keys_chunk(chunk, out[start : start + len(chunk)])
        if bad is not None:
            if bad_all is None:
                bad_all = np.zeros(n, dtype=bool)
            bad_all[start : start + len(chunk)] = bad
    return out, bad_all


def hash_ids(values: pa.Array | pa.ChunkedArray | Sequence[Any] | npt.NDArray[Any]) -> I64:
    """The int64 keys :func:`normalize` gives these ids (0 for null).

    Strings (and binary) are hashed with a 64-bit hash of their UTF-8 bytes; integers are mixed
    with a bijection, so distinct integers never collide. No key is 0 except for nulls.

    Examples
    --------
    >>> keys = hash_ids(["job-1", "job-2", None, "job-1"])
    >>> bool(keys[0] == keys[3]), bool(keys[0] != keys[1]), int(keys[2])
    (True, True, 0)
    """
    col = _as_chunked(values, "values")
    keys, bad = _keys(col, len(col))
    if bad is not None:
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"id at position {i} is not an integer: {_value_text(col, i)}")
    return keys


def hash_id(value: str | bytes | int | None) -> int:
    """The key :func:`normalize` gives one id (0 for None); see :func:`hash_ids`."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, str | bytes | int):
        raise TypeError(f"ids are strings or integers, got {type(value).__name__} {value!r}")
    if isinstance(value, int):
        arr = pa.array([value], type=pa.int64() if value < 2**63 else pa.uint64())
    else:
        arr = pa.array([value])
    return int(hash_ids(arr)[0])


# --------------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------------

_OK, _NULL, _BAD, _RANGE = ISO_OK, ISO_NULL, ISO_BAD, 3
_TS_REASON: Final = {_NULL: "null ts", _BAD: "unparsable ts", _RANGE: "ts out of range"}
_I64_MAX = np.iinfo(np.int64).max
_UNIT_US: Final = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _ts_chunk(arr: pa.Array, out: I64, status: I8) -> None:
    """Microseconds of one ``ts`` chunk into ``out``; per-row ``_OK``/``_NULL``/... into status."""
    t = arr.type
    if pa.types.is_dictionary(t):
        m = len(arr.dictionary)
        d_out = np.zeros(m + 1, dtype=np.int64)
        d_status = np.full(m + 1, _NULL, dtype=np.int8)
        if m:
            _ts_chunk(arr.dictionary, d_out[:-1], d_status[:-1])
        idx, nulls = _numbers(arr.indices, np.intp)
        if nulls is not None:
            idx[nulls] = -1
        out[:] = d_out[idx]
        status[:] = d_status[idx]
        return
    if pa.types.is_null(t):
        status[:] = _NULL
        return
    if pa.types.is_timestamp(t):
        values, nulls = _numbers(arr.view(pa.int64()), np.int64)
        if t.unit == "ns":
            np.floor_divide(values, 1000, out=out)
        else:
            _scale(values, _UNIT_US[t.unit], out, status)
    elif pa.types.is_integer(t):  # epoch milliseconds
        if pa.types.is_unsigned_integer(t):
            raw, nulls = _numbers(arr, np.uint64)
            big = raw > np.uint64(_I64_MAX)
            values = np.where(big, 0, raw).astype(np.int64)
            status[big] = _RANGE
        else:
            values, nulls = _numbers(arr, np.int64)
        _scale(values, 1000, out, status)
    elif pa.types.is_floating(t):  # epoch milliseconds, rounded to the microsecond
        x, nulls = _numbers(arr, np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            us = np.rint(x * 1000.0)
            bad = ~np.isfinite(us)
            over = ~bad & (np.abs(us) >= 2.0**63)
        us[bad | over] = 0
        out[:] = us.astype(np.int64)
        status[bad] = _BAD
        status[over] = _RANGE
    elif _is_stringish(t):  # ISO-8601, parsed by a kernel straight from the string buffers
        parse_iso(*_string_buffers(_plain_strings(arr)), out, status)
        return
    else:
        raise TypeError(
            f"expected a timestamp, integer or float epoch milliseconds, or ISO-8601 strings; got {t}"
        )
    if nulls is not None:
        status[nulls] = _NULL


def _scale(values: I64, factor: int, out: I64, status: I8) -> None:
    """``out = values * factor``, flagging values whose product overflows int64."""
    limit = _I64_MAX // factor
    if values.size and (values.max() > limit or values.min() < -limit):
        over = (values > limit) | (values < -limit)
        status[over] = _RANGE
        values = np.where(over, 0, values)
    np.multiply(values, factor, out=out)


def _timestamps(col: Column, n: int) -> tuple[I64, I8]:
    out = np.zeros(n, dtype=np.int64)
    status = np.zeros(n, dtype=np.int8)
    for start, chunk in _chunks(col):
        stop = start + len(chunk)
        _ts_chunk(chunk, out[start:stop], status[start:stop])
    return out, status


# --------------------------------------------------------------------------------------------------
# Kinds, states, status codes
# --------------------------------------------------------------------------------------------------

_KIND_NAMES: Final = {k.name.lower(): int(k) for k in Kind}
_BAD_KIND: Final = -1


def _kind_of(value: Any) -> int:
    return _KIND_NAMES.get(_text(value).strip().lower(), _BAD_KIND)


def _kinds(col: Column | None, n: int) -> I8:
    """Kind code per row; null -> job, unknown -> -1."""
    if col is None or col.null_count == n:
        return np.zeros(n, dtype=np.int8)
    if pa.types.is_integer(col.type):
        values, _ = _numbers(col.combine_chunks(), np.int64)  # nulls read as 0: job
        known = (values >= 0) & (values <= max(Kind))
        return np.where(known, values, _BAD_KIND).astype(np.int8)
    return np.asarray(_map_small(col, n, _kind_of, null=Kind.JOB, dtype=np.int8), dtype=np.int8)


def _state_codes(value: Any) -> int:
    """``job_code | worker_code << 4`` of a state name (0 in a half when unknown for that kind)."""
    name = _text(value).strip().upper()
    job = JOB_STATE_ALIASES.get(name) or JobState.__members__.get(name)
    worker = WorkerState.__members__.get(name)
    return (int(job) if job else 0) | ((int(worker) if worker else 0) << 4)


def _state_pairs(col: Column, n: int) -> npt.NDArray[np.int16]:
    """Per row ``job_code | worker_code << 4``; -1 for null."""
    if pa.types.is_integer(col.type):  # codes given directly
        values, nulls = _numbers(col.combine_chunks(), np.int64)
        job_ok = (values >= 1) & (values <= max(JobState))
        worker_ok = (values >= 1) & (values <= max(WorkerState))
        pairs = np.where(job_ok, values, 0) | (np.where(worker_ok, values, 0) << 4)
        if nulls is not None:
            pairs[nulls] = -1
        return np.asarray(pairs, dtype=np.int16)
    return np.asarray(_map_small(col, n, _state_codes, null=-1, dtype=np.int16), dtype=np.int16)


def _status_codes(col: Column) -> tuple[I32, Bool | None, Bool | None]:
    """Status codes, null mask, invalid mask (not an integer in 0..999)."""
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if _is_stringish(arr.type) or pa.types.is_null(arr.type):
        try:
            arr = pc.cast(arr, pa.float64())
        except pa.ArrowInvalid as exc:
            raise TypeError(f"expected integer HTTP status codes: {exc}") from exc
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        raise TypeError(f"expected integer HTTP status codes, got {arr.type}")
    x, nulls = _numbers(arr, np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~((x >= 0) & (x <= 999) & (np.floor(x) == x))
    if nulls is not None:
        bad &= ~nulls
    return np.where(bad, 0, x).astype(np.int32), nulls, bad if bad.any() else None


# --------------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------------


def _as_chunked(values: Any, name: str) -> Column:
    if isinstance(values, pa.ChunkedArray):
        return values
    if isinstance(values, pa.Array):
        return pa.chunked_array([values])
    try:
        if isinstance(values, np.ndarray | list | tuple):
            arr = pa.array(values)
        elif _is_pandas_series(values):
            arr = pa.Array.from_pandas(values)
        else:
            arr = pa.array(list(values))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError) as exc:
        raise TypeError(f"column {name!r} cannot be converted to Arrow: {exc}") from exc
    return arr if isinstance(arr, pa.ChunkedArray) else pa.chunked_array([arr])


def _is_pandas_series(obj: object) -> bool:
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(obj, pd.Series)


def _as_table(data: Any) -> Any:
    """``data`` as a ``pyarrow.Table`` if it is a record batch or a pandas DataFrame, else as is."""
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    pd = sys.modules.get("pandas")  # pandas is optional: only loaded if the caller has it
    if pd is not None and isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    return data


def _columns(data: Any) -> tuple[dict[str, Column], int]:
    """The event columns of ``data`` (first of duplicate names) and its row count."""
    data = _as_table(data)
    if isinstance(data, pa.Table):
        cols: dict[str, Column] = {}
        for i, name in enumerate(data.column_names):
            cols.setdefault(name, data.column(i))
        return cols, data.num_rows
    if isinstance(data, Mapping):
        cols = {str(k): _as_chunked(v, str(k)) for k, v in data.items()}
        lengths = {name: len(c) for name, c in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns must have equal lengths, got {lengths}")
        return cols, next(iter(lengths.values()), 0)
    raise TypeError(
        "events must be a pyarrow Table or RecordBatch, a pandas DataFrame or a mapping of "
        f"column name -> values; got {type(data).__name__}"
    )


@contextmanager
def _column(name: str) -> Generator[None, None, None]:
    """Name the column in a TypeError raised while reading it."""
    try:
        yield
    except TypeError as exc:
        raise TypeError(f"column {name!r}: {exc}") from exc


def _require(cols: Mapping[str, Column], needed: dict[str, str]) -> None:
    missing = [name for name in needed if name not in cols]
    if missing:
        what = "; ".join(f"{name!r} ({needed[name]})" for name in missing)
        plural = "s" if len(missing) > 1 else ""
        raise ValueError(f"missing required column{plural} {what}; columns present: {sorted(cols)}")


# --------------------------------------------------------------------------------------------------
# normalize
# --------------------------------------------------------------------------------------------------


def normalize(
    data: Any,
    registry: EndpointRegistry,
    *,
    rejections: Rejections | None = None,
    batch_number: int = 0,
    row_offset: int = 0,
) -> tuple[EventBatch, Rejections]:
    """Turn a table of events (SPEC §1) into an :class:`EventBatch`.

    Parameters
    ----------
    data:
        A ``pyarrow.Table`` or ``RecordBatch``, a ``pandas.DataFrame``, or a mapping of column name
        to values (sequence, numpy array or Arrow array). Columns: ``ts`` and ``endpoint`` always;
        ``job_id`` unless every row is a worker event; ``state`` unless every row is a webhook
        event; ``worker_id`` if any row is a worker event; ``status_code`` if any row is a webhook
        event; ``kind`` optional (default ``job``). Other columns are ignored.
    registry:
        Gives endpoint codes; endpoints seen for the first time (in kept rows) are added.
    rejections:
        A report to add this batch's rejected rows to (created when None).
    batch_number:
        Recorded in the samples of rejected rows, to find them in a stream of batches.
    row_offset:
        Added to the row numbers of those samples (when ``data`` is a slice of a larger batch).

    Returns
    -------
    (batch, rejections)
        The usable rows in input order, and the report of the others.

    Raises
    ------
    ValueError
        When a required column is missing (the whole batch is refused).
    TypeError
        When ``data`` or a column has a type that cannot hold what the column means.
    """
    report = Rejections() if rejections is None else rejections
    cols, n = _columns(data)
    _require(cols, {"ts": "every event", "endpoint": "every event"})
    from .job_rows import normalize_job_rows  # imported here: it builds on this module

    fast = normalize_job_rows(cols, n, registry)
    if fast is not None:
        return fast, report

    with _column("kind"):
        kind = _kinds(cols.get("kind"), n)
    is_job = kind == Kind.JOB
    is_worker = kind == Kind.WORKER
    is_webhook = kind == Kind.WEBHOOK
    any_job, any_worker, any_webhook = (bool(m.any()) for m in (is_job, is_worker, is_webhook))
    needed: dict[str, str] = {}
    if any_job or any_webhook:
        needed["job_id"] = "job and webhook events"
    if any_job or any_worker:
        needed["state"] = "job and worker events"
    if any_worker:
        needed["worker_id"] = "worker events"
    if any_webhook:
        needed["status_code"] = "webhook events"
    _require(cols, needed)

    verdicts = _Verdicts(n)
    verdicts.flag("unknown kind", kind == _BAD_KIND)

    with _column("ts"):
        ts, ts_status = _timestamps(cols["ts"], n)
    if ts_status.any():
        for code, reason in _TS_REASON.items():
            verdicts.flag(reason, ts_status == code)

    with _column("endpoint"):
        endpoints = _encode_endpoints(cols["endpoint"], n)
    verdicts.flag("null endpoint", endpoints.codes < 0)

    def on(rows: Bool | None, mask: Bool | None) -> Bool | None:
        """``mask`` restricted to ``rows`` (None: every row)."""
        if mask is None or rows is None:
            return mask
        return mask & rows

    # Rows that need a job_id, rows that need a state. None means every row: all rows are job
    # events (rows of an unknown kind are already rejected).
    job_rows = state_rows = None
    if any_worker or any_webhook:
        job_rows = is_job | is_webhook
        state_rows = is_job | is_worker

    if "job_id" in cols:
        with _column("job_id"):
            job, bad = _keys(cols["job_id"], n)
        if needed.get("job_id"):
            verdicts.flag("null job_id", on(job_rows, job == 0))
            verdicts.flag("invalid job_id", on(job_rows, bad))
    else:
        job = np.zeros(n, dtype=np.int64)

    if "worker_id" in cols:
        with _column("worker_id"):
            worker, bad = _keys(cols["worker_id"], n)
        if any_worker:
            verdicts.flag("null worker_id", on(is_worker, worker == 0))
            verdicts.flag("invalid worker_id", on(is_worker, bad))
    else:
        worker = np.zeros(n, dtype=np.int64)

    if "state" in cols and needed.get("state"):
        with _column("state"):
            pairs = _state_pairs(cols["state"], n)
        if any_worker:
            state = np.where(is_worker, pairs >> 4, pairs & 0xF).astype(np.int8)
        else:
            state = (pairs & 0xF).astype(np.int8)
        if any_webhook:
            state[is_webhook] = 0
        verdicts.flag("null state", on(state_rows, pairs < 0))
        verdicts.flag("unknown state", on(state_rows, (pairs >= 0) & (state == 0)))
    else:
        state = np.zeros(n, dtype=np.int8)

    if any_webhook:
        with _column("status_code"):
            codes, nulls, bad = _status_codes(cols["status_code"])
        status = np.where(is_webhook, codes, -1).astype(np.int32)
        verdicts.flag("null status_code", on(is_webhook, nulls))
        verdicts.flag("invalid status_code", on(is_webhook, bad))
    else:
        status = np.full(n, -1, dtype=np.int32)

    keep: Bool | None = None
    if verdicts.why is not None:
        keep = verdicts.why == 0
        _report(report, verdicts.why, cols, batch_number, row_offset)
    endpoint = registry._codes(endpoints, keep)

    batch = EventBatch(
        ts=ts, kind=kind, endpoint=endpoint, job=job, state=state, worker=worker, status=status
    )
    if keep is not None:
        batch = batch.take(np.flatnonzero(keep))
    return batch, report


def _report(
    report: Rejections, why: I8, cols: Mapping[str, Column], batch_number: int, row_offset: int
) -> None:
    counts = np.bincount(why, minlength=len(REASONS) + 1)
    this = Rejections(total=int(counts[1:].sum()), max_samples=report.max_samples)
    for (reason, _), count in zip(REASONS, counts[1:].tolist(), strict=True):
        if count:
            this.by_reason[reason] = count
    room = report.max_samples - len(report.samples)
    if room > 0:
        for row in np.flatnonzero(why)[:room].tolist():
            reason, column = REASONS[why[row] - 1]
            text = _value_text(cols.get(column), row)
            this.samples.append(RejectedRow(batch_number, row + row_offset, column, reason, text))
    report.merge(this)
