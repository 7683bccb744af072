"""The one place that owns numba's options for every kernel.

``cache=True`` keeps compiled machine code on disk (next to the package, in ``__pycache__``) so
only the first import on a machine pays for compilation; ``nogil=True`` lets callers run kernels
from several threads; ``error_model="numpy"`` keeps division semantics of numpy (no Python
exception checks in inner loops). ``boundscheck`` stays numba's default (off): kernels check
indices themselves where input can be wrong.
"""

from __future__ import annotations

from typing import Any

import numba

__all__ = ["kernel"]

_OPTIONS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy"}


def kernel(func: Any) -> Any:
    """Compile ``func`` with the project's numba options."""
    return numba.njit(**_OPTIONS)(func)
