"""Request arrival times: a non-homogeneous Poisson process with a daily cycle and bursts.

The rate at time ``t`` is ``rate * diurnal(t) * burst(t)``: ``diurnal`` is a cosine with its
maximum at the endpoint's peak hour (UTC) and ``burst`` is ``burst_factor`` inside a burst, 1
outside. Arrivals are drawn by thinning (Lewis and Shedler): a homogeneous process at the
largest rate, each point kept with probability ``rate(t) / max rate``. Everything is vectorised.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .config import EndpointConfig

__all__ = ["arrival_times", "bursts", "rate_at"]

_DAY_MS = 86_400_000
_HOUR_MS = 3_600_000


def bursts(
    cfg: EndpointConfig, duration_ms: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Start and end times (ms from the simulation start, sorted by start) of the bursts."""
    if cfg.bursts_per_hour == 0 or cfg.burst_factor == 1 or duration_ms <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    n = int(rng.poisson(cfg.bursts_per_hour * duration_ms / _HOUR_MS))
    starts = np.sort(rng.integers(0, duration_ms, size=n, dtype=np.int64))
    lengths = np.rint(rng.exponential(cfg.burst_duration * 1000.0, size=n)).astype(np.int64)
    return starts, starts + lengths


def rate_at(
    cfg: EndpointConfig,
    t_ms: npt.NDArray[np.int64],
    start_ms: int,
    burst_starts: npt.NDArray[np.int64],
    burst_ends: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Arrival rate (requests/s) at times ``t_ms`` (ms from the simulation start)."""
    hour = ((start_ms + t_ms) % _DAY_MS) / _HOUR_MS
    phase = 2.0 * np.pi * (hour - cfg.diurnal_peak_hour) / 24.0
    rate = cfg.rate * (1.0 + cfg.diurnal_amplitude * np.cos(phase))
    if burst_starts.size:
        # the last burst started at or before t, and the latest end among bursts started by then
        last = np.searchsorted(burst_starts, t_ms, side="right") - 1
        reach = np.maximum.accumulate(burst_ends)
        inside = (last >= 0) & (t_ms < reach[np.maximum(last, 0)])
        rate = np.where(inside, rate * cfg.burst_factor, rate)
    return np.asarray(rate, dtype=np.float64)


def arrival_times(
    cfg: EndpointConfig, start_ms: int, duration_ms: int, rng: np.random.Generator
) -> npt.NDArray[np.int64]:
    """Sorted arrival times in ms from the simulation start, all in ``[0, duration_ms)``.

    Examples
    --------
    >>> from jobmetrics.simulate.config import EndpointConfig
    >>> cfg = EndpointConfig(name="x", rate=10.0, diurnal_amplitude=0.0, bursts_per_hour=0.0)
    >>> t = arrival_times(cfg, 0, 3_600_000, np.random.default_rng(1))
    >>> 35_000 < t.size < 37_000, bool((np.diff(t) >= 0).all())
    (True, True)
    """
    if duration_ms <= 0 or cfg.rate == 0:
        return np.zeros(0, dtype=np.int64)
    b_start, b_end = bursts(cfg, duration_ms, rng)
    peak = cfg.rate * (1.0 + cfg.diurnal_amplitude) * (cfg.burst_factor if b_start.size else 1.0)
    n = int(rng.poisson(peak * duration_ms / 1000.0))
    t = np.sort(rng.integers(0, duration_ms, size=n, dtype=np.int64))
    keep = rng.random(n) * peak < rate_at(cfg, t, start_ms, b_start, b_end)
    return t[keep]
