"""Writing output files safely: check early that a path can be written, and write through a
temporary file beside the target that is renamed over it (:func:`os.replace`) once complete, so a
reader sees either the previous file or the whole new one, and an interrupted run leaves no
half-written file.

Examples
--------
>>> import os, tempfile
>>> from pathlib import Path
>>> path = Path(tempfile.mkdtemp()) / "out" / "report.txt"
>>> with atomic_file(check_writable(path)) as f:
...     _ = f.write(b"complete")
>>> path.read_bytes(), os.listdir(path.parent)
(b'complete', ['report.txt'])
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_file", "check_writable", "write_bytes"]


def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early, before any work, if ``path`` cannot be written: it is a directory, or its folder
    cannot be created or written. Creates the folder; returns the path (``~`` expanded)."""
    target = Path(path).expanduser()
    if target.is_dir():
        raise IsADirectoryError(f"output {target} is a directory; give a file name inside it")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write to the output folder {folder}")
    return target


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` when the block ends without an error.

    The data goes to a hidden temporary file in the target's folder (``.<name>.<random>.tmp``),
    is flushed to disk, given the mode of the file it replaces (or the usual mode for a new file),
    then renamed over ``path``. On any error — including ``KeyboardInterrupt`` — the temporary file
    is removed and ``path`` is left as it was. Only a killed process can leave a temporary file
    behind, never a partial ``path``.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(target))  # mkstemp creates the file private (0600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(target.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)


def _mode_for(target: Path) -> int:
    if target.exists():
        return target.stat().st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


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
