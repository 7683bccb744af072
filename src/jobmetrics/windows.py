"""Window rows in sparse form: the closed-window store and the merges queries need.

A :class:`RowBlock` holds rows of (endpoint, window): their integer values (counters, then jobs in
queue/in progress at the window's end, worker-µs per state, most workers per state; the layout of
:mod:`jobmetrics._kernels.layout` from ``R_CNT``) and each metric's histogram as COO entries (row,
bucket index, count). Closing a window turns its dense row into such a block; snapshots,
sliding queries and totals all merge blocks by addition.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ClosedRows", "RowBlock"]

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Rows of (endpoint, window) with sparse histograms; ``hist_*[m]`` belong to metric ``m``."""

    endpoint: I32
    window: I64
    values: I64
    hist_row: tuple[I32, ...]
    hist_index: tuple[I32, ...]
    hist_count: tuple[I64, ...]

    def __len__(self) -> int:
        return int(self.endpoint.shape[0])

    @property
    def nbytes(self) -> int:
        arrays: list[npt.NDArray[np.integer]] = [self.endpoint, self.window, self.values]
        arrays += [*self.hist_row, *self.hist_index, *self.hist_count]
        return sum(int(a.nbytes) for a in arrays)

    def select(self, mask: npt.NDArray[np.bool_]) -> RowBlock:
        """The rows where ``mask`` is true (histogram entries renumbered)."""
        keep = np.flatnonzero(mask)
        new_id = np.full(len(self), -1, dtype=np.int32)
        new_id[keep] = np.arange(keep.size, dtype=np.int32)
        rows, idx, cnt = [], [], []
        for r, i, c in zip(self.hist_row, self.hist_index, self.hist_count, strict=True):
            sel = mask[r] if r.size else np.zeros(0, dtype=bool)
            rows.append(new_id[r[sel]])
            idx.append(i[sel])
            cnt.append(c[sel])
        return RowBlock(
            self.endpoint[keep], self.window[keep], self.values[keep],
            tuple(rows), tuple(idx), tuple(cnt),
        )  # fmt: skip

    @staticmethod
    def concat(blocks: list[RowBlock], n_metrics: int) -> RowBlock:
        """All rows of ``blocks`` in one block."""
        nonempty = [b for b in blocks if len(b)]
        if not nonempty and blocks:
            return blocks[-1]
        blocks = nonempty
        if not blocks:
            empty32 = np.zeros(0, dtype=np.int32)
            empty64 = np.zeros(0, dtype=np.int64)
            return RowBlock(
                empty32, empty64, np.zeros((0, 0), dtype=np.int64),
                (empty32,) * n_metrics, (empty32,) * n_metrics, (empty64,) * n_metrics,
            )  # fmt: skip
        if len(blocks) == 1:
            return blocks[0]
        offsets = np.cumsum([0] + [len(b) for b in blocks[:-1]])
        rows, idx, cnt = [], [], []
        for m in range(n_metrics):
            rows.append(
                np.concatenate([b.hist_row[m] + np.int32(o) for b, o in zip(blocks, offsets, strict=True)])
            )
            idx.append(np.concatenate([b.hist_index[m] for b in blocks]))
            cnt.append(np.concatenate([b.hist_count[m] for b in blocks]))
        return RowBlock(
            np.concatenate([b.endpoint for b in blocks]),
            np.concatenate([b.window for b in blocks]),
            np.concatenate([b.values for b in blocks]),
            tuple(rows), tuple(idx), tuple(cnt),
        )  # fmt: skip

    def dense_histogram(self, metric: int, counts_len: int, mask: npt.NDArray[np.bool_] | None = None) -> I64:
        """Sum of metric ``metric``'s histograms over the rows (or the rows where ``mask``)."""
        out = np.zeros(counts_len, dtype=np.int64)
        r, i, c = self.hist_row[metric], self.hist_index[metric], self.hist_count[metric]
        if mask is not None:
            sel = mask[r]
            i, c = i[sel], c[sel]
        np.add.at(out, i, c)
        return out


class ClosedRows:
    """Append-only store of closed window rows, kept as a list of blocks compacted on demand."""

    def __init__(self, counts_len: int, n_metrics: int = 3) -> None:
        self.counts_len = counts_len
        self.n_metrics = n_metrics
        self._blocks: list[RowBlock] = []

    def append(self, block: RowBlock) -> None:
        if len(block):
            self._blocks.append(block)
            if len(self._blocks) > 64:
                self._blocks = [RowBlock.concat(self._blocks, self.n_metrics)]

    def all(self) -> RowBlock:
        """Every closed row as one block."""
        block = RowBlock.concat(self._blocks, self.n_metrics)
        self._blocks = [block] if len(block) else []
        return block

    def drop_before(self, window: int) -> int:
        """Forget rows of windows before ``window``; return how many were dropped."""
        block = self.all()
        keep = block.window >= window
        dropped = int((~keep).sum())
        if dropped:
            self._blocks = [block.select(keep)] if keep.any() else []
        return dropped

    def __len__(self) -> int:
        return sum(len(b) for b in self._blocks)

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self._blocks)
