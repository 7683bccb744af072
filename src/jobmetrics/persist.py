"""Save and restore an :class:`~jobmetrics.Aggregator`'s full state (Arrow IPC or Parquet).

A state file is one Arrow table with one row per array: ``name``, ``dtype``, ``shape``, ``crc32``
and ``data`` (the array's little-endian bytes). The schema metadata key ``jobmetrics.state`` holds
JSON with the format name, the format version (:data:`FORMAT_VERSION`), the aggregator's options,
the endpoint names, the rejections report, the watermark and the other scalars. The arrays are the
engine's (job and worker tables, finished-jobs queue, open window rows, histogram pool,
per-endpoint running state, closed rows, lifetime sums of dropped windows) and the events held for
the watermark; the large mostly empty ones are stored sparse. See docs/persistence.md.

The state is copied under the aggregator's lock and written outside it, into a temporary file that
then replaces ``path`` (a crash while writing leaves the previous file intact).
"""

from __future__ import annotations

import json
import os
import tempfile
import zlib
from datetime import timedelta
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from .events import EndpointRegistry, EventBatch, RejectedRow, Rejections
from .timeparse import parse_duration

if TYPE_CHECKING:
    from .aggregator import Aggregator

__all__ = ["FORMAT", "FORMAT_VERSION", "read_state_info", "restore", "save"]

#: Value of ``format`` in the metadata: what the file is.
FORMAT: Final = "jobmetrics.aggregator-state"
#: Version of the layout written. 2 added the lifetime sums of windows dropped by ``history=``
#: (arrays ``engine.lifetime.*``); :func:`restore` reads versions 2 and 1 (a version-1 state
#: restores with empty lifetime sums, as it had none).
FORMAT_VERSION: Final = 2
_READABLE: Final = (2, 1)
_META_KEY: Final = b"jobmetrics.state"
_DTYPES: Final[dict[str, type[np.generic]]] = {"int8": np.int8, "int32": np.int32, "int64": np.int64}
_SCHEMA: Final = pa.schema(
    [
        ("name", pa.string()),
        ("dtype", pa.string()),
        ("shape", pa.list_(pa.int64())),
        ("crc32", pa.int64()),
        ("data", pa.large_binary()),
    ]
)
_HELD_COLUMNS: Final = ("ts", "kind", "endpoint", "job", "state", "worker", "status")


def _option(value: Any, name: str) -> Any:
    """An option as JSON: durations given as ``timedelta`` or ``numpy.timedelta64`` become µs."""
    if isinstance(value, timedelta | np.timedelta64):
        return parse_duration(value, name=name)
    if isinstance(value, tuple | list):
        return [float(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _capture(agg: Aggregator) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The aggregator's state as (JSON-able scalars, arrays), all copied under its lock."""
    with agg._lock:
        agg._drain_stage()
        arrays = {f"engine.{k}": v for k, v in agg._engine.state().items()}
        held = EventBatch.concat(agg._held) if agg._held else EventBatch.empty()
        held = held.take(np.argsort(held.ts, kind="stable"))  # a copy, in the order one run has
        for column in _HELD_COLUMNS:
            arrays[f"held.{column}"] = getattr(held, column)
        rej = agg.rejections
        info = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "options": {k: _option(v, k) for k, v in agg._options.items()},
            "staging_size": agg._staging_size,
            "endpoints": agg.registry.names(),
            "rejections": {
                "total": rej.total,
                "by_reason": dict(rej.by_reason),
                "max_samples": rej.max_samples,
                "samples": [
                    {"batch": s.batch, "row": s.row, "column": s.column, "reason": s.reason, "value": s.value}
                    for s in rej.samples
                ],
            },
            "batches": agg._batches,
            "max_ts": agg._max_ts,
            "watermark": agg._watermark,
        }
    return info, arrays


def _table(info: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> pa.Table:
    names, dtypes, shapes, crcs, blobs = [], [], [], [], []
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        dtype = a.dtype.name
        if dtype not in _DTYPES:
            raise TypeError(f"state array {name!r} has dtype {dtype}, expected one of {sorted(_DTYPES)}")
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        names.append(name)
        dtypes.append(dtype)
        shapes.append(list(a.shape))
        crcs.append(zlib.crc32(data))
        blobs.append(data)
    schema = _SCHEMA.with_metadata({_META_KEY: json.dumps(info).encode()})
    return pa.table([names, dtypes, shapes, crcs, blobs], schema=schema)


def save(
    agg: Aggregator, path: str | PathLike[str], *, format: Literal["arrow", "parquet"] | None = None
) -> None:
    """Write ``agg``'s full state to ``path``: Arrow IPC (default) or Parquet (``format="parquet"``,
    or a path ending in ``.parquet``/``.pq``). Both are zstd-compressed."""
    path = Path(path)
    if format is None:
        format = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "arrow"
    if format not in ("arrow", "parquet"):
        raise ValueError(f"format must be 'arrow' or 'parquet', got {format!r}")
    info, arrays = _capture(agg)
    table = _table(info, arrays)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        if format == "parquet":
            pq.write_table(table, tmp, compression="zstd")
        else:
            options = pa.ipc.IpcWriteOptions(compression="zstd")
            with pa.OSFile(tmp, "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as w:
                w.write_table(table)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_table(path: Path) -> pa.Table:
    with open(path, "rb") as f:
        magic = f.read(6)
    try:
        if magic == b"ARROW1":
            with pa.memory_map(str(path)) as source:
                return pa.ipc.open_file(source).read_all()
        if magic[:4] == b"PAR1":
            return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{path}: damaged jobmetrics state file ({exc})") from exc
    raise ValueError(f"{path}: not a jobmetrics state file (neither Arrow IPC nor Parquet)")


def _info(table: pa.Table, path: Path) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a jobmetrics state file (no {_META_KEY.decode()!r} metadata)")
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: damaged jobmetrics state file (metadata is not JSON: {exc})") from exc
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path}: not a jobmetrics state file (format {info.get('format')!r})")
    version = info.get("version")
    if version not in _READABLE:
        raise ValueError(
            f"{path}: jobmetrics state format version {version!r}; this jobmetrics reads version "
            f"{FORMAT_VERSION} (and the earlier {', '.join(map(str, _READABLE[1:]))}) only"
        )
    return info


def read_state_info(path: str | PathLike[str]) -> dict[str, Any]:
    """The JSON part of a state file (format, version, options, endpoints, watermark …)."""
    path = Path(path)
    return _info(_read_table(path), path)


def _arrays(table: pa.Table, path: Path) -> dict[str, npt.NDArray[Any]]:
    if table.schema.remove_metadata() != _SCHEMA:
        raise ValueError(f"{path}: damaged jobmetrics state file (unexpected columns {table.schema.names})")
    out: dict[str, npt.NDArray[Any]] = {}
    columns = [table.column(c).to_pylist() for c in ("name", "dtype", "shape", "crc32")]
    data = table.column("data")
    for i, (name, dtype, shape, crc) in enumerate(zip(*columns, strict=True)):
        blob = data[i].as_buffer()
        raw = b"" if blob is None else blob.to_pybytes()
        if dtype not in _DTYPES or shape is None or any(d < 0 for d in shape):
            raise ValueError(f"{path}: damaged jobmetrics state file (array {name!r}: {dtype} {shape})")
        dt = np.dtype(_DTYPES[dtype]).newbyteorder("<")
        if len(raw) != int(np.prod(shape, dtype=np.int64)) * dt.itemsize or zlib.crc32(raw) != crc:
            raise ValueError(f"{path}: damaged jobmetrics state file (array {name!r} fails its checksum)")
        out[name] = np.frombuffer(raw, dtype=dt).astype(_DTYPES[dtype]).reshape(shape)
    return out


def restore(path: str | PathLike[str]) -> Aggregator:
    """An :class:`~jobmetrics.Aggregator` in the state :func:`save` wrote to ``path``.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a jobmetrics
    state, has another format version, or is damaged (checksums of every array are verified).
    """
    from .aggregator import Aggregator

    path = Path(path)
    table = _read_table(path)
    info = _info(table, path)
    arrays = _arrays(table, path)
    if info["version"] >= 2 and "engine.lifetime.values" not in arrays:
        raise ValueError(f"{path}: damaged jobmetrics state file (no lifetime sums in a version 2 state)")
    try:
        options = dict(info["options"])
        options["quantiles"] = tuple(options["quantiles"])
        agg = Aggregator(**options, staging_size=int(info["staging_size"]))
        agg.registry = EndpointRegistry(info["endpoints"])
        rej = info["rejections"]
        agg.rejections = Rejections(
            total=int(rej["total"]),
            by_reason={str(k): int(v) for k, v in rej["by_reason"].items()},
            samples=[RejectedRow(**s) for s in rej["samples"]],
            max_samples=int(rej["max_samples"]),
        )
        agg._batches = int(info["batches"])
        agg._max_ts = int(info["max_ts"])
        agg._watermark = int(info["watermark"])
        engine_state = {k.removeprefix("engine."): v for k, v in arrays.items() if k.startswith("engine.")}
        agg._engine.load_state(engine_state)
        held = EventBatch(**{c: arrays[f"held.{c}"] for c in _HELD_COLUMNS})
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: damaged jobmetrics state file (missing or bad {exc})") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: damaged jobmetrics state file ({exc})") from exc
    if agg._engine.n_endpoints > len(agg.registry) or agg._engine.slot_of.shape[0] < len(agg.registry):
        raise ValueError(f"{path}: damaged jobmetrics state file (endpoint tables do not match the names)")
    agg._held = [held] if len(held) else []
    return agg
