"""What a simulated endpoint looks like: distributions, traffic, worker pool, failure rates.

:class:`EndpointConfig` holds every parameter of one endpoint (times in seconds); :class:`HeavyTail`
is the duration distribution used throughout (a lognormal body with an optional Pareto tail).
:data:`PROFILES` are named endpoint types and :data:`PRESETS` named sets of them.

Examples
--------
>>> cfg = PROFILES["sdxl"]
>>> cfg.name, cfg.max_workers
('sdxl', 8)
>>> cfg.replace(rate=2.0, name="sdxl-fast").rate
2.0
>>> [c.name for c in preset("three")]
['llm', 'sdxl', 'whisper']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PRESETS", "PROFILES", "EndpointConfig", "HeavyTail", "preset", "resolve_endpoints"]


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, int | float) and math.isfinite(value) and ok):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def _probability(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class HeavyTail:
    """A duration distribution in seconds: lognormal body, optional Pareto tail.

    A draw is ``median * exp(sigma * Z)`` (``Z`` standard normal); with probability ``tail_prob``
    it is further multiplied by ``1 + P`` where ``P`` is Lomax (Pareto II) with shape
    ``tail_alpha``: a few draws are many times the median, as real execution and model-load times
    are. ``sigma=0`` and ``tail_prob=0`` give a constant.
    """

    median: float
    sigma: float = 0.5
    tail_prob: float = 0.0
    tail_alpha: float = 1.5

    def __post_init__(self) -> None:
        _positive("median", self.median)
        _positive("sigma", self.sigma, allow_zero=True)
        _probability("tail_prob", self.tail_prob)
        _positive("tail_alpha", self.tail_alpha)

    def sample(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
        """``n`` draws in seconds (always the same number of random numbers per draw)."""
        x = self.median * np.exp(self.sigma * rng.standard_normal(n))
        tail = rng.random(n) < self.tail_prob
        x *= np.where(tail, 1.0 + rng.pareto(self.tail_alpha, n), 1.0)
        return x

    def sample_ms(self, rng: np.random.Generator, n: int) -> npt.NDArray[np.int64]:
        """``n`` draws in whole milliseconds, at least 1 ms, capped at 30 days."""
        ms = np.rint(self.sample(rng, n) * 1000.0)
        return np.clip(ms, 1, 30 * 86_400_000).astype(np.int64)


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Every parameter of one simulated endpoint. Times are in seconds, rates per second
    unless named ``*_per_hour``.

    Traffic
        ``rate`` mean requests/s; ``diurnal_amplitude`` (0…1) and ``diurnal_peak_hour`` (UTC)
        shape a daily cycle ``rate * (1 + A cos(2π (hour - peak) / 24))``; bursts start at
        ``bursts_per_hour``, last an exponential time of mean ``burst_duration`` and multiply
        the rate by ``burst_factor``.
    Jobs
        ``execution`` time per attempt; ``dispatch_latency`` from entering the queue to being
        visible to workers; each attempt fails with ``failure_prob`` (partway through its
        execution) and is retried after ``retry_backoff * 2**(attempt - 1)`` up to
        ``max_retries`` times; an attempt running longer than ``execution_timeout`` ends
        ``TIMED_OUT`` (not retried); a job waiting in the queue longer than ``queue_ttl`` ends
        ``TIMED_OUT``; a fraction ``cancel_prob`` of jobs is cancelled an exponential time of
        mean ``cancel_after`` after submission (if still queued or running then).
    Workers
        between ``min_workers`` (started warm, without a cold start) and ``max_workers``; the
        scaler wants ``ceil((queued + running) / jobs_per_worker)`` workers and starts cold
        ones until it has them; an idle worker leaves (``OFFLINE``) after ``idle_timeout`` if
        the pool is above its minimum. A cold start is ``container_start + model_load``; a
        fraction ``cold_start_failure_prob`` of starts fail (``UNHEALTHY``, then ``OFFLINE``)
        and ``throttle_on_start_prob`` wait ``throttle_duration`` ``THROTTLED`` for a GPU.
        Idle workers are throttled ``throttles_per_hour`` times an hour; ready workers turn
        ``UNHEALTHY`` ``unhealthy_per_hour`` times an hour (a running job is requeued) and,
        ``unhealthy_duration`` later, recover with ``unhealthy_recover_prob`` (back to work) or
        leave (``OFFLINE``); an unhealthy worker keeps its slot of ``max_workers`` meanwhile.
    Webhooks
        a fraction ``webhook_prob`` of jobs has a webhook, called ``webhook_latency`` after the
        job ends (``COMPLETED``, last ``FAILED`` or ``TIMED_OUT``); an attempt succeeds (200)
        with ``webhook_success_prob``, else gets no response (0), a 5xx or a 4xx; 0 and 5xx are
        retried after ``webhook_backoff * 2**(attempt - 1)``, up to 3 attempts.
    """

    name: str
    rate: float = 1.0
    diurnal_amplitude: float = 0.3
    diurnal_peak_hour: float = 15.0
    bursts_per_hour: float = 1.0
    burst_duration: float = 120.0
    burst_factor: float = 3.0
    execution: HeavyTail = HeavyTail(2.0, 0.6, 0.03, 1.5)
    dispatch_latency: HeavyTail = HeavyTail(0.05, 0.6)
    failure_prob: float = 0.03
    max_retries: int = 2
    retry_backoff: float = 2.0
    execution_timeout: float = 600.0
    queue_ttl: float = 900.0
    cancel_prob: float = 0.01
    cancel_after: float = 30.0
    min_workers: int = 0
    max_workers: int = 5
    jobs_per_worker: int = 1
    idle_timeout: float = 5.0
    container_start: HeavyTail = HeavyTail(6.0, 0.4, 0.02, 2.0)
    model_load: HeavyTail = HeavyTail(15.0, 0.5, 0.05, 1.5)
    cold_start_failure_prob: float = 0.02
    throttle_on_start_prob: float = 0.05
    throttle_duration: HeavyTail = HeavyTail(20.0, 0.8)
    throttles_per_hour: float = 0.5
    unhealthy_per_hour: float = 0.1
    unhealthy_duration: HeavyTail = HeavyTail(30.0, 0.5)
    unhealthy_recover_prob: float = 0.5
    webhook_prob: float = 0.3
    webhook_latency: HeavyTail = HeavyTail(0.2, 0.7)
    webhook_success_prob: float = 0.93
    webhook_backoff: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "name" or isinstance(value, HeavyTail):
                continue
            if f.name.endswith("_prob") or f.name == "diurnal_amplitude":
                _probability(f.name, value)
            elif f.name in ("min_workers", "max_workers", "max_retries", "jobs_per_worker"):
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ValueError(f"{f.name} must be an integer >= 0, got {value!r}")
            elif f.name in ("rate", "bursts_per_hour", "throttles_per_hour", "unhealthy_per_hour"):
                _positive(f.name, value, allow_zero=True)
            elif f.name == "diurnal_peak_hour":
                if not (isinstance(value, int | float) and 0 <= value < 24):
                    raise ValueError(f"diurnal_peak_hour must be in [0, 24), got {value!r}")
            else:
                _positive(f.name, value)
        if self.burst_factor < 1:
            raise ValueError(f"burst_factor must be >= 1, got {self.burst_factor!r}")
        if self.max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {self.max_workers!r}")
        if self.jobs_per_worker < 1:
            raise ValueError(f"jobs_per_worker must be >= 1, got {self.jobs_per_worker!r}")
        if self.min_workers > self.max_workers:
            raise ValueError(
                f"min_workers ({self.min_workers}) must not exceed max_workers ({self.max_workers})"
            )

    def replace(self, **changes: Any) -> EndpointConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


#: Named endpoint types, loosely modelled on serverless GPU workloads.
PROFILES: dict[str, EndpointConfig] = {
    # chat completions: many short requests, a long tail of long generations, slow model load
    "llm": EndpointConfig(
        name="llm",
        rate=1.5,
        execution=HeavyTail(2.5, 0.7, 0.05, 1.3),
        execution_timeout=120.0,
        max_workers=12,
        min_workers=2,
        idle_timeout=10.0,
        container_start=HeavyTail(8.0, 0.4, 0.02, 2.0),
        model_load=HeavyTail(40.0, 0.4, 0.05, 1.5),
        webhook_prob=0.1,
    ),
    # image generation: steady seconds-long jobs
    "sdxl": EndpointConfig(
        name="sdxl",
        rate=0.4,
        diurnal_peak_hour=18.0,
        execution=HeavyTail(6.0, 0.3, 0.01, 2.0),
        failure_prob=0.05,
        max_workers=8,
        idle_timeout=15.0,
        container_start=HeavyTail(6.0, 0.4, 0.02, 2.0),
        model_load=HeavyTail(20.0, 0.4, 0.03, 1.5),
        webhook_prob=0.6,
    ),
    # speech to text: bursty batch uploads, few workers
    "whisper": EndpointConfig(
        name="whisper",
        rate=0.25,
        diurnal_peak_hour=10.0,
        bursts_per_hour=3.0,
        burst_factor=6.0,
        execution=HeavyTail(8.0, 0.8, 0.03, 1.4),
        execution_timeout=120.0,
        max_workers=6,
        queue_ttl=180.0,
        cancel_prob=0.03,
        container_start=HeavyTail(4.0, 0.4),
        model_load=HeavyTail(8.0, 0.5, 0.05, 1.5),
        webhook_prob=0.8,
        webhook_success_prob=0.85,
    ),
    # embeddings: high rate, tens of milliseconds, always-on workers
    "embed": EndpointConfig(
        name="embed",
        rate=20.0,
        execution=HeavyTail(0.04, 0.5, 0.01, 2.0),
        dispatch_latency=HeavyTail(0.01, 0.5),
        failure_prob=0.005,
        min_workers=2,
        max_workers=6,
        jobs_per_worker=8,
        idle_timeout=30.0,
        container_start=HeavyTail(3.0, 0.3),
        model_load=HeavyTail(4.0, 0.3),
        webhook_prob=0.0,
        cancel_prob=0.0,
    ),
}

#: Named sets of endpoints: ``three`` is what ``jobmetrics demo`` simulates.
PRESETS: dict[str, tuple[str, ...]] = {
    "three": ("llm", "sdxl", "whisper"),
    "all": ("llm", "sdxl", "whisper", "embed"),
    **{name: (name,) for name in PROFILES},
}


def preset(name: str) -> tuple[EndpointConfig, ...]:
    """The endpoints of the preset ``name`` (see :data:`PRESETS`)."""
    try:
        names = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return tuple(PROFILES[n] for n in names)


def resolve_endpoints(
    endpoints: str | EndpointConfig | Iterable[str | EndpointConfig] | Mapping[str, Any],
) -> tuple[EndpointConfig, ...]:
    """Endpoints from a preset name, a comma-separated list of profile names, one or more
    :class:`EndpointConfig`, or a mapping of endpoint name -> config or parameter dict.

    A profile name may be followed by ``:<name>`` to rename it (``"llm:chat-a,llm:chat-b"``).
    Endpoint names must be distinct.
    """
    if isinstance(endpoints, EndpointConfig):
        out: tuple[EndpointConfig, ...] = (endpoints,)
    elif isinstance(endpoints, str):
        text = endpoints.strip()
        if text in PRESETS:
            out = preset(text)
        else:
            out = tuple(_profile(part.strip()) for part in text.split(",") if part.strip())
            if not out:
                raise ValueError(f"no endpoints in {endpoints!r}")
    elif isinstance(endpoints, Mapping):
        items: list[EndpointConfig] = []
        for name, spec in endpoints.items():
            if isinstance(spec, EndpointConfig):
                items.append(spec.replace(name=name))
            elif isinstance(spec, Mapping):
                items.append(EndpointConfig(name=name, **spec))
            else:
                raise TypeError(f"endpoint {name!r}: expected an EndpointConfig or a dict, got {spec!r}")
        out = tuple(items)
    else:
        items = []
        for item in endpoints:
            if isinstance(item, EndpointConfig):
                items.append(item)
            elif isinstance(item, str):
                items.append(_profile(item))
            else:
                raise TypeError(f"expected an EndpointConfig or a profile name, got {item!r}")
        out = tuple(items)
    if not out:
        raise ValueError("at least one endpoint is needed")
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"endpoint names must be distinct, repeated: {dupes}")
    return out


def _profile(text: str) -> EndpointConfig:
    base, _, rename = text.partition(":")
    cfg = PROFILES.get(base)
    if cfg is None:
        raise ValueError(
            f"unknown endpoint profile {base!r}; choose among {sorted(PROFILES)} or presets {sorted(PRESETS)}"
        )
    return cfg.replace(name=rename) if rename else cfg
