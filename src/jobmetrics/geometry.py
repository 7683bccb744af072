"""HdrHistogram geometry: how values map to the counts array.

The same arithmetic as the Java and C reference implementations, so the counts index of every value
(and therefore every encoded histogram) is interchangeable with theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["MAX_SIGNIFICANT_FIGURES", "Geometry", "lowest_equivalent_values"]

MAX_SIGNIFICANT_FIGURES = 5


def lowest_equivalent_values(
    indices: npt.ArrayLike, unit_magnitude: int, half_magnitude: int
) -> npt.NDArray[np.int64]:
    """The lowest value of the bucket at each counts index (vectorised; the bucket at index ``i``
    ends where the one at ``i + 1`` starts)."""
    idx = np.asarray(indices, dtype=np.int64)
    half = 1 << half_magnitude
    bucket = (idx >> half_magnitude) - 1
    sub = (idx & (half - 1)) + half
    low = bucket < 0
    sub = np.where(low, sub - half, sub)
    bucket = np.where(low, 0, bucket)
    return (sub << (bucket + unit_magnitude)).astype(np.int64)


def _bucket_count(smallest_untrackable: int, highest: int) -> int:
    """Buckets needed so that ``highest`` is trackable (the reference's ``<=`` loop)."""
    buckets = 1
    while smallest_untrackable <= highest:
        if smallest_untrackable > (2**63 - 1) // 2:
            return buckets + 1
        smallest_untrackable <<= 1
        buckets += 1
    return buckets


@dataclass(frozen=True, slots=True)
class Geometry:
    """Bucket layout of an HdrHistogram.

    Parameters
    ----------
    lowest:
        Lowest discernible value (>= 1). Values below it share the first sub-buckets.
    highest:
        Highest trackable value (>= 2 * lowest).
    significant_figures:
        Decimal digits of precision kept for every value, 0 to 5.

    Examples
    --------
    >>> g = Geometry(1, 3_600_000_000, 3)
    >>> g.sub_bucket_count, g.bucket_count, g.counts_len
    (2048, 22, 23552)
    """

    lowest: int
    highest: int
    significant_figures: int
    # Derived once in __post_init__ (the layout is immutable); not part of init, repr, eq or hash.
    unit_magnitude: int = field(init=False, repr=False, compare=False)
    """floor(log2(lowest))."""
    sub_bucket_count_magnitude: int = field(init=False, repr=False, compare=False)
    """ceil(log2(2 * 10**significant_figures))."""
    half_magnitude: int = field(init=False, repr=False, compare=False)
    """log2 of half the sub-bucket count (at least 0)."""
    sub_bucket_count: int = field(init=False, repr=False, compare=False)
    bucket_count: int = field(init=False, repr=False, compare=False)
    """Buckets needed so that ``highest`` is trackable (the reference's ``<=`` loop)."""
    counts_len: int = field(init=False, repr=False, compare=False)
    """Length of the dense counts array."""

    def __post_init__(self) -> None:
        for name in ("lowest", "highest", "significant_figures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {value!r}")
        if self.lowest < 1:
            raise ValueError(f"lowest must be >= 1, got {self.lowest}")
        if not 0 <= self.significant_figures <= MAX_SIGNIFICANT_FIGURES:
            raise ValueError(
                f"significant_figures must be between 0 and {MAX_SIGNIFICANT_FIGURES}, "
                f"got {self.significant_figures}"
            )
        if self.highest < 2 * self.lowest:
            raise ValueError(f"highest must be >= 2 * lowest ({2 * self.lowest}), got {self.highest}")
        if self.highest >= 2**63:
            raise ValueError(f"highest must fit in int64, got {self.highest}")
        unit_magnitude = self.lowest.bit_length() - 1
        sub_bucket_count_magnitude = int(2 * 10**self.significant_figures - 1).bit_length()
        half_magnitude = max(sub_bucket_count_magnitude, 1) - 1
        if unit_magnitude + half_magnitude + 1 > 62:
            raise ValueError(
                f"lowest={self.lowest} with significant_figures={self.significant_figures} "
                "leaves no room for buckets in 64-bit values"
            )
        sub_bucket_count = 1 << (half_magnitude + 1)
        bucket_count = _bucket_count(sub_bucket_count << unit_magnitude, self.highest)
        set_derived = object.__setattr__  # the dataclass is frozen
        set_derived(self, "unit_magnitude", unit_magnitude)
        set_derived(self, "sub_bucket_count_magnitude", sub_bucket_count_magnitude)
        set_derived(self, "half_magnitude", half_magnitude)
        set_derived(self, "sub_bucket_count", sub_bucket_count)
        set_derived(self, "bucket_count", bucket_count)
        set_derived(self, "counts_len", (bucket_count + 1) * (sub_bucket_count // 2))

    @property
    def max_relative_error(self) -> float:
        """Bound on |reported - true| / true: 2**-(log2(sub_bucket_count) - 1).

        It holds for values of at least ``sub_bucket_count / 2 * 2**unit_magnitude``; smaller values
        share buckets of the absolute width ``2**unit_magnitude``.
        """
        return 2.0**-(self.half_magnitude)

    def compatible_with(self, other: Geometry) -> bool:
        """True when both map every value to the same counts index (lengths may differ)."""
        return self.unit_magnitude == other.unit_magnitude and self.half_magnitude == other.half_magnitude
