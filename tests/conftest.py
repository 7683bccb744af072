"""Shared test configuration: the hypothesis profile and the location of the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# deadline=None: numba compiles kernels on the first example, which would trip any deadline.
settings.register_profile(
    "jobmetrics",
    deadline=None,
    max_examples=int(os.environ.get("JOBMETRICS_HYPOTHESIS_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("jobmetrics")

#: ``shared/data`` beside the repository root (the repository root is the parent of ``tests/``).
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test when it is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA
