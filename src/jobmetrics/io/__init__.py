"""Reading event logs and writing Parquet.

* :mod:`jobmetrics.io.readers` — files, directories and globs of Parquet, Arrow IPC, JSON Lines and
  CSV as a stream of Arrow record batches (bounded memory).
* :mod:`jobmetrics.io.parquet` — atomic Parquet writes (a temporary file, then a rename).
"""

from __future__ import annotations

from .parquet import write_parquet
from .readers import FORMATS, Chunk, LogReadError, Malformed, Source, discover, read_batches

__all__ = [
    "FORMATS",
    "Chunk",
    "LogReadError",
    "Malformed",
    "Source",
    "discover",
    "read_batches",
    "write_parquet",
]
