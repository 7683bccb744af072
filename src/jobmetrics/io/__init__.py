"""Reading event logs, writing event logs and snapshots.

* :mod:`jobmetrics.io.readers` — files, directories and globs of Parquet, Arrow IPC, JSON Lines and
  CSV as a stream of Arrow record batches (bounded memory).
* :mod:`jobmetrics.io.eventlog` — an event table written as Parquet, Arrow IPC, JSON Lines or CSV.
* :mod:`jobmetrics.io.parquet` — atomic Parquet writes.
* :mod:`jobmetrics.io.files` — what every writer of the library uses: an early check that the output
  can be written, and atomic files (a temporary file beside the target, then a rename).
"""

from __future__ import annotations

from .eventlog import write_events
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
    "write_events",
    "write_parquet",
]
