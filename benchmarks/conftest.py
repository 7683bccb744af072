"""Shared benchmark settings: workload sizes and per-value figures.

Sizes are the full ones by default. ``JOBMETRICS_BENCH_SCALE`` (a float, default 1) scales every
workload, e.g. ``JOBMETRICS_BENCH_SCALE=0.1`` for a quick look. With ``--benchmark-disable`` (CI:
the benchmarks run once each, as correctness tests) the sizes shrink to a smoke scale so that the
whole folder stays fast.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import pytest

#: Scale used when pytest-benchmark is disabled: every benchmark then runs once, as a test.
SMOKE_SCALE = 0.001


@pytest.fixture(scope="session")
def bench_scale(request: pytest.FixtureRequest) -> float:
    """Factor applied to every workload size."""
    if request.config.getoption("benchmark_disable", default=False):
        return SMOKE_SCALE
    scale = float(os.environ.get("JOBMETRICS_BENCH_SCALE", "1"))
    if not scale > 0:
        raise pytest.UsageError(f"JOBMETRICS_BENCH_SCALE must be > 0, got {scale}")
    return scale


def _scaled(size: int, scale: float, *, minimum: int = 1000, multiple: int = 1000) -> int:
    n = int(size * scale) // multiple * multiple
    return max(minimum, n)


@pytest.fixture(scope="session")
def sized(bench_scale: float) -> Callable[..., int]:
    """``sized(n)``: ``n * bench_scale`` rounded down to a multiple of 1000, at least 1000."""
    return functools.partial(_scaled, scale=bench_scale)


def _per_value(benchmark: Any, n: int, **info: object) -> None:
    extra = benchmark.extra_info
    extra["values"] = n
    extra.update(info)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        median = stats.stats.median
        extra["ns_per_value"] = round(median / n * 1e9, 3)
        extra["values_per_s"] = round(n / median)


@pytest.fixture(scope="session")
def per_value() -> Callable[..., None]:
    """``per_value(benchmark, n, **info)``: put n and, when timed, median ns/value in extra_info."""
    return _per_value
