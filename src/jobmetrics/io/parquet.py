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

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["check_writable", "write_parquet"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any work, if ``path`` cannot be written: it is a directory, or its folder
    cannot be created or written. Returns the path (``~`` expanded)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(
            f"output {target} is a directory; give a file name such as {target}/snapshot.parquet"
        )
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the output folder {folder}")
    return target


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
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pq.write_table(table, f, **options)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); give it the mode of the file it replaces
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o644
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(target.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it (POSIX: fsync the directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
