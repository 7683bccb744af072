"""The error measure of the DDSketch paper (Masson, Rim and Lee, VLDB 2019, section 4).

For a data set ``x`` of ``n`` values sorted ascending and a quantile ``q``, any value between the
order statistics ``lo = x[floor(q (n - 1))]`` and ``hi = x[ceil(q (n - 1))]`` is an exact answer. An
estimate inside ``[lo, hi]`` has error 0; below, its relative error is ``(lo - estimate) / lo``;
above, ``(estimate - hi) / hi``: the distance to the nearest exact answer, relative to it.

``q (n - 1)`` is computed exactly, taking ``q`` as the decimal it is written as (``0.1`` is one
tenth, not the binary double just above it), so ``floor`` and ``ceil`` pick the order statistics the
definition names even where a floating-point product would round across an integer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import numpy.typing as npt

__all__ = ["QUANTILES", "exact_bounds", "relative_error", "relative_errors"]

#: The quantiles of the study (those of the DDSketch paper's figures, plus P70 and P98, which
#: jobmetrics reports by default).
QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.7, 0.9, 0.95, 0.98, 0.99, 0.999)


def _rank_bounds(q: float, n: int) -> tuple[int, int]:
    if n <= 0:
        raise ValueError(f"need at least one value, got n={n}")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q!r}")
    pos = Fraction(repr(float(q))) * (n - 1)
    return math.floor(pos), math.ceil(pos)


def exact_bounds(sorted_values: npt.ArrayLike, q: float) -> tuple[float, float]:
    """``(lo, hi)``: the order statistics at ``floor(q (n - 1))`` and ``ceil(q (n - 1))``.

    ``sorted_values`` must be sorted ascending (not checked: the caller sorts once for all
    quantiles).
    """
    x = np.asarray(sorted_values)
    lo, hi = _rank_bounds(q, int(x.shape[0]))
    return float(x[lo]), float(x[hi])


def relative_error(estimate: float, lo: float, hi: float) -> float:
    """Relative error of ``estimate`` against the exact answers ``[lo, hi]`` (0 inside).

    ``inf`` when the estimate lies off an exact answer of 0 (a relative error is then undefined).
    """
    if lo > hi:
        raise ValueError(f"lo must be <= hi, got lo={lo}, hi={hi}")
    est = float(estimate)
    if math.isnan(est):
        return math.inf
    if lo <= est <= hi:
        return 0.0
    if est < lo:
        return (lo - est) / lo if lo > 0 else math.inf
    return (est - hi) / hi if hi > 0 else math.inf


def relative_errors(
    sorted_values: npt.ArrayLike, estimates: Sequence[float] | npt.ArrayLike, quantiles: Sequence[float]
) -> npt.NDArray[np.float64]:
    """Relative error of each estimate against its quantile's exact answers."""
    est = np.asarray(estimates, dtype=np.float64).reshape(-1)
    if est.shape[0] != len(quantiles):
        raise ValueError(f"{est.shape[0]} estimates for {len(quantiles)} quantiles")
    out = np.empty(len(quantiles), dtype=np.float64)
    for i, q in enumerate(quantiles):
        lo, hi = exact_bounds(sorted_values, q)
        out[i] = relative_error(float(est[i]), lo, hi)
    return out
