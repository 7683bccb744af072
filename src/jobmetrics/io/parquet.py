"""Atomic Parquet writes: the table goes to a temporary file beside the target, which is then
renamed over it (:func:`os.replace`), so a reader sees either the previous file or the complete new
one, and an interrupted run leaves no half-written file.

Examples
--------
>>> import pyarrow as pa, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "out", "snapshot.parquet")
>>> write_parquet(pa.table({"x": [1, 2]}), path)
>>> sorted(os.listdir(os.path.dirname(path)))
['snapshot.parquet']
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .files import atomic_file, check_writable

__all__ = ["check_writable", "write_parquet"]


def write_parquet(table: pa.Table, path: str | os.PathLike[str], **options: Any) -> None:
    """Write ``table`` to ``path`` as Parquet, atomically.

    The data goes to a hidden temporary file in the target's folder (``.<name>.<random>.tmp``),
    is flushed to disk, then renamed over ``path``. On any error — including ``KeyboardInterrupt`` —
    the temporary file is removed and ``path`` is left as it was. Only a killed process can leave a
    temporary file behind (never a partial ``path``). ``options`` go to
    :func:`pyarrow.parquet.write_table` (default compression ``zstd``).
    """
    target = check_writable(path)
    options.setdefault("compression", "zstd")
    with atomic_file(target) as f:
        pq.write_table(table, f, **options)
