"""Run every sketch on every data set and measure quantile error and size.

Two modes per (data set, sketch):

* ``single``: one sketch fed the whole data set (batch insertion where the library has it);
* ``merged``: the data set cut into :data:`PARTS` consecutive parts (in the source's order), one
  sketch per part, the parts merged one after the other into the first, then queried: what a
  system that keeps one sketch per window or per machine and merges them at query time gets.

Each result holds the estimates and relative errors at :data:`~.method.QUANTILES`, the serialised
size and the in-memory size of the queried sketch (see :mod:`.sketches`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .datasets import Dataset
from .method import QUANTILES, exact_bounds, relative_errors
from .sketches import Sketch, highest_for, in_memory_bytes, make_sketches

__all__ = ["PARTS", "Result", "plan", "run_dataset", "run_study"]

#: Partial sketches merged in ``merged`` mode.
PARTS = 1000

Mode = Literal["single", "merged"]
MODES: tuple[Mode, ...] = ("single", "merged")


@dataclass
class Result:
    """One (data set, size, sketch, mode) measurement."""

    dataset: str
    label: str
    synthetic: bool
    n: int
    sketch: str
    sketch_label: str
    family: str
    mode: str
    quantiles: list[float]
    estimates: list[float]
    exact_lo: list[float]
    exact_hi: list[float]
    errors: list[float]
    serialized_bytes: int
    memory_bytes: int
    seconds: float
    skipped: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def max_error(self) -> float:
        return max(self.errors) if self.errors else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _build(sketch: Sketch, values: npt.NDArray[np.int64], mode: Mode, parts: int) -> Any:
    if mode == "single":
        return sketch.build(values)
    chunks = np.array_split(values, parts)
    merged = sketch.build(chunks[0])
    for part in chunks[1:]:
        merged = sketch.merge(merged, sketch.build(part))
    return merged


def _result(
    dataset: Dataset,
    sketch: Sketch,
    mode: Mode,
    quantiles: Sequence[float],
    bounds: Sequence[tuple[float, float]],
    parts: int,
    **measured: Any,
) -> Result:
    return Result(
        dataset=dataset.name,
        label=dataset.label,
        synthetic=dataset.synthetic,
        n=dataset.n,
        sketch=sketch.key,
        sketch_label=sketch.label,
        family=sketch.family,
        mode=mode,
        quantiles=list(quantiles),
        exact_lo=[b[0] for b in bounds],
        exact_hi=[b[1] for b in bounds],
        extra={"parts": min(parts, dataset.n)} if mode == "merged" else {},
        **measured,
    )


def plan(datasets: Sequence[Dataset], sketches: Sequence[Sketch], modes: Sequence[Mode] = MODES) -> int:
    """Number of (data set, sketch, mode) steps :func:`run_study` reports progress for."""
    return len(datasets) * len(sketches) * len(modes)


def run_dataset(
    dataset: Dataset,
    sketches: Sequence[Sketch] | None = None,
    *,
    modes: Sequence[Mode] = MODES,
    quantiles: Sequence[float] = QUANTILES,
    parts: int = PARTS,
    on_step: Callable[[str], None] | None = None,
) -> list[Result]:
    """Every sketch (default: :func:`~.sketches.make_sketches` over this data set's range) in every mode.

    ``parts``: how many partial sketches ``merged`` mode builds (at most one per value).
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    values = dataset.values
    ordered = np.sort(values)
    bounds = [exact_bounds(ordered, q) for q in quantiles]
    if sketches is None:
        sketches = make_sketches(highest_for(values))
    out: list[Result] = []
    for sketch in sketches:
        for mode in modes:
            step = f"{dataset.name} n={dataset.n:,} {sketch.key} {mode}"
            if sketch.max_n is not None and dataset.n > sketch.max_n:
                out.append(
                    _result(
                        dataset,
                        sketch,
                        mode,
                        quantiles,
                        bounds,
                        parts,
                        estimates=[],
                        errors=[],
                        serialized_bytes=0,
                        memory_bytes=0,
                        seconds=0.0,
                        skipped=f"capped at n = {sketch.max_n:,}",
                    )
                )
            else:
                started = time.perf_counter()
                built = _build(sketch, values, mode, min(parts, dataset.n))
                seconds = time.perf_counter() - started
                got = sketch.count(built)
                if got != dataset.n:
                    raise AssertionError(f"{step}: the sketch counts {got} values, not {dataset.n}")
                estimates = sketch.quantiles(built, quantiles)
                errors = relative_errors(ordered, estimates, quantiles)
                data = sketch.serialize(built)
                out.append(
                    _result(
                        dataset,
                        sketch,
                        mode,
                        quantiles,
                        bounds,
                        parts,
                        estimates=[float(e) for e in estimates],
                        errors=[float(e) for e in errors],
                        serialized_bytes=len(data),
                        memory_bytes=in_memory_bytes(sketch, data),
                        seconds=seconds,
                    )
                )
            if on_step is not None:
                on_step(step)
    return out


def run_study(
    datasets: Iterable[Dataset],
    *,
    sketches: Callable[[Dataset], Sequence[Sketch]] | None = None,
    modes: Sequence[Mode] = MODES,
    parts: int = PARTS,
    on_step: Callable[[str], None] | None = None,
) -> list[Result]:
    """:func:`run_dataset` over ``datasets`` (``sketches(dataset)`` picks the sketches of each)."""
    results: list[Result] = []
    for ds in datasets:
        chosen = sketches(ds) if sketches is not None else None
        results.extend(run_dataset(ds, chosen, modes=modes, parts=parts, on_step=on_step))
    return results
