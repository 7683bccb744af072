"""A background thread that moves an :class:`~jobmetrics.Aggregator`'s watermark by processing time.

Windows close when the watermark passes their end; the watermark follows the events' time, so an
endpoint that goes quiet would keep its last window open. :meth:`Aggregator.tick` moves the
watermark to ``now - allowed_lateness``; a :class:`Ticker` calls it every ``interval`` from a
daemon thread. Usually started with :meth:`Aggregator.start_ticker`.

Examples
--------
>>> from jobmetrics import Aggregator
>>> agg = Aggregator(window="60s", allowed_lateness="5s")
>>> with agg.start_ticker("1s") as ticker:
...     agg.record(endpoint="sdxl", job_id="j-1", state="IN_QUEUE")
>>> ticker.running
False
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .timeparse import parse_duration

if TYPE_CHECKING:
    from .aggregator import Aggregator

__all__ = ["Ticker"]


class Ticker:
    """Calls ``aggregator.tick(clock())`` every ``interval`` on a daemon thread until stopped.

    Parameters
    ----------
    aggregator:
        The aggregator to tick.
    interval:
        Time between ticks: a duration (``"1s"``, ``"250ms"``, a ``timedelta``) or µs as an int;
        a float is taken as seconds. At least 1 ms.
    clock:
        Returns the processing time to tick to (anything ``Aggregator.tick`` accepts); None
        (default) ticks to the wall clock.

    A tick that raises stops the thread; the exception is kept in :attr:`error` and raised again
    (as the cause of a RuntimeError) by :meth:`stop`. Use as a context manager to stop on exit.
    """

    def __init__(
        self,
        aggregator: Aggregator,
        interval: str | int | float | timedelta = "1s",
        *,
        clock: Callable[[], Any] | None = None,
    ) -> None:
        if isinstance(interval, float):
            seconds = interval
        else:
            seconds = parse_duration(interval, name="interval") / 1e6
        if not seconds >= 0.001:
            raise ValueError(f"interval must be at least 1ms, got {interval!r}")
        self.aggregator = aggregator
        self.interval = seconds
        self.clock = clock
        #: Ticks done so far.
        self.ticks = 0
        #: The exception that stopped the thread, if one did.
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"Ticker(interval={self.interval}s, ticks={self.ticks}, {state})"

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Ticker:
        """Start the thread (once); returns self."""
        if self._thread is not None:
            raise RuntimeError("this ticker was already started; create a new one")
        self._thread = threading.Thread(target=self._run, name="jobmetrics-ticker", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        tick, clock = self.aggregator.tick, self.clock
        while not self._stop.wait(self.interval):
            try:
                tick(None if clock is None else clock())
            except BaseException as exc:  # kept for stop(), which raises it in the caller's thread
                self.error = exc
                return
            self.ticks += 1

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the thread and wait for it (at most ``timeout`` seconds). Raises RuntimeError if
        a tick had failed (the tick's exception as its cause) or the thread did not stop in time."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"the ticker thread did not stop within {timeout}s")
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"a tick failed: {error!r}") from error

    def __enter__(self) -> Ticker:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
