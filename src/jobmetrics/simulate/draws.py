"""Buffered random streams: numbers drawn in vectorised blocks, handed out one at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Stream"]


class Stream:
    """Values of ``draw(block)`` handed out one by one by :meth:`next`, refilled a block at a time.

    ``draw`` must be deterministic given its own generator, so the values a stream yields depend on
    its seed only, not on how many values other streams gave out.

    Examples
    --------
    >>> s = Stream(lambda n: np.arange(n), block=3)
    >>> [s.next() for _ in range(5)]
    [0, 1, 2, 0, 1]
    """

    __slots__ = ("_block", "_buf", "_draw", "_i")

    def __init__(self, draw: Callable[[int], npt.NDArray[Any]], *, block: int = 4096) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block!r}")
        self._draw = draw
        self._block = block
        self._buf: list[Any] = []
        self._i = 0

    def next(self) -> Any:
        """The next value (a Python int or float)."""
        i = self._i
        buf = self._buf
        if i == len(buf):
            buf = self._buf = np.asarray(self._draw(self._block)).tolist()
            i = 0
        self._i = i + 1
        return buf[i]
