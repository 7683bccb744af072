# ruff: noqa: RUF001, RUF002 - Greek letters name the sketches' parameters, as their papers do
"""One adapter per sketch, so the accuracy study and the throughput benchmarks drive every library
through the same small interface.

=================  ==========================================================================
key                sketch
=================  ==========================================================================
``jobmetrics-1``   :class:`jobmetrics.HdrHistogram`, 1 significant figure
``jobmetrics-2``   the same at 2 figures (jobmetrics' default, what the Aggregator keeps)
``jobmetrics-3``   the same at 3 figures
``hdrhistogram``   the Python HdrHistogram (``hdrh.histogram``), 2 figures: same buckets
``ddsketch``       Datadog's DDSketch, relative accuracy α = 1 %
``fastdigest``     t-digest in Rust (``fastdigest``), default 1 000 centroids
``tdigest``        t-digest in pure Python (``tdigest``), default δ = 0.01, K = 25
=================  ==========================================================================

HDR histograms record integers: every data set is integer microseconds, and each HDR sketch is
built over ``1 µs … highest`` with ``highest = max(7 days, largest value)`` so that no value is
clamped (7 days is the Aggregator's default range).

Serialised size is each library's own format: the raw HdrHistogram V2 compressed bytes for both HDR
libraries (what a snapshot's ``*_hdr`` column holds; base64 adds a third), ``fastdigest``'s
``to_bytes``, ``tdigest``'s ``to_dict`` as JSON, and for ``ddsketch`` the pickle of the sketch (its
protobuf encoder needs ``protobuf``, which is not a dependency here; both store one 8-byte double
per bin). In-memory size is the Python heap that deserialising one sketch keeps alive (traced with
:mod:`tracemalloc`, after a warm-up), plus, for ``fastdigest``, whose centroids live in Rust memory
the tracer cannot see, 16 bytes (mean and weight) per centroid.
"""

from __future__ import annotations

import base64
import gc
import json
import pickle
import tracemalloc
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from jobmetrics import HdrHistogram
from jobmetrics.histogram import DEFAULT_HIGHEST

__all__ = [
    "DDSketchAdapter",
    "FastDigestAdapter",
    "HdrhAdapter",
    "JobmetricsAdapter",
    "Sketch",
    "TDigestAdapter",
    "highest_for",
    "in_memory_bytes",
    "make_sketches",
]


def highest_for(values: npt.NDArray[np.int64]) -> int:
    """The HDR range top used for ``values``: 7 days in µs, or the largest value if above."""
    return max(DEFAULT_HIGHEST, int(values.max()) if values.size else 0)


class Sketch:
    """The interface: build, insert, merge, query, serialise. Subclasses wrap one library."""

    #: Stable identifier (file names, table rows).
    key: str = ""
    #: What the tables and plots call it.
    label: str = ""
    #: The library (one colour per library in the plots).
    family: str = ""
    #: Whether the library has a batch insertion API (otherwise the batch is a loop of per-value calls).
    has_batch: bool = False
    #: How the batch insertion is done (for the tables).
    batch_note: str = ""
    #: Largest data set the study feeds it (None: no cap); pure-Python sketches are slow.
    max_n: int | None = None

    def new(self) -> Any:
        raise NotImplementedError

    def insert_one(self, sketch: Any, value: int) -> None:
        raise NotImplementedError

    def insert_batch(self, sketch: Any, values: npt.NDArray[np.int64]) -> None:
        insert = self.insert_one
        for v in values.tolist():
            insert(sketch, v)

    def build(self, values: npt.NDArray[np.int64]) -> Any:
        sketch = self.new()
        self.insert_batch(sketch, values)
        return sketch

    def merge(self, into: Any, other: Any) -> Any:
        """Merge ``other`` into ``into`` (in place where the library can) and return the result."""
        raise NotImplementedError

    def quantiles(self, sketch: Any, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        raise NotImplementedError

    def count(self, sketch: Any) -> int:
        raise NotImplementedError

    def serialize(self, sketch: Any) -> bytes:
        raise NotImplementedError

    def deserialize(self, data: bytes) -> Any:
        raise NotImplementedError

    def native_bytes(self, sketch: Any) -> int:
        """Bytes held outside Python's allocator (invisible to tracemalloc)."""
        return 0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"


class JobmetricsAdapter(Sketch):
    """:class:`jobmetrics.HdrHistogram`: ``record(array)`` in batches, ``record(int)`` per value."""

    family = "jobmetrics"
    has_batch = True
    batch_note = "record(array)"

    def __init__(self, significant_figures: int = 2, highest: int = DEFAULT_HIGHEST) -> None:
        self.significant_figures = significant_figures
        self.highest = highest
        self.key = f"jobmetrics-{significant_figures}"
        self.label = f"jobmetrics {significant_figures} s.f."

    def new(self) -> HdrHistogram:
        return HdrHistogram(1, self.highest, self.significant_figures)

    def insert_one(self, sketch: HdrHistogram, value: int) -> None:
        sketch.record(value)

    def insert_batch(self, sketch: HdrHistogram, values: npt.NDArray[np.int64]) -> None:
        sketch.record(values)

    def merge(self, into: HdrHistogram, other: HdrHistogram) -> HdrHistogram:
        return into.add(other)

    def quantiles(self, sketch: HdrHistogram, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        return sketch.values_at_quantiles(qs).astype(np.float64)

    def count(self, sketch: HdrHistogram) -> int:
        return sketch.total_count

    def serialize(self, sketch: HdrHistogram) -> bytes:
        return sketch.to_bytes()

    def deserialize(self, data: bytes) -> HdrHistogram:
        return HdrHistogram.decode(data)


class HdrhAdapter(Sketch):
    """The Python HdrHistogram (``hdrhistogram`` on PyPI): per-value ``record_value`` only."""

    key = "hdrhistogram"
    label = "hdrhistogram 2 s.f."
    family = "hdrhistogram"
    batch_note = "loop of record_value (no batch API)"

    def __init__(self, highest: int = DEFAULT_HIGHEST) -> None:
        from hdrh.histogram import HdrHistogram as PyHdr  # type: ignore[import-untyped]

        self._cls = PyHdr
        self.highest = highest

    def new(self) -> Any:
        return self._cls(1, self.highest, 2)

    def insert_one(self, sketch: Any, value: int) -> None:
        sketch.record_value(value)

    def insert_batch(self, sketch: Any, values: npt.NDArray[np.int64]) -> None:
        record = sketch.record_value
        for v in values.tolist():
            record(v)

    def merge(self, into: Any, other: Any) -> Any:
        into.add(other)
        return into

    def quantiles(self, sketch: Any, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        return np.array([sketch.get_value_at_percentile(q * 100.0) for q in qs], dtype=np.float64)

    def count(self, sketch: Any) -> int:
        return int(sketch.get_total_count())

    def serialize(self, sketch: Any) -> bytes:
        return base64.b64decode(sketch.encode())

    def deserialize(self, data: bytes) -> Any:
        return self._cls.decode(base64.b64encode(data))


class DDSketchAdapter(Sketch):
    """Datadog's ``ddsketch`` (pure Python), α = 1 %: per-value ``add`` only."""

    key = "ddsketch"
    label = "DDSketch α = 1 %"
    family = "ddsketch"
    batch_note = "loop of add (no batch API)"

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        from ddsketch import DDSketch

        self._cls = DDSketch
        self.relative_accuracy = relative_accuracy

    def new(self) -> Any:
        return self._cls(relative_accuracy=self.relative_accuracy)

    def insert_one(self, sketch: Any, value: int) -> None:
        sketch.add(float(value))

    def insert_batch(self, sketch: Any, values: npt.NDArray[np.int64]) -> None:
        add = sketch.add
        for v in values.astype(np.float64).tolist():
            add(v)

    def merge(self, into: Any, other: Any) -> Any:
        into.merge(other)
        return into

    def quantiles(self, sketch: Any, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        return np.array([sketch.get_quantile_value(q) for q in qs], dtype=np.float64)

    def count(self, sketch: Any) -> int:
        return int(sketch.count)

    def serialize(self, sketch: Any) -> bytes:
        return pickle.dumps(sketch, protocol=pickle.HIGHEST_PROTOCOL)

    def deserialize(self, data: bytes) -> Any:
        return pickle.loads(data)  # bytes this module wrote


class FastDigestAdapter(Sketch):
    """t-digest in Rust (``fastdigest``), default ``max_centroids=1000``."""

    key = "fastdigest"
    label = "t-digest (fastdigest)"
    family = "fastdigest"
    has_batch = True
    batch_note = "batch_update(array)"

    def __init__(self) -> None:
        from fastdigest import TDigest

        self._cls = TDigest

    def new(self) -> Any:
        return self._cls()

    def insert_one(self, sketch: Any, value: int) -> None:
        sketch.update(float(value))

    def insert_batch(self, sketch: Any, values: npt.NDArray[np.int64]) -> None:
        sketch.batch_update(values.astype(np.float64))

    def merge(self, into: Any, other: Any) -> Any:
        into.merge_inplace(other)
        return into

    def quantiles(self, sketch: Any, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        return np.array([sketch.quantile(q) for q in qs], dtype=np.float64)

    def count(self, sketch: Any) -> int:
        return int(sketch.n_values)

    def serialize(self, sketch: Any) -> bytes:
        return bytes(sketch.to_bytes())

    def deserialize(self, data: bytes) -> Any:
        return self._cls.from_bytes(data)

    def native_bytes(self, sketch: Any) -> int:
        return 16 * int(sketch.n_centroids)


class TDigestAdapter(Sketch):
    """t-digest in pure Python (``tdigest``), defaults δ = 0.01, K = 25."""

    key = "tdigest"
    label = "t-digest (tdigest)"
    family = "tdigest"
    has_batch = True
    batch_note = "batch_update (a Python loop inside)"
    max_n = 1_000_000  # ≈ 16 µs a value here: 10^7 values would take minutes per data set

    def __init__(self) -> None:
        from tdigest import TDigest

        self._cls = TDigest

    def new(self) -> Any:
        return self._cls()

    def insert_one(self, sketch: Any, value: int) -> None:
        sketch.update(float(value))

    def insert_batch(self, sketch: Any, values: npt.NDArray[np.int64]) -> None:
        sketch.batch_update(values.astype(np.float64).tolist())

    def merge(self, into: Any, other: Any) -> Any:
        return into + other

    def quantiles(self, sketch: Any, qs: Sequence[float]) -> npt.NDArray[np.float64]:
        return np.array([sketch.percentile(q * 100.0) for q in qs], dtype=np.float64)

    def count(self, sketch: Any) -> int:
        return round(float(sketch.n))

    def serialize(self, sketch: Any) -> bytes:
        return json.dumps(sketch.to_dict()).encode()

    def deserialize(self, data: bytes) -> Any:
        digest = self._cls()
        digest.update_from_dict(json.loads(data))
        return digest


def make_sketches(highest: int = DEFAULT_HIGHEST) -> list[Sketch]:
    """Every sketch of the study, HDR ones over ``1 µs … highest``."""
    return [
        JobmetricsAdapter(1, highest),
        JobmetricsAdapter(2, highest),
        JobmetricsAdapter(3, highest),
        HdrhAdapter(highest),
        DDSketchAdapter(0.01),
        FastDigestAdapter(),
        TDigestAdapter(),
    ]


def in_memory_bytes(adapter: Sketch, data: bytes) -> int:
    """Heap kept alive by one sketch deserialised from ``data`` (see the module docstring)."""
    adapter.deserialize(data)  # warm-up: caches, lazily imported code, compiled kernels
    started = not tracemalloc.is_tracing()
    enabled = gc.isenabled()
    gc.disable()  # a collection in between would free unrelated garbage and skew the difference
    if started:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        sketch = adapter.deserialize(data)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        if started:
            tracemalloc.stop()
        if enabled:
            gc.enable()
    return max(0, after - before) + adapter.native_bytes(sketch)
