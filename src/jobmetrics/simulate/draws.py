"""Buffered random streams: numbers drawn in vectorised blocks, handed out one at a time."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Stream"]


def _blocks(draw: Callable[[int], npt.NDArray[Any]], block: int) -> Iterator[list[Any]]:
    while True:
        yield np.asarray(draw(block)).tolist()


class Stream:
    """Values of ``draw(block)`` handed out one by one by :meth:`next`, refilled a block at a time.

    ``draw`` must be deterministic given its own generator, so the values a stream yields depend on
    its seed only, not on how many values other streams gave out. ``next`` is the ``__next__`` of
    a C iterator: a call costs about as much as a list index.

    Examples
    --------
    >>> s = Stream(lambda n: np.arange(n), block=3)
    >>> [s.next() for _ in range(5)]
    [0, 1, 2, 0, 1]
    """

    __slots__ = ("next",)

    def __init__(self, draw: Callable[[int], npt.NDArray[Any]], *, block: int = 4096) -> None:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block!r}")
        #: The next value (a Python int or float).
        self.next: Callable[[], Any] = itertools.chain.from_iterable(_blocks(draw, block)).__next__
