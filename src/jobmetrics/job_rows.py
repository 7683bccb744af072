"""Normalisation of batches whose rows are all valid job events, in one pass.

This is the common shape of a job log (and what a Parquet reader hands over): dictionary-encoded
or plain string ``kind``/``endpoint``/``state``, integer ``ts``, integer or string ``job_id``, no
nulls. :func:`normalize_job_rows` gives exactly the batch :func:`jobmetrics.events.normalize`
would give, and registers endpoints in the same order, but reads each column once in one kernel
(:func:`jobmetrics._kernels.assemble.assemble_job_rows`) instead of making a dozen numpy passes.
It returns None for any other layout, and for a batch holding a row that is not a valid job
event: ``normalize`` then takes its general path, which also reports the bad rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from ._kernels.assemble import assemble_job_rows
from .events import (
    _I64_MAX,
    _UNIT_US,
    Column,
    EndpointRegistry,
    EventBatch,
    _encode_chunk,
    _is_stringish,
    _keys,
    _keys_chunk,
    _kind_of,
    _numbers,
    _state_codes,
    _text,
)

__all__ = ["normalize_job_rows"]

_NO_ENTRIES = np.zeros(0, dtype=np.int32)


@dataclass(frozen=True)
class _Small:
    """A chunk of a column with few distinct values: per row an entry, per entry a value."""

    rows: npt.NDArray[np.integer]  # entry of each row
    entry_value: npt.NDArray[np.int32]  # value (index into ``values``) of each entry
    values: list[Any]


def _small(chunk: pa.Array) -> _Small | None:
    """Dictionary-encoded or plain strings without nulls as entries and values, else None."""
    t = chunk.type
    if pa.types.is_dictionary(t):
        if not _is_string_dictionary(t) or len(chunk.dictionary) == 0:
            return None
        inner, values, _ = _encode_chunk(chunk.dictionary)
        if (inner < 0).any():  # a null inside the dictionary
            return None
        return _Small(chunk.indices.to_numpy(zero_copy_only=False), inner, values)
    if _is_stringish(t):
        codes, values, _ = _encode_chunk(chunk)
        return _Small(codes, np.arange(len(values), dtype=np.int32), values)
    return None


def _is_string_dictionary(t: pa.DataType) -> bool:
    return pa.types.is_dictionary(t) and _is_stringish(t.value_type)


def _ts_scale(t: pa.DataType) -> tuple[int, bool] | None:
    """(factor to microseconds, nanoseconds?) of an integer or timestamp ``ts`` type, else None."""
    if pa.types.is_timestamp(t):
        return (1, True) if t.unit == "ns" else (_UNIT_US[t.unit], False)
    if pa.types.is_signed_integer(t):
        return 1000, False  # epoch milliseconds
    return None


def _ts_values(chunk: pa.Array) -> npt.NDArray[np.int64]:
    if pa.types.is_timestamp(chunk.type):
        chunk = chunk.view(pa.int64())
    return _numbers(chunk, np.int64)[0]  # no nulls here


def normalize_job_rows(cols: Mapping[str, Column], n: int, registry: EndpointRegistry) -> EventBatch | None:
    """The normalised batch of ``cols`` (``n`` rows), or None when the fast path does not apply."""
    kind_col = cols.get("kind")
    if kind_col is not None and kind_col.null_count == n:
        kind_col = None  # all null: every row is a job event
    job_col, state_col = cols.get("job_id"), cols.get("state")
    if n == 0 or job_col is None or state_col is None:
        return None
    ts_col, ep_col = cols["ts"], cols["endpoint"]
    used = [c for c in (ts_col, ep_col, job_col, state_col, kind_col) if c is not None]
    layout = [len(chunk) for chunk in ts_col.chunks]
    if any(c.null_count for c in used) or any([len(ch) for ch in c.chunks] != layout for c in used):
        return None
    scale = _ts_scale(ts_col.type)
    if scale is None:
        return None
    factor, ns = scale
    int_ids = pa.types.is_signed_integer(job_col.type)
    if not (int_ids or _is_stringish(job_col.type) or _is_string_dictionary(job_col.type)):
        return None

    # the small columns of every chunk, and the endpoint names across chunks (as normalize numbers them)
    chunks: list[tuple[int, int, _Small | None, _Small, _Small]] = []
    names: dict[str, int] = {}
    start = 0
    for k, size in enumerate(layout):
        if size:
            kinds = None if kind_col is None else _small(kind_col.chunk(k))
            eps, states = _small(ep_col.chunk(k)), _small(state_col.chunk(k))
            if eps is None or states is None or (kind_col is not None and kinds is None):
                return None
            for name in eps.values:
                names.setdefault(_text(name), len(names))
            chunks.append((k, start, kinds, eps, states))
        start += size
    # provisional endpoint codes: registered names keep theirs; new names follow in order
    new_names = [name for name in names if registry.get(name) is None]
    provisional = {name: len(registry) + rank for rank, name in enumerate(new_names)}
    code_of = np.array(
        [provisional[name] if name in provisional else registry.get(name) for name in names], dtype=np.int32
    )
    seen = np.zeros(len(names), dtype=bool)

    ts = np.empty(n, dtype=np.int64)
    endpoint = np.empty(n, dtype=np.int32)
    job = np.empty(n, dtype=np.int64)
    state = np.empty(n, dtype=np.int8)
    status = np.empty(n, dtype=np.int32)
    for k, start, kinds, eps, states in chunks:
        stop = start + layout[k]
        ep_global = np.array([names[_text(v)] for v in eps.values], dtype=np.int64)[eps.entry_value]
        ep_seen = np.zeros(len(ep_global), dtype=np.uint8)
        state_of_value = np.array([_state_codes(v) & 0xF for v in states.values], dtype=np.int8)
        kind_rows: npt.NDArray[np.integer] = _NO_ENTRIES
        kind_tab = np.zeros(1, dtype=np.int8)
        if kinds is not None:
            kind_of_value = np.array([_kind_of(v) for v in kinds.values], dtype=np.int8)
            kind_rows, kind_tab = kinds.rows, kind_of_value[kinds.entry_value]
        ids_chunk = job_col.chunk(k)
        if int_ids:
            ids = _numbers(ids_chunk, np.int64)[0]
        else:
            ids = np.empty(len(ids_chunk), dtype=np.int64)
            _keys_chunk(ids_chunk, ids)  # strings: hashed; never invalid
        bad = assemble_job_rows(
            _ts_values(ts_col.chunk(k)), factor, _I64_MAX // factor, ns,
            kind_rows, kind_tab,
            eps.rows, code_of[ep_global], ep_seen,
            states.rows, state_of_value[states.entry_value],
            ids, not int_ids,
            ts[start:stop], endpoint[start:stop], job[start:stop], state[start:stop], status[start:stop],
        )  # fmt: skip
        if bad >= 0:
            return None
        seen[ep_global[ep_seen.astype(bool)]] = True

    # register the new names that rows use, in order; renumber if an unused one was skipped
    for name in new_names:
        if seen[names[name]]:
            registry.code(name)
    if any(registry.get(name) != provisional[name] for name in new_names if seen[names[name]]):
        remap = np.arange(len(registry) + len(new_names), dtype=np.int32)
        for name in new_names:
            final = registry.get(name)
            if final is not None:
                remap[provisional[name]] = final
        endpoint = remap[endpoint]

    worker = _keys(cols["worker_id"], n)[0] if "worker_id" in cols else np.zeros(n, dtype=np.int64)
    return EventBatch(
        ts=ts,
        kind=np.zeros(n, dtype=np.int8),
        endpoint=endpoint,
        job=job,
        state=state,
        worker=worker,
        status=status,
    )
