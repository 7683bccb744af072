"""The examples in the public docstrings run and print what they show, and every public entry
point has a docstring."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil

import pytest

import jobmetrics

#: every module of the package except the numba kernels (plain functions over arrays)
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(jobmetrics.__path__, prefix="jobmetrics.")
    if "._kernels" not in info.name
)


def test_the_walk_finds_the_modules() -> None:
    for name in ("jobmetrics.aggregator", "jobmetrics.batch", "jobmetrics.prometheus", "jobmetrics.cli.demo"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


@pytest.mark.parametrize("name", MODULES)
def test_public_names_have_docstrings(name: str) -> None:
    """Modules, and the public classes and functions they define (``__all__``, or every name not
    starting with ``_``), with their public methods."""
    module = importlib.import_module(name)
    assert inspect.getdoc(module), f"module {name} has no docstring"
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    missing = []
    for attr in names:
        obj = getattr(module, attr)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)) or obj.__module__ != name:
            continue
        if not inspect.getdoc(obj):
            missing.append(attr)
        if inspect.isclass(obj):
            for meth, member in vars(obj).items():
                if meth.startswith("_") or not inspect.isfunction(member):
                    continue
                if not inspect.getdoc(member):
                    missing.append(f"{attr}.{meth}")
    assert not missing, f"{name}: no docstring on {missing}"
