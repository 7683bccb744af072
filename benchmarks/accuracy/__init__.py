"""Accuracy of jobmetrics' HdrHistogram against the sketches people use for latency percentiles.

* :mod:`.datasets`: the synthetic distributions and the real traces, as integer microseconds.
* :mod:`.method`: the error measure of the DDSketch paper (Masson, Rim and Lee, VLDB 2019).
* :mod:`.sketches`: one adapter per sketch (insert, merge, query, serialise, measure).
* :mod:`.study`: runs every sketch on every data set, alone and as 1 000 merged partial sketches.
"""

from __future__ import annotations

from .method import QUANTILES, exact_bounds, relative_error, relative_errors

__all__ = ["QUANTILES", "exact_bounds", "relative_error", "relative_errors"]
