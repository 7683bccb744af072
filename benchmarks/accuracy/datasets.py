# ruff: noqa: RUF001, RUF002 - labels and docstrings are typeset for the report (Greek letters, dashes)
"""The data sets of the accuracy study, all as ``int64`` durations in microseconds.

jobmetrics records durations as integer microseconds, so every sketch is fed the same integers
(the floating-point sketches receive them as floats) and the exact quantiles are those of these
integers.

Synthetic (seeded, any size):

* ``pareto``: Pareto with shape 1 and scale 1 ms (the heavy tail of the DDSketch paper);
* ``lognormal``: median 200 ms, ``sigma = 1`` (P99 ≈ 2 s);
* ``bimodal``: 70 % warm requests (lognormal, median 50 ms, ``sigma = 0.3``) and 30 % cold ones
  (median 20 s, ``sigma = 0.5``), shuffled.

Real traces, read from ``../shared/data/real/`` beside the repository (see its ``SOURCES.md``),
in the order the files list them:

* ``swf-wait`` / ``swf-run``: KTH SP2 (1996–97) batch jobs, queue wait and run time (s);
* ``openb-queue`` / ``openb-run``: Alibaba GPU cluster pods (2023), creation to scheduling and
  scheduling to deletion (s), pods that were scheduled;
* ``lora-exec``: Alibaba serverless Stable Diffusion requests, execution time (s) of the
  requests that finished (``SUCCEED`` or ``FAILED``);
* ``model-load``: Alibaba serverless base-model load latency, the bulk of a cold start (ms);
* ``gateway-queue``: Alibaba serverless gateway queuing-time samples (ms).

The readers are small and local to this folder on purpose: the study must not depend on the
library's own converters, whose output it could otherwise end up checking against itself.
"""

from __future__ import annotations

import gzip
import io
import math
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "REAL_DIR",
    "SYNTHETIC",
    "Dataset",
    "real_datasets",
    "synthetic",
]

#: ``shared/data/real`` beside the repository root.
REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"

_SECOND = 1_000_000
_MILLI = 1_000


@dataclass(frozen=True)
class Dataset:
    """One data set: ``values`` are durations in microseconds, in the source's order."""

    name: str
    label: str
    values: npt.NDArray[np.int64]
    synthetic: bool

    def __post_init__(self) -> None:
        if self.values.ndim != 1 or self.values.dtype != np.int64:
            raise ValueError(f"{self.name}: values must be a 1-D int64 array, got {self.values.dtype}")
        if self.values.shape[0] == 0:
            raise ValueError(f"{self.name}: no values")
        if int(self.values.min()) < 0:
            raise ValueError(f"{self.name}: negative duration {int(self.values.min())}")

    @property
    def n(self) -> int:
        return int(self.values.shape[0])

    def head(self, n: int) -> Dataset:
        """The first ``n`` values (all of them if there are fewer)."""
        return Dataset(self.name, self.label, self.values[:n].copy(), self.synthetic)


def _to_micros(values: npt.ArrayLike, unit: int) -> npt.NDArray[np.int64]:
    arr = np.asarray(values, dtype=np.float64) * unit
    if not np.all(np.isfinite(arr)):
        raise ValueError("durations must be finite")
    return np.rint(arr).astype(np.int64)


# ---------------------------------------------------------------------------------- synthetic


def _pareto(rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    return 1.0 + rng.pareto(1.0, n)  # classical Pareto, x_m = 1 (numpy's pareto is Lomax)


def _pareto_us(n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    return _to_micros(_pareto(rng, n), _MILLI)


def _lognormal_us(n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    return _to_micros(rng.lognormal(math.log(0.2), 1.0, n), _SECOND)


def _bimodal_us(n: int, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    cold = rng.random(n) < 0.3
    warm_s = rng.lognormal(math.log(0.05), 0.3, n)
    cold_s = rng.lognormal(math.log(20.0), 0.5, n)
    return _to_micros(np.where(cold, cold_s, warm_s), _SECOND)


#: name -> (label, generator(n, rng)).
SYNTHETIC: dict[str, tuple[str, Callable[[int, np.random.Generator], npt.NDArray[np.int64]]]] = {
    "pareto": ("Pareto, shape 1, scale 1 ms", _pareto_us),
    "lognormal": ("lognormal, median 200 ms, σ = 1", _lognormal_us),
    "bimodal": ("bimodal: 70 % ≈ 50 ms, 30 % ≈ 20 s", _bimodal_us),
}


def synthetic(name: str, n: int, *, seed: int = 20190801) -> Dataset:
    """``n`` values of the synthetic distribution ``name`` (seeded: the same for the same n)."""
    try:
        label, gen = SYNTHETIC[name]
    except KeyError:
        raise ValueError(
            f"unknown synthetic data set {name!r}; expected one of {sorted(SYNTHETIC)}"
        ) from None
    if n <= 0:
        raise ValueError(f"n must be > 0, got {n}")
    return Dataset(name, label, gen(n, np.random.default_rng(seed)), synthetic=True)


# ---------------------------------------------------------------------------------- real traces


def _read_swf(path: Path) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Wait and run times (s) of a Standard Workload Format log; -1 (unknown) rows dropped."""
    waits: list[int] = []
    runs: list[int] = []
    with gzip.open(path, "rt", encoding="ascii") as f:
        for line_no, line in enumerate(f, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith(";"):
                continue
            fields = stripped.split()
            if len(fields) != 18:
                raise ValueError(f"{path.name}:{line_no}: expected 18 SWF fields, got {len(fields)}")
            wait, run = int(fields[2]), int(fields[3])
            if wait >= 0 and run >= 0:
                waits.append(wait)
                runs.append(run)
    return np.array(waits, dtype=np.int64), np.array(runs, dtype=np.int64)


def _read_csv(data: Path | bytes, columns: list[str]) -> pa.Table:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    return pacsv.read_csv(source, convert_options=pacsv.ConvertOptions(include_columns=columns))


def _tar_member(path: Path, member: str) -> bytes:
    with tarfile.open(path, "r:gz") as tar:
        f = tar.extractfile(member)
        if f is None:
            raise ValueError(f"{path.name}: {member} is not a regular file")
        return f.read()


def _column(table: pa.Table, name: str) -> npt.NDArray[np.float64]:
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def real_datasets(directory: Path = REAL_DIR) -> list[Dataset]:
    """The real-trace data sets whose files are present in ``directory`` (none if it is absent)."""
    out: list[Dataset] = []
    swf = directory / "KTH-SP2-1996-2.1-cln.swf.gz"
    if swf.is_file():
        wait, run = _read_swf(swf)
        out.append(Dataset("swf-wait", "KTH SP2 batch jobs: queue wait", wait * _SECOND, False))
        out.append(Dataset("swf-run", "KTH SP2 batch jobs: run time", run * _SECOND, False))
    pods = directory / "openb_pod_list_default.csv"
    if pods.is_file():
        t = _read_csv(pods, ["creation_time", "scheduled_time", "deletion_time"])
        t = t.filter(pc.is_valid(t.column("scheduled_time")))
        created, scheduled = _column(t, "creation_time"), _column(t, "scheduled_time")
        deleted = _column(t, "deletion_time")
        out.append(
            Dataset(
                "openb-queue", "Alibaba GPU pods: queueing", _to_micros(scheduled - created, _SECOND), False
            )
        )
        out.append(
            Dataset(
                "openb-run", "Alibaba GPU pods: run time", _to_micros(deleted - scheduled, _SECOND), False
            )
        )
    lora = directory / "lora_request_trace.csv"
    if lora.is_file():
        t = _read_csv(lora, ["predict_status", "exec_time_seconds"])
        done = pc.is_in(t.column("predict_status"), value_set=pa.array(["SUCCEED", "FAILED"]))
        t = t.filter(done)
        out.append(
            Dataset(
                "lora-exec",
                "Alibaba serverless SD requests: execution",
                _to_micros(_column(t, "exec_time_seconds"), _SECOND),
                False,
            )
        )
    load = directory / "basemodel_update_latency_anon.tar.gz"
    if load.is_file():
        t = _read_csv(_tar_member(load, "basemodel_update_latency_anon.csv"), ["value"])
        out.append(
            Dataset(
                "model-load",
                "Alibaba serverless: model load (cold start)",
                _to_micros(_column(t, "value"), _MILLI),
                False,
            )
        )
    queue = directory / "queue_rt_raw_anon.tar.gz"
    if queue.is_file():
        t = _read_csv(_tar_member(queue, "queue_rt_raw_anon.csv"), ["value"])
        out.append(
            Dataset(
                "gateway-queue",
                "Alibaba serverless: gateway queuing",
                _to_micros(_column(t, "value"), _MILLI),
                False,
            )
        )
    return out
