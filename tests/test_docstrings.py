"""The examples in the public docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "jobmetrics.aggregator",
    "jobmetrics.codec",
    "jobmetrics.events",
    "jobmetrics.geometry",
    "jobmetrics.histogram",
    "jobmetrics.snapshot",
    "jobmetrics.timeparse",
    "jobmetrics.windows",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
